//! Builders shared by the RBAC unit tests.

use coffer_api::k8s_openapi::api::rbac::v1::PolicyRule;
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Owned strings.
pub(crate) fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

/// A resource rule; no names when `names` is empty.
pub(crate) fn rule(
    verbs: &[&str],
    groups: &[&str],
    resources: &[&str],
    names: &[&str],
) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        non_resource_urls: None,
    }
}

/// A non-resource rule.
pub(crate) fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..PolicyRule::default()
    }
}

/// Metadata with a name and an optional namespace.
pub(crate) fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}
