//! Acceptance (issue 8, §3): an agent holds its port against idle and slow
//! peers (slow-loris) and bounds what a trusted dispatcher can make it
//! spawn: a legitimate run still succeeds at once, and no more hooks run
//! at once than `max_concurrent`.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Let this process hold a few thousand sockets.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// The start of a TLS ClientHello record, as a slow peer would dribble it.
const HELLO_START: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

fn hold_port(f: &mut Fleet, idle: usize, slow: usize) {
    raise_fd_limit();
    let s = f.script("t", "echo fine");
    let i = f.add("a1", &[], &[("t", &s)]);
    f.configure(i, "handshake_timeout = 30");
    f.start_all();
    let addr = f.agents[0].addr;
    let mut held = Vec::new();
    for n in 0..idle + slow {
        let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { continue };
        if n >= idle {
            let _ = c.write_all(&HELLO_START[..1 + n % (HELLO_START.len() - 1)]);
        }
        held.push(c);
    }
    assert!(held.len() >= (idle + slow) * 9 / 10, "only {} connections opened", held.len());
    for _ in 0..3 {
        let t0 = Instant::now();
        let out = f.run("a1", &["--output", "json"], &["t"]);
        let took = t0.elapsed();
        assert_eq!(code(&out), 0, "{} held: {}", held.len(), stderr(&out));
        assert!(took < Duration::from_secs(1), "{} held: the run took {took:?}", held.len());
    }
    drop(held);
}

#[test]
fn three_hundred_idle_connections_do_not_lock_out_a_dispatcher() {
    hold_port(&mut Fleet::new(), 300, 0);
}

#[test]
fn a_thousand_idle_and_slow_peers_do_not_lock_out_a_dispatcher() {
    hold_port(&mut Fleet::new(), 700, 300);
}

#[test]
fn a_flood_of_requests_runs_no_more_hooks_than_run_slots() {
    let mut f = Fleet::new();
    let log = f.path("hooks.log");
    let hook = f.script(
        "hook",
        &format!("echo start $(date +%s%N) >> {0}\nsleep 0.2\necho end $(date +%s%N) >> {0}", log.display()),
    );
    let s = f.script("t", "sleep 0.3");
    let i = f.add("a1", &[], &[("t", &s)]);
    f.configure(i, &format!("max_concurrent = 2\nhook = {:?}", hook.display().to_string()));
    f.start_all();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (busy, done) = rt.block_on(async {
        use muster::protocol::{Message, Refusal, Run};
        use muster::transport::carrier::{Dialer, Target};
        let carrier = muster::cli::tls_carrier(&f.state, &Default::default()).unwrap();
        let target = Target { name: "a1".into(), addr: f.agents[0].addr.to_string() };
        let mut s = carrier.open(&target).await.unwrap();
        for id in 0..200u64 {
            let run = Run {
                id,
                request_id: format!("flood-{id}"),
                action: "t".into(),
                args: vec![],
                username: "t".into(),
                token: None,
                timeout_ms: None,
                detach: false,
            };
            s.writer.write(&Message::Run(run)).await.unwrap();
        }
        let (mut busy, mut done) = (0, 0);
        while busy + done < 200 {
            match tokio::time::timeout(Duration::from_secs(20), s.reader.read()).await {
                Ok(Ok(Some(Message::Refused { reason: Refusal::Busy { limit: 2 }, .. }))) => busy += 1,
                Ok(Ok(Some(Message::Finished(_)))) => done += 1,
                Ok(Ok(Some(_))) => {}
                other => panic!("session ended early: {other:?}"),
            }
        }
        (busy, done)
    });
    assert!(done >= 2 && busy >= 190, "{done} ran, {busy} refused busy");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2 * done, "one hook per request that got a slot:\n{text}");
    assert!(max_overlap(&text) <= 2, "hooks ran beyond the run slots:\n{text}");
}
