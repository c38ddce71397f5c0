//! `muster demo`: a throwaway fleet on loopback. It creates a CA in a temp
//! dir, enrolls N agents on distinct 127.0.0.x addresses, starts each as a
//! real `muster agent serve` child process, runs one sample action across
//! all of them with grouped output, then stops the agents and removes
//! everything. Exit status is the run's bitmask (0 when all succeeded).

use crate::dispatch::output::Mode;
use crate::dispatch::plan::{Plan, Request};
use crate::dispatch::{self, DispatcherConfig};
use crate::transport::carrier::Carrier;
use anyhow::{anyhow, bail, Context, Result};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SAMPLE: &str = "#!/bin/sh\n\
echo \"kernel: $(uname -sr)\"\n\
echo \"action $MUSTER_ACTION for $MUSTER_DISPATCHER, args: $*\"\n";

/// Stops the agent processes however the demo ends.
struct Fleet(Vec<Child>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// A free port on `ip`, found by binding port 0.
pub fn free_addr(ip: &str) -> Result<SocketAddr> {
    let l = TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}"))?;
    Ok(l.local_addr()?)
}

pub fn run(n: u16) -> Result<u8> {
    if n == 0 || n > 250 {
        bail!("--agents must be between 1 and 250");
    }
    let tmp = tempfile::Builder::new().prefix("muster-demo-").tempdir()?;
    let state = tmp.path().join("dispatcher");
    crate::pki::init_ca(&state, "demo-dispatcher", 1)?;
    let script = tmp.path().join("hello.sh");
    std::fs::write(&script, SAMPLE)?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let exe = std::env::current_exe().context("cannot find the muster binary")?;
    let mut fleet = Fleet(Vec::new());
    let mut addrs = Vec::new();
    for i in 1..=n {
        let name = format!("agent{i:02}");
        let addr = free_addr(&format!("127.0.0.{}", i + 1))?;
        let dir = tmp.path().join(&name);
        let tags = vec![if i % 2 == 0 { "even" } else { "odd" }.to_string()];
        crate::enroll::issue_agent_dir(&state, &name, &addr.to_string(), &tags, &dir, false)?;
        std::fs::write(dir.join("scripts.conf"), format!("hello = {}\n", script.display()))?;
        let child = Command::new(&exe)
            .args(["agent", "serve", "--config"])
            .arg(dir.join("agent.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start an agent process")?;
        fleet.0.push(child);
        addrs.push(addr);
    }
    wait_listening(&addrs, Duration::from_secs(10))?;
    println!("muster demo: {n} agents on loopback, running `hello` on all of them\n");
    let code = dispatch_sample(&state)?;
    drop(fleet);
    println!("\nmuster demo: agents stopped, {} removed", tmp.path().display());
    Ok(code)
}

fn wait_listening(addrs: &[SocketAddr], limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    for a in addrs {
        while TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
            if t0.elapsed() > limit {
                bail!("agent on {a} did not start listening within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn dispatch_sample(state: &Path) -> Result<u8> {
    let cfg = DispatcherConfig::default();
    let resolved = dispatch::resolve(state, "all", &[]).map_err(|e| anyhow!(e))?;
    let carrier = crate::cli::tls_carrier(state, &cfg)?;
    let plan = Plan {
        request: Request {
            request_id: crate::cli::request_id(),
            action: "hello".into(),
            args: vec!["from".into(), "the".into(), "demo".into()],
            username: "demo".into(),
            token: None,
            timeout: Duration::from_secs(30),
            detach: false,
        },
        dispatcher: carrier.dispatcher_id.clone(),
        via: "tls".into(),
        targets: resolved.targets,
        missing: resolved.missing,
        tags: Vec::new(),
        fanout: 64,
        max_errors: None,
        lock_dir: Some(state.join("locks")),
        hook: None,
        liveness: Default::default(),
        broadcast: Default::default(),
    };
    let outcome = crate::cli::dispatch_plan(Carrier::Dial(Arc::new(carrier)), plan, Mode::Grouped, false)?;
    Ok(outcome.exit_status())
}
