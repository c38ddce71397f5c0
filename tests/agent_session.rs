//! An agent session driven in-process over the memory transport: builtins,
//! the queue limit (`busy`), cancel by session id and by request id, and
//! interleaved replies on one session.

mod common;
use muster::agent::session::{self, Peer};
use muster::agent::{Agent, AgentConfig};
use muster::protocol::{End, Message, Refusal, Role, Run};
use muster::transport::{handshake, hello, memory};
use std::sync::Arc;
use std::time::Duration;

fn run(id: u64, action: &str, args: &[&str]) -> Message {
    Message::Run(Run {
        id,
        request_id: format!("req-{id}"),
        action: action.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        username: "t".into(),
        token: Some("secret".into()),
        timeout_ms: None,
        detach: false,
    })
}

/// Read until request `id` ends; returns its stdout and end message.
async fn until_end(r: &mut memory::MemReader, id: u64, others: &mut Vec<Message>) -> (Vec<u8>, Message) {
    let mut out = Vec::new();
    loop {
        let m = r.read().await.unwrap().expect("session closed");
        match &m {
            Message::Output { id: i, bytes, .. } if *i == id => out.extend_from_slice(bytes),
            Message::Finished(f) if f.id == id => return (out, m),
            Message::Refused { id: i, .. } if *i == id => return (out, m),
            _ => others.push(m),
        }
    }
}

#[tokio::test]
async fn builtins_busy_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow");
    common::write_script(&slow, "cat; sleep 30");
    std::fs::write(dir.path().join("scripts.conf"), format!("slow = {}\n", slow.display())).unwrap();
    let cfg = AgentConfig::parse(
        "name = \"mem1\"\nstate_dir = \".\"\nmax_concurrent = 1\nkill_grace = 0.2\ntags = [\"t1\"]\n",
        dir.path(),
    )
    .unwrap();
    let agent = Arc::new(Agent::new(cfg).unwrap());
    let ((ar, aw), (mut r, mut w)) = memory::pair();
    let peer = Peer { dispatcher: "d1".into(), serial: "1000".into(), addr: "memory".into() };
    tokio::spawn(session::serve(agent.clone(), ar, aw, peer));
    let h = handshake(&mut r, &mut w, &hello(Role::Dispatcher, "d1"), Duration::from_secs(2)).await.unwrap();
    assert_eq!(h.name, "mem1");
    let mut others = Vec::new();

    w.write(&run(1, "list-actions", &[])).await.unwrap();
    let (out, _) = until_end(&mut r, 1, &mut others).await;
    let names: Vec<String> = serde_json::from_slice(&out).unwrap();
    assert!(names.contains(&"slow".to_string()) && names.contains(&"info".to_string()), "{names:?}");

    w.write(&run(2, "info", &[])).await.unwrap();
    let (out, _) = until_end(&mut r, 2, &mut others).await;
    let info: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(info["name"], "mem1");
    assert_eq!(info["tags"][0], "t1");

    // One slot: the first slow run takes it, the second is refused busy.
    w.write(&run(3, "slow", &[])).await.unwrap();
    let out3 = loop {
        if let Some(Message::Output { id: 3, bytes, .. }) = r.read().await.unwrap() {
            break bytes;
        }
    };
    w.write(&run(4, "slow", &[])).await.unwrap();
    let (_, end) = until_end(&mut r, 4, &mut others).await;
    assert!(matches!(end, Message::Refused { reason: Refusal::Busy { limit: 1 }, .. }), "{end:?}");

    // Another dispatcher's cancel does not touch it; ours does.
    assert!(!agent.cancel("req-3", "someone-else"));
    w.write(&run(5, "cancel", &["req-3"])).await.unwrap();
    let (_, end5) = until_end(&mut r, 5, &mut others).await;
    assert!(matches!(end5, Message::Finished(ref f) if f.exit == Some(0)), "{end5:?}");
    let (_, end3) = until_end(&mut r, 3, &mut others).await;
    assert!(matches!(end3, Message::Finished(ref f) if f.end == End::Cancelled), "{end3:?}");
    // The script saw the context with the token masked.
    let ctx: serde_json::Value = serde_json::from_slice(&out3).unwrap();
    assert_eq!(ctx["token"], "XXX");
    assert_eq!(ctx["dispatcher"], "d1");

    // Cancel by session id works too, and an unknown request id exits 2.
    w.write(&run(6, "slow", &[])).await.unwrap();
    loop {
        if let Some(Message::Started { id: 6, .. }) = r.read().await.unwrap() {
            break;
        }
    }
    w.write(&Message::Cancel { id: 6 }).await.unwrap();
    let (_, end6) = until_end(&mut r, 6, &mut others).await;
    assert!(matches!(end6, Message::Finished(ref f) if f.end == End::Cancelled), "{end6:?}");
    w.write(&run(7, "cancel", &["nope"])).await.unwrap();
    let (_, end7) = until_end(&mut r, 7, &mut others).await;
    assert!(matches!(end7, Message::Finished(ref f) if f.exit == Some(2)), "{end7:?}");
}

#[tokio::test]
async fn action_roots_are_part_of_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (dir.path().join("r1/deploy"), dir.path().join("r2/deploy"));
    common::write_script(&r1.join("10-first"), "echo one");
    common::write_script(&r1.join("20-second"), "echo two-from-r1");
    common::write_script(&r2.join("20-second"), "echo two-from-r2");
    common::write_script(&r2.join("30-third"), "echo three");
    let cfg = AgentConfig::parse("name = \"mem2\"\nstate_dir = \".\"\naction_roots = [\"r1\", \"r2\"]\n", dir.path())
        .unwrap();
    let agent = Arc::new(Agent::new(cfg).unwrap());
    let ((ar, aw), (mut r, mut w)) = memory::pair();
    let peer = Peer { dispatcher: "d1".into(), serial: "1000".into(), addr: "memory".into() };
    tokio::spawn(session::serve(agent, ar, aw, peer));
    handshake(&mut r, &mut w, &hello(Role::Dispatcher, "d1"), Duration::from_secs(2)).await.unwrap();
    w.write(&run(1, "deploy", &[])).await.unwrap();
    let (out, end) = until_end(&mut r, 1, &mut Vec::new()).await;
    assert!(matches!(end, Message::Finished(ref f) if f.exit == Some(0)), "{end:?}");
    assert_eq!(String::from_utf8(out).unwrap(), "one\ntwo-from-r2\nthree\n");
}
