//! JSON Schema checks of an action's input (`validate-input.json`) and
//! output (`validate-output.json`), with `$AGENT_INSTALL_DIR/
//! validator-definitions.json` registered under its `$id` so schemas can
//! `$ref` shared definitions. Problems are reported in the shapes the
//! original (gojsonschema) produced, since the UI reads them: the output
//! key gets `[{"parameter","error","value","field"}]` with `error` =
//! parameter + `_` + kind (`(root)_enum`, `name_required`...), the error key
//! and the log get `[field: description ...]`.

use super::gojson;
use jsonschema::error::{TypeKind, ValidationErrorKind as K};
use serde_json::Value;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A fault that prevented a check (unreadable or invalid schema, output
/// that is not JSON), worded as the original words it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Fault(pub String);

/// One schema violation.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path without the root prefix, `(root)` for the root.
    pub field: String,
    /// gojsonschema's error type, e.g. `required`, `invalid_type`.
    pub kind: &'static str,
    pub description: String,
    pub value: Value,
}

/// [`check`] on the blocking pool: the schema and definition files are
/// read and compiled off the async workers. Same results and faults.
pub async fn check_async(schema_path: PathBuf, instance: Value) -> Result<Vec<Problem>, Fault> {
    let shown = schema_path.display().to_string();
    super::off_worker(move || check(&schema_path, &instance))
        .await
        .unwrap_or_else(|e| Err(Fault(format!("Schema check of {shown} failed: {e}"))))
}

/// [`parse_output`] then [`check`], on the blocking pool.
pub async fn check_output_async(schema_path: PathBuf, output: Vec<u8>) -> Result<Vec<Problem>, Fault> {
    let shown = schema_path.display().to_string();
    super::off_worker(move || parse_output(&output).and_then(|v| check(&schema_path, &v)))
        .await
        .unwrap_or_else(|e| Err(Fault(format!("Schema check of {shown} failed: {e}"))))
}

/// Check `instance` against the schema at `schema_path`. `Err` is a fault
/// that prevented the check (unreadable or invalid schema).
pub fn check(schema_path: &Path, instance: &Value) -> Result<Vec<Problem>, Fault> {
    let defs_path = format!("{}/validator-definitions.json", std::env::var("AGENT_INSTALL_DIR").unwrap_or_default());
    let defs = match std::fs::read(&defs_path) {
        Ok(bytes) => Some(
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| Fault(format!("Schema loader error while loding {defs_path}: {e}")))?,
        ),
        Err(_) => None,
    };
    let schema_text = std::fs::read(schema_path).map_err(|e| {
        let p = schema_path.display();
        Fault(format!("Failed to read schema file {p}: open {p}: {}", super::log::errno_text(&e)))
    })?;
    let compile_error = |e: String| Fault(format!("Schema compile error for file {}: {e}", schema_path.display()));
    let schema: Value = serde_json::from_slice(&schema_text).map_err(|e| compile_error(e.to_string()))?;
    let mut options = jsonschema::options().should_validate_formats(true);
    let registry;
    if let Some(id) = defs.as_ref().and_then(|d| d.get("$id")).and_then(Value::as_str) {
        let defs = defs.clone().unwrap_or(Value::Null);
        registry = jsonschema::Registry::new()
            .add(id, defs)
            .and_then(|b| b.prepare())
            .map_err(|e| Fault(format!("Schema loader error while loding {defs_path}: {e}")))?;
        options = options.with_registry(&registry);
    }
    let validator = options.build(&schema).map_err(|e| compile_error(e.to_string()))?;
    let mut problems = Vec::new();
    for error in validator.iter_errors(instance) {
        let field = field_name(error.instance_path().as_str());
        let value = error.instance().clone().into_owned();
        problems.extend(describe(error.kind(), &field, value));
    }
    Ok(problems)
}

/// Parse step output as JSON, as the original does before checking it.
pub fn parse_output(output: &[u8]) -> Result<Value, Fault> {
    serde_json::from_slice(output).map_err(|e| {
        let bytes: Vec<String> = output.iter().map(u8::to_string).collect();
        let why = if e.is_eof() { "unexpected end of JSON input".to_string() } else { e.to_string() };
        Fault(format!("JSON unmarshal error: {why}. Input data: [{}]", bytes.join(" ")))
    })
}

/// The JSON stored in the output key after failed input validation.
pub fn to_json(problems: &[Problem]) -> String {
    let list: Vec<Value> = problems
        .iter()
        .map(|p| {
            let parameter = p.field.split('.').next().unwrap_or("").to_string();
            serde_json::json!({
                "parameter": parameter,
                "error": format!("{parameter}_{}", p.kind),
                "value": p.value,
                "field": p.field,
            })
        })
        .collect();
    // Go writes the fields in struct order: parameter, error, value, field.
    let mut out = String::from("[");
    for (i, item) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        for (j, key) in ["parameter", "error", "value", "field"].iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            gojson::write_str(&mut out, key);
            out.push(':');
            out.push_str(&gojson::encode(&item[*key]));
        }
        out.push('}');
    }
    out.push(']');
    out
}

/// `[field: description field: description]`, as Go prints the list.
pub fn to_text(problems: &[Problem]) -> String {
    let items: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.description)).collect();
    format!("[{}]", items.join(" "))
}

fn field_name(pointer: &str) -> String {
    if pointer.is_empty() {
        return "(root)".into();
    }
    let parts: Vec<String> =
        pointer.trim_start_matches('/').split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    parts.join(".")
}

fn num(v: &Value) -> String {
    v.as_f64().map(gojson::go_float).unwrap_or_else(|| v.to_string())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn describe(kind: &K, field: &str, value: Value) -> Vec<Problem> {
    let one = |kind: &'static str, description: String, value: Value| Problem {
        field: field.to_string(),
        kind,
        description,
        value,
    };
    let p = match kind {
        K::AdditionalProperties { unexpected } => {
            return unexpected
                .iter()
                .map(|name| {
                    let v = value.get(name).cloned().unwrap_or(Value::Null);
                    one("additional_property_not_allowed", format!("Additional property {name} is not allowed"), v)
                })
                .collect()
        }
        K::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.as_str().to_string(),
                TypeKind::Multiple(set) => {
                    format!("[{}]", set.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","))
                }
            };
            let given = json_type(&value);
            one("invalid_type", format!("Invalid type. Expected: {expected}, given: {given}"), value)
        }
        K::Required { property } => {
            let name = property.as_str().map(str::to_string).unwrap_or_else(|| property.to_string());
            one("required", format!("{name} is required"), value)
        }
        K::Enum { options } => {
            let allowed: Vec<String> =
                options.as_array().map(|a| a.iter().map(gojson::encode).collect()).unwrap_or_default();
            one("enum", format!("{field} must be one of the following: {}", allowed.join(", ")), value)
        }
        K::Constant { expected_value } => {
            one("const", format!("{field} does not match: {}", gojson::encode(expected_value)), value)
        }
        K::Pattern { pattern } => one("pattern", format!("Does not match pattern '{pattern}'"), value),
        K::Format { format } => one("format", format!("Does not match format '{format}'"), value),
        K::MinLength { limit } => {
            one("string_gte", format!("String length must be greater than or equal to {limit}"), value)
        }
        K::MaxLength { limit } => {
            one("string_lte", format!("String length must be less than or equal to {limit}"), value)
        }
        K::Minimum { limit } => one("number_gte", format!("Must be greater than or equal to {}", num(limit)), value),
        K::Maximum { limit } => one("number_lte", format!("Must be less than or equal to {}", num(limit)), value),
        K::ExclusiveMinimum { limit } => one("number_gt", format!("Must be greater than {}", num(limit)), value),
        K::ExclusiveMaximum { limit } => one("number_lt", format!("Must be less than {}", num(limit)), value),
        K::MultipleOf { multiple_of } => {
            one("multiple_of", format!("Must be a multiple of {}", gojson::go_float(*multiple_of)), value)
        }
        K::MinItems { limit } => one("array_min_items", format!("Array must have at least {limit} items"), value),
        K::MaxItems { limit } => one("array_max_items", format!("Array must have at most {limit} items"), value),
        K::UniqueItems => {
            let (i, j) = first_duplicate(&value);
            one("unique", format!("array items[{i},{j}] must be unique"), value)
        }
        K::MinProperties { limit } => {
            one("array_min_properties", format!("Must have at least {limit} properties"), value)
        }
        K::MaxProperties { limit } => {
            one("array_max_properties", format!("Must have at most {limit} properties"), value)
        }
        K::AnyOf { .. } => one("number_any_of", "Must validate at least one schema (anyOf)".into(), value),
        K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } => {
            one("number_one_of", "Must validate one and only one schema (oneOf)".into(), value)
        }
        K::Not { .. } => one("number_not", "Must not validate the schema (not)".into(), value),
        K::Contains => one("contains", "At least one of the items must match".into(), value),
        K::FalseSchema => one("false", "False always fails validation".into(), value),
        K::AdditionalItems { .. } => {
            one("array_no_additional_items", "No additional items allowed on array".into(), value)
        }
        K::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or_default().to_string();
            one("invalid_property_name", format!("Property name of \"{name}\" does not match"), value)
        }
        other => one("internal", format!("Internal Error {}", kind_text(other)), value),
    };
    vec![p]
}

fn kind_text(kind: &K) -> String {
    match kind {
        K::Custom { message, .. } => message.clone(),
        K::Referencing(e) => e.to_string(),
        other => format!("{other:?}"),
    }
}

fn first_duplicate(v: &Value) -> (usize, usize) {
    let items = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
    for (i, a) in items.iter().enumerate() {
        if let Some(j) = items[i + 1..].iter().position(|b| a == b) {
            return (i, i + 1 + j);
        }
    }
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), v.to_string()).unwrap();
        f
    }

    #[test]
    fn reports_like_gojsonschema() {
        let s =
            schema(json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string", "enum": ["A", "B"]}));
        let p = check(s.path(), &json!("C")).unwrap();
        assert_eq!(to_text(&p), r#"[(root): (root) must be one of the following: "A", "B"]"#);
        assert_eq!(to_json(&p), r#"[{"parameter":"(root)","error":"(root)_enum","value":"C","field":"(root)"}]"#);
        let s = schema(
            json!({"type": "object", "required": ["name"], "properties": {"age": {"type": "integer", "minimum": 1}}}),
        );
        let p = check(s.path(), &json!({"age": 0})).unwrap();
        let kinds: Vec<_> = p.iter().map(|p| (p.field.as_str(), p.kind)).collect();
        assert!(kinds.contains(&("(root)", "required")) && kinds.contains(&("age", "number_gte")), "{kinds:?}");
        assert!(check(Path::new("/nonexistent.json"), &json!(1))
            .unwrap_err()
            .0
            .starts_with("Failed to read schema file"));
        assert!(parse_output(b"").unwrap_err().0.starts_with("JSON unmarshal error: unexpected end of JSON input"));
    }

    /// The schema is a FIFO: opening it blocks until a writer comes. The
    /// writer (a plain thread) only comes once a task on the same
    /// single-threaded runtime has run, which it can only do if the check
    /// is not blocking the runtime's one worker.
    #[test]
    fn schema_reads_happen_off_the_async_worker() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("validate-input.json");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let (signal_tx, signal_rx) = std::sync::mpsc::channel::<()>();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let in_time = signal_rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok();
            // Write either way, so a failing run ends instead of hanging.
            std::fs::write(&writer_path, r#"{"type": "string"}"#).unwrap();
            in_time
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let problems = rt.block_on(async {
            tokio::spawn(async move { signal_tx.send(()).unwrap() });
            check_async(fifo.clone(), json!(5)).await
        });
        assert!(writer.join().unwrap(), "the check blocked the async worker");
        assert_eq!(problems.unwrap()[0].kind, "invalid_type");
    }
}
