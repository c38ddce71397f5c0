//! Built-in actions answered by the agent itself: `ping`, `info`,
//! `list-actions`, `cancel REQUEST-ID`, `result REQUEST-ID` (an
//! asynchronous request's stored result, for its own dispatcher only), and
//! the trust-keeping ones of `pki_builtins`. They cannot be shadowed by the
//! catalog.

use super::session::Peer;
use super::Agent;
use serde_json::json;

/// Exit code and stdout of a builtin, or `None` if `name` is not one.
pub fn run(agent: &Agent, name: &str, args: &[String], peer: &Peer) -> Option<(i32, Vec<u8>)> {
    if let Some(out) = super::pki_builtins::run(agent, name, args, peer) {
        return Some(out);
    }
    let dispatcher = peer.dispatcher.as_str();
    let out = match name {
        "ping" => (0, b"pong\n".to_vec()),
        "info" => (0, json_line(&info(agent))),
        "list-actions" => (0, json_line(&json!(action_names(agent)))),
        "cancel" => match args {
            [id] if agent.cancel(id, dispatcher) => (0, format!("cancelling {id}\n").into_bytes()),
            [id] => (2, format!("no running request {id} of this dispatcher\n").into_bytes()),
            _ => (2, b"usage: cancel REQUEST-ID\n".to_vec()),
        },
        "kill" => match args {
            [what] if what == "agent" => {
                tracing::warn!(dispatcher = %dispatcher, "kill agent: killing every action and exiting");
                tokio::spawn(async {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    crate::exec::groups::kill_all();
                    std::process::exit(0);
                });
                (0, b"killing the agent\n".to_vec())
            }
            [id] if agent.kill(id, dispatcher) => (0, format!("killed the processes of {id}\n").into_bytes()),
            [id] => (2, format!("no running process of request {id} of this dispatcher\n").into_bytes()),
            _ => (2, b"usage: kill REQUEST-ID | kill agent\n".to_vec()),
        },
        "result" => match args {
            [id] => match agent.results.fetch(dispatcher, id) {
                Some(r) => (0, json_line(&serde_json::to_value(&r).unwrap_or_default())),
                None => {
                    (2, format!("not found: no request {id} of dispatcher {dispatcher} on this agent\n").into_bytes())
                }
            },
            _ => (2, b"usage: result REQUEST-ID\n".to_vec()),
        },
        _ => return None,
    };
    Some(out)
}

pub fn action_names(agent: &Agent) -> Vec<String> {
    let mut names = agent.catalog().names();
    if agent.cfg.allow_shell {
        names.push("shell".into());
    }
    names.extend(crate::exec::BUILTINS.iter().map(|s| s.to_string()));
    names
}

fn json_line(v: &serde_json::Value) -> Vec<u8> {
    let mut s = v.to_string();
    s.push('\n');
    s.into_bytes()
}

fn info(agent: &Agent) -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let uptime: f64 = read("/proc/uptime").split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let load: Vec<f64> = read("/proc/loadavg").split_whitespace().take(3).filter_map(|s| s.parse().ok()).collect();
    json!({
        "name": agent.cfg.name,
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": crate::protocol::PROTOCOL_VERSION,
        "hostname": read("/proc/sys/kernel/hostname").trim(),
        "os": os,
        "uptime_s": uptime as u64,
        "load": load,
        "tags": agent.cfg.tags,
        "actions": action_names(agent),
        "running": agent.active(),
        "agent_uptime_s": agent.started.elapsed().as_secs(),
    })
}
