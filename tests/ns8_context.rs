//! ns8 agent task intake: the stored context with the value of every field
//! ending in `password`, `secret`, `token`, `key` or `pass` (any case, any
//! depth, objects inside arrays too) masked as `XXX`, with an 8 h TTL; and garbage on the queue (not JSON, missing
//! fields, unknown or path-like actions, wrong types) answered or logged
//! while the agent keeps serving.

mod ns8_harness;
use ns8_harness::{Ns8, ID};

#[test]
fn each_secret_suffix_is_masked_in_the_context() {
    let mut t = Ns8::new();
    t.script("a/obfuscate-test/10echo", "cat");
    t.start();
    let data = r#"{"tags":["t1","t2"],"account_info":{"password":"Nethesis,1234","claims":["c1","c2"],"ratio":1.2},
        "password_not_replaced":"PRE-SERVED","db_password":"p1","API_SECRET":"s1","client_secret":{"nested":"s2"},
        "token":"k1","refreshToken":"k2","list":[{"my_token":"k3"}]}"#;
    t.task("c1", "obfuscate-test", data);
    assert_eq!(t.exit_code("c1"), "0");
    let ctx = t.get(&Ns8::key("c1", "context"));
    assert_eq!(
        ctx,
        concat!(
            r#"{"action":"obfuscate-test","data":{"API_SECRET":"XXX","account_info":{"claims":["c1","c2"],"password":"XXX","ratio":1.2},"#,
            r#""client_secret":"XXX","db_password":"XXX","list":[{"my_token":"XXX"}],"password_not_replaced":"PRE-SERVED","#,
            r#""refreshToken":"XXX","tags":["t1","t2"],"token":"XXX"},"id":"c1","user":"admin"}"#
        )
    );
    for secret in ["Nethesis,1234", "p1", "s1", "s2", "k1", "k2", "k3"] {
        assert!(!ctx.contains(secret), "{secret} leaked: {ctx}");
    }
    // The step itself still gets the real values.
    assert!(t.output("c1").contains("Nethesis,1234"));
    let ttl: i64 = t.redis.cli(&["ttl", &Ns8::key("c1", "context")]).trim().parse().unwrap();
    assert!((28790..=28800).contains(&ttl), "ttl {ttl}");
}

#[test]
fn key_and_pass_suffixes_are_masked_too_issue_8() {
    let mut t = Ns8::new();
    t.script("a/obfuscate-test/10echo", "cat");
    t.start();
    // The issue's input, then its neighbours: `keys` does not end in key.
    let data = r#"{"db_password":"p","api_key":"A","smtp_pass":"S","nested":{"TLS_Key":"K"},
        "passkey":"S-PASSKEY","KEY":"S-UPPERKEY","keys":"KEPT-1","hosts":[{"x_pass":"S-XPASS","name":"KEPT-2"}],
        "port_key":5432,"ssh_key":{"priv":"S-PRIV"},"bypass":false}"#;
    t.task("k1", "obfuscate-test", data);
    assert_eq!(t.exit_code("k1"), "0");
    let ctx = t.get(&Ns8::key("k1", "context"));
    assert_eq!(
        ctx,
        concat!(
            r#"{"action":"obfuscate-test","data":{"KEY":"XXX","api_key":"XXX","bypass":"XXX","db_password":"XXX","#,
            r#""hosts":[{"name":"KEPT-2","x_pass":"XXX"}],"keys":"KEPT-1","nested":{"TLS_Key":"XXX"},"passkey":"XXX","#,
            r#""port_key":"XXX","smtp_pass":"XXX","ssh_key":"XXX"},"id":"k1","user":"admin"}"#
        )
    );
    for secret in ["\"p\"", "\"A\"", "\"S\"", "\"K\"", "S-", "5432"] {
        assert!(!ctx.contains(secret), "{secret} leaked: {ctx}");
    }
    // Nothing the agent logs carries a secret either.
    for secret in ["S-PASSKEY", "S-UPPERKEY", "S-XPASS", "S-PRIV"] {
        assert!(!t.log().contains(secret), "{secret} in the log:\n{}", t.log());
    }
    // The step still receives the real values.
    let out = t.output("k1");
    assert!(out.contains(r#""api_key":"A""#) && out.contains("S-PRIV"), "{out}");
}

#[test]
fn garbage_on_the_queue_gets_an_answer_or_a_log_line_and_the_agent_keeps_serving() {
    let mut t = Ns8::new();
    t.script("a/ok/10ok", "echo fine");
    t.start();
    t.push("INVALID_JSON_STRING");
    t.wait_log("<3>Task ignored for decoding error: invalid character 'I' looking for beginning of value\n");
    t.push("[1,2]");
    t.wait_log("<3>Task ignored for decoding error: json: cannot unmarshal array into Go value of type models.Task\n");
    t.push("{\"id\":");
    t.wait_log("<3>Task ignored for decoding error: unexpected end of JSON input\n");

    // JSON with a usable id but a wrong type: an error result, exit 10.
    t.push(r#"{"id":"g1","action":7}"#);
    assert_eq!(t.exit_code("g1"), "10");
    assert!(t.error("g1").contains("json: cannot unmarshal number into Go struct field Task.action of type string"));

    // Missing or unknown action, or one that is not a plain name: exit 8.
    for (id, raw, action) in [
        ("g2", r#"{"id":"g2"}"#, ""),
        ("g3", r#"{"id":"g3","action":"nope","data":{}}"#, "nope"),
        ("g4", r#"{"id":"g4","action":"../a/ok"}"#, "../a/ok"),
        ("g5", r#"{"id":"g5","action":"."}"#, "."),
    ] {
        t.push(raw);
        assert_eq!(t.exit_code(id), "8", "{raw}");
        assert_eq!(t.error(id), format!("Action {action} is not defined\n"));
    }
    // No id at all: the result lands under the empty id, as in the original.
    t.push(r#"{"action":"ok"}"#);
    let key = format!("task/{ID}//exit_code");
    t.wait_until("the empty-id result", || t.exists(&key));
    assert_eq!(t.get(&key), "0");

    t.task("after", "ok", "{}");
    assert_eq!(t.exit_code("after"), "0");
    assert_eq!(t.output("after"), "fine\n");
}
