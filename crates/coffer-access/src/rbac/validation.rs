//! Validation and defaulting of Roles, ClusterRoles and bindings (`reference/k8s-api.md` §9.3),
//! with kube-apiserver's field paths and texts.
//!
//! Sources: kubernetes `pkg/apis/rbac/validation/validation.go`, apimachinery's
//! `ValidateLabelSelector`, and `pkg/apis/rbac/v1/defaults.go`. Names of all four kinds need
//! only be valid path segments. On update the server first calls
//! [`coffer_api::prepare_meta_for_update`], as for every kind; the update checks then add the
//! metadata update rules and, for bindings, the immutable roleRef.
//!
//! Structured values in texts (a `nonResourceURLs` list, a roleRef) print as Go's
//! `json.Marshal` of the internal type, following [`coffer_api::FieldValue`]'s convention.

use coffer_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use coffer_api::{
    FieldError, FieldValue, NameRule, Scope, go_quote, index_path, is_dns1123_subdomain,
    is_qualified_name, is_valid_label_value, validate_labels, validate_object_meta,
    validate_object_meta_update,
};

use super::escalation::RBAC_GROUP;
use super::rules::list;

/// Validates a Role being created (`old` = `None`) or updated.
pub fn validate_role(new: &Role, old: Option<&Role>) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&new.metadata, Scope::Namespaced, NameRule::PathSegment);
    errs.extend(rules_errors(new.rules.as_deref(), true));
    errs.extend(meta_update_errors(&new.metadata, old.map(|o| &o.metadata)));
    errs
}

/// Validates a ClusterRole being created or updated: rules as for Roles but non-resource URLs
/// allowed, and a present `aggregationRule` needs at least one valid selector.
pub fn validate_cluster_role(new: &ClusterRole, old: Option<&ClusterRole>) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&new.metadata, Scope::Cluster, NameRule::PathSegment);
    errs.extend(rules_errors(new.rules.as_deref(), false));
    if let Some(rule) = &new.aggregation_rule {
        let path = "aggregationRule.clusterRoleSelectors";
        let selectors = rule.cluster_role_selectors.as_deref().unwrap_or(&[]);
        if selectors.is_empty() {
            errs.push(FieldError::required(
                path,
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, selector) in selectors.iter().enumerate() {
            errs.extend(label_selector_errors(selector, &index_path(path, i)));
        }
    }
    errs.extend(meta_update_errors(&new.metadata, old.map(|o| &o.metadata)));
    errs
}

/// Validates a RoleBinding being created or updated (roleRef kind `Role` or `ClusterRole`).
pub fn validate_role_binding(new: &RoleBinding, old: Option<&RoleBinding>) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&new.metadata, Scope::Namespaced, NameRule::PathSegment);
    errs.extend(role_ref_errors(&new.role_ref, &["Role", "ClusterRole"]));
    errs.extend(subjects_errors(new.subjects.as_deref(), true));
    if let Some(old) = old {
        errs.extend(validate_object_meta_update(&new.metadata, &old.metadata));
        errs.extend(role_ref_change(&new.role_ref, &old.role_ref));
    }
    errs
}

/// Validates a ClusterRoleBinding being created or updated (roleRef kind `ClusterRole` only;
/// ServiceAccount subjects need a namespace).
pub fn validate_cluster_role_binding(
    new: &ClusterRoleBinding,
    old: Option<&ClusterRoleBinding>,
) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&new.metadata, Scope::Cluster, NameRule::PathSegment);
    errs.extend(role_ref_errors(&new.role_ref, &["ClusterRole"]));
    errs.extend(subjects_errors(new.subjects.as_deref(), false));
    if let Some(old) = old {
        errs.extend(validate_object_meta_update(&new.metadata, &old.metadata));
        errs.extend(role_ref_change(&new.role_ref, &old.role_ref));
    }
    errs
}

/// kube's v1 defaulting for a RoleBinding: an empty `roleRef.apiGroup` becomes the RBAC group,
/// and User/Group subjects without `apiGroup` get it too.
pub fn default_role_binding(binding: &mut RoleBinding) {
    default_binding(&mut binding.role_ref, binding.subjects.as_deref_mut());
}

/// kube's v1 defaulting for a ClusterRoleBinding (as [`default_role_binding`]).
pub fn default_cluster_role_binding(binding: &mut ClusterRoleBinding) {
    default_binding(&mut binding.role_ref, binding.subjects.as_deref_mut());
}

fn default_binding(role_ref: &mut RoleRef, subjects: Option<&mut [Subject]>) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = RBAC_GROUP.to_owned();
    }
    for subject in subjects.into_iter().flatten() {
        let unset = subject.api_group.as_deref().unwrap_or("").is_empty();
        if unset && matches!(subject.kind.as_str(), "User" | "Group") {
            subject.api_group = Some(RBAC_GROUP.to_owned());
        }
    }
}

fn meta_update_errors(new: &ObjectMeta, old: Option<&ObjectMeta>) -> Vec<FieldError> {
    old.map(|o| validate_object_meta_update(new, o))
        .unwrap_or_default()
}

fn rules_errors(rules: Option<&[PolicyRule]>, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, rule) in rules.unwrap_or(&[]).iter().enumerate() {
        errs.extend(policy_rule_errors(
            rule,
            namespaced,
            &index_path("rules", i),
        ));
    }
    errs
}

/// kube's `ValidatePolicyRule`.
fn policy_rule_errors(rule: &PolicyRule, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if rule.verbs.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = list(&rule.non_resource_urls);
    if !urls.is_empty() {
        let field = format!("{path}.nonResourceURLs");
        let value = || FieldValue::Json(serde_json::json!(urls));
        if namespaced {
            errs.push(FieldError::invalid(
                &field,
                value(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        let groups = list(&rule.api_groups);
        let resources = list(&rule.resources);
        if !groups.is_empty() || !resources.is_empty() || !list(&rule.resource_names).is_empty() {
            errs.push(FieldError::invalid(
                &field,
                value(),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if list(&rule.api_groups).is_empty() {
        errs.push(FieldError::required(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    let resources = list(&rule.resources);
    if resources.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
    if !list(&rule.resource_names).is_empty() && resources.len() > 1 {
        errs.push(FieldError::required(
            format!("{path}.resourceNames"),
            "resource names cannot apply to multiple resources",
        ));
    }
    errs
}

/// apimachinery's `ValidateLabelSelector` (values must be valid label values).
fn label_selector_errors(selector: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = validate_labels(
        selector.match_labels.as_ref(),
        &format!("{path}.matchLabels"),
    );
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let base = index_path(&format!("{path}.matchExpressions"), i);
        let values = expr.values.as_deref().unwrap_or(&[]);
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                format!("{base}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                format!("{base}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{base}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for msg in is_qualified_name(&expr.key) {
            errs.push(FieldError::invalid(
                format!("{base}.key"),
                expr.key.as_str(),
                msg,
            ));
        }
        for (j, value) in values.iter().enumerate() {
            for msg in is_valid_label_value(value) {
                let field = index_path(&format!("{base}.values"), j);
                errs.push(FieldError::invalid(field, value.as_str(), msg));
            }
        }
    }
    errs
}

fn role_ref_errors(role_ref: &RoleRef, kinds: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if role_ref.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            role_ref.api_group.as_str(),
            &[RBAC_GROUP],
        ));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in NameRule::PathSegment.check(&role_ref.name, false) {
            errs.push(FieldError::invalid(
                "roleRef.name",
                role_ref.name.as_str(),
                msg,
            ));
        }
    }
    errs
}

fn role_ref_change(new: &RoleRef, old: &RoleRef) -> Option<FieldError> {
    (new != old).then(|| {
        let value = format!(
            "{{\"APIGroup\":{},\"Kind\":{},\"Name\":{}}}",
            go_quote(&new.api_group),
            go_quote(&new.kind),
            go_quote(&new.name)
        );
        FieldError::invalid("roleRef", FieldValue::Raw(value), "cannot change roleRef")
    })
}

fn subjects_errors(subjects: Option<&[Subject]>, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, subject) in subjects.unwrap_or(&[]).iter().enumerate() {
        errs.extend(subject_errors(
            subject,
            namespaced,
            &index_path("subjects", i),
        ));
    }
    errs
}

/// kube's `validateRoleBindingSubject`.
fn subject_errors(subject: &Subject, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name_path = format!("{path}.name");
    if subject.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    }
    let api_group = subject.api_group.as_deref().unwrap_or("");
    match subject.kind.as_str() {
        "ServiceAccount" => {
            if !subject.name.is_empty() {
                for msg in is_dns1123_subdomain(&subject.name) {
                    errs.push(FieldError::invalid(&name_path, subject.name.as_str(), msg));
                }
            }
            if !api_group.is_empty() {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    api_group,
                    &[""],
                ));
            }
            if !namespaced && subject.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(format!("{path}.namespace"), ""));
            }
        }
        kind @ ("User" | "Group") => {
            if subject.name.is_empty() {
                let detail = format!("{} name cannot be empty", kind.to_lowercase());
                errs.push(FieldError::invalid(&name_path, "", detail));
            }
            if api_group != RBAC_GROUP {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    api_group,
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
