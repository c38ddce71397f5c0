//! Acceptance (issue 10, SSH carrier): a real sshd per test. The first run
//! installs the agent on a host without it, a second copies nothing,
//! another version there triggers a copy; `--no-install` refuses; hosts
//! that cannot be reached or refuse the key end in the right state; a hung
//! command is killed; put/get round-trip a binary file.

mod common;
#[path = "common/ssh.rs"]
mod ssh;

use common::*;
use ssh::*;
use std::time::{Duration, Instant};

fn installed(f: &SshFleet) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(f.state.join("ssh/hosts.json")).unwrap_or_else(|_| "{}".into()))
        .unwrap()
}

#[test]
fn first_run_installs_second_copies_nothing_another_version_copies_again() {
    let f = SshFleet::new(2, "");
    assert!(!f.install_dir("h1").exists());
    let out = f.run("all", &["--output", "json"], &["echo", "hello from", "$((6*7))"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let texts: Vec<String> = events(&out).iter().filter_map(|e| e["text"].as_str().map(String::from)).collect();
    assert_eq!(texts, ["hello from 42\n", "hello from 42\n"], "one shell command line");
    let first = installed(&f);
    let file = first["h1"]["file"].as_str().unwrap().to_string();
    assert!(f.install_dir("h1").join(&file).is_file());
    let mtime = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before = mtime(&f.install_dir("h1").join(&file));

    let out = f.run("all", &[], &["true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(installed(&f), first, "nothing was copied");
    assert_eq!(mtime(&f.install_dir("h1").join(&file)), before);

    // Another version on h1: ours is copied beside it.
    std::fs::rename(f.install_dir("h1").join(&file), f.install_dir("h1").join("muster-0.0.1-000000000000")).unwrap();
    let out = f.run("h1", &[], &["true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(f.install_dir("h1").join(&file).is_file());
    assert_ne!(installed(&f)["h1"]["installed"], first["h1"]["installed"]);
    assert_eq!(installed(&f)["h2"], first["h2"]);
}

#[test]
fn no_install_refuses_and_bad_hosts_end_in_their_state() {
    let f = SshFleet::new(1, "");
    // A key the server does not know: refused (before any connection is shared).
    let keys = f.sshd.dir.path().join("authorized_keys");
    let saved = std::fs::read(&keys).unwrap();
    std::fs::write(&keys, "").unwrap();
    let out = f.run("h1", &["--output", "json"], &["true"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert_eq!(ends(&out)["h1"]["reason"], "ssh authentication failed", "{}", ends(&out)["h1"]);
    std::fs::write(&keys, saved).unwrap();
    let out = f.run("h1", &["--no-install", "--output", "json"], &["true"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert_eq!(ends(&out)["h1"]["reason"], "agent not installed", "{}", ends(&out)["h1"]);
    assert!(!f.install_dir("h1").exists());
    // A port with no sshd: unreachable.
    let out = f.run("root@127.0.0.1:1", &["--output", "json"], &["true"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(ends(&out)["root@127.0.0.1:1"]["state"], "unreachable");
}

#[test]
fn a_hung_command_is_killed_at_its_timeout() {
    let f = SshFleet::new(1, "");
    let marks = f.tmp.path().join("pid");
    let t0 = Instant::now();
    let cmd = format!("trap '' TERM; sleep 60 & echo $! > {}; wait", marks.display());
    let out = f.run("h1", &["--timeout", "1", "--output", "json"], &[&cmd]);
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
    assert_eq!(ends(&out)["h1"]["state"], "timed-out", "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&marks).unwrap().trim().parse().unwrap();
    wait_for(Duration::from_secs(5), "the hung command to be gone", || !muster::exec::runner::process_alive(pid));
}

#[test]
fn put_and_get_round_trip_a_binary_file() {
    let f = SshFleet::new(2, "");
    let mut data = vec![0u8; 700_000];
    getrandom::getrandom(&mut data).unwrap();
    data[..4].copy_from_slice(&[0, 0xff, b'\n', 0]);
    let local = f.tmp.path().join("blob.bin");
    std::fs::write(&local, &data).unwrap();
    let remote = f.tmp.path().join("remote.bin");
    let out =
        f.muster(&["put", "all", "--via", "ssh", local.to_str().unwrap(), remote.to_str().unwrap(), "--mode", "0640"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&remote).unwrap().permissions().mode() & 0o777, 0o640);
    let back = f.tmp.path().join("back");
    let out = f.muster(&["get", "all", "--via", "ssh", remote.to_str().unwrap(), back.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for h in ["h1", "h2"] {
        assert_eq!(std::fs::read(back.join(h).join("remote.bin")).unwrap(), data, "{h}");
    }
    let out = f.muster(&["get", "h1", "--via", "ssh", "/nonexistent/file", back.to_str().unwrap()]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert!(stdout(&out).contains("file error"), "{}", stdout(&out));
}

#[test]
fn a_host_of_another_architecture_is_refused_naming_both() {
    // The host's `uname -m` says aarch64 (a fake first in the login's PATH).
    let fake = tempfile::tempdir().unwrap();
    write_script(&fake.path().join("uname"), "echo aarch64");
    let f = SshFleet::with_sshd(&format!("SetEnv PATH={}:/usr/bin:/bin\n", fake.path().display()));
    let out = f.run("h1", &["--output", "json"], &["true"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    let e = &ends(&out)["h1"];
    assert_eq!(e["reason"], "other architecture", "{e}");
    let detail = e["detail"].as_str().unwrap();
    assert!(detail.contains("aarch64") && detail.contains(std::env::consts::ARCH), "{detail}");
    assert!(!f.install_dir("h1").exists(), "nothing was copied");
}
