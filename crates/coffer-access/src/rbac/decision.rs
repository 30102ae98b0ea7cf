//! What the authorizer answers, and the texts kube-apiserver builds from it: decisions, the
//! rules review, rule-resolution errors and the 403 message (`reference/k8s-api.md` §9.4, §10,
//! §15.3).

use std::fmt;

use coffer_api::go_quote;
use coffer_api::k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};

use crate::attributes::RequestAttributes;
use crate::user::UserInfo;

/// The authorizer's answer for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// On allow: `RBAC: allowed by <binding> of <role> to <subject>`, or `""` for members of
    /// `system:masters` (kube's privileged-group authorizer gives no reason). On deny: `""`,
    /// or `RBAC: <resolution errors>` when some applicable binding could not be resolved.
    pub reason: String,
}

/// A SelfSubjectRulesReview status (§9.4, §15.3): the union of the rules that apply to a user
/// in one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RulesReview {
    /// Rules with resources, in binding order (ClusterRoleBindings first).
    pub resource_rules: Vec<ResourceRule>,
    /// Rules with non-resource URLs.
    pub non_resource_rules: Vec<NonResourceRule>,
    /// Whether the list is known to be incomplete. kube's RBAC authorizer never sets this (its
    /// `RulesFor` returns `false` and reports problems only through the error), so it is
    /// `false` here too; resolution problems are in [`RulesReview::evaluation_error`].
    pub incomplete: bool,
    /// The resolution errors joined as apimachinery's aggregate error does; `""` when none.
    pub evaluation_error: String,
}

/// Why the rules of a binding could not be found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolutionError {
    /// The referenced Role does not exist in the binding's namespace.
    #[error("role.rbac.authorization.k8s.io {} not found", go_quote(.0))]
    RoleNotFound(String),
    /// The referenced ClusterRole does not exist.
    #[error("clusterrole.rbac.authorization.k8s.io {} not found", go_quote(.0))]
    ClusterRoleNotFound(String),
    /// The roleRef kind is neither `Role` nor `ClusterRole` (or `Role` in a ClusterRoleBinding).
    #[error("unsupported role reference kind: {}", go_quote(.0))]
    UnsupportedKind(String),
}

impl ResolutionError {
    /// The text kube-apiserver's registry gives for the same problem during the escalation
    /// check, which reads roles through storage: `roles.rbac.authorization.k8s.io "x" not
    /// found` (plural, qualified resource) instead of the informer's singular form.
    pub fn registry_message(&self) -> String {
        match self {
            Self::RoleNotFound(name) => {
                format!(
                    "roles.rbac.authorization.k8s.io {} not found",
                    go_quote(name)
                )
            }
            Self::ClusterRoleNotFound(name) => {
                format!(
                    "clusterroles.rbac.authorization.k8s.io {} not found",
                    go_quote(name)
                )
            }
            Self::UnsupportedKind(_) => self.to_string(),
        }
    }
}

/// Joins error texts as apimachinery's `utilerrors.NewAggregate(errs).Error()`: one error is
/// its own text; several are de-duplicated and joined with `, ` inside `[...]`.
pub(crate) fn aggregate_texts<I, S>(texts: I) -> String
where
    I: IntoIterator<Item = S>,
    S: fmt::Display,
{
    let mut seen: Vec<String> = Vec::new();
    let mut total = 0;
    for t in texts {
        total += 1;
        let t = t.to_string();
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    match (total, seen.len()) {
        (0, _) => String::new(),
        (1, _) | (_, 1) => seen.swap_remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// The reason kube-apiserver puts in a 403 (`responsewriters.forbiddenMessage`, §10):
///
/// * `User "bob" cannot list resource "secrets" in API group "" in the namespace "default"`
/// * `User "bob" cannot create resource "serviceaccounts/token" in API group "" in the
///   namespace "default"`
/// * `User "bob" cannot list resource "namespaces" in API group "" at the cluster scope`
/// * `User "bob" cannot get path "/healthz"`
///
/// The server prefixes `<resource>[.<group>] ["<name>"] is forbidden: ` (or `forbidden: ` for
/// paths) and appends `: <reason>` when the [`Decision`] carries one.
pub fn forbidden_message(user: &UserInfo, attrs: &RequestAttributes) -> String {
    let who = go_quote(&user.name);
    match attrs {
        RequestAttributes::NonResource(n) => {
            format!("User {who} cannot {} path {}", n.verb, go_quote(&n.path))
        }
        RequestAttributes::Resource(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {}", go_quote(&r.namespace))
            };
            format!(
                "User {who} cannot {} resource {} in API group {} {scope}",
                r.verb,
                go_quote(&resource),
                go_quote(&r.group)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{NonResourceAttributes, ResourceAttributes};

    fn user(name: &str) -> UserInfo {
        UserInfo::authenticated(name.into(), String::new(), vec![])
    }

    #[test]
    fn forbidden_messages_as_kube() {
        let mut r = ResourceAttributes {
            verb: "list".into(),
            resource: "secrets".into(),
            namespace: "default".into(),
            ..ResourceAttributes::default()
        };
        let bob = user("bob");
        assert_eq!(
            forbidden_message(&bob, &RequestAttributes::Resource(r.clone())),
            r#"User "bob" cannot list resource "secrets" in API group "" in the namespace "default""#
        );
        r.verb = "create".into();
        r.resource = "serviceaccounts".into();
        r.subresource = "token".into();
        assert_eq!(
            forbidden_message(&bob, &RequestAttributes::Resource(r.clone())),
            r#"User "bob" cannot create resource "serviceaccounts/token" in API group "" in the namespace "default""#
        );
        let cluster = ResourceAttributes {
            verb: "impersonate".into(),
            resource: "users".into(),
            name: "bob".into(),
            ..ResourceAttributes::default()
        };
        assert_eq!(
            forbidden_message(&user("alice"), &RequestAttributes::Resource(cluster)),
            r#"User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let rbac = ResourceAttributes {
            verb: "get".into(),
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterroles".into(),
            ..ResourceAttributes::default()
        };
        assert!(
            forbidden_message(&bob, &RequestAttributes::Resource(rbac))
                .ends_with(r#"in API group "rbac.authorization.k8s.io" at the cluster scope"#)
        );
        let path = NonResourceAttributes {
            verb: "get".into(),
            path: "/foo".into(),
        };
        assert_eq!(
            forbidden_message(
                &UserInfo::anonymous(),
                &RequestAttributes::NonResource(path)
            ),
            r#"User "system:anonymous" cannot get path "/foo""#
        );
    }

    #[test]
    fn resolution_error_texts() {
        assert_eq!(
            ResolutionError::RoleNotFound("x".into()).to_string(),
            r#"role.rbac.authorization.k8s.io "x" not found"#
        );
        assert_eq!(
            ResolutionError::ClusterRoleNotFound("x".into()).to_string(),
            r#"clusterrole.rbac.authorization.k8s.io "x" not found"#
        );
        assert_eq!(
            ResolutionError::ClusterRoleNotFound("x".into()).registry_message(),
            r#"clusterroles.rbac.authorization.k8s.io "x" not found"#
        );
        assert_eq!(
            ResolutionError::UnsupportedKind("Foo".into()).to_string(),
            r#"unsupported role reference kind: "Foo""#
        );
    }

    #[test]
    fn aggregates_like_apimachinery() {
        assert_eq!(aggregate_texts(Vec::<String>::new()), "");
        assert_eq!(aggregate_texts(["a"]), "a");
        assert_eq!(aggregate_texts(["a", "a"]), "a");
        assert_eq!(aggregate_texts(["a", "b", "a"]), "[a, b]");
    }
}
