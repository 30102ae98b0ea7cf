//! Validation of the served kinds (`reference/k8s-api.md` §8.3–§8.6), worded as
//! kube-apiserver words it. Secret values never appear in a message.

use std::collections::BTreeMap;

use coffer_api::k8s_openapi::ByteString;
use coffer_api::k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::status::Cause;

/// Largest total size of a Secret's or ConfigMap's data.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const IMMUTABLE: &str = "field is immutable";

fn cause(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Cause {
    Cause {
        reason: reason.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {value:?}: {detail}"),
    )
}

fn required(field: impl Into<String>) -> Cause {
    cause("FieldValueRequired", field, "Required value")
}

fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
    cause("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

/// True for an RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && label_chars(s)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` with no length limit.
fn label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// True for an RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(label_chars)
}

/// Problems with a config key (a Secret or ConfigMap data key), upstream's texts.
pub fn config_key_problems(key: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters");
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        out.push(CONFIG_KEY_MSG);
    }
    if key == "." {
        out.push("must not be '.'");
    } else if key == ".." {
        out.push("must not be '..'");
    } else if key.starts_with("..") {
        out.push("must not start with '..'");
    }
    out
}

/// Name and immutable-metadata checks shared by every kind.
fn meta(meta: &ObjectMeta, old: Option<&ObjectMeta>, label_name: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        out.push(cause(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else if label_name && !is_dns1123_label(name) {
        let detail = if name.len() > 63 {
            "must be no more than 63 characters"
        } else {
            LABEL_MSG
        };
        out.push(invalid("metadata.name", name, detail));
    } else if !label_name && !is_dns1123_subdomain(name) {
        let detail = if name.len() > 253 {
            "must be no more than 253 characters"
        } else {
            SUBDOMAIN_MSG
        };
        out.push(invalid("metadata.name", name, detail));
    }
    if let Some(old) = old
        && let (Some(new_uid), Some(old_uid)) = (&meta.uid, &old.uid)
        && new_uid != old_uid
    {
        out.push(invalid("metadata.uid", new_uid, IMMUTABLE));
    }
    out
}

fn data_keys<'a>(field: &str, keys: impl Iterator<Item = &'a String>) -> Vec<Cause> {
    let mut out = Vec::new();
    for key in keys {
        for problem in config_key_problems(key) {
            out.push(invalid(format!("{field}[{key}]"), key, problem));
        }
    }
    out
}

fn total_size(field: &str, sizes: impl Iterator<Item = usize>) -> Option<Cause> {
    (sizes.sum::<usize>() > MAX_DATA_BYTES).then(|| {
        cause(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {MAX_DATA_BYTES} bytes"),
        )
    })
}

/// A Secret on create (`old` = None) or update.
pub fn secret(s: &Secret, old: Option<&Secret>) -> Vec<Cause> {
    let mut out = meta(&s.metadata, old.map(|o| &o.metadata), false);
    let empty = BTreeMap::new();
    let data: &BTreeMap<String, ByteString> = s.data.as_ref().unwrap_or(&empty);
    out.extend(data_keys("data", data.keys()));
    out.extend(total_size("data", data.values().map(|v| v.0.len())));
    let ty = s.type_.as_deref().unwrap_or("Opaque");
    let need = |key: &str, out: &mut Vec<Cause>| {
        if !data.contains_key(key) {
            out.push(required(format!("data[{key}]")));
        }
    };
    match ty {
        "kubernetes.io/service-account-token" => {
            let named = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|n| !n.is_empty());
            if !named {
                out.push(required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if ty == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.get(key) {
                None => out.push(required(format!("data[{key}]"))),
                Some(v) => {
                    if let Err(e) =
                        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&v.0)
                    {
                        // The error text carries a position, never the content.
                        let detail =
                            format!("invalid JSON at line {}, column {}", e.line(), e.column());
                        out.push(cause(
                            "FieldValueInvalid",
                            format!("data[{key}]"),
                            format!("Invalid value: \"<secret contents redacted>\": {detail}"),
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            out.push(required("data[username]"));
            out.push(required("data[password]"));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            out.push(required("data[ssh-privatekey]"));
        }
        "kubernetes.io/tls" => {
            need("tls.crt", &mut out);
            need("tls.key", &mut out);
        }
        _ => {}
    }
    if let Some(old) = old {
        if old.type_ != s.type_ {
            out.push(invalid("type", ty, IMMUTABLE));
        }
        if old.immutable == Some(true) {
            if old.data != s.data {
                out.push(forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
            if s.immutable != Some(true) {
                out.push(forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    out
}

/// A ConfigMap on create or update.
pub fn config_map(c: &ConfigMap, old: Option<&ConfigMap>) -> Vec<Cause> {
    let mut out = meta(&c.metadata, old.map(|o| &o.metadata), false);
    let data = c.data.clone().unwrap_or_default();
    let binary = c.binary_data.clone().unwrap_or_default();
    out.extend(data_keys("data", data.keys()));
    out.extend(data_keys("binaryData", binary.keys()));
    for k in binary.keys().filter(|k| data.contains_key(*k)) {
        out.push(cause(
            "FieldValueDuplicate",
            format!("data[{k}]"),
            format!("Duplicate value: {k:?}"),
        ));
    }
    out.extend(total_size(
        "",
        data.values()
            .map(String::len)
            .chain(binary.values().map(|v| v.0.len())),
    ));
    if let Some(old) = old
        && old.immutable == Some(true)
    {
        if old.data != c.data || old.binary_data != c.binary_data {
            out.push(forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        if c.immutable != Some(true) {
            out.push(forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    out
}

/// A Namespace on create or update.
pub fn namespace(n: &Namespace, old: Option<&Namespace>) -> Vec<Cause> {
    meta(&n.metadata, old.map(|o| &o.metadata), true)
}

/// A ServiceAccount on create or update.
pub fn service_account(s: &ServiceAccount, old: Option<&ServiceAccount>) -> Vec<Cause> {
    meta(&s.metadata, old.map(|o| &o.metadata), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_with(keys: &[&str], ty: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                ..Default::default()
            },
            data: Some(
                keys.iter()
                    .map(|k| ((*k).to_owned(), ByteString(b"v".to_vec())))
                    .collect(),
            ),
            type_: Some(ty.into()),
            ..Default::default()
        }
    }

    #[test]
    fn bad_key_is_worded_as_upstream() {
        let causes = secret(&secret_with(&["a b"], "Opaque"), None);
        assert_eq!(causes.len(), 1);
        assert_eq!(
            causes[0].text(),
            format!("data[a b]: Invalid value: \"a b\": {CONFIG_KEY_MSG}")
        );
    }

    #[test]
    fn names_follow_rfc1123() {
        assert!(is_dns1123_subdomain("db-secret.v1"));
        assert!(!is_dns1123_subdomain("BadName"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_dns1123_label("team-a"));
        assert!(!is_dns1123_label("team.a"));
    }

    #[test]
    fn tls_needs_both_keys_and_values_are_never_quoted() {
        let causes = secret(&secret_with(&["tls.crt"], "kubernetes.io/tls"), None);
        assert_eq!(
            causes.iter().map(Cause::text).collect::<Vec<_>>(),
            ["data[tls.key]: Required value"]
        );
        let mut bad = secret_with(&[], "kubernetes.io/dockerconfigjson");
        bad.data = Some(
            [(
                ".dockerconfigjson".to_owned(),
                ByteString(b"hunter2-not-json".to_vec()),
            )]
            .into(),
        );
        let text = secret(&bad, None)[0].text();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<secret contents redacted>"));
    }

    #[test]
    fn immutable_secret_refuses_data_changes() {
        let mut old = secret_with(&["a"], "Opaque");
        old.immutable = Some(true);
        let mut new = old.clone();
        new.data = Some([("a".to_owned(), ByteString(b"changed".to_vec()))].into());
        let texts: Vec<_> = secret(&new, Some(&old)).iter().map(Cause::text).collect();
        assert_eq!(
            texts,
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
    }
}
