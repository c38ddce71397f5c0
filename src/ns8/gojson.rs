//! JSON as the original agent (Go's `encoding/json`) writes it, so keys and
//! bytes a client reads are the same: object keys sorted, compact, every
//! number a float64 printed the ES6 way (`1.0` becomes `1`, `1e21` becomes
//! `1e+21`), `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`-style
//! sequences. [`encode_masked`] is the form every stored or logged task
//! context takes: secrets masked by `exec::secrets` first.

use crate::exec::secrets;
use serde_json::Value;

/// Encode like `json.Marshal` of the value decoded into `interface{}`.
pub fn encode(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// Encode a copy of `v` with every secret-looking value masked
/// ([`secrets::mask_secrets`]): the only form in which a task context is
/// stored (`task/<agent>/<id>/context`) or logged. `v` is left untouched.
pub fn encode_masked(v: &Value) -> String {
    encode(&secrets::masked(v))
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_float(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                if let Some(item) = map.get(k) {
                    write_value(out, item);
                }
            }
            out.push('}');
        }
    }
}

/// A float64 as Go's encoder prints it: shortest round-trip digits, plain
/// notation for 1e-6 <= |f| < 1e21, otherwise `1e+21` / `1e-7` style.
pub fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format!("{f}");
    }
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => s,
    }
}

/// A string literal with Go's escaping (HTML-safe).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_like_go() {
        let v: Value = serde_json::from_str(
            r#"{"b":[1.0,1.5,1e21,1e-7,0.000001,-0.0,12345678901234567890],"a":"<x&y>\u2028\u0001\n"}"#,
        )
        .unwrap();
        assert_eq!(
            encode(&v),
            r#"{"a":"\u003cx\u0026y\u003e\u2028\u0001\n","b":[1,1.5,1e+21,1e-7,0.000001,-0,12345678901234567000]}"#
        );
    }

    #[test]
    fn masked_encoding_hides_every_suffix_and_keeps_the_input() {
        let v = json!({"data": {"db_password": "p", "api_key": "A", "smtp_pass": "S", "nested": {"TLS_Key": "K"}, "keys": [{"x_pass": 1}]}, "id": "<t>"});
        assert_eq!(
            encode_masked(&v),
            r#"{"data":{"api_key":"XXX","db_password":"XXX","keys":[{"x_pass":"XXX"}],"nested":{"TLS_Key":"XXX"},"smtp_pass":"XXX"},"id":"\u003ct\u003e"}"#
        );
        assert_eq!(v["data"]["api_key"], "A");
    }
}
