//! A task popped from `<agent-id>/tasks`, decoded the way the original
//! decodes it into its Go struct: unknown fields are ignored, missing ones
//! are empty, field names match case-insensitively (an exact match wins),
//! `null` leaves a field empty, and a field of the wrong type rejects the
//! whole task. Errors read like Go's so the log line a task produces is the
//! same ("Task ignored for decoding error: invalid character 'I' ...").

use serde_json::{Map, Value};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub action: String,
    /// Passed to the steps on stdin.
    pub data: Value,
    pub user: String,
    /// The whole task as popped, parsed (stored, masked, as the context).
    pub raw: Value,
}

#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("{0}")]
    Syntax(String),
    /// JSON, but not a task. `id` is the task id when one could be read.
    #[error("{message}")]
    Type { message: String, id: Option<String> },
}

/// String fields of the Go struct, by JSON name, and its Go field name.
const STRING_FIELDS: [(&str, &str); 6] = [
    ("id", "ID"),
    ("action", "Action"),
    ("queue", "Queue"),
    ("user", "User"),
    ("parent", "Parent"),
    ("timestamp", "Timestamp"),
];

pub fn decode(text: &str) -> Result<Task, DecodeError> {
    let raw: Value = serde_json::from_str(text).map_err(|e| DecodeError::Syntax(syntax_message(text, &e)))?;
    let Value::Object(map) = &raw else {
        return Err(DecodeError::Type {
            message: format!("json: cannot unmarshal {} into Go value of type models.Task", kind(&raw)),
            id: None,
        });
    };
    let id = string_field(map, "id").ok().flatten();
    let mut first_error = None;
    let mut strings = Vec::new();
    for (name, go_name) in STRING_FIELDS {
        match string_field(map, name) {
            Ok(v) => strings.push(v.unwrap_or_default()),
            Err(found) => {
                let ty = if name == "timestamp" { "time.Time" } else { "string" };
                first_error.get_or_insert(format!(
                    "json: cannot unmarshal {found} into Go struct field Task.{} of type {ty}",
                    go_name.to_lowercase()
                ));
                strings.push(String::new());
            }
        }
    }
    if let Some(message) = first_error {
        return Err(DecodeError::Type { message, id });
    }
    let data = field(map, "data").cloned().unwrap_or(Value::Null);
    Ok(Task { id: strings[0].clone(), action: strings[1].clone(), user: strings[3].clone(), data, raw })
}

/// The value of the key matching `name`: exact match first, then a key
/// equal to it ignoring case (as Go matches struct fields).
pub fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| map.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).next_back())
}

/// `Ok(None)` when absent or null, `Err(kind)` when not a string.
fn string_field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, &'static str> {
    match field(map, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(kind(other)),
    }
}

/// Go's name for a JSON value kind in unmarshal errors.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A serde_json syntax error worded as Go's scanner words it.
fn syntax_message(text: &str, e: &serde_json::Error) -> String {
    if e.is_eof() || text.trim().is_empty() {
        return "unexpected end of JSON input".into();
    }
    let line_start: usize = text.split_inclusive('\n').take(e.line().saturating_sub(1)).map(str::len).sum();
    let at = line_start + e.column().saturating_sub(1);
    let first = text.len() - text.trim_start().len();
    let msg = e.to_string();
    let Some(c) = text.get(at..).and_then(|rest| rest.chars().next()) else { return msg };
    let c = quote_char(c);
    if msg.starts_with("trailing characters") {
        format!("invalid character {c} after top-level value")
    } else if at == first {
        format!("invalid character {c} looking for beginning of value")
    } else {
        format!("invalid character {c} ({})", msg.split(" at line").next().unwrap_or(&msg))
    }
}

fn quote_char(c: char) -> String {
    match c {
        '\'' => r"'\''".into(),
        '"' => "'\"'".into(),
        c if c.is_control() => format!("'{}'", c.escape_default()),
        c => format!("'{c}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let t = decode(r#"{"ID":"x","id":"a","Action":"run","data":{"k":1},"extra":7,"user":null}"#).unwrap();
        assert_eq!((t.id.as_str(), t.action.as_str(), t.user.as_str()), ("a", "run", ""));
        assert_eq!(t.data, serde_json::json!({"k": 1}));
        let t = decode("{}").unwrap();
        assert_eq!((t.id.as_str(), t.data.clone()), ("", Value::Null));
    }

    #[test]
    fn errors_read_like_go() {
        assert_eq!(
            decode("INVALID_JSON_STRING").unwrap_err().to_string(),
            "invalid character 'I' looking for beginning of value"
        );
        assert_eq!(decode("").unwrap_err().to_string(), "unexpected end of JSON input");
        assert_eq!(decode("{\"id\":").unwrap_err().to_string(), "unexpected end of JSON input");
        assert_eq!(
            decode("[1]").unwrap_err().to_string(),
            "json: cannot unmarshal array into Go value of type models.Task"
        );
        assert_eq!(
            decode(r#"{"id":"t1","action":5}"#).unwrap_err(),
            DecodeError::Type {
                message: "json: cannot unmarshal number into Go struct field Task.action of type string".into(),
                id: Some("t1".into())
            }
        );
    }
}
