//! Create and update validation of Secrets, ConfigMaps, Namespaces and ServiceAccounts
//! (`reference/k8s-api.md` §8.3–§8.6, §9.1, §9.2).
//!
//! Every function returns all problems found, in kube-apiserver's order (metadata first), ready
//! for [`crate::invalid_message`] and `StatusCause`s. An empty list means valid.
//!
//! Callers run these after decoding and defaulting: `stringData` merged into `data`
//! ([`merge_string_data`]), `type` defaulted to `Opaque` on create or copied from the stored
//! object when empty on update, and [`crate::prepare_meta_for_update`] applied on update.
//!
//! Secret data never appears in an error: keys are reported, values never are, and the docker
//! config rules print `"<secret contents redacted>"` (§8.3).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};

use crate::field_error::{FieldError, FieldValue, key_path};
use crate::go_json::json_object_error;
use crate::names::{NameRule, is_config_key};
use crate::object_meta::{
    Scope, validate_finalizer_name, validate_object_meta, validate_object_meta_update,
};

/// Largest total size of a Secret's (or ConfigMap's) values, in bytes (§8.3).
pub const MAX_SECRET_SIZE: usize = 1_048_576;

/// Secret type names with API validation rules (§8.3).
pub mod secret_type {
    /// Arbitrary user data; the default.
    pub const OPAQUE: &str = "Opaque";
    /// Legacy service-account token; needs the `kubernetes.io/service-account.name` annotation.
    pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
    /// Legacy `~/.dockercfg`; key `.dockercfg` with a JSON object.
    pub const DOCKERCFG: &str = "kubernetes.io/dockercfg";
    /// `~/.docker/config.json`; key `.dockerconfigjson` with a JSON object.
    pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
    /// Basic authentication; key `username` or `password`.
    pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
    /// SSH authentication; non-empty key `ssh-privatekey`.
    pub const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
    /// TLS; keys `tls.crt` and `tls.key`.
    pub const TLS: &str = "kubernetes.io/tls";
    /// Bootstrap token; no API validation.
    pub const BOOTSTRAP_TOKEN: &str = "bootstrap.kubernetes.io/token";
}

/// Annotation naming the ServiceAccount of a service-account-token Secret.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";

const IMMUTABLE_DETAIL: &str = "field is immutable when `immutable` is set";

/// Validates a Secret being created (§8.3, §8.4, §8.6).
pub fn validate_secret_create(secret: &Secret) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &secret.metadata,
        Scope::Namespaced,
        NameRule::Dns1123Subdomain,
    );
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let mut total = 0_usize;
    for (key, value) in data {
        errs.extend(config_key_errors("data", key));
        total += value.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    errs.extend(secret_type_errors(secret, data));
    errs
}

/// Validates a Secret update (§8.5): metadata update rules, `type` immutable, and for immutable
/// Secrets `data` and `immutable` frozen; then every create rule on the new object.
///
/// A missing `data` map and an empty one compare equal. As upstream runs both the metadata
/// update checks and the full create checks, a bad label or annotation is reported twice; the
/// top-level message ([`crate::invalid_message`]) shows it once.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    let (new_type, old_type) = (
        new.type_.as_deref().unwrap_or(""),
        old.type_.as_deref().unwrap_or(""),
    );
    if new_type != old_type {
        errs.push(FieldError::invalid("type", new_type, "field is immutable"));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE_DETAIL));
        }
        if !same_map(new.data.as_ref(), old.data.as_ref()) {
            errs.push(FieldError::forbidden("data", IMMUTABLE_DETAIL));
        }
    }
    errs.extend(validate_secret_create(new));
    errs
}

/// Moves `stringData` into `data` (its values win, §8.1) and clears it, as the v1→internal
/// conversion does before validation (§18.1).
pub fn merge_string_data(secret: &mut Secret) {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

/// Validates a ConfigMap being created: keys of `data` and `binaryData` are config keys, no key
/// appears in both, and the values total at most [`MAX_SECRET_SIZE`] bytes.
pub fn validate_configmap_create(cm: &ConfigMap) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta(&cm.metadata, Scope::Namespaced, NameRule::Dns1123Subdomain);
    let mut total = 0_usize;
    let binary = cm.binary_data.as_ref();
    let data = cm.data.as_ref();
    for (key, value) in data.into_iter().flatten() {
        errs.extend(config_key_errors("data", key));
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.push(FieldError::invalid(
                key_path("data", key),
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.len();
    }
    for (key, value) in binary.into_iter().flatten() {
        errs.extend(config_key_errors("binaryData", key));
        if data.is_some_and(|d| d.contains_key(key)) {
            errs.push(FieldError::invalid(
                key_path("binaryData", key),
                key.as_str(),
                "duplicate of key present in data",
            ));
        }
        total += value.0.len();
    }
    if total > MAX_SECRET_SIZE {
        // Upstream reports the whole object with an empty field path.
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

/// Validates a ConfigMap update: metadata update rules, and for immutable ConfigMaps `immutable`,
/// `data` and `binaryData` frozen; then every create rule.
pub fn validate_configmap_update(new: &ConfigMap, old: &ConfigMap) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE_DETAIL));
        }
        if !same_map(new.data.as_ref(), old.data.as_ref()) {
            errs.push(FieldError::forbidden("data", IMMUTABLE_DETAIL));
        }
        if !same_map(new.binary_data.as_ref(), old.binary_data.as_ref()) {
            errs.push(FieldError::forbidden("binaryData", IMMUTABLE_DETAIL));
        }
    }
    errs.extend(validate_configmap_create(new));
    errs
}

/// Validates a Namespace being created (§9.1): cluster-scoped metadata with a DNS-1123 label
/// name, and `spec.finalizers` names.
pub fn validate_namespace_create(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ns.metadata, Scope::Cluster, NameRule::Dns1123Label);
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_deref());
    for f in finalizers.unwrap_or(&[]) {
        errs.extend(validate_finalizer_name(f, "spec.finalizers"));
    }
    errs
}

/// Validates a Namespace update: the metadata update rules only (spec and status are carried
/// over by the server's strategy).
pub fn validate_namespace_update(new: &Namespace, old: &Namespace) -> Vec<FieldError> {
    validate_object_meta_update(&new.metadata, &old.metadata)
}

/// Validates a ServiceAccount being created (§9.2): namespaced metadata with a DNS-1123
/// subdomain name.
pub fn validate_service_account_create(sa: &ServiceAccount) -> Vec<FieldError> {
    validate_object_meta(&sa.metadata, Scope::Namespaced, NameRule::Dns1123Subdomain)
}

/// Validates a ServiceAccount update: metadata update rules, then the create rules.
pub fn validate_service_account_update(
    new: &ServiceAccount,
    old: &ServiceAccount,
) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_service_account_create(new));
    errs
}

/// One `Invalid` error per problem with a data key, at `<base>[<key>]` (§8.4).
fn config_key_errors(base: &str, key: &str) -> Vec<FieldError> {
    is_config_key(key)
        .into_iter()
        .map(|msg| FieldError::invalid(key_path(base, key), key, msg))
        .collect()
}

/// The per-type rules of §8.3.
fn secret_type_errors(secret: &Secret, data: &BTreeMap<String, ByteString>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let required = |key: &str| FieldError::required(key_path("data", key), "");
    match secret.type_.as_deref().unwrap_or("") {
        secret_type::SERVICE_ACCOUNT_TOKEN => {
            let annotations = secret.metadata.annotations.as_ref();
            let sa_name = annotations.and_then(|a| a.get(SERVICE_ACCOUNT_NAME_ANNOTATION));
            if sa_name.is_none_or(String::is_empty) {
                errs.push(FieldError::required(
                    key_path("metadata.annotations", SERVICE_ACCOUNT_NAME_ANNOTATION),
                    "",
                ));
            }
        }
        t @ (secret_type::DOCKERCFG | secret_type::DOCKER_CONFIG_JSON) => {
            let key = if t == secret_type::DOCKERCFG {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.get(key) {
                None => errs.push(required(key)),
                Some(bytes) => {
                    if let Some(detail) = json_object_error(&bytes.0) {
                        errs.push(FieldError::invalid(
                            key_path("data", key),
                            FieldValue::redacted(),
                            detail,
                        ));
                    }
                }
            }
        }
        secret_type::BASIC_AUTH
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        secret_type::SSH_AUTH if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errs.push(required("ssh-privatekey"));
        }
        secret_type::TLS => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    errs.push(required(key));
                }
            }
        }
        _ => {}
    }
    errs
}

/// Map equality where a missing map equals an empty one.
fn same_map<V: PartialEq>(
    a: Option<&BTreeMap<String, V>>,
    b: Option<&BTreeMap<String, V>>,
) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        (Some(m), None) | (None, Some(m)) => m.is_empty(),
        (None, None) => true,
    }
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
