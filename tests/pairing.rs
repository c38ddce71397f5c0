//! Acceptance (issue 9, pairing): an agent pairs over 7444 and is then
//! served like any enrolled agent; approve, deny and expiry; the same code
//! on both sides; weak, malformed and relayed CSRs refused; a second
//! dispatcher of the same CA pairs beside the first.

mod common;
#[path = "common/tmux.rs"]
mod tmux;
use common::*;
use muster::protocol::pairing::{pairing_code, PairMessage, PairRequest, PAIRING_VERSION};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tmux::Tmux;

struct Listener {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen(f: &Fleet, extra: &[&str]) -> Listener {
    let addr = free_addr().to_string();
    let log = f.path(&format!("listen-{}.log", addr.replace([':', '.'], "-")));
    let child = Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["pair", "listen", "--bind", &addr, "--no-prompt"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the pairing listener", || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("listening")
    });
    Listener { child, addr, log }
}

fn agent_pair(l: &Listener, name: &str, out: &Path, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["agent", "pair", "--dispatcher", &l.addr, "--name", name, "--out"])
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The pending requests as `muster pair list --json` shows them.
fn pending(f: &Fleet) -> Vec<serde_json::Value> {
    let out = f.muster(&["pair", "list", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn wait_pending(f: &Fleet, name: &str) -> serde_json::Value {
    let mut found = None;
    wait_for(Duration::from_secs(10), "the pending request", || {
        found = pending(f).into_iter().find(|r| r["name"] == name);
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn approve_then_serve_with_the_same_code_on_both_sides() {
    let mut f = Fleet::new();
    let l = listen(&f, &[]);
    let out_dir = f.path("agents/web01");
    let addr = free_addr().to_string();
    let child = agent_pair(&l, "web01", &out_dir, &["--addr", &addr, "--tags", "web,eu"]);
    let req = wait_pending(&f, "web01");
    let id = req["id"].as_str().unwrap();
    let code_d = req["code"].as_str().unwrap().to_string();
    assert_eq!(code_d.len(), 6);
    let listed = stdout(&f.muster(&["pair", "list"]));
    assert!(listed.contains("tags [web,eu]") && listed.contains(&format!("code {code_d}")), "{listed}");
    let listen_log = std::fs::read_to_string(&l.log).unwrap();
    assert!(listen_log.contains(&format!("code {code_d}")), "{listen_log}");
    let ok = f.muster(&["pair", "approve", id]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("code {code_d}")), "the agent shows the same code: {}", stdout(&out));
    for file in ["agent.toml", "agent.key", "agent.crt", "ca.crt", "dispatchers", "scripts.conf"] {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    let entry: serde_json::Value = serde_json::from_str(&stdout(&f.muster(&["agents", "show", "web01"]))).unwrap();
    assert_eq!(entry["addr"], addr.as_str());
    assert_eq!(entry["tags"], serde_json::json!(["web", "eu"]));
    assert!(entry["paired"].is_string() && entry["serial"].is_string() && entry["not_after"].is_string(), "{entry}");
    assert!(pending(&f).is_empty());
    // The paired agent serves like any other.
    let s = f.script("hello", "echo paired-and-serving");
    std::fs::write(out_dir.join("scripts.conf"), format!("hello = {}\n", s.display())).unwrap();
    f.agents.push(Agent { name: "web01".into(), dir: out_dir, addr: addr.parse().unwrap(), child: None });
    f.start_all();
    let run = f.run("web01", &[], &["hello"]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    assert!(stdout(&run).contains("paired-and-serving"));
}

#[test]
fn deny_and_expiry_reach_the_agent_and_leave_nothing() {
    let f = Fleet::new();
    let l = listen(&f, &["--expire", "2"]);
    let child = agent_pair(&l, "web02", &f.path("w2"), &[]);
    let req = wait_pending(&f, "web02");
    let d = f.muster(&["pair", "deny", req["id"].as_str().unwrap(), "--reason", "not in the change window"]);
    assert_eq!(code(&d), 0, "{}", stderr(&d));
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not in the change window"), "{}", stderr(&out));
    assert!(!f.path("w2/agent.crt").exists());

    let child = agent_pair(&l, "web03", &f.path("w3"), &[]);
    let req = wait_pending(&f, "web03");
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no decision within 2s"), "{}", stderr(&out));
    assert!(pending(&f).is_empty());
    let late = f.muster(&["pair", "approve", req["id"].as_str().unwrap()]);
    assert_eq!(code(&late), 1, "an expired request cannot be approved");
    assert!(f.muster(&["agents", "show", "web03"]).status.code() == Some(1));
    assert!(
        std::fs::read_dir(f.state.join("pairing"))
            .unwrap()
            .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count()
            == 0
    );
}

#[test]
fn a_name_already_paired_needs_replace() {
    let f = Fleet::new();
    let l = listen(&f, &[]);
    let first = agent_pair(&l, "web04", &f.path("w4"), &[]);
    let req = wait_pending(&f, "web04");
    assert_eq!(code(&f.muster(&["pair", "approve", req["id"].as_str().unwrap()])), 0);
    assert_eq!(code(&first.wait_with_output().unwrap()), 0);
    let again = agent_pair(&l, "web04", &f.path("w4b"), &[]);
    let req = wait_pending(&f, "web04");
    let id = req["id"].as_str().unwrap();
    let refused = f.muster(&["pair", "approve", id]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("already paired") && stderr(&refused).contains("--replace"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(code(&f.muster(&["pair", "approve", id, "--replace"])), 0);
    assert_eq!(code(&again.wait_with_output().unwrap()), 0);
}

/// Send a raw pairing request over a real pairing TLS channel; returns the answer.
fn send_raw(addr: &str, name: &str, csr: Vec<u8>) -> PairMessage {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let cfg = muster::pairing::channel::client_config().unwrap();
        let host = addr.rsplit_once(':').unwrap().0.to_string();
        let name_ = rustls::pki_types::ServerName::try_from(host).unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg).connect(name_, tcp).await.unwrap();
        let (r, w) = tokio::io::split(tls);
        let mut reader = muster::transport::FrameReader::new(r, 1 << 16);
        let mut writer = muster::transport::FrameWriter::new(w, 1 << 16);
        let req = PairRequest {
            version: PAIRING_VERSION,
            name: name.into(),
            addr: "127.0.0.1:7443".into(),
            tags: vec![],
            csr,
        };
        writer.write_value(&PairMessage::Request(req)).await.unwrap();
        reader.read_value::<PairMessage>().await.unwrap().unwrap()
    })
}

fn openssl_csr(dir: &Path, name: &str, keyopts: &[&str]) -> Vec<u8> {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let ok = Command::new("openssl")
        .args(["req", "-new", "-newkey"])
        .args(keyopts)
        .args(["-nodes", "-subj", &format!("/CN={name}"), "-outform", "DER", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed: apt-get install openssl");
    assert!(ok.success());
    std::fs::read(csr).unwrap()
}

#[test]
fn weak_malformed_and_foreign_csrs_are_refused() {
    let f = Fleet::new();
    let l = listen(&f, &[]);
    let tmp = f.path("csrs");
    std::fs::create_dir_all(&tmp).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("rsa1024", openssl_csr(&tmp, "rsa1024", &["rsa:1024"]), "too weak"),
        ("p192", openssl_csr(&tmp, "p192", &["ec", "-pkeyopt", "ec_paramgen_curve:P-192"]), "too weak"),
        ("k256", openssl_csr(&tmp, "k256", &["ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"]), "too weak"),
        ("rsa2048", openssl_csr(&tmp, "rsa2048", &["rsa:2048"]), "no channel binding"),
        ("garbage", b"definitely not a CSR".to_vec(), "malformed"),
        ("empty", vec![], "malformed"),
        ("other", openssl_csr(&tmp, "someone-else", &["rsa:2048"]), "names \"someone-else\""),
        ("bad_name!", openssl_csr(&tmp, "x", &["rsa:2048"]), "agent name"),
    ];
    for (name, csr, want) in cases {
        match send_raw(&l.addr, name, csr) {
            PairMessage::Denied { reason } => assert!(reason.contains(want), "{name}: {reason}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(pending(&f).is_empty(), "nothing refused is queued");
}

/// A relay in the middle: TLS from the agent (with its own certificate),
/// TLS to the dispatcher, bytes copied both ways.
async fn relay(listener: tokio::net::TcpListener, upstream: String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mitm".into()]).unwrap().self_signed(&key).unwrap();
    let cfg = muster::pairing::channel::server_config(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let from_agent = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await.unwrap();
    let up = tokio::net::TcpStream::connect(&upstream).await.unwrap();
    let host = rustls::pki_types::ServerName::try_from(upstream.rsplit_once(':').unwrap().0.to_string()).unwrap();
    let to_dispatcher = tokio_rustls::TlsConnector::from(muster::pairing::channel::client_config().unwrap())
        .connect(host, up)
        .await
        .unwrap();
    let (mut a, mut b) = (from_agent, to_dispatcher);
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

#[test]
fn a_relay_in_the_middle_is_refused() {
    let f = Fleet::new();
    let l = listen(&f, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mitm = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let mitm_addr = mitm.local_addr().unwrap().to_string();
    rt.spawn(relay(mitm, l.addr.clone()));
    let out = Command::new(BIN)
        .args(["agent", "pair", "--dispatcher", &mitm_addr, "--name", "web09", "--out"])
        .arg(f.path("w9"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stderr(&out).contains("man in the middle"), "{}", stderr(&out));
    assert!(pending(&f).is_empty());
}

#[test]
fn the_code_is_the_sha256_rule() {
    // ctrl-exec's rule, checked against an independent SHA-256 (openssl).
    let tmp = tempfile::tempdir().unwrap();
    let csr = openssl_csr(tmp.path(), "x", &["rsa:2048"]);
    std::fs::write(tmp.path().join("c.der"), &csr).unwrap();
    let dgst = Command::new("openssl").args(["dgst", "-sha256", "-r"]).arg(tmp.path().join("c.der")).output().unwrap();
    let hex = String::from_utf8(dgst.stdout).unwrap();
    let first = u32::from_str_radix(&hex[..8], 16).unwrap();
    assert_eq!(pairing_code(&csr), format!("{:06}", first % 1_000_000));
}

#[test]
fn requests_die_with_their_agent_or_their_listener() {
    let f = Fleet::new();
    // The agent is interrupted: it says so, writes nothing, and the request goes.
    let l = listen(&f, &[]);
    let child = agent_pair(&l, "web05", &f.path("w5"), &[]);
    wait_pending(&f, "web05");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted: the pairing request is withdrawn"), "{}", stderr(&out));
    assert!(!f.path("w5").join("agent.key").exists());
    wait_for(Duration::from_secs(5), "the withdrawn request to go", || pending(&f).is_empty());

    // The listener is killed outright: its request can no longer be
    // approved (nobody would deliver the certificate) and is removed.
    let mut l = l;
    let child = agent_pair(&l, "web06", &f.path("w6"), &[]);
    let req = wait_pending(&f, "web06");
    let _ = l.child.kill();
    let _ = l.child.wait();
    let ok = f.muster(&["pair", "approve", req["id"].as_str().unwrap()]);
    assert_eq!(code(&ok), 1, "{}", stderr(&ok));
    assert!(stderr(&ok).contains("pair listen") && stderr(&ok).contains("has stopped"), "{}", stderr(&ok));
    assert!(f.muster(&["agents", "show", "web06"]).status.code() == Some(1), "nothing registered");
    assert!(pending(&f).is_empty());
    let _ = child.wait_with_output();

    // A listener stopped with Ctrl-C removes the requests it held.
    let l = listen(&f, &[]);
    let child = agent_pair(&l, "web07", &f.path("w7"), &[]);
    wait_pending(&f, "web07");
    unsafe { libc::kill(l.child.id() as i32, libc::SIGINT) };
    wait_for(Duration::from_secs(5), "the listener's requests to go", || {
        std::fs::read_dir(f.state.join("pairing"))
            .unwrap()
            .flatten()
            .all(|e| e.file_name().to_string_lossy().starts_with('.'))
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 1);
}

#[test]
fn the_prompt_takes_only_a_clear_answer_typed_after_it_appears() {
    let f = Fleet::new();
    let addr = free_addr().to_string();
    let t = Tmux::start(&format!("{BIN} --state-dir {} pair listen --bind {addr}", f.state.display()));
    t.wait("listening for pairing requests", Duration::from_secs(10));
    // Typed before any question: discarded, never an answer.
    t.keys("y");
    let l = Listener { child: Command::new("true").spawn().unwrap(), addr, log: f.path("unused") };
    let first = agent_pair(&l, "web08", &f.path("w8"), &[]);
    let second = agent_pair(&l, "web09", &f.path("w9"), &[]);
    t.wait("approve web0", Duration::from_secs(10));
    wait_for(Duration::from_secs(10), "both requests", || pending(&f).len() == 2);
    assert_eq!(pending(&f).len(), 2, "the early keypress approved nothing:\n{}", t.screen());
    // An unclear answer asks again; a clear one decides.
    t.send("maybe");
    t.wait("answer [y]es / [n]o", Duration::from_secs(5));
    t.send("yes");
    t.wait_count("approve web0", 3, Duration::from_secs(10));
    t.send("n");
    t.wait("denied web0", Duration::from_secs(10));
    let (a, b) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    let codes = [code(&a), code(&b)];
    assert!(codes.contains(&0) && codes.contains(&1), "one approved, one denied: {codes:?}\n{}", t.screen());
    // End of input at a question: no more questions; the request stays
    // for `pair approve`.
    let late = agent_pair(&l, "web10", &f.path("w10"), &[]);
    t.wait("approve web10", Duration::from_secs(10));
    t.keys("\u{4}");
    t.wait("end of input", Duration::from_secs(5));
    let req = wait_pending(&f, "web10");
    let ok = f.muster(&["pair", "approve", req["id"].as_str().unwrap()]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert_eq!(code(&late.wait_with_output().unwrap()), 0);
}
