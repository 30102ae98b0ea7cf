//! Field errors with kube-apiserver's exact wording.
//!
//! A [`FieldError`] is one problem with one field of an object, the Rust twin of apimachinery's
//! `field.Error`. Its texts follow `reference/k8s-api.md` §10 ("Field error text"):
//!
//! * [`FieldError`]'s `Display` gives `<field>: <Type string>[: <value>][: <detail>]`;
//! * [`FieldError::message`] gives the same without the leading `<field>: ` (a `StatusCause` message);
//! * [`FieldError::cause_reason`] gives the `StatusCause` reason (`FieldValueRequired`, …);
//! * [`invalid_message`] joins several errors into the top-level 422 message.
//!
//! Values print as current apimachinery prints them: strings Go-quoted, integers and booleans
//! bare, anything structured as Go's `json.Marshal` output (`null`, `["a"]`), and nothing at all
//! for Required/Forbidden/TooLong/Internal.
//!
//! Secret data values must never reach a [`FieldValue`]: validators report the key, or
//! [`FieldValue::redacted`] (§8.3), never the bytes.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;

/// The class of a field error, matching apimachinery's `field.ErrorType`.
///
/// Exhaustive: apimachinery has exactly these types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A required field is missing (`Required value`).
    Required,
    /// The value is malformed or out of range (`Invalid value`).
    Invalid,
    /// The field may not be set or changed (`Forbidden`).
    Forbidden,
    /// The value is longer than allowed (`Too long`).
    TooLong,
    /// The value duplicates another one (`Duplicate value`).
    Duplicate,
    /// The value is not one of an enumerated set (`Unsupported value`).
    NotSupported,
    /// A referenced item does not exist (`Not found`).
    NotFound,
    /// A list has too many items (`Too many`).
    TooMany,
    /// The server failed while validating (`Internal error`).
    Internal,
    /// The value has the wrong JSON type (`Invalid value`, reason `FieldValueTypeInvalid`).
    TypeInvalid,
}

impl FieldErrorKind {
    /// The human text apimachinery prints for this type, e.g. `Required value`.
    pub fn type_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::Duplicate => "Duplicate value",
            Self::NotSupported => "Unsupported value",
            Self::NotFound => "Not found",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// The `StatusCause.reason` for this type, e.g. `FieldValueRequired` (§10).
    pub fn cause_reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::Duplicate => "FieldValueDuplicate",
            Self::NotSupported => "FieldValueNotSupported",
            Self::NotFound => "FieldValueNotFound",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// Whether apimachinery leaves the bad value out of the text for this type.
    fn omits_value(self) -> bool {
        matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

/// The offending value carried by a [`FieldError`], printed as Go's `field.Error` does.
///
/// Never put Secret data in here; use [`FieldValue::redacted`] instead.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// A string, printed Go-quoted (`"a b"`).
    Str(String),
    /// An integer, printed bare (`42`).
    Int(i64),
    /// A boolean, printed bare (`true`).
    Bool(bool),
    /// A structured value (list, object, `null`), printed as Go's `json.Marshal` does: compact,
    /// with `<`, `>`, `&`, U+2028 and U+2029 escaped. Object keys come out sorted; use
    /// [`FieldValue::Raw`] where Go's struct field order matters.
    Json(serde_json::Value),
    /// Text printed exactly as given (e.g. JSON already in Go's field order).
    Raw(String),
}

impl FieldValue {
    /// The placeholder kube-apiserver prints instead of a Secret's contents (§8.3).
    pub fn redacted() -> Self {
        Self::Str("<secret contents redacted>".to_owned())
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => f.write_str(&go_quote(s)),
            Self::Int(i) => write!(f, "{i}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Json(v) => f.write_str(&go_json_escape(&v.to_string())),
            Self::Raw(s) => f.write_str(s),
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<i64> for FieldValue {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// One validation problem: which field, what kind, the bad value (if shown) and a detail.
///
/// `Display` gives kube-apiserver's full text, `<field>: <Type string>[: <value>][: <detail>]`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {}", self.message())]
pub struct FieldError {
    /// The field path, e.g. `data[a b]` or `metadata.name`.
    pub field: String,
    /// The error class.
    pub kind: FieldErrorKind,
    /// The bad value; ignored in texts for Required/Forbidden/TooLong/Internal.
    pub value: Option<FieldValue>,
    /// Free-text explanation appended after `: ` when non-empty.
    pub detail: String,
}

impl FieldError {
    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Required, None, detail)
    }

    /// `Invalid value: <value>[: detail]`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<FieldValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(field, FieldErrorKind::Invalid, Some(value.into()), detail)
    }

    /// `Forbidden[: detail]`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// `Too long: may not be more than <max> bytes` (apimachinery's `field.TooLong`).
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        let unit = if max_bytes == 1 { "byte" } else { "bytes" };
        let detail = format!("may not be more than {max_bytes} {unit}");
        Self::new(field, FieldErrorKind::TooLong, None, detail)
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        Self::new(field, FieldErrorKind::Duplicate, Some(value.into()), "")
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<FieldValue>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            field,
            FieldErrorKind::NotSupported,
            Some(value.into()),
            detail,
        )
    }

    /// `Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        Self::new(field, FieldErrorKind::NotFound, Some(value.into()), "")
    }

    /// `Too many: <actual>: must have at most <max> items` (`item` when `max` is 1).
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        let detail = format!("must have at most {max} {unit}");
        Self::new(field, FieldErrorKind::TooMany, Some(actual.into()), detail)
    }

    /// `Internal error: <detail>`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Internal, None, detail)
    }

    /// `Invalid value: <value>: <detail>` with reason `FieldValueTypeInvalid`.
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<FieldValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(
            field,
            FieldErrorKind::TypeInvalid,
            Some(value.into()),
            detail,
        )
    }

    /// Builds an error from its parts.
    pub fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<FieldValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// The `StatusCause.message`: the full text without the leading `<field>: `.
    pub fn message(&self) -> String {
        let mut s = self.kind.type_str().to_owned();
        if let Some(v) = self.value.as_ref().filter(|_| !self.kind.omits_value()) {
            s.push_str(": ");
            s.push_str(&v.to_string());
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The `StatusCause.reason`, e.g. `FieldValueInvalid`.
    pub fn cause_reason(&self) -> &'static str {
        self.kind.cause_reason()
    }

    /// This error as a `StatusCause` (`reason`, `message`, `field`).
    pub fn to_status_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.field.clone()),
            message: Some(self.message()),
            reason: Some(self.cause_reason().to_owned()),
        }
    }
}

/// The top-level 422 message: `<Kind> "<name>" is invalid: <err>`, or `… is invalid: [<e1>, <e2>]`
/// when several distinct texts remain after removing duplicates (first occurrence kept).
///
/// `kind` is `Kind` for the core group and `Kind.group` otherwise (§10). With no errors the
/// aggregate is Go's `<nil>`, which a caller should never produce.
pub fn invalid_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    format!(
        "{kind} {} is invalid: {}",
        go_quote(name),
        aggregate(errors)
    )
}

/// Joins distinct error texts the way apimachinery's `ErrorList.ToAggregate().Error()` does.
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut texts: Vec<String> = Vec::new();
    for e in errors {
        let t = e.to_string();
        if !texts.contains(&t) {
            texts.push(t);
        }
    }
    match texts.len() {
        0 => "<nil>".to_owned(),
        1 => texts.swap_remove(0),
        _ => format!("[{}]", texts.join(", ")),
    }
}

/// `base[key]`, apimachinery's `Path.Key`.
pub fn key_path(base: &str, key: &str) -> String {
    format!("{base}[{key}]")
}

/// `base[i]`, apimachinery's `Path.Index`.
pub fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// Applies the HTML-safe escapes Go's `json.Marshal` adds to compact JSON text. These characters
/// only occur inside JSON strings, so a plain replacement is exact.
pub fn go_json_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Quotes a string as Go's `strconv.Quote` does for valid UTF-8.
///
/// Escapes `"` and `\`, uses `\a \b \f \n \r \t \v` for those controls, `\xNN` for other ASCII
/// controls and DEL, and `\u00NN` for C1 controls. Other characters pass through; Go also escapes
/// some non-printable Unicode (e.g. unassigned code points), which this does not attempt.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

    #[test]
    fn invalid_text_matches_reference_example() {
        let e = FieldError::invalid("data[a b]", "a b", KEY_MSG);
        assert_eq!(
            e.to_string(),
            format!("data[a b]: Invalid value: \"a b\": {KEY_MSG}")
        );
        assert_eq!(e.message(), format!("Invalid value: \"a b\": {KEY_MSG}"));
        assert_eq!(e.cause_reason(), "FieldValueInvalid");
        let cause = e.to_status_cause();
        assert_eq!(cause.field.as_deref(), Some("data[a b]"));
        assert_eq!(cause.reason.as_deref(), Some("FieldValueInvalid"));
        assert_eq!(
            invalid_message("Secret", "badkey", &[e]),
            format!("Secret \"badkey\" is invalid: data[a b]: Invalid value: \"a b\": {KEY_MSG}")
        );
    }

    #[test]
    fn required_forbidden_too_long_omit_value() {
        let mut e = FieldError::required("data[tls.key]", "");
        e.value = Some("x".into());
        assert_eq!(e.to_string(), "data[tls.key]: Required value");
        assert_eq!(
            FieldError::required("metadata.name", "name or generateName is required").to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(
            FieldError::forbidden("data", "field is immutable when `immutable` is set").to_string(),
            "data: Forbidden: field is immutable when `immutable` is set"
        );
        assert_eq!(
            FieldError::too_long("data", 1_048_576).to_string(),
            "data: Too long: may not be more than 1048576 bytes"
        );
        assert_eq!(
            FieldError::too_long("x", 1).message(),
            "Too long: may not be more than 1 byte"
        );
        assert_eq!(
            FieldError::internal("x", "boom").message(),
            "Internal error: boom"
        );
    }

    #[test]
    fn value_rendering() {
        assert_eq!(
            FieldError::invalid("spec.expirationSeconds", 5_i64, "too short").message(),
            "Invalid value: 5: too short"
        );
        assert_eq!(
            FieldError::invalid("immutable", false, "").message(),
            "Invalid value: false"
        );
        assert_eq!(
            FieldError::not_supported("dryRun", "x", &["All"]).to_string(),
            "dryRun: Unsupported value: \"x\": supported values: \"All\""
        );
        assert_eq!(
            FieldError::duplicate("a", "b").message(),
            "Duplicate value: \"b\""
        );
        assert_eq!(
            FieldError::not_found("a", "b").message(),
            "Not found: \"b\""
        );
        assert_eq!(
            FieldError::too_many("a", 5, 3).message(),
            "Too many: 5: must have at most 3 items"
        );
        let t = FieldError::type_invalid("a", "b", "must be a string");
        assert_eq!(t.cause_reason(), "FieldValueTypeInvalid");
        assert_eq!(t.message(), "Invalid value: \"b\": must be a string");
        assert_eq!(
            FieldError::invalid("a", FieldValue::redacted(), "bad").message(),
            "Invalid value: \"<secret contents redacted>\": bad"
        );
        assert_eq!(
            FieldError::invalid("a", FieldValue::Json(serde_json::json!(["x"])), "d").message(),
            "Invalid value: [\"x\"]: d"
        );
        assert_eq!(
            FieldError::invalid("f", FieldValue::Json(serde_json::json!(["<a>&"])), "d").message(),
            "Invalid value: [\"\\u003ca\\u003e\\u0026\"]: d"
        );
        assert_eq!(
            FieldError::invalid("f", FieldValue::Json(serde_json::Value::Null), "d").message(),
            "Invalid value: null: d"
        );
        assert_eq!(
            FieldError::too_many("a", 2, 1).message(),
            "Too many: 2: must have at most 1 item"
        );
    }

    #[test]
    fn cause_reasons() {
        use FieldErrorKind::*;
        let all = [
            (Required, "FieldValueRequired"),
            (Invalid, "FieldValueInvalid"),
            (Forbidden, "FieldValueForbidden"),
            (TooLong, "FieldValueTooLong"),
            (Duplicate, "FieldValueDuplicate"),
            (NotSupported, "FieldValueNotSupported"),
            (NotFound, "FieldValueNotFound"),
            (TooMany, "FieldValueTooMany"),
            (Internal, "InternalError"),
            (TypeInvalid, "FieldValueTypeInvalid"),
        ];
        for (k, r) in all {
            assert_eq!(k.cause_reason(), r);
        }
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a b"), "\"a b\"");
        assert_eq!(go_quote("q\"\\"), "\"q\\\"\\\\\"");
        assert_eq!(go_quote("a\nb\t\u{1}\u{7f}"), "\"a\\nb\\t\\x01\\x7f\"");
        assert_eq!(go_quote("é\u{85}"), "\"é\\u0085\"");
    }

    #[test]
    fn aggregate_dedups_and_brackets() {
        let a = FieldError::required("data[username]", "");
        let b = FieldError::required("data[password]", "");
        assert_eq!(
            invalid_message("Secret", "s", &[a.clone(), b.clone(), a.clone()]),
            "Secret \"s\" is invalid: [data[username]: Required value, data[password]: Required value]"
        );
        assert_eq!(
            invalid_message("Role.rbac.authorization.k8s.io", "r", &[a.clone(), a]),
            "Role.rbac.authorization.k8s.io \"r\" is invalid: data[username]: Required value"
        );
        assert_eq!(aggregate(&[]), "<nil>");
        assert_eq!(key_path("data", "k"), "data[k]");
        assert_eq!(index_path("x", 2), "x[2]");
    }
}
