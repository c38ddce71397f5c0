//! Acceptance: who may talk to whom. A client certificate from another CA,
//! a dispatcher serial missing from the agent's map and an agent
//! certificate naming another host are each rejected with a clear error;
//! an oversized frame closes only its own connection.

mod common;
use common::*;
use muster::protocol::Message;
use muster::transport::carrier::{Dialer, Target};

fn target(f: &Fleet, i: usize) -> Target {
    Target { name: f.agents[i].name.clone(), addr: f.agents[i].addr.to_string() }
}

#[test]
fn client_cert_from_another_ca_is_rejected() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    f.start_all();
    let other = Fleet::new();
    // Trust our agents' CA, but present the other CA's dispatcher cert.
    let me = muster::pki::load_dispatcher(&other.state).unwrap();
    let ca = muster::pki::load_certs(&f.state.join("ca/ca.crt")).unwrap();
    let identity = muster::transport::tls::Identity {
        certs: muster::pki::parse_certs_pem(&me.cert_pem).unwrap(),
        key: muster::pki::parse_key_pem(&me.key_pem).unwrap(),
    };
    let carrier = muster::transport::tls_carrier::TlsCarrier {
        config: muster::transport::tls::client_config(&ca, identity).unwrap(),
        dispatcher_id: "intruder".into(),
        connect_timeout: std::time::Duration::from_secs(5),
        max_frame: 1 << 20,
        revoked: Default::default(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(carrier.open(&target(&f, 0))).err().expect("must be rejected");
    let text = format!("{err:?}");
    assert!(text.contains("alert") || text.contains("certificate"), "{text}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(f.log(0).contains("TLS handshake refused"), "{}", f.log(0));
    // And through the CLI: the other dispatcher does not trust our agent's cert.
    std::fs::create_dir_all(other.state.join("agents")).unwrap();
    std::fs::copy(f.state.join("agents/a1.json"), other.state.join("agents/a1.json")).unwrap();
    let out = other.run("a1", &[], &["t"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert!(stderr(&out).contains("not from this fleet's CA"), "{}", stderr(&out));
}

#[test]
fn dispatcher_serial_missing_from_the_map_is_rejected() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    let i = f.add("a1", &[], &[("t", &s)]);
    std::fs::write(f.agents[i].dir.join("dispatchers"), "abcdef other-dispatcher\n").unwrap();
    f.start_all();
    let out = f.run("a1", &["--output", "json"], &["t"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not in this agent's trusted-dispatcher map"), "{err}");
    assert!(f.log(0).contains("refused dispatcher"), "{}", f.log(0));
}

#[test]
fn agent_cert_naming_another_host_is_rejected() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    f.add("b1", &[], &[("t", &s)]);
    f.start_all();
    // The registry sends "a1" to where b1 listens.
    let b = f.agents[1].addr.to_string();
    assert!(f.muster(&["agents", "edit", "a1", "--addr", &b]).status.success());
    let out = f.run("a1", &[], &["t"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert!(stderr(&out).contains("names another host"), "{}", stderr(&out));
}

#[test]
fn oversized_frame_closes_only_that_connection() {
    let mut f = Fleet::new();
    let s = f.script("t", "echo fine");
    f.add("a1", &[], &[("t", &s)]);
    f.start_all();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let carrier = muster::cli::tls_carrier(&f.state, &Default::default()).unwrap();
        let mut other = carrier.open(&target(&f, 0)).await.unwrap();
        let mut bad = carrier.open(&target(&f, 0)).await.unwrap();
        let mut frame = (2u32 << 20).to_be_bytes().to_vec();
        frame.extend_from_slice(&[0u8; 1024]);
        bad.writer.write_raw(&frame).await.unwrap();
        match bad.reader.read().await {
            Ok(Some(Message::Error { message })) => assert!(message.contains("exceeds"), "{message}"),
            other => panic!("expected an error message, got {other:?}"),
        }
        assert!(matches!(bad.reader.read().await, Ok(None) | Err(_)), "connection should be closed");
        // The other, already open connection still works.
        other.writer.write(&Message::Ping { id: 9 }).await.unwrap();
        assert_eq!(other.reader.read().await.unwrap(), Some(Message::Pong { id: 9 }));
    });
    let out = f.run("a1", &["--output", "json"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn sessions_over_the_limit_are_refused_busy_and_others_continue() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    let i = f.add("a1", &[], &[("t", &s)]);
    f.configure(i, "max_sessions = 2");
    f.start_all();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let carrier = muster::cli::tls_carrier(&f.state, &Default::default()).unwrap();
        let mut one = carrier.open(&target(&f, 0)).await.unwrap();
        let two = carrier.open(&target(&f, 0)).await.unwrap();
        match carrier.open(&target(&f, 0)).await {
            Err(muster::transport::carrier::OpenError::Refused(r)) => assert_eq!(r.kind, "busy", "{r:?}"),
            Err(e) => panic!("a third session must be refused busy, got {e}"),
            Ok(_) => panic!("a third session must be refused"),
        }
        drop(two);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        carrier.open(&target(&f, 0)).await.expect("a slot is free again");
        one.writer.write(&Message::Ping { id: 1 }).await.unwrap();
        assert_eq!(one.reader.read().await.unwrap(), Some(Message::Pong { id: 1 }));
    });
    assert!(f.log(0).contains("sessions already open"), "{}", f.log(0));
}
