//! The file's wire shape, decoded as kube-apiserver decodes it (`reference/encryption.md` §1.1,
//! §1.2): YAML or JSON, case-sensitive field names, duplicate fields refused, and every unknown
//! field reported with its full path.
//!
//! Two passes: the document is first read as a generic tree, to check `apiVersion`/`kind` and
//! to list every unknown field (serde's `deny_unknown_fields` stops at the first); then it is
//! decoded into the typed structs, which refuse duplicate fields and wrong types with a path.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroize;

use crate::error::DecodeError;

/// `apiVersion` of the normal form.
pub(crate) const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// `kind` of the normal form.
pub(crate) const KIND: &str = "EncryptionConfiguration";
/// `apiVersion` of the legacy form.
pub(crate) const LEGACY_API_VERSION: &str = "v1";
/// `kind` of the legacy form.
pub(crate) const LEGACY_KIND: &str = "EncryptionConfig";

/// `EncryptionConfiguration`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    // Checked on the generic tree before this typed pass; kept so the field is known.
    #[serde(rename = "apiVersion")]
    pub _api_version: Option<String>,
    #[serde(rename = "kind")]
    pub _kind: Option<String>,
    pub resources: Option<Vec<RawResource>>,
}

/// `ResourceConfiguration`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResource {
    pub resources: Option<Vec<String>>,
    pub providers: Option<Vec<RawProvider>>,
}

/// `ProviderConfiguration`: exactly one field should be set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub aesgcm: Option<RawKeys>,
    pub aescbc: Option<RawKeys>,
    pub secretbox: Option<RawKeys>,
    pub identity: Option<RawIdentity>,
    pub kms: Option<RawKms>,
}

/// `AESConfiguration` / `SecretboxConfiguration`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeys {
    pub keys: Option<Vec<RawKey>>,
}

/// `Key`. The secret text is wiped when this is dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKey {
    pub name: Option<String>,
    pub secret: Option<String>,
}

impl Drop for RawKey {
    fn drop(&mut self) {
        if let Some(s) = self.secret.as_mut() {
            s.zeroize();
        }
    }
}

impl fmt::Debug for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `IdentityConfiguration`, an empty object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {}

/// `KMSConfiguration`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKms {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub name: Option<String>,
    pub cachesize: Option<i32>,
    pub endpoint: Option<String>,
    pub timeout: Option<String>,
}

/// Decodes YAML or JSON into the raw shape, checking `apiVersion`/`kind` and strictness.
pub(crate) fn decode(bytes: &[u8]) -> Result<RawConfig, DecodeError> {
    let syntax = |e: &dyn fmt::Display| DecodeError::Syntax(syntax_message(&e.to_string()));
    let path_err = |path: &serde_path_to_error::Path, e: &dyn fmt::Display| {
        DecodeError::Syntax(format!("{path}: {}", syntax_message(&e.to_string())))
    };
    // JSON is decoded as JSON; anything else as YAML (which Go converts to JSON first).
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let tree: Value = if is_json {
        serde_json::from_slice(bytes).map_err(|e| syntax(&e))?
    } else {
        serde_yaml_ng::from_slice(bytes).map_err(|e| syntax(&e))?
    };
    check_kind(&tree)?;
    let mut unknown = Vec::new();
    unknown_fields(&tree, "", SCHEMA_CONFIG, &mut unknown);
    if !unknown.is_empty() {
        return Err(DecodeError::UnknownFields(unknown));
    }
    if is_json {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(&mut de).map_err(|e| path_err(e.path(), e.inner()))
    } else {
        let de = serde_yaml_ng::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| path_err(e.path(), e.inner()))
    }
}

/// The allowed fields at one level of the schema, and the schema of each field's value.
type Schema = &'static [(&'static str, Child)];

/// What a field holds, for the unknown-field walk.
#[derive(Clone, Copy)]
enum Child {
    Scalar,
    Object(Schema),
    List(Schema),
}

const SCHEMA_KEY: Schema = &[("name", Child::Scalar), ("secret", Child::Scalar)];
const SCHEMA_KEYS: Schema = &[("keys", Child::List(SCHEMA_KEY))];
const SCHEMA_KMS: Schema = &[
    ("apiVersion", Child::Scalar),
    ("name", Child::Scalar),
    ("cachesize", Child::Scalar),
    ("endpoint", Child::Scalar),
    ("timeout", Child::Scalar),
];
const SCHEMA_PROVIDER: Schema = &[
    ("aesgcm", Child::Object(SCHEMA_KEYS)),
    ("aescbc", Child::Object(SCHEMA_KEYS)),
    ("secretbox", Child::Object(SCHEMA_KEYS)),
    ("identity", Child::Object(&[])),
    ("kms", Child::Object(SCHEMA_KMS)),
];
const SCHEMA_RESOURCE: Schema = &[
    ("resources", Child::Scalar),
    ("providers", Child::List(SCHEMA_PROVIDER)),
];
const SCHEMA_CONFIG: Schema = &[
    ("apiVersion", Child::Scalar),
    ("kind", Child::Scalar),
    ("resources", Child::List(SCHEMA_RESOURCE)),
];

/// Appends the full path of every field of `value` that `schema` does not allow. Values of the
/// wrong shape are left to the typed pass.
fn unknown_fields(value: &Value, prefix: &str, schema: Schema, out: &mut Vec<String>) {
    let Value::Object(map) = value else { return };
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match schema.iter().find(|(name, _)| name == k).map(|(_, c)| *c) {
            None => out.push(path),
            Some(Child::Scalar) => {}
            Some(Child::Object(s)) => unknown_fields(v, &path, s, out),
            Some(Child::List(s)) => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    unknown_fields(item, &format!("{path}[{i}]"), s, out);
                }
            }
        }
    }
}

/// The two registered (apiVersion, kind) pairs (upstream `v1/register.go`).
fn check_kind(value: &Value) -> Result<(), DecodeError> {
    let field = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if kind.is_empty() {
        return Err(DecodeError::MissingKind);
    }
    match (api_version.as_str(), kind.as_str()) {
        (API_VERSION, KIND) | (LEGACY_API_VERSION, LEGACY_KIND) => Ok(()),
        _ => Err(DecodeError::UnknownKind { kind, api_version }),
    }
}

/// Keeps a decoder message but hides the values decoders echo: serde quotes an offending
/// scalar as `` `123` `` or `string "..."`. Field names (`` field `x` ``) stay, so a mistyped
/// key never reaches a log while the message still says which field is wrong.
fn syntax_message(msg: &str) -> String {
    const HIDDEN: &str = "(value not shown)";
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    loop {
        let tick = rest.find('`');
        let quote = rest.find("string \"").map(|i| i + "string ".len());
        let next = match (tick, quote) {
            (Some(t), Some(q)) => Some(t.min(q)),
            (t, q) => t.or(q),
        };
        let Some(open) = next else {
            out.push_str(rest);
            return out;
        };
        let delim = if rest.as_bytes()[open] == b'`' {
            '`'
        } else {
            '"'
        };
        let Some(len) = rest[open + 1..].find(delim) else {
            out.push_str(&rest[..open]);
            out.push_str(HIDDEN);
            return out;
        };
        let (before, inner) = (&rest[..open], &rest[open + 1..open + 1 + len]);
        out.push_str(before);
        if delim == '`' && before.ends_with("field ") {
            out.push('`');
            out.push_str(inner);
            out.push('`');
        } else {
            out.push_str(HIDDEN);
        }
        rest = &rest[open + 2 + len..];
    }
}

/// Parses a Go `time.ParseDuration` string: an optional sign, then one or more decimal numbers
/// each with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), e.g. `1m30s`, `1.5h`, `-3s`.
/// Returns nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Result<i128, String> {
    let err = || format!("time: invalid duration {text:?}");
    let (neg, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return Err(err());
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int_v: i128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err())?
        };
        let mut v = int_v.checked_mul(scale).ok_or_else(err)?;
        let mut div = scale;
        for d in frac.bytes() {
            div /= 10;
            if div == 0 {
                break;
            }
            v += i128::from(d - b'0') * div;
        }
        total = total.checked_add(v).ok_or_else(err)?;
        if total > i128::from(i64::MAX) {
            return Err(err());
        }
        rest = next;
    }
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_messages_hide_values_but_keep_field_names() {
        assert_eq!(
            syntax_message("invalid type: integer `1234`, expected a string at line 3"),
            "invalid type: integer (value not shown), expected a string at line 3"
        );
        assert_eq!(
            syntax_message("invalid type: string \"c2Vj\", expected a sequence"),
            "invalid type: string (value not shown), expected a sequence"
        );
        assert_eq!(
            syntax_message("duplicate field `keys`"),
            "duplicate field `keys`"
        );
        assert_eq!(
            syntax_message("unterminated `abc"),
            "unterminated (value not shown)"
        );
    }

    #[test]
    fn go_durations() {
        let s = 1_000_000_000i128;
        assert_eq!(parse_go_duration("3s"), Ok(3 * s));
        assert_eq!(parse_go_duration("500ms"), Ok(s / 2));
        assert_eq!(parse_go_duration("1m30s"), Ok(90 * s));
        assert_eq!(parse_go_duration("1.5h"), Ok(5400 * s));
        assert_eq!(parse_go_duration("-3s"), Ok(-3 * s));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert!(parse_go_duration("3").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("3x").is_err());
        assert!(parse_go_duration("s").is_err());
    }

    #[test]
    fn unknown_fields_have_full_paths() {
        let yaml = b"apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
extra: 1
resources:
  - resources: [secrets]
    providers:
      - identity: {}
      - kms:
          name: a
          pandas: 1
      - aesgcm:
          keys:
            - name: k
              secret: c2VjcmV0IGlzIHNlY3VyZQ==
              color: red
";
        match decode(yaml) {
            Err(DecodeError::UnknownFields(v)) => assert_eq!(
                v,
                [
                    "extra",
                    "resources[0].providers[1].kms.pandas",
                    "resources[0].providers[2].aesgcm.keys[0].color"
                ]
            ),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let yaml = b"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\nresources: []\n";
        assert!(matches!(decode(yaml), Err(DecodeError::Syntax(_))));
        let json = br#"{"apiVersion":"apiserver.config.k8s.io/v1","kind":"EncryptionConfiguration","resources":[{"resources":["a"],"resources":["b"]}]}"#;
        assert!(
            matches!(decode(json), Err(DecodeError::Syntax(_))),
            "{:?}",
            decode(json).err()
        );
    }

    #[test]
    fn kinds() {
        let ok = b"apiVersion: v1\nkind: EncryptionConfig\nresources: []\n";
        assert!(decode(ok).is_ok());
        let bad = b"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfigurations\n";
        assert_eq!(
            decode(bad).err().map(|e| e.to_string()).unwrap_or_default(),
            "no kind \"EncryptionConfigurations\" is registered for version \"apiserver.config.k8s.io/v1\""
        );
        let wrong_key = b"apiVersion: apiserver.config.k8s.io/v1\nkinds: EncryptionConfiguration\n";
        assert!(matches!(decode(wrong_key), Err(DecodeError::MissingKind)));
        // Field names are case-sensitive.
        let case = b"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nResources: []\n";
        assert!(matches!(decode(case), Err(DecodeError::UnknownFields(_))));
    }

    #[test]
    fn type_errors_name_the_path_not_the_value() {
        let yaml = b"apiVersion: v1\nkind: EncryptionConfig\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: k\n        secret: [c2VjcmV0IGlzIHNlY3VyZQ==]\n";
        let msg = decode(yaml)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("resources[0].providers[0].aesgcm.keys[0].secret"),
            "{msg}"
        );
        assert!(!msg.contains("c2VjcmV0"), "{msg}");
    }
}
