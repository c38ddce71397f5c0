//! Masking of secret-looking values in JSON before a request is stored or
//! logged. A key is secret when its name ends, ignoring case, in one of
//! [`SECRET_SUFFIXES`] (`db_password`, `api_key`, `smtp_pass`, `TLS_Key`,
//! `refreshToken`...); its whole value, whatever its type (string, number,
//! object, array), becomes [`MASK`]. Objects are searched at any depth,
//! inside arrays too. The rule is NethServer ns8-core's task-context
//! obfuscation (`task/<agent>/<id>/context`) widened to the five suffixes
//! issue 8 reports for current ns8-core; ns8-core's agent README, and the
//! `htask.go` revisions this project studied, list only `password`,
//! `secret` and `token`. Shared by every carrier that stores requests:
//! the ns8 agent now, the mTLS agent's stored results later.

use serde_json::Value;

/// Suffixes, lower case, of key names whose values are masked. A key
/// matches when its lower-cased name ends with one of them, so `passkey`,
/// `KEY` and `x_pass` match while `keys` and `password_hint` do not.
pub const SECRET_SUFFIXES: [&str; 5] = ["password", "secret", "token", "key", "pass"];

/// What a masked value is replaced with (ns8-core's choice).
pub const MASK: &str = "XXX";

/// True when `key` ends with one of [`SECRET_SUFFIXES`], ignoring case
/// (Unicode lower-casing, as Go's `strings.ToLower`).
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_lowercase();
    SECRET_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// Replace in place, at any depth, the value of every secret key with
/// `"XXX"`. A masked value is not searched further (it is gone). Works
/// with an explicit stack, so no nesting depth can exhaust the call stack.
pub fn mask_secrets(value: &mut Value) {
    let mut pending: Vec<&mut Value> = vec![value];
    while let Some(v) = pending.pop() {
        match v {
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if is_secret_key(k) {
                        *item = Value::String(MASK.into());
                    } else {
                        pending.push(item);
                    }
                }
            }
            Value::Array(items) => pending.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// A masked copy of `value`, for logging or storing without touching the
/// original (which still goes to the step).
pub fn masked(value: &Value) -> Value {
    let mut copy = value.clone();
    mask_secrets(&mut copy);
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_issue_input_is_masked_whole() {
        let v = masked(&json!({"db_password":"p","api_key":"A","smtp_pass":"S","nested":{"TLS_Key":"K"}}));
        assert_eq!(v, json!({"db_password":"XXX","api_key":"XXX","smtp_pass":"XXX","nested":{"TLS_Key":"XXX"}}));
    }

    #[test]
    fn suffix_rule_and_its_neighbours() {
        for secret in [
            "password",
            "PASSWORD",
            "db_Password",
            "secret",
            "API_SECRET",
            "token",
            "refreshToken",
            "key",
            "KEY",
            "passkey",
            "api_key",
            "TLS_Key",
            "pass",
            "x_pass",
            "smtpPASS",
            "bypass",
        ] {
            assert!(is_secret_key(secret), "{secret} should be masked");
        }
        for clear in [
            "keys",
            "tokens",
            "secrets",
            "passwords",
            "password_not_replaced",
            "keyname",
            "passage",
            "kee",
            "",
            "pas",
            "monkey_",
            "key ",
        ] {
            assert!(!is_secret_key(clear), "{clear} should stay");
        }
        // Unicode case folding, as Go's strings.ToLower: KELVIN SIGN + "EY".
        assert!(is_secret_key("api_\u{212A}EY"));
    }

    #[test]
    fn any_depth_arrays_and_non_string_values() {
        let mut v = json!({
            "list": [{"x_pass": "S1", "keep": 1}, [{"deep": {"Token": 7}}], "plain"],
            "numkey": 42, "boolsecret": true, "nullpassword": null,
            "objtoken": {"inner": "gone"}, "arrkey": [1, 2],
            "keys": {"api_key": "K2"}, "n": 1.5
        });
        mask_secrets(&mut v);
        assert_eq!(
            v,
            json!({
                "list": [{"x_pass": "XXX", "keep": 1}, [{"deep": {"Token": "XXX"}}], "plain"],
                "numkey": "XXX", "boolsecret": "XXX", "nullpassword": "XXX",
                "objtoken": "XXX", "arrkey": "XXX",
                "keys": {"api_key": "XXX"}, "n": 1.5
            })
        );
    }

    #[test]
    fn scalars_and_deep_nesting_are_safe() {
        for mut scalar in [json!(null), json!("password"), json!(3), json!([])] {
            let before = scalar.clone();
            mask_secrets(&mut scalar);
            assert_eq!(scalar, before);
        }
        // Deeper than serde_json's own parse limit: built by hand.
        let mut v = json!({"key": "k"});
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        mask_secrets(&mut v);
        let mut cur = &v;
        while let Value::Array(items) = cur {
            cur = &items[0];
        }
        assert_eq!(cur, &json!({"key": "XXX"}));
        // Dropping a 100k-deep Value recurses in serde_json; unwind it by hand.
        let mut cur = v;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Null);
        }
    }
}
