//! Helpers for tests of `muster api`: start it on a free port, make
//! tokens, call it over real HTTP (ureq).
#![allow(dead_code)]

use super::common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Api {
    pub child: Child,
    pub base: String,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `muster api` on a free port; returns once it listens.
pub fn start_api(f: &Fleet, extra: &[&str]) -> Api {
    let mut child = Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["api", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // Log lines (a certificate issued at start) may come first.
    while !line.contains("listening on") {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
    }
    let url = line.split_whitespace().find(|w| w.starts_with("http://") || w.starts_with("https://"));
    let base = url.map(String::from).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no listening line: {line:?}")
    });
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    Api { child, base }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// (status, JSON body) of a request.
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let a = agent();
    let mut resp = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call()
        }
        (_, b) => {
            let mut r = a.post(url).header("Content-Type", "application/json");
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.send(b.unwrap_or(""))
        }
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub fn add_token(f: &Fleet, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["api", "token", "add", name];
    args.extend_from_slice(extra);
    let out = f.muster(&args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out).trim().to_string()
}
