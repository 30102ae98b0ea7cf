use coffer_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::*;
use crate::attributes::request_attributes;
use crate::rbac::test_support::{meta, rule, urls};

fn role(ns: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(Some(ns), name),
        rules: Some(rules),
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(None, name),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
    Subject {
        api_group: None,
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(Into::into),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some(ns), name),
        role_ref: role_ref(kind, role),
        subjects: Some(subjects),
    }
}

fn crb(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(None, name),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(subjects),
    }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::authenticated(
        name.into(),
        String::new(),
        groups.iter().map(|g| g.to_string()).collect(),
    )
}

fn decide(policy: &Policy, u: &UserInfo, method: &str, path: &str) -> Decision {
    let (path, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    policy.authorize(u, &request_attributes(method, path, query))
}

/// §18.3 through bindings: the rule held in `default` does not reach `other`.
#[test]
fn vectors_18_3_through_a_role_binding() {
    let policy = Policy::new(
        vec![role(
            "default",
            "secret-reader",
            vec![rule(&["get", "list"], &[""], &["secrets"], &["s1"])],
        )],
        vec![],
        vec![rb(
            "default",
            "rb1",
            "Role",
            "secret-reader",
            vec![subject("User", "bob", None)],
        )],
        vec![],
    );
    let bob = user("bob", &[]);
    let ns = "/api/v1/namespaces/default/secrets";
    let allowed = decide(&policy, &bob, "GET", &format!("{ns}/s1"));
    assert_eq!(
        allowed,
        Decision {
            allowed: true,
            reason: r#"RBAC: allowed by RoleBinding "rb1/default" of Role "secret-reader" to User "bob""#.into()
        }
    );
    assert_eq!(
        decide(&policy, &bob, "GET", &format!("{ns}/s2")),
        Decision::default()
    );
    assert!(!decide(&policy, &bob, "GET", ns).allowed);
    assert!(
        decide(
            &policy,
            &bob,
            "GET",
            &format!("{ns}?fieldSelector=metadata.name%3Ds1")
        )
        .allowed
    );
    assert!(
        !decide(
            &policy,
            &bob,
            "GET",
            &format!("{ns}?watch=true&fieldSelector=metadata.name%3Ds1")
        )
        .allowed
    );
    assert!(!decide(&policy, &bob, "GET", "/api/v1/namespaces/other/secrets/s1").allowed);
    assert!(!decide(&policy, &bob, "GET", &format!("{ns}/s1/status")).allowed);
    assert!(!decide(&policy, &user("alice", &[]), "GET", &format!("{ns}/s1")).allowed);
}

#[test]
fn masters_are_always_allowed_without_a_reason() {
    let policy = Policy::default();
    let admin = user("admin", &["system:masters"]);
    assert_eq!(
        decide(&policy, &admin, "DELETE", "/api/v1/namespaces"),
        Decision {
            allowed: true,
            reason: String::new()
        }
    );
    assert!(decide(&policy, &admin, "GET", "/anything").allowed);
    assert!(!decide(&policy, &user("admin", &[]), "GET", "/anything").allowed);
}

#[test]
fn cluster_bindings_and_reasons_name_the_first_matching_subject() {
    let policy = Policy::new(
        vec![],
        vec![cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"], &[])],
        )],
        vec![],
        vec![crb(
            "cluster-admin",
            "cluster-admin",
            vec![
                subject("User", "carol", None),
                subject("Group", "admins", None),
                subject("User", "bob", None),
            ],
        )],
    );
    let d = decide(
        &policy,
        &user("bob", &["admins"]),
        "GET",
        "/api/v1/namespaces/x/secrets",
    );
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "admins""#
    );
    let d = decide(
        &policy,
        &user("carol", &["admins"]),
        "GET",
        "/api/v1/namespaces",
    );
    assert!(d.reason.ends_with(r#"to User "carol""#), "{}", d.reason);
    // A cluster-wide grant covers cluster-scoped and namespaced requests, but not paths.
    assert!(!decide(&policy, &user("carol", &[]), "GET", "/healthz").allowed);
}

#[test]
fn role_bindings_to_cluster_roles_grant_only_their_namespace() {
    let policy = Policy::new(
        vec![],
        vec![cluster_role(
            "reader",
            vec![rule(
                &["get", "list"],
                &[""],
                &["secrets", "namespaces"],
                &[],
            )],
        )],
        vec![rb(
            "team-a",
            "read",
            "ClusterRole",
            "reader",
            vec![subject("Group", "devs", None)],
        )],
        vec![],
    );
    let dev = user("dana", &["devs"]);
    let d = decide(&policy, &dev, "GET", "/api/v1/namespaces/team-a/secrets");
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "read/team-a" of ClusterRole "reader" to Group "devs""#
    );
    assert!(!decide(&policy, &dev, "GET", "/api/v1/namespaces/team-b/secrets").allowed);
    assert!(
        !decide(&policy, &dev, "GET", "/api/v1/secrets").allowed,
        "all namespaces is cluster scope"
    );
    assert!(
        decide(&policy, &dev, "GET", "/api/v1/namespaces/team-a").allowed,
        "its own namespace object"
    );
    assert!(!decide(&policy, &dev, "GET", "/api/v1/namespaces").allowed);
}

#[test]
fn service_account_subjects() {
    let policy = Policy::new(
        vec![role(
            "team-a",
            "r",
            vec![rule(&["get"], &[""], &["configmaps"], &[])],
        )],
        vec![cluster_role(
            "c",
            vec![rule(&["list"], &[""], &["namespaces"], &[])],
        )],
        vec![
            rb(
                "team-a",
                "local",
                "Role",
                "r",
                vec![subject("ServiceAccount", "builder", None)],
            ),
            rb(
                "team-a",
                "remote",
                "Role",
                "r",
                vec![subject("ServiceAccount", "deployer", Some("team-b"))],
            ),
        ],
        vec![
            crb(
                "no-namespace",
                "c",
                vec![subject("ServiceAccount", "builder", None)],
            ),
            crb(
                "with-namespace",
                "c",
                vec![subject("ServiceAccount", "deployer", Some("team-b"))],
            ),
        ],
    );
    let sa = |ns: &str, name: &str| {
        user(
            &format!("system:serviceaccount:{ns}:{name}"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{ns}"),
            ],
        )
    };
    let cm = "/api/v1/namespaces/team-a/configmaps/x";
    let d = decide(&policy, &sa("team-a", "builder"), "GET", cm);
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "local/team-a" of Role "r" to ServiceAccount "builder/team-a""#
    );
    assert!(!decide(&policy, &sa("team-b", "builder"), "GET", cm).allowed);
    assert!(decide(&policy, &sa("team-b", "deployer"), "GET", cm).allowed);
    assert!(!decide(&policy, &sa("team-a", "deployer"), "GET", cm).allowed);
    // In a ClusterRoleBinding a ServiceAccount subject without namespace matches no one.
    assert!(
        !decide(
            &policy,
            &sa("team-a", "builder"),
            "GET",
            "/api/v1/namespaces"
        )
        .allowed
    );
    let d = decide(
        &policy,
        &sa("team-b", "deployer"),
        "GET",
        "/api/v1/namespaces",
    );
    assert!(
        d.reason.ends_with(r#"to ServiceAccount "deployer/team-b""#),
        "{}",
        d.reason
    );
}

#[test]
fn missing_roles_become_reasons_and_evaluation_errors() {
    let policy = Policy::new(
        vec![],
        vec![cluster_role(
            "ok",
            vec![rule(&["get"], &[""], &["configmaps"], &[])],
        )],
        vec![
            rb(
                "default",
                "a",
                "Role",
                "gone",
                vec![subject("User", "bob", None)],
            ),
            rb(
                "default",
                "b",
                "ClusterRole",
                "ok",
                vec![subject("User", "bob", None)],
            ),
            rb(
                "default",
                "c",
                "Role",
                "other-user",
                vec![subject("User", "eve", None)],
            ),
        ],
        vec![crb(
            "x",
            "missing",
            vec![subject("Group", "system:authenticated", None)],
        )],
    );
    let bob = user("bob", &[]);
    let d = decide(&policy, &bob, "GET", "/api/v1/namespaces/default/secrets");
    assert_eq!(
        d.reason,
        r#"RBAC: [clusterrole.rbac.authorization.k8s.io "missing" not found, role.rbac.authorization.k8s.io "gone" not found]"#
    );
    assert!(!d.allowed);
    assert!(
        decide(
            &policy,
            &bob,
            "GET",
            "/api/v1/namespaces/default/configmaps/x"
        )
        .allowed
    );
    let d = decide(&policy, &bob, "GET", "/api/v1/namespaces");
    assert_eq!(
        d.reason,
        r#"RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found"#
    );
    let review = policy.rules_for(&bob, "default");
    assert!(
        !review.incomplete,
        "kube's RBAC never marks the review incomplete"
    );
    assert_eq!(
        review.evaluation_error,
        r#"[clusterrole.rbac.authorization.k8s.io "missing" not found, role.rbac.authorization.k8s.io "gone" not found]"#
    );
    assert_eq!(review.resource_rules.len(), 1);
    let zed = UserInfo {
        name: "zed".into(),
        ..UserInfo::default()
    };
    assert_eq!(policy.rules_for(&zed, "default").evaluation_error, "");
}

#[test]
fn unsupported_role_ref_kind() {
    let mut binding = rb(
        "default",
        "odd",
        "Foo",
        "x",
        vec![subject("User", "bob", None)],
    );
    binding.role_ref.kind = "Foo".into();
    let policy = Policy::new(vec![], vec![], vec![binding], vec![]);
    let d = decide(
        &policy,
        &user("bob", &[]),
        "GET",
        "/api/v1/namespaces/default/secrets",
    );
    assert_eq!(d.reason, r#"RBAC: unsupported role reference kind: "Foo""#);
}

#[test]
fn rules_review_lists_the_union() {
    let url_rule = urls(&["get"], &["/healthz"]);
    let policy = Policy::new(
        vec![role(
            "team-a",
            "r",
            vec![rule(&["get"], &[""], &["secrets"], &["s1"])],
        )],
        vec![cluster_role(
            "c",
            vec![rule(&["list"], &[""], &["namespaces"], &[]), url_rule],
        )],
        vec![rb(
            "team-a",
            "rb",
            "Role",
            "r",
            vec![subject("User", "bob", None)],
        )],
        vec![crb("crb", "c", vec![subject("User", "bob", None)])],
    );
    let bob = user("bob", &[]);
    let review = policy.rules_for(&bob, "team-a");
    let resources: Vec<_> = review
        .resource_rules
        .iter()
        .map(|r| {
            (
                r.verbs.clone(),
                r.resources.clone(),
                r.resource_names.clone(),
            )
        })
        .collect();
    assert_eq!(
        resources,
        vec![
            (
                vec!["list".to_string()],
                Some(vec!["namespaces".to_string()]),
                None
            ),
            (
                vec!["get".to_string()],
                Some(vec!["secrets".to_string()]),
                Some(vec!["s1".to_string()])
            ),
        ]
    );
    assert_eq!(review.non_resource_rules.len(), 1);
    assert_eq!(
        review.non_resource_rules[0].non_resource_urls,
        Some(vec!["/healthz".to_string()])
    );
    assert_eq!(
        policy.rules_for(&bob, "").resource_rules.len(),
        1,
        "cluster scope: no RoleBindings"
    );
    assert_eq!(policy.rules_for(&bob, "team-b").resource_rules.len(), 1);
}

#[test]
fn role_ref_rules_resolve_like_bindings() {
    let policy = Policy::new(
        vec![role(
            "team-a",
            "r",
            vec![rule(&["get"], &[""], &["secrets"], &[])],
        )],
        vec![cluster_role("c", vec![])],
        vec![],
        vec![],
    );
    assert_eq!(
        policy
            .role_ref_rules(&role_ref("Role", "r"), "team-a")
            .map(<[_]>::len),
        Ok(1)
    );
    assert_eq!(
        policy.role_ref_rules(&role_ref("Role", "r"), "team-b"),
        Err(ResolutionError::RoleNotFound("r".into()))
    );
    assert_eq!(
        policy
            .role_ref_rules(&role_ref("ClusterRole", "c"), "")
            .map(<[_]>::len),
        Ok(0)
    );
}
