//! The HTTP API over real HTTP against real agents: tokens gate every
//! endpoint, runs return every result and stream their events in order
//! (resumable), limited tokens are held to their actions and targets, bad
//! input gets a 4xx JSON error naming the field, the audit log records
//! API and CLI runs, metrics and the OpenAPI document are served, and a
//! thousand concurrent runs lose no result.

#[path = "common/api.rs"]
mod api;
mod common;

use api::*;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

fn fleet(n: usize) -> Fleet {
    let mut f = Fleet::new();
    let hello = f.script("hello", "echo \"hello from $(hostname) $1\"; echo warn >&2");
    let t = f.script("t", "exit 0");
    let slow = f.script("slow", "sleep 30");
    for i in 1..=n {
        f.add(
            &format!("web{i}"),
            if i % 2 == 0 { &["even"] } else { &[] },
            &[("hello", &hello), ("true", &t), ("slow", &slow)],
        );
    }
    f.start_all();
    f
}

/// The SSE events of a run: (id, event name, data), after `last_id`.
fn sse(url: &str, token: &str, last_id: Option<usize>) -> Vec<(usize, String, Value)> {
    let mut r = agent().get(url).header("Authorization", &format!("Bearer {token}"));
    if let Some(id) = last_id {
        r = r.header("Last-Event-ID", &id.to_string());
    }
    let resp = r.call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reader = BufReader::new(resp.into_body().into_reader());
    let mut out = Vec::new();
    let (mut id, mut name, mut data) = (0usize, String::new(), String::new());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let v: Value = serde_json::from_str(&data).unwrap();
            let done = name == "done";
            out.push((id, std::mem::take(&mut name), v));
            data.clear();
            if done {
                break;
            }
        }
    }
    out
}

#[test]
fn without_a_token_file_the_api_refuses_to_start_and_tokens_gate_every_endpoint() {
    let f = fleet(1);
    let out = f.muster(&["api", "--listen", "127.0.0.1:0"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("muster api token add"), "{}", stderr(&out));
    let token = add_token(&f, "ops", &[]);
    assert!(token.starts_with("mst_"), "{token}");
    let api = start_api(&f, &[]);
    let (s, v) = call("GET", &format!("{}/health", api.base), None, None);
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    for path in ["/agents", "/runs", "/metrics", "/openapi.json", "/discovery"] {
        let (s, v) = call("GET", &format!("{}{path}", api.base), None, None);
        assert_eq!(s, 401, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("Authorization"), "{v}");
        let (s, _) = call("GET", &format!("{}{path}", api.base), Some("mst_wrong"), None);
        assert_eq!(s, 401, "{path}");
    }
    let (s, _) = call("POST", &format!("{}/run", api.base), None, Some(r#"{"targets":"all","action":"true"}"#));
    assert_eq!(s, 401);
    let (s, v) = call("GET", &format!("{}/agents", api.base), Some(&token), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agents"][0]["name"], "web1");
    // A removed token stops working at once.
    assert_eq!(code(&f.muster(&["api", "token", "remove", "ops"])), 0);
    let (s, _) = call("GET", &format!("{}/agents", api.base), Some(&token), None);
    assert_eq!(s, 401);
}

#[test]
fn a_run_returns_every_result_and_its_events_stream_in_order_and_resume() {
    let f = fleet(5);
    let token = add_token(&f, "ops", &[]);
    let ctx = f.path("hook.json");
    let hook = f.script("hook", &format!("cat > {}; exit 0", ctx.display()));
    std::fs::write(f.state.join("dispatcher.toml"), format!("hook = {:?}\n", hook.display().to_string())).unwrap();
    let api = start_api(&f, &[]);
    let body = json!({"targets": "web[1-5]", "action": "hello", "args": ["x1"], "wait": 30}).to_string();
    let (s, v) = call("POST", &format!("{}/run", api.base), Some(&token), Some(&body));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["done"], true);
    assert_eq!(v["exit"], 0);
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 5, "{v}");
    for t in targets {
        assert_eq!(t["state"], "succeeded", "{t}");
        assert!(t["stdout"].as_str().unwrap().contains("x1"), "{t}");
        assert_eq!(t["stderr"], "warn\n", "{t}");
    }
    // The dispatcher hook saw the token's name as the user.
    let hook_saw: Value = serde_json::from_str(&std::fs::read_to_string(&ctx).unwrap()).unwrap();
    assert_eq!(hook_saw["username"], "ops", "{hook_saw}");
    let id = v["request_id"].as_str().unwrap().to_string();

    // Its events, in order: per target started before output before end; then done.
    let url = format!("{}/runs/{id}/events", api.base);
    let evs = sse(&url, &token, None);
    let ids: Vec<usize> = evs.iter().map(|e| e.0).collect();
    assert_eq!(ids, (1..=evs.len()).collect::<Vec<_>>(), "ids count up from 1");
    assert_eq!(evs.last().unwrap().1, "done");
    for i in 1..=5 {
        let name = format!("web{i}");
        let mine: Vec<&str> = evs.iter().filter(|e| e.2["target"] == name.as_str()).map(|e| e.1.as_str()).collect();
        assert_eq!(mine.first(), Some(&"started"), "{name}: {mine:?}");
        assert_eq!(mine.last(), Some(&"end"), "{name}: {mine:?}");
        assert!(mine.contains(&"output"), "{name}: {mine:?}");
    }
    // Resuming after event k gives exactly the events after k.
    let k = evs.len() / 2;
    let rest = sse(&url, &token, Some(k));
    assert_eq!(rest, evs[k..].to_vec());

    // A run that goes on answers 202; its events arrive live; cancel ends it.
    let body = json!({"targets": "web[1-2]", "action": "slow"}).to_string();
    let (s, v) = call("POST", &format!("{}/run", api.base), Some(&token), Some(&body));
    assert_eq!(s, 202, "{v}");
    let slow = v["request_id"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(10), "both slow actions to start", || {
        let (s, v) = call("GET", &format!("{}/status/{slow}", api.base), Some(&token), None);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["done"], false, "{v}");
        v["targets"].as_array().unwrap().iter().all(|t| t["state"] == "running")
    });
    let (s, v) = call("POST", &format!("{}/runs/{slow}/cancel", api.base), Some(&token), None);
    assert_eq!(s, 202, "{v}");
    let evs = sse(&format!("{}/runs/{slow}/events", api.base), &token, None);
    let ends: Vec<&Value> = evs.iter().filter(|e| e.1 == "end").map(|e| &e.2).collect();
    assert_eq!(ends.len(), 2, "{evs:?}");
    assert!(ends.iter().all(|e| e["state"] == "cancelled"), "{ends:?}");
    let (s, _) = call("POST", &format!("{}/runs/{slow}/cancel", api.base), Some(&token), None);
    assert_eq!(s, 409, "an ended run cannot be cancelled");

    // The history pages; a CLI run shows there too, and both are audited.
    let cli = f.run("web1", &[], &["true"]);
    assert_eq!(code(&cli), 0, "{}", stderr(&cli));
    let (s, v) = call("GET", &format!("{}/runs?per_page=2", api.base), Some(&token), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 3, "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
    let audit = f.muster(&["audit", "--json"]);
    assert_eq!(code(&audit), 0, "{}", stderr(&audit));
    let lines: Vec<Value> = stdout(&audit).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{}", stdout(&audit));
    assert_eq!((lines[0]["origin"].as_str(), lines[0]["user"].as_str()), (Some("api"), Some("ops")));
    assert_eq!(lines[0]["states"]["succeeded"], 5);
    assert!(lines[0]["from"].as_str().unwrap().starts_with("127.0.0.1:"), "{}", lines[0]);
    assert_eq!(lines[2]["origin"], "cli");

    // Metrics count runs, target ends and answers by code.
    let (s, v) = call("GET", &format!("{}/metrics", api.base), Some(&token), None);
    assert_eq!(s, 200);
    let text = v.as_str().unwrap().to_string();
    assert!(text.contains("muster_runs_total{state=\"succeeded\"} 1"), "{text}");
    assert!(text.contains("muster_targets_total{state=\"succeeded\"} 5"), "{text}");
    assert!(text.contains("muster_api_requests_total{code=\"202\"}"), "{text}");
    assert!(text.contains("muster_run_duration_seconds_count 2"), "{text}");
}

#[test]
fn a_limited_token_is_held_to_its_actions_and_targets() {
    let f = fleet(3);
    let token = add_token(&f, "deployer", &["--actions", "hello", "--targets", "web[1-2]"]);
    let api = start_api(&f, &[]);
    let run = |body: Value| call("POST", &format!("{}/run", api.base), Some(&token), Some(&body.to_string()));
    let (s, v) = run(json!({"targets": "web1", "action": "true", "wait": 10}));
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["field"], "action");
    assert!(v["error"].as_str().unwrap().contains("may not run \"true\""), "{v}");
    let (s, v) = run(json!({"targets": "web[1-3]", "action": "hello", "wait": 10}));
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["field"], "targets");
    assert!(v["error"].as_str().unwrap().contains("web3"), "{v}");
    let (s, v) = run(json!({"targets": "all", "action": "hello", "wait": 10}));
    assert_eq!(s, 403, "all reaches web3 too: {v}");
    let (s, v) = run(json!({"targets": "web[1-2]", "action": "hello", "wait": 10}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["exit"], 0, "{v}");
    // Another token's run cannot be cancelled by a limited token.
    let admin = add_token(&f, "admin", &[]);
    let body = json!({"targets": "web3", "action": "slow"}).to_string();
    let (s, v) = call("POST", &format!("{}/run", api.base), Some(&admin), Some(&body));
    assert_eq!(s, 202, "{v}");
    let id = v["request_id"].as_str().unwrap();
    let (s, _) = call("POST", &format!("{}/runs/{id}/cancel", api.base), Some(&token), None);
    assert_eq!(s, 403);
    let (s, _) = call("POST", &format!("{}/runs/{id}/cancel", api.base), Some(&admin), None);
    assert_eq!(s, 202);
}

#[test]
fn bad_input_gets_a_4xx_json_error_naming_the_field_and_starts_nothing() {
    let f = fleet(1);
    let token = add_token(&f, "ops", &[]);
    let api = start_api(&f, &[]);
    let post = |body: &str| call("POST", &format!("{}/run", api.base), Some(&token), Some(body));
    let cases: &[(&str, u16, Option<&str>)] = &[
        ("{", 400, None),
        ("", 400, None),
        ("[]", 400, None),
        (r#"{"targets":"web1"}"#, 400, Some("action")),
        (r#"{"action":"true"}"#, 400, Some("targets")),
        (r#"{"targets":"web1","action":"true","colour":"red"}"#, 400, Some("colour")),
        (r#"{"targets":"web1","action":"true","timeout":"soon"}"#, 400, Some("timeout")),
        (r#"{"targets":"web1","action":"true","args":[1]}"#, 400, Some("args[0]")),
        (r#"{"targets":"web1","action":"true","timeout":-1}"#, 400, Some("timeout")),
        (r#"{"targets":"web1","action":"true","timeout":0}"#, 400, Some("timeout")),
        (r#"{"targets":"web1","action":"true","timeout":1e300}"#, 400, Some("timeout")),
        (r#"{"targets":"web1","action":"true","wait":301}"#, 400, Some("wait")),
        (r#"{"targets":"web1","action":"true","fanout":0}"#, 400, Some("fanout")),
        (r#"{"targets":"web1","action":"true","fanout":-2}"#, 400, Some("fanout")),
        (r#"{"targets":"web1","action":"true","max_errors":0}"#, 400, Some("max_errors")),
        (r#"{"targets":"web[1-","action":"true"}"#, 400, Some("targets")),
        (r#"{"targets":"","action":"true"}"#, 400, Some("targets")),
        (r#"{"targets":"web1","action":"true","tags":"web"}"#, 400, Some("tags")),
        (r#"{"targets":"web1","action":"  "}"#, 400, Some("action")),
    ];
    for (body, status, field) in cases {
        let (s, v) = post(body);
        assert_eq!(s, *status, "{body}: {v}");
        assert!(v["error"].is_string(), "{body}: {v}");
        assert_eq!(v["field"].as_str(), *field, "{body}: {v}");
    }
    // A body over 1 MiB: curl announces it (Expect: 100-continue), so the
    // 413 arrives before the body is sent instead of racing a reset.
    let big = format!(r#"{{"targets":"web1","action":"true","args":["{}"]}}"#, "x".repeat(2 << 20));
    let file = f.path("big.json");
    std::fs::write(&file, big).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {token}"), "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("{}/run", api.base))
        .output()
        .unwrap();
    let text = stdout(&out);
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "413", "{text}");
    assert!(body.contains("larger than"), "{body}");
    for (path, status) in [
        ("/runs/nothex", 400),
        ("/runs/0123456789ABCDEF", 400),
        ("/runs/0123456789abcdef", 404),
        ("/status/0123456789abcdef", 404),
        ("/runs/0123456789abcdef/events", 404),
        ("/runs?page=0", 400),
        ("/runs?per_page=9999", 400),
        ("/runs?page=x", 400),
        ("/targets?spec=web[1-", 400),
    ] {
        let (s, v) = call("GET", &format!("{}{path}", api.base), Some(&token), None);
        assert_eq!(s, status, "{path}: {v}");
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    // Nothing was started by any of it.
    let (_, v) = call("GET", &format!("{}/runs", api.base), Some(&token), None);
    assert_eq!(v["total"], 0, "{v}");
    assert!(!f.state.join("audit").join("audit.log").exists());
}

#[test]
fn the_openapi_document_is_generated_and_the_dashboard_is_served() {
    let f = fleet(2);
    let token = add_token(&f, "ops", &[]);
    let api = start_api(&f, &[]);
    let (s, v) = call("GET", &format!("{}/openapi.json", api.base), Some(&token), None);
    assert_eq!(s, 200);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."), "{v}");
    for p in
        ["/run", "/runs", "/runs/{id}", "/runs/{id}/events", "/runs/{id}/cancel", "/status/{id}", "/ping", "/agents"]
    {
        assert!(v["paths"][p].is_object(), "{p} missing from {}", v["paths"]);
    }
    assert!(v["components"]["schemas"]["RunBody"]["properties"]["targets"].is_object(), "{v}");
    let (s, v) = call("GET", &format!("{}/", api.base), None, None);
    assert_eq!(s, 200);
    assert!(v.as_str().unwrap().contains("<script src=\"/app.js\">"), "{v}");
    let (s, v) = call("GET", &format!("{}/targets?spec=web[1-2]&tags=even", api.base), Some(&token), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["targets"], json!(["web2"]));
    let body = json!({"targets": "all"}).to_string();
    let (s, v) = call("POST", &format!("{}/ping", api.base), Some(&token), Some(&body));
    assert_eq!(s, 200, "{v}");
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["state"] == "ok" && r["rtt_ms"].is_number()), "{v}");
    let (_, v) = call("GET", &format!("{}/agents", api.base), Some(&token), None);
    assert!(v["agents"][0]["last_seen"].is_string(), "{v}");
    // Discovery: the hub agents a station has seen, per channel.
    let (s, v) = call("GET", &format!("{}/discovery", api.base), Some(&token), None);
    assert_eq!((s, v.clone()), (200, json!({})), "no hub run yet: {v}");
    std::fs::create_dir_all(f.state.join("hub")).unwrap();
    std::fs::write(
        f.state.join("hub/discovery.toml"),
        "[channel.prod.hub-a1]\ntags = [\"web\"]\nlast_seen = \"2026-11-30T10:00:00Z\"\n",
    )
    .unwrap();
    let (s, v) = call("GET", &format!("{}/discovery", api.base), Some(&token), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["prod"]["hub-a1"]["tags"], json!(["web"]), "{v}");
}

#[test]
fn a_thousand_concurrent_runs_lose_no_result() {
    let f = fleet(10);
    let token = add_token(&f, "load", &[]);
    let api = start_api(&f, &[]);
    let base = api.base.clone();
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (base, token) = (base.clone(), token.clone());
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        let body = json!({"targets": "all", "action": "true"}).to_string();
                        let (s, v) = call("POST", &format!("{base}/run"), Some(&token), Some(&body));
                        assert!(s == 202 || s == 200, "{s}: {v}");
                        v["request_id"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(ids.len(), 1000);
    let mut states = std::collections::BTreeMap::new();
    for id in &ids {
        let mut v = Value::Null;
        wait_for(Duration::from_secs(240), "every run to end", || {
            v = call("GET", &format!("{base}/runs/{id}"), Some(&token), None).1;
            v["done"] == true
        });
        let targets = v["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 10, "{v}");
        for t in targets {
            let key = match t["state"].as_str().unwrap() {
                "refused" => format!("refused: {}", t["detail"].as_str().unwrap_or("").split(':').next().unwrap_or("")),
                s => s.to_string(),
            };
            *states.entry(key).or_insert(0) += 1;
        }
    }
    assert_eq!(states.values().sum::<usize>(), 10_000, "{states:?}");
    // Every target ended in a state that describes it: a run of the same
    // action on a host where it is running is refused (host:action
    // locks); on a machine loaded by other tests a session may also time
    // out (unreachable). None is lost, unknown or left running.
    let ok = states.get("succeeded").copied().unwrap_or(0);
    assert!(ok > 0, "{states:?}");
    for k in states.keys() {
        assert!(
            k == "succeeded"
                || k == "unreachable"
                || k.starts_with("refused: refused(locked")
                || k.starts_with("refused: refused(busy"),
            "{states:?}"
        );
    }
    let audit = f.muster(&["audit", "--json"]);
    assert_eq!(stdout(&audit).lines().count(), 1000);
}

#[test]
fn over_tls_a_user_certificate_or_a_token_gets_in_and_an_agent_certificate_does_not() {
    let f = fleet(1);
    let token = add_token(&f, "ops", &[]);
    let certs = f.path("alice");
    let out =
        f.muster(&["api", "token", "add", "alice", "--cert", "--out", certs.to_str().unwrap(), "--actions", "hello"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let api = start_api(&f, &["--tls", "--tls-name", "localhost"]);
    assert!(api.base.starts_with("https://"), "{}", api.base);
    let port = api.base.rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}");
    let ca = certs.join("ca.crt");
    let curl = |extra: &[&str], path: &str, body: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"]).arg(&ca).args(extra);
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "-d", b]);
        }
        let out = c.arg(format!("{url}{path}")).output().unwrap();
        let text = stdout(&out);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse::<u16>().unwrap_or(0), body.to_string())
    };
    let crt = certs.join("alice.crt").display().to_string();
    let key = certs.join("alice.key").display().to_string();
    // The user certificate gets in, with the entry's limits and name.
    let (s, b) = curl(&["--cert", &crt, "--key", &key], "/agents", None);
    assert_eq!(s, 200, "{b}");
    let run = r#"{"targets":"web1","action":"hello","args":["tls"],"wait":20}"#;
    let (s, b) = curl(&["--cert", &crt, "--key", &key], "/run", Some(run));
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("hello tls") || b.contains("tls"), "{b}");
    let (s, b) = curl(&["--cert", &crt, "--key", &key], "/run", Some(r#"{"targets":"web1","action":"true"}"#));
    assert_eq!(s, 403, "{b}");
    // A bearer token works over TLS too; nothing at all does not.
    let (s, _) = curl(&["-H", &format!("Authorization: Bearer {token}")], "/agents", None);
    assert_eq!(s, 200);
    let (s, b) = curl(&[], "/agents", None);
    assert_eq!(s, 401, "{b}");
    // An agent's certificate from the same CA is refused.
    let agent_dir = &f.agents[0].dir;
    let a_crt = agent_dir.join("agent.crt").display().to_string();
    let a_key = agent_dir.join("agent.key").display().to_string();
    let (s, b) = curl(&["--cert", &a_crt, "--key", &a_key], "/agents", None);
    assert_eq!(s, 401, "{b}");
    assert!(b.contains("an agent's"), "{b}");
    // A revoked user certificate is refused.
    let audit = f.muster(&["audit", "--json"]);
    assert!(stdout(&audit).contains("\"user\":\"alice\""), "{}", stdout(&audit));
    let serial = stdout(&f.muster(&["api", "token", "list"]));
    assert!(serial.contains("alice\tcertificate"), "{serial}");
    let pem = std::fs::read_to_string(&crt).unwrap();
    let der = pem_to_der(&pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let hex = cert.raw_serial_as_string().replace(':', "").trim_start_matches('0').to_lowercase();
    std::fs::write(f.state.join("revoked-serials"), format!("{hex}\n")).unwrap();
    let (s, b) = curl(&["--cert", &crt, "--key", &key], "/agents", None);
    assert_eq!(s, 401, "{b}");
    assert!(b.contains("revoked"), "{b}");
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[test]
fn an_asynchronous_run_is_collected_from_its_agents_with_get_status() {
    let f = fleet(2);
    let token = add_token(&f, "ops", &[]);
    let api = start_api(&f, &[]);
    let body = json!({"targets": "web[1-2]", "action": "hello", "args": ["later"], "async": true, "wait": 20});
    let (s, v) = call("POST", &format!("{}/run", api.base), Some(&token), Some(&body.to_string()));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["async"], true, "{v}");
    let id = v["request_id"].as_str().unwrap().to_string();
    let mut v = Value::Null;
    wait_for(Duration::from_secs(20), "the agents' results", || {
        let (s, got) = call("GET", &format!("{}/status/{id}", api.base), Some(&token), None);
        assert_eq!(s, 200, "{got}");
        v = got;
        v["done"] == true
    });
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{v}");
    for t in targets {
        assert_eq!(t["state"], "succeeded", "{t}");
        assert!(t["stdout"].as_str().unwrap().ends_with(" later\n"), "{t}");
    }
    // The CLI sees the same run and the same results.
    let out = f.muster(&["status", &id]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(" later"), "{}", stdout(&out));
}

/// The API resumes TLS sessions with agents it reached before (rustls
/// keeps them in the process), and a resumed session is held to the
/// same checks as a full handshake: another host at an agent's address is
/// refused, and once the agent stops trusting the dispatcher's serial,
/// the resumed session is refused.
#[test]
fn resumed_sessions_are_checked_like_full_handshakes() {
    let f = fleet(2);
    let token = add_token(&f, "ops", &[]);
    let api = start_api(&f, &[]);
    let run_on = |targets: &str| {
        let body = json!({"targets": targets, "action": "true", "wait": 10}).to_string();
        call("POST", &format!("{}/run", api.base), Some(&token), Some(&body))
    };
    let run = || run_on("web1");
    for _ in 0..2 {
        let (s, v) = run_on("web[1-2]");
        assert_eq!((s, v["exit"].as_u64()), (200, Some(0)), "{v}");
    }
    wait_for(Duration::from_secs(5), "a resumed session", || f.log(0).contains("resumed a TLS session"));
    // The agent's name is still checked: with web2's address pointing at
    // web1, a session for web2 resumed at web1 would run there. It is not:
    // sessions are kept per agent name, so web1 must show web2's name.
    let web1 = f.agents[0].addr.to_string();
    assert!(f.muster(&["agents", "edit", "web2", "--addr", &web1]).status.success());
    let (s, v) = run_on("web2");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["exit"], 16, "web1 answered for web2: {v}");
    assert!(v.to_string().contains("names another host"), "{v}");
    // The agent stops trusting this dispatcher (its map names another).
    let map = f.agents[0].dir.join("dispatchers");
    std::fs::write(&map, "abcdef other-dispatcher\n").unwrap();
    f.signal(0, libc::SIGHUP);
    wait_for(Duration::from_secs(5), "the reload", || f.log(0).contains("reloaded"));
    let resumed_before = f.log(0).matches("resumed a TLS session").count();
    let (s, v) = run();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["exit"], 16, "a resumed session of an untrusted serial must be refused: {v}");
    let log = f.log(0);
    assert!(log.matches("resumed a TLS session").count() > resumed_before, "the refused run did not resume: {log}");
    assert!(log.contains("not in this agent's trusted-dispatcher map"), "{log}");
}
