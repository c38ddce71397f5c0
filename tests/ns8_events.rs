//! ns8 agent events and Redis outages: a `<source>/event/<name>` message
//! handled by two steps (payload on stdin, output in the agent's log, exit
//! code logged, commands on fd 2 ignored), a failing handler stopping at
//! its first failing step, Redis restarted under an idle agent after
//! which tasks and events are served again, and an event over the 16 MiB
//! reply cap, which drops the subscription (logged) until it is renewed.

mod ns8_harness;
use ns8_harness::{Ns8, ID};

fn publish(t: &Ns8, channel: &str, payload: &str) {
    t.redis.cli(&["publish", channel, payload]);
}

fn wait_subscribed(t: &Ns8) {
    t.wait_until("the event subscription", || t.redis.cli(&["pubsub", "numpat"]).trim() == "1");
}

#[test]
fn an_event_handled_by_two_steps() {
    let mut t = Ns8::new();
    t.script(
        "events/echo-received/10handler",
        "echo \"payload=$(cat)\"; echo \"name=$AGENT_EVENT_NAME source=$AGENT_EVENT_SOURCE var=$VAR1\"; \
         echo 'Message sent to stderr' >&2; echo 'set-progress IGNORED DURING_EVENTS' >&$AGENT_COMFD",
    );
    t.script("events/echo-received/20second", "echo \"second step got $(cat)\"");
    t.start();
    wait_subscribed(&t);
    publish(&t, "module/mail1/event/echo-received", "payload0000");
    t.wait_log("Handler of module/mail1/event/echo-received exited with status \"completed\" (0) at step 20second\n");
    let log = t.log();
    for line in [
        "<7>Handler of module/mail1/event/echo-received is starting step 10handler\n",
        "payload=payload0000\n",
        "name=echo-received source=module/mail1 var=VAL1\n",
        "Message sent to stderr\n",
        "set-progress IGNORED DURING_EVENTS\n",
        "<7>Handler of module/mail1/event/echo-received is starting step 20second\n",
        "second step got payload0000\n",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    // An event nobody handles is ignored silently.
    publish(&t, "x/event/nobody-listens", "p");
    publish(&t, "module/mail1/event/echo-received", "payload0001");
    t.wait_log("second step got payload0001");
    assert!(!t.log().contains("nobody-listens"));
}

#[test]
fn a_failing_handler_step_stops_the_event() {
    let mut t = Ns8::new();
    t.script("events/handler-errored/10failing", "exit 2");
    t.script("events/handler-errored/20never_run", "echo NEVER REACH THIS POINT");
    t.start();
    wait_subscribed(&t);
    publish(&t, "source/event/handler-errored", "payload0006");
    t.wait_log("Handler of source/event/handler-errored exited with status \"aborted\" (2) at step 10failing\n");
    assert!(t.log().contains("<3>exit status 2\n"));
    assert!(!t.log().contains("NEVER REACH THIS POINT"));
}

#[test]
fn redis_restarted_under_an_idle_agent_then_tasks_and_events_still_run() {
    let mut t = Ns8::new();
    t.script("a/run-success/10ok", "echo ok");
    t.script("events/ping/10pong", "echo \"pong $(cat)\"");
    t.start();
    wait_subscribed(&t);
    t.redis.kill();
    t.wait_log("<3>Task queue pop error: ");
    std::thread::sleep(std::time::Duration::from_millis(300));
    t.redis.restart();
    // A new client name on the server means the agent reconnected.
    t.wait_until("the agent to reconnect", || t.redis.cli(&["client", "list"]).contains(&format!("name={ID}")));
    t.task("r1", "run-success", "{}");
    assert_eq!(t.exit_code("r1"), "0");
    assert_eq!(t.output("r1"), "ok\n");
    wait_subscribed(&t);
    publish(&t, "node/1/event/ping", "after-restart");
    t.wait_log("pong after-restart\n");
}

#[test]
fn an_event_over_the_reply_cap_is_refused_and_the_subscription_comes_back() {
    use std::io::Write;
    let mut t = Ns8::new();
    t.script("events/big/10h", "echo BIG-HANDLED >&2");
    t.script("events/small/10h", "echo small-handled >&2");
    t.start();
    wait_subscribed(&t);
    // 17 MiB, one byte of the payload per byte sent: through stdin (-x),
    // as no argv holds that much.
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &t.redis.port.to_string(), "-x", "publish", "src/event/big"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli");
    let mut stdin = cli.stdin.take().expect("stdin");
    stdin.write_all(&vec![b'x'; 17 * 1024 * 1024]).expect("write the payload");
    drop(stdin);
    assert!(cli.wait().expect("redis-cli").success());
    t.wait_log("<3>redis: discarding bad PubSub connection: redis: reply of ");
    t.wait_log("-byte cap\n");
    // Renewed after a polling interval: a small event is handled again.
    t.wait_until("a small event to be handled", || {
        publish(&t, "src/event/small", "{}");
        t.log().contains("Handler of src/event/small exited with status \"completed\"")
    });
    assert!(!t.log().contains("BIG-HANDLED"), "{}", t.log());
}
