//! `ObjectMeta` validation on create and update (`reference/k8s-api.md` §8.5, §8.6).
//!
//! Field paths start at `metadata`. Errors come in apimachinery's order: generateName, name,
//! namespace, generation, labels, annotations, ownerReferences, finalizers, managedFields.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use crate::field_error::{FieldError, FieldValue, go_json_escape, go_quote, index_path};
use crate::names::{NameRule, is_qualified_name, is_valid_label_value};

/// Largest total size of annotation keys plus values, in bytes (§8.6).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 262_144;

/// Finalizer names allowed without a `/` (§8.6).
pub const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// Whether a kind lives in a namespace or at cluster scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Namespaced kinds (Secret, ConfigMap, ServiceAccount): `metadata.namespace` is required.
    Namespaced,
    /// Cluster-scoped kinds (Namespace): `metadata.namespace` is forbidden.
    Cluster,
}

/// Validates the metadata of a new object (§8.6). The server has already turned `generateName`
/// into a name (§8.2 step 4), so an empty name here means neither was given.
pub fn validate_object_meta(meta: &ObjectMeta, scope: Scope, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(prefix) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        for msg in rule.check(prefix, true) {
            errs.push(FieldError::invalid("metadata.generateName", prefix, msg));
        }
    }
    match meta.name.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        name => {
            for msg in rule.check(name, false) {
                errs.push(FieldError::invalid("metadata.name", name, msg));
            }
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    match scope {
        Scope::Namespaced if namespace.is_empty() => {
            errs.push(FieldError::required("metadata.namespace", ""));
        }
        Scope::Namespaced => {
            for msg in NameRule::Dns1123Label.check(namespace, false) {
                errs.push(FieldError::invalid("metadata.namespace", namespace, msg));
            }
        }
        Scope::Cluster if !namespace.is_empty() => {
            errs.push(FieldError::forbidden(
                "metadata.namespace",
                "not allowed on this type",
            ));
        }
        Scope::Cluster => {}
    }
    if let Some(g) = meta.generation.filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            "metadata.generation",
            g,
            "must be greater than or equal to 0",
        ));
    }
    errs.extend(common_meta_checks(meta, true));
    errs
}

/// Validates metadata on update (§8.5): name, namespace, uid and the timestamps are immutable,
/// generation may not go down, finalizers may not be added while the object is being deleted,
/// labels, annotations, ownerReferences and managedFields are checked as on create, and
/// finalizers only for the standard-name rule (upstream skips the qualified-name check here).
///
/// Call [`prepare_meta_for_update`] first: like kube-apiserver's `BeforeUpdate` it copies the
/// stored uid (when empty), creationTimestamp, deletionTimestamp and grace period, so those are
/// only reported when a client really tried to change them.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.deletion_timestamp.is_some() {
        let old_f = old.finalizers.as_deref().unwrap_or(&[]);
        let mut extra: Vec<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| go_quote(f)).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    let (new_gen, old_gen) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_gen < old_gen {
        errs.push(FieldError::invalid(
            "metadata.generation",
            new_gen,
            "must not be decremented",
        ));
    }
    for (field, n, o) in [
        ("metadata.name", &new.name, &old.name),
        ("metadata.namespace", &new.namespace, &old.namespace),
        ("metadata.uid", &new.uid, &old.uid),
    ] {
        let (n, o) = (n.as_deref().unwrap_or(""), o.as_deref().unwrap_or(""));
        if n != o {
            errs.push(FieldError::invalid(field, n, "field is immutable"));
        }
    }
    for (field, n, o) in [
        (
            "metadata.creationTimestamp",
            &new.creation_timestamp,
            &old.creation_timestamp,
        ),
        (
            "metadata.deletionTimestamp",
            &new.deletion_timestamp,
            &old.deletion_timestamp,
        ),
    ] {
        if n != o {
            // metav1.Time marshals as RFC 3339 in UTC with whole seconds.
            let value = n.as_ref().map_or(Value::Null, |t| {
                Value::String(t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            });
            errs.push(FieldError::invalid(
                field,
                FieldValue::Json(value),
                "field is immutable",
            ));
        }
    }
    if new.deletion_grace_period_seconds != old.deletion_grace_period_seconds {
        let value = new
            .deletion_grace_period_seconds
            .map_or(FieldValue::Json(Value::Null), FieldValue::Int);
        errs.push(FieldError::invalid(
            "metadata.deletionGracePeriodSeconds",
            value,
            "field is immutable",
        ));
    }
    errs.extend(common_meta_checks(new, false));
    errs
}

/// Copies the fields kube-apiserver takes from the stored object before validating an update:
/// generation, uid (when the new one is empty), creationTimestamp, deletionTimestamp (once set)
/// and deletionGracePeriodSeconds (when the new one is missing).
pub fn prepare_meta_for_update(new: &mut ObjectMeta, old: &ObjectMeta) {
    new.generation = old.generation;
    if new.uid.as_deref().unwrap_or("").is_empty() {
        new.uid.clone_from(&old.uid);
    }
    if old.creation_timestamp.is_some() {
        new.creation_timestamp.clone_from(&old.creation_timestamp);
    }
    if old.deletion_timestamp.is_some() {
        new.deletion_timestamp.clone_from(&old.deletion_timestamp);
    }
    if old.deletion_grace_period_seconds.is_some() && new.deletion_grace_period_seconds.is_none() {
        new.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
    }
}

/// Label checks (§8.6): each key a qualified name, each value a valid label value. Errors carry
/// the path `path` itself (upstream does not add the key).
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, v.as_str(), msg));
        }
    }
    errs
}

/// Annotation checks (§8.6): keys are qualified names after lower-casing, and keys plus values
/// total at most [`TOTAL_ANNOTATION_SIZE_LIMIT`] bytes. Values are never printed.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0_usize;
    for (k, v) in annotations.into_iter().flatten() {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// apimachinery's finalizer checks on create (§8.6): each a qualified name (errors at `path`),
/// and `orphan` and `foregroundDeletion` not both set. The core-API rule that a name without `/`
/// must be standard is added by [`validate_object_meta`] at `metadata.finalizers[i]`.
pub fn validate_finalizers(finalizers: Option<&[String]>, path: &str) -> Vec<FieldError> {
    let list = finalizers.unwrap_or(&[]);
    let mut errs = Vec::new();
    for f in list {
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid(path, f.as_str(), msg));
        }
    }
    let has = |name: &str| list.iter().any(|f| f == name);
    if has("orphan") && has("foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            FieldValue::Json(serde_json::json!(list)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// One finalizer name as the core API checks it (Namespace `spec.finalizers`): a qualified
/// name, and a standard one when it has no `/`; all errors at `path`.
pub fn validate_finalizer_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, name, msg))
        .collect();
    errs.extend(standard_finalizer_error(name, path));
    errs
}

/// `name is neither a standard finalizer name nor is it fully qualified` for a name without `/`
/// that is not in [`STANDARD_FINALIZERS`].
fn standard_finalizer_error(name: &str, path: &str) -> Option<FieldError> {
    (!name.contains('/') && !STANDARD_FINALIZERS.contains(&name)).then(|| {
        FieldError::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        )
    })
}

/// ownerReferences checks (§8.6): apiVersion (with a version), kind, name and uid must be set,
/// and at most one reference may have `controller: true`.
pub fn validate_owner_references(refs: Option<&[OwnerReference]>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs.unwrap_or(&[]) {
        if !api_version_has_version(&r.api_version) {
            errs.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                r.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.kind"),
                "",
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                "",
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.uid"),
                "",
                "uid must not be empty",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    FieldValue::Raw(owner_refs_go_json(refs.unwrap_or(&[]))),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// Labels, annotations, ownerReferences, finalizers (create only, as upstream) and managedFields,
/// then the core API's standard-finalizer rule at `metadata.finalizers[i]`.
fn common_meta_checks(meta: &ObjectMeta, on_create: bool) -> Vec<FieldError> {
    let mut errs = validate_labels(meta.labels.as_ref(), "metadata.labels");
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        "metadata.annotations",
    ));
    errs.extend(validate_owner_references(
        meta.owner_references.as_deref(),
        "metadata.ownerReferences",
    ));
    if on_create {
        errs.extend(validate_finalizers(
            meta.finalizers.as_deref(),
            "metadata.finalizers",
        ));
    }
    for (i, entry) in meta.managed_fields.iter().flatten().enumerate() {
        let base = index_path("metadata.managedFields", i);
        let op = entry.operation.as_deref().unwrap_or("");
        if op != "Apply" && op != "Update" {
            errs.push(FieldError::invalid(
                format!("{base}.operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        let ft = entry.fields_type.as_deref().unwrap_or("");
        if !ft.is_empty() && ft != "FieldsV1" {
            errs.push(FieldError::invalid(
                format!("{base}.fieldsType"),
                ft,
                "must be `FieldsV1`",
            ));
        }
    }
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        let path = index_path("metadata.finalizers", i);
        errs.extend(standard_finalizer_error(f, &path));
    }
    errs
}

/// The references as Go's `json.Marshal` writes `[]metav1.OwnerReference`: struct field order,
/// optional booleans left out when unset.
fn owner_refs_go_json(refs: &[OwnerReference]) -> String {
    let q = |s: &str| Value::String(s.to_owned()).to_string();
    let items: Vec<String> = refs
        .iter()
        .map(|r| {
            let mut item = format!(
                "{{\"apiVersion\":{},\"kind\":{},\"name\":{},\"uid\":{}",
                q(&r.api_version),
                q(&r.kind),
                q(&r.name),
                q(&r.uid)
            );
            if let Some(c) = r.controller {
                item.push_str(&format!(",\"controller\":{c}"));
            }
            if let Some(b) = r.block_owner_deletion {
                item.push_str(&format!(",\"blockOwnerDeletion\":{b}"));
            }
            item.push('}');
            item
        })
        .collect();
    go_json_escape(&format!("[{}]", items.join(",")))
}

/// Whether `group/version` or `version` parses with a non-empty version.
fn api_version_has_version(api_version: &str) -> bool {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [v] => !v.is_empty(),
        [_, v] => !v.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
#[path = "object_meta_tests.rs"]
mod tests;
