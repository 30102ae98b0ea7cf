//! Whether one `PolicyRule` allows one request (`reference/k8s-api.md` §15.2).
//!
//! Source: kubernetes `pkg/apis/rbac/v1/evaluation_helpers.go` and `RuleAllows` in
//! `plugin/pkg/auth/authorizer/rbac/rbac.go`. No function here allocates: the authorizer calls
//! them for every rule it visits.

use coffer_api::k8s_openapi::api::rbac::v1::PolicyRule;

use crate::attributes::{NonResourceAttributes, RequestAttributes, ResourceAttributes};

/// The wildcard accepted in verbs, API groups, resources and non-resource URLs.
pub const ALL: &str = "*";

/// Whether `rule` allows the request.
pub fn rule_allows(rule: &PolicyRule, attrs: &RequestAttributes) -> bool {
    match attrs {
        RequestAttributes::Resource(r) => rule_allows_resource(rule, r),
        RequestAttributes::NonResource(n) => rule_allows_non_resource(rule, n),
    }
}

/// Whether `rule` allows a resource request: verb, group, resource (with `res/sub` and
/// `*/sub`) and resource name all match.
pub fn rule_allows_resource(rule: &PolicyRule, attrs: &ResourceAttributes) -> bool {
    verb_matches(rule, &attrs.verb)
        && api_group_matches(rule, &attrs.group)
        && resource_matches(rule, &attrs.resource, &attrs.subresource)
        && resource_name_matches(rule, &attrs.name)
}

/// Whether `rule` allows a non-resource request: verb and URL match.
pub fn rule_allows_non_resource(rule: &PolicyRule, attrs: &NonResourceAttributes) -> bool {
    verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, &attrs.path)
}

/// The rule's verbs contain `verb` or `*`.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

/// The rule's API groups contain `group` or `*`.
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups)
        .iter()
        .any(|g| g == ALL || g == group)
}

/// The rule's resources contain `*`, the combined `resource[/subresource]`, or
/// `*/subresource` when the request names a subresource.
pub fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    list(&rule.resources).iter().any(|r| {
        if r == ALL {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        match r.split_once('/') {
            Some((res, sub)) => sub == subresource && (res == resource || res == ALL),
            None => false,
        }
    })
}

/// The rule has no resource names, or they contain `name`. A request without a name (create,
/// list and watch without a `metadata.name` selector) never matches a rule with names.
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

/// Some non-resource URL of the rule is `*`, equals `path`, or ends in `*` and (without its
/// trailing stars) is a prefix of `path`.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls)
        .iter()
        .any(|u| non_resource_url_covers(u, path))
}

/// One non-resource URL pattern against one path (also used by the escalation check).
pub(crate) fn non_resource_url_covers(pattern: &str, path: &str) -> bool {
    pattern == ALL
        || pattern == path
        || (pattern.ends_with('*') && path.starts_with(pattern.trim_end_matches('*')))
}

/// An optional list as a slice; `None` and empty are the same to RBAC.
pub(crate) fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::request_attributes;
    use crate::rbac::test_support::{rule, urls as url_rule};

    fn allows(rule: &PolicyRule, method: &str, path: &str, query: Option<&str>) -> bool {
        rule_allows(rule, &request_attributes(method, path, query))
    }

    /// §18.3, first table, verbatim.
    #[test]
    fn vectors_18_3_resource_names() {
        let r = rule(&["get", "list"], &[""], &["secrets"], &["s1"]);
        let ns = "/api/v1/namespaces/default/secrets";
        assert!(allows(&r, "GET", &format!("{ns}/s1"), None));
        assert!(!allows(&r, "GET", &format!("{ns}/s2"), None));
        assert!(!allows(&r, "GET", ns, None), "list without a name");
        assert!(allows(
            &r,
            "GET",
            ns,
            Some("fieldSelector=metadata.name%3Ds1")
        ));
        assert!(!allows(
            &r,
            "GET",
            ns,
            Some("watch=true&fieldSelector=metadata.name%3Ds1")
        ));
        assert!(!allows(&r, "GET", &format!("{ns}/s1/status"), None));
        // The namespace is the binding's business (§15.3), not the rule's: see policy tests.
    }

    /// §18.3, the `*/status` and `/apis/*` rules, verbatim.
    #[test]
    fn vectors_18_3_wildcards() {
        let status = rule(&["get"], &["*"], &["*/status"], &[]);
        assert!(allows(
            &status,
            "GET",
            "/api/v1/namespaces/default/secrets/s1/status",
            None
        ));
        assert!(!allows(
            &status,
            "GET",
            "/api/v1/namespaces/default/secrets/s1",
            None
        ));
        let apis = url_rule(&["get"], &["/apis/*"]);
        assert!(allows(
            &apis,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1",
            None
        ));
        assert!(!allows(&apis, "GET", "/apis", None));
    }

    #[test]
    fn verbs_groups_and_resources() {
        let r = rule(&["*"], &["rbac.authorization.k8s.io"], &["roles"], &[]);
        assert!(allows(
            &r,
            "DELETE",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles",
            None
        ));
        assert!(!allows(
            &r,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            None
        ));
        assert!(!allows(
            &r,
            "GET",
            "/apis/other.io/v1/namespaces/a/roles",
            None
        ));
        let all = rule(&["get"], &["*"], &["*"], &[]);
        assert!(allows(
            &all,
            "GET",
            "/api/v1/namespaces/a/secrets/x/status",
            None
        ));
        assert!(!allows(&all, "PUT", "/api/v1/namespaces/a/secrets/x", None));
        let token = rule(&["create"], &[""], &["serviceaccounts/token"], &[]);
        assert!(allows(
            &token,
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/sa/token",
            None
        ));
        assert!(!allows(
            &token,
            "POST",
            "/api/v1/namespaces/a/serviceaccounts",
            None
        ));
        let sa = rule(&["create"], &[""], &["serviceaccounts"], &[]);
        assert!(!allows(
            &sa,
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/sa/token",
            None
        ));
        // `*/token` does not match a request without a subresource, nor another subresource.
        let star_sub = rule(&["create"], &[""], &["*/token"], &[]);
        assert!(!allows(
            &star_sub,
            "POST",
            "/api/v1/namespaces/a/serviceaccounts",
            None
        ));
        assert!(!allows(
            &star_sub,
            "PUT",
            "/api/v1/namespaces/a/serviceaccounts/sa/status",
            None
        ));
        // No groups or no resources: matches nothing.
        let empty = PolicyRule {
            verbs: vec!["*".into()],
            ..PolicyRule::default()
        };
        assert!(!allows(&empty, "GET", "/api/v1/secrets", None));
    }

    #[test]
    fn resource_names_never_match_nameless_requests() {
        let r = rule(
            &["create", "list", "watch", "deletecollection"],
            &[""],
            &["secrets"],
            &["s1"],
        );
        let ns = "/api/v1/namespaces/default/secrets";
        assert!(!allows(&r, "POST", ns, None));
        assert!(!allows(&r, "GET", ns, Some("watch=1")));
        assert!(!allows(&r, "DELETE", ns, None));
        assert!(allows(
            &r,
            "GET",
            ns,
            Some("watch=1&fieldSelector=metadata.name=s1")
        ));
    }

    #[test]
    fn non_resource_urls() {
        let r = url_rule(&["get"], &["/healthz", "/version/", "/openapi/*"]);
        assert!(allows(&r, "GET", "/healthz", None));
        assert!(!allows(&r, "GET", "/healthz/etcd", None));
        assert!(!allows(&r, "GET", "/version", None));
        assert!(allows(&r, "GET", "/openapi/v3", None));
        assert!(allows(&r, "GET", "/openapi/", None));
        assert!(!allows(&r, "GET", "/openapi", None));
        assert!(!allows(&r, "POST", "/healthz", None));
        let star = url_rule(&["*"], &["*"]);
        assert!(allows(&star, "PUT", "/anything/at/all", None));
        // A resource rule never matches a non-resource request and the other way round.
        let res = rule(&["*"], &["*"], &["*"], &[]);
        assert!(!allows(&res, "GET", "/healthz", None));
        assert!(!allows(&star, "GET", "/api/v1/secrets", None));
    }
}
