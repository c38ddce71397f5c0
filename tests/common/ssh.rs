//! A real `sshd` per test: its own host key, a user key in its own
//! `authorized_keys`, listening on one port of several 127.x.y.z
//! addresses, killed by the pid we started. And an SSH fleet around it: a
//! muster state dir and a config dir whose `ssh.toml` names each address
//! as a host with its own install directory (they all share this
//! machine's root account, so each gets its own place for the agent).
#![allow(dead_code)]

use crate::common::{stderr, BIN};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub struct Sshd {
    children: Vec<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub addrs: Vec<String>,
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen is needed: apt-get install openssh-client");
    assert!(ok.success());
}

fn rand_u8() -> u8 {
    let mut b = [0u8; 1];
    getrandom::getrandom(&mut b).unwrap();
    b[0]
}

impl Sshd {
    /// An sshd on `n` addresses 127.A.B.1..n (A, B random), one port.
    pub fn start(n: usize) -> Sshd {
        Sshd::start_with(n, "")
    }

    /// The same, with `extra` lines in sshd_config.
    pub fn start_with(n: usize, extra: &str) -> Sshd {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd is needed: apt-get install openssh-server");
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("hostkey"));
        keygen(&dir.path().join("userkey"));
        std::fs::copy(dir.path().join("userkey.pub"), dir.path().join("authorized_keys")).unwrap();
        // Random addresses make a clash with another test's sshd unlikely.
        let (a, b) = (100 + rand_u8() % 100, 1 + rand_u8() % 250);
        let addrs: Vec<String> = (1..=n).map(|i| format!("127.{a}.{b}.{i}")).collect();
        let port = TcpListener::bind((addrs[0].as_str(), 0)).unwrap().local_addr().unwrap().port();
        // sshd listens on at most 16 addresses: one daemon per 16.
        let mut children = Vec::new();
        for (k, group) in addrs.chunks(16).enumerate() {
            let mut conf = format!(
                "Port {port}\nHostKey {0}/hostkey\nAuthorizedKeysFile {0}/authorized_keys\nStrictModes no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 MaxStartups 200\nMaxSessions 100\nPidFile {0}/sshd{k}.pid\n",
                dir.path().display()
            );
            for a in group {
                conf.push_str(&format!("ListenAddress {a}\n"));
            }
            conf.push_str(extra);
            let cfg = dir.path().join(format!("sshd_config{k}"));
            std::fs::write(&cfg, conf).unwrap();
            let log = std::fs::File::create(dir.path().join(format!("sshd{k}.log"))).unwrap();
            children.push(Command::new(sshd).args(["-D", "-e", "-f"]).arg(&cfg).stderr(log).spawn().unwrap());
        }
        let s = Sshd { children, dir, port, addrs };
        crate::common::wait_for(Duration::from_secs(10), "sshd to listen", || {
            s.addrs.iter().all(|a| TcpStream::connect((a.as_str(), s.port)).is_ok())
        });
        s
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("userkey")
    }

    /// ssh options that reach this sshd with this key, trusting its host key.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}/known_hosts", self.dir.path().display()),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-i".into(),
            self.key().display().to_string(),
            "-p".into(),
            self.port.to_string(),
        ]
    }

    pub fn kill(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Hosts h1..hN behind one sshd, a state dir and a config dir.
pub struct SshFleet {
    pub sshd: Sshd,
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
    pub names: Vec<String>,
    daemon: Option<Child>,
    shared: bool,
}

impl SshFleet {
    /// `n` hosts; `extra` is added to each host's section of ssh.toml.
    pub fn new(n: usize, extra: &str) -> SshFleet {
        SshFleet::build(Sshd::start(n), extra, false)
    }

    /// One host behind an sshd with `sshd_extra` in its config.
    pub fn with_sshd(sshd_extra: &str) -> SshFleet {
        SshFleet::build(Sshd::start_with(1, sshd_extra), "", false)
    }

    /// `n` hosts sharing one install directory (they are one machine
    /// here): the agent is copied once, not once per host.
    pub fn shared(n: usize, extra: &str) -> SshFleet {
        SshFleet::build(Sshd::start(n), extra, true)
    }

    fn build(sshd: Sshd, extra: &str, shared: bool) -> SshFleet {
        let tmp = tempfile::tempdir().unwrap();
        let (state, config) = (tmp.path().join("state"), tmp.path().join("config"));
        std::fs::create_dir_all(&config).unwrap();
        let opts: Vec<String> = sshd.ssh_options().iter().map(|o| format!("{o:?}")).collect();
        let mut toml = format!("[defaults]\nssh_options = [{}]\n", opts.join(", "));
        let mut names = Vec::new();
        for (i, a) in sshd.addrs.iter().enumerate() {
            let name = format!("h{}", i + 1);
            let lib = if shared { tmp.path().join("lib") } else { tmp.path().join(&name).join("lib") };
            toml.push_str(&format!(
                "[hosts.{name}]\naddress = \"root@{a}\"\ninstall_dir = {:?}\ntags = [{:?}]\n{extra}\n",
                lib.display().to_string(),
                if i % 2 == 0 { "odd" } else { "even" }
            ));
            names.push(name);
        }
        std::fs::write(config.join("ssh.toml"), toml).unwrap();
        SshFleet { sshd, tmp, state, config, names, daemon: None, shared }
    }

    pub fn install_dir(&self, name: &str) -> PathBuf {
        if self.shared {
            self.tmp.path().join("lib")
        } else {
            self.tmp.path().join(name).join("lib")
        }
    }

    pub fn muster(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env("MUSTER_CONFIG", &self.config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `muster run TARGETS --via ssh OPTS -- CMD`
    pub fn run(&self, targets: &str, opts: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["run", targets, "--via", "ssh"];
        args.extend_from_slice(opts);
        args.push("--");
        args.extend_from_slice(cmd);
        self.muster(&args)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env("MUSTER_CONFIG", &self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Start `muster daemon` on this state dir and wait for its socket.
    pub fn start_daemon(&mut self) {
        let log = std::fs::File::create(self.tmp.path().join("daemon.err")).unwrap();
        let child = Command::new(BIN)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("daemon")
            .env("MUSTER_CONFIG", &self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let sock = self.state.join("daemon/daemon.sock");
        crate::common::wait_for(Duration::from_secs(10), "the daemon socket", || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.state.join("daemon/daemon.log")).unwrap_or_default()
    }

    pub fn stop_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for SshFleet {
    fn drop(&mut self) {
        self.stop_daemon();
    }
}

/// Pids of running agents started from `dir` (`<dir>/muster-* agent stdio`).
pub fn agents_in(dir: &Path) -> Vec<i32> {
    let want = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with(&want) && cmd.contains("agent stdio") {
            out.push(pid);
        }
    }
    out
}

pub fn check(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}
