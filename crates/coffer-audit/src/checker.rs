//! Which level a request is audited at: the first matching rule of the [`Policy`], then
//! Coffer's cap for Secret-like resources.
//!
//! Matching follows kube-apiserver's `staging/src/k8s.io/apiserver/pkg/audit/policy/checker.go`
//! (read, not copied): a rule matches when every non-empty selector matches; `users` by exact
//! name; `userGroups` when the user is in any listed group; `verbs` exactly; a rule with
//! `resources` or `namespaces` matches only resource requests, one with `nonResourceURLs`
//! only non-resource requests; a rule with none of the three matches every request. No
//! matching rule means [`Level::None`].

use crate::level::{Level, StageSet};
use crate::policy::{GroupResources, Policy, PolicyRule};

/// What the policy needs to know about a request (kube's `authorizer.Attributes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// The user name after impersonation.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The verb (`get`, `list`, `create`, ...; for non-resource requests the lower-cased HTTP method).
    pub verb: String,
    /// API group of a resource request (`""` = core).
    pub api_group: String,
    /// API version of a resource request (`v1`).
    pub api_version: String,
    /// Resource (`secrets`).
    pub resource: String,
    /// Subresource (`token`), or empty.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped resources.
    pub namespace: String,
    /// Object name, empty for collections.
    pub name: String,
    /// The request path (`/healthz`, `/api/v1/namespaces/default/secrets`).
    pub path: String,
    /// True for resource requests, false for non-resource paths (`/healthz`, `/version`).
    pub is_resource: bool,
}

/// The policy's answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestAuditConfig {
    /// The level after Coffer's cap.
    pub level: Level,
    /// Stages not to record (the policy's plus the matching rule's).
    pub omit_stages: StageSet,
    /// Whether `metadata.managedFields` is removed from recorded bodies.
    pub omit_managed_fields: bool,
}

/// Resources whose requests are never audited above [`Level::Metadata`], whatever the policy
/// says, as `(resource, subresource)`; `"*"` matches any subresource (and none).
///
/// This is Coffer's rule, stricter than kube-apiserver's: request and response bodies of these
/// resources hold secret values (Secret data, ConfigMaps that people misuse for secrets, issued
/// ServiceAccount tokens in TokenRequest responses, tokens under review in TokenReview
/// requests), and an audit log is read by more people than may read Secrets. The match
/// ignores the API group, so a custom resource called `secrets` is capped too: erring towards
/// recording less.
pub const CAPPED_RESOURCES: [(&str, &str); 4] = [
    ("secrets", "*"),
    ("configmaps", "*"),
    ("serviceaccounts", "token"),
    ("tokenreviews", "*"),
];

/// True when a request on `resource`/`subresource` is capped at [`Level::Metadata`]
/// (see [`CAPPED_RESOURCES`]).
pub fn capped(resource: &str, subresource: &str) -> bool {
    CAPPED_RESOURCES
        .iter()
        .any(|(r, s)| *r == resource && (*s == "*" || *s == subresource))
}

impl Policy {
    /// The audit configuration for a request: the first matching rule's level and stages,
    /// capped at `Metadata` for [`CAPPED_RESOURCES`]; no match gives [`Level::None`].
    pub fn decide(&self, attrs: &Attributes) -> RequestAuditConfig {
        let found = self.rules.iter().find(|rule| rule_matches(rule, attrs));
        let mut config = match found {
            Some(rule) => RequestAuditConfig {
                level: rule.level,
                omit_stages: self.omit_stages.union(rule.omit_stages),
                omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
            },
            None => RequestAuditConfig {
                level: Level::None,
                omit_stages: self.omit_stages,
                omit_managed_fields: self.omit_managed_fields,
            },
        };
        if attrs.is_resource && capped(&attrs.resource, &attrs.subresource) {
            config.level = config.level.min(Level::Metadata);
        }
        config
    }

    /// The level and omitted stages for a request; see [`Policy::decide`].
    pub fn level_for(&self, attrs: &Attributes) -> (Level, StageSet) {
        let config = self.decide(attrs);
        (config.level, config.omit_stages)
    }
}

fn rule_matches(rule: &PolicyRule, attrs: &Attributes) -> bool {
    if !rule.users.is_empty() && !rule.users.contains(&attrs.user) {
        return false;
    }
    if !rule.user_groups.is_empty() && !attrs.groups.iter().any(|g| rule.user_groups.contains(g)) {
        return false;
    }
    if !rule.verbs.is_empty() && !rule.verbs.contains(&attrs.verb) {
        return false;
    }
    if !rule.namespaces.is_empty() || !rule.resources.is_empty() {
        return resource_matches(rule, attrs);
    }
    if !rule.non_resource_urls.is_empty() {
        return !attrs.is_resource
            && rule
                .non_resource_urls
                .iter()
                .any(|spec| path_matches(&attrs.path, spec));
    }
    true
}

fn path_matches(path: &str, spec: &str) -> bool {
    if spec == "*" || spec == path {
        return true;
    }
    match spec.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => false,
    }
}

fn resource_matches(rule: &PolicyRule, attrs: &Attributes) -> bool {
    if !attrs.is_resource {
        return false;
    }
    // Cluster-scoped resources have the empty namespace, which a rule lists as "".
    if !rule.namespaces.is_empty() && !rule.namespaces.contains(&attrs.namespace) {
        return false;
    }
    if rule.resources.is_empty() {
        return true;
    }
    rule.resources
        .iter()
        .any(|gr| gr.group == attrs.api_group && group_resource_matches(gr, attrs))
}

fn group_resource_matches(gr: &GroupResources, attrs: &Attributes) -> bool {
    if gr.resources.is_empty() {
        return true;
    }
    if !gr.resource_names.is_empty() && !gr.resource_names.contains(&attrs.name) {
        return false;
    }
    let (resource, sub) = (attrs.resource.as_str(), attrs.subresource.as_str());
    gr.resources.iter().any(|spec| {
        // "*" matches every resource and subresource; "res" exactly; "res/sub" exactly.
        if spec == "*" || combined_equals(spec, resource, sub) {
            return true;
        }
        // "*/sub": that subresource of any resource.
        if let Some(s) = spec.strip_prefix("*/")
            && !sub.is_empty()
            && s == sub
        {
            return true;
        }
        // "res/*": the resource and all its subresources.
        matches!(spec.strip_suffix("/*"), Some(r) if r == resource)
    })
}

/// `spec == resource` (no subresource) or `spec == resource + "/" + sub`, without allocating.
fn combined_equals(spec: &str, resource: &str, sub: &str) -> bool {
    if sub.is_empty() {
        return spec == resource;
    }
    spec.len() == resource.len() + 1 + sub.len()
        && spec.starts_with(resource)
        && spec[resource.len()..].starts_with('/')
        && spec.ends_with(sub)
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
