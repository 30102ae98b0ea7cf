//! Request bodies: JSON (also when `Content-Type` is missing), YAML and Kubernetes protobuf,
//! decoded into typed objects with kube-apiserver's `fieldValidation` (§1.4, §3.5, §6).

use axum::http::HeaderMap;
use serde_json::Value;

use crate::kinds::ApiKind;
use crate::negotiate::{self, BodyFormat};
use crate::status::{ApiError, ApiResult};

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What to do with unknown fields (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are an error.
    Strict,
    /// Unknown fields become `Warning` headers (the default).
    Warn,
    /// Unknown fields are dropped silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter; absent means `Warn`.
    pub fn parse(value: Option<&str>) -> ApiResult<Self> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// A decoded body and the warnings to send back.
pub struct Decoded<K> {
    /// The object.
    pub object: K,
    /// `Warning` header texts.
    pub warnings: Vec<String>,
}

/// Decodes a POST/PUT body into `K`.
pub fn decode<K: ApiKind>(
    headers: &HeaderMap,
    body: &[u8],
    validation: FieldValidation,
) -> ApiResult<Decoded<K>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(
            "Request entity too large: limit is 3145728".to_owned(),
        ));
    }
    let format = negotiate::body_format(headers)?;
    if format == BodyFormat::Protobuf {
        let object = K::decode(body).map_err(|e| cannot_handle::<K>(&e.to_string()))?;
        return Ok(Decoded {
            object,
            warnings: Vec::new(),
        });
    }
    let value: Value = match format {
        BodyFormat::Yaml => {
            serde_yaml::from_slice(body).map_err(|e| cannot_handle::<K>(&yaml_error(&e)))?
        }
        _ => serde_json::from_slice(body).map_err(|e| cannot_handle::<K>(&json_error(&e)))?,
    };
    decode_value(value, validation)
}

/// Decodes a JSON value (a body, or the result of a patch) into `K`.
pub fn decode_value<K: ApiKind>(
    value: Value,
    validation: FieldValidation,
) -> ApiResult<Decoded<K>> {
    if !value.is_object() {
        return Err(cannot_handle::<K>("the body must be a JSON object"));
    }
    check_type_meta::<K>(&value)?;
    let object: K = serde_json::from_value(value.clone())
        .map_err(|e| cannot_handle::<K>(&strip_values(&e.to_string())))?;
    let mut unknown = Vec::new();
    if validation != FieldValidation::Ignore {
        let known = serde_json::to_value(&object).map_err(ApiError::internal)?;
        unknown_fields(&value, &known, "", &mut unknown);
    }
    let problems: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    match validation {
        FieldValidation::Strict if !problems.is_empty() => Err(cannot_handle::<K>(&format!(
            "strict decoding error: {}",
            problems.join(", ")
        ))),
        FieldValidation::Warn => Ok(Decoded {
            object,
            warnings: problems,
        }),
        _ => Ok(Decoded {
            object,
            warnings: Vec::new(),
        }),
    }
}

fn check_type_meta<K: ApiKind>(value: &Value) -> ApiResult<()> {
    if let Some(v) = value.get("apiVersion").and_then(Value::as_str)
        && !v.is_empty()
        && !K::accepts_api_version(v)
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            K::api_version()
        )));
    }
    if let Some(k) = value.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != K::kind()
    {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            K::kind()
        )));
    }
    Ok(())
}

fn cannot_handle<K: ApiKind>(why: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: {why}",
        kind = K::kind(),
        version = K::api_version()
    ))
}

/// Paths (`.spec.foo`, `metadata.bogus`) present in `sent` but not in what the type kept.
/// `null`s are not unknown: the typed object simply omits them.
fn unknown_fields(sent: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    let (Value::Object(sent), Value::Object(known)) = (sent, known) else {
        return;
    };
    for (k, v) in sent {
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match known.get(k) {
            None if !v.is_null() && !is_free_form(path) => out.push(child),
            Some(kv) => unknown_fields(v, kv, &child, out),
            None => {}
        }
    }
}

/// Maps whose keys are data, not fields.
fn is_free_form(path: &str) -> bool {
    matches!(
        path,
        "data" | "stringData" | "binaryData" | "metadata.labels" | "metadata.annotations"
    )
}

/// serde errors quote the offending input; bodies can carry secret values, so only the
/// position is kept.
pub fn json_error(e: &serde_json::Error) -> String {
    format!("invalid JSON at line {}, column {}", e.line(), e.column())
}

/// As [`json_error`], for YAML.
pub fn yaml_error(e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(l) => format!("invalid YAML at line {}, column {}", l.line(), l.column()),
        None => "invalid YAML".to_owned(),
    }
}

/// Drops quoted input from a serde type error (`invalid type: string "hunter2", expected ...`
/// or ``invalid type: integer `12345` ...``): bodies carry secret values.
pub fn strip_values(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match (quote, c) {
            (None, '"' | '`') => {
                quote = Some(c);
                out.push(c);
                out.push('…');
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use coffer_api::k8s_openapi::api::core::v1::Secret;
    use serde_json::json;

    use super::*;

    #[test]
    fn strict_refuses_unknown_fields_warn_reports_them() {
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "bogus": 1}, "bogus": true,
            "data": {"any-key": "dmFs"}});
        let err = decode_value::<Secret>(body.clone(), FieldValidation::Strict)
            .err()
            .expect("strict");
        assert_eq!(
            err.status()["message"],
            "Secret in version \"v1\" cannot be handled as a Secret: strict decoding error: unknown field \"bogus\", unknown field \"metadata.bogus\""
        );
        let ok = decode_value::<Secret>(body, FieldValidation::Warn).expect("warn");
        assert_eq!(ok.warnings.len(), 2);
    }

    #[test]
    fn decode_errors_never_echo_values() {
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": 12345}});
        let err = decode_value::<Secret>(body, FieldValidation::Strict)
            .err()
            .expect("bad");
        assert!(!err.status().to_string().contains("12345"));
        let raw = br#"{"kind":"Secret","data":{"k":"hunter2"#;
        let err = decode::<Secret>(&HeaderMap::new(), raw, FieldValidation::Strict)
            .err()
            .expect("bad json");
        assert!(!err.status().to_string().contains("hunter2"));
    }

    #[test]
    fn wrong_kind_is_400() {
        let err = decode_value::<Secret>(
            json!({"apiVersion": "v2", "kind": "Secret"}),
            FieldValidation::Warn,
        )
        .err()
        .expect("bad");
        assert_eq!(err.code(), axum::http::StatusCode::BAD_REQUEST);
    }
}
