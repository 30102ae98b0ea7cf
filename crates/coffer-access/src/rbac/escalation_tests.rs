use coffer_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject,
};

use super::*;
use crate::rbac::test_support::{meta, rule, strings as v, urls};

fn bob() -> UserInfo {
    UserInfo::authenticated("bob".into(), String::new(), vec!["devs".into()])
}

fn user_subject() -> Subject {
    Subject {
        api_group: None,
        kind: "User".into(),
        name: "bob".into(),
        namespace: None,
    }
}

/// bob holds `rules` in `default` through a Role, and `cluster_rules` through a ClusterRole.
fn policy(rules: Vec<PolicyRule>, cluster_rules: Vec<PolicyRule>) -> Policy {
    let reference = |kind: &str, name: &str| RoleRef {
        api_group: RBAC_GROUP.into(),
        kind: kind.into(),
        name: name.into(),
    };
    Policy::new(
        vec![Role {
            metadata: meta(Some("default"), "held"),
            rules: Some(rules),
        }],
        vec![ClusterRole {
            metadata: meta(None, "held"),
            rules: Some(cluster_rules),
            aggregation_rule: None,
        }],
        vec![RoleBinding {
            metadata: meta(Some("default"), "held"),
            role_ref: reference("Role", "held"),
            subjects: Some(vec![user_subject()]),
        }],
        vec![ClusterRoleBinding {
            metadata: meta(None, "held"),
            role_ref: reference("ClusterRole", "held"),
            subjects: Some(vec![user_subject()]),
        }],
    )
}

/// §18.4 verbatim.
#[test]
fn vector_18_4() {
    let p = policy(vec![rule(&["get"], &[""], &["secrets"], &[])], vec![]);
    let err = p
        .confirm_no_escalation(
            &bob(),
            "default",
            &[rule(&["get", "list"], &[""], &["secrets"], &[])],
        )
        .expect_err("list is not held");
    assert_eq!(
        err.message("roles", "r", &bob()),
        "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"bob\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"list\"]}"
    );
    assert_eq!(
        p.confirm_no_escalation(
            &bob(),
            "default",
            &[rule(&["get"], &[""], &["secrets"], &[])]
        ),
        Ok(())
    );
}

#[test]
fn missing_rules_are_compacted_and_sorted() {
    let p = policy(vec![], vec![]);
    let wanted = [
        rule(&["get", "list"], &[""], &["secrets", "configmaps"], &[]),
        rule(&["get"], &[""], &["secrets"], &["a", "b"]),
        urls(&["get"], &["/healthz"]),
    ];
    let err = p
        .confirm_no_escalation(&bob(), "default", &wanted)
        .expect_err("holds nothing");
    assert_eq!(
        err.missing,
        vec![
            r#"{APIGroups:[""], Resources:["configmaps"], Verbs:["get" "list"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["get"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["b"], Verbs:["get"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}"#,
            r#"{NonResourceURLs:["/healthz"], Verbs:["get"]}"#,
        ]
    );
    assert!(
        err.message("clusterroles", "", &bob())
            .starts_with("clusterroles.rbac.authorization.k8s.io is forbidden: user \"bob\"")
    );
}

#[test]
fn coverage_follows_kube() {
    let p = policy(
        vec![
            rule(&["get"], &["*"], &["*/status"], &[]),
            rule(&["*"], &[""], &["configmaps"], &["a", "b"]),
            rule(&["list"], &["rbac.authorization.k8s.io"], &["*"], &[]),
        ],
        vec![urls(&["get"], &["/openapi/*"])],
    );
    let ok = |rules: &[PolicyRule]| p.confirm_no_escalation(&bob(), "default", rules).is_ok();
    assert!(ok(&[rule(
        &["get"],
        &["apps"],
        &["deployments/status"],
        &[]
    )]));
    assert!(!ok(&[rule(&["get"], &[""], &["secrets"], &[])]));
    assert!(ok(&[rule(
        &["delete", "update"],
        &[""],
        &["configmaps"],
        &["a"]
    )]));
    assert!(
        !ok(&[rule(&["delete"], &[""], &["configmaps"], &[])]),
        "names held, not the whole collection"
    );
    assert!(!ok(&[rule(&["delete"], &[""], &["configmaps"], &["c"])]));
    assert!(ok(&[rule(
        &["list"],
        &["rbac.authorization.k8s.io"],
        &["roles", "clusterroles"],
        &[]
    )]));
    assert!(ok(&[urls(&["get"], &["/openapi/v3", "/openapi/v2"])]));
    assert!(!ok(&[urls(&["get"], &["/openapi"])]));
    assert!(!ok(&[urls(&["post"], &["/openapi/v3"])]));
    assert!(ok(&[]), "granting nothing is always fine");
}

#[test]
fn cluster_scope_ignores_role_bindings() {
    let p = policy(
        vec![rule(&["get"], &[""], &["secrets"], &[])],
        vec![rule(&["get"], &[""], &["configmaps"], &[])],
    );
    let secrets = [rule(&["get"], &[""], &["secrets"], &[])];
    assert!(p.confirm_no_escalation(&bob(), "default", &secrets).is_ok());
    assert!(p.confirm_no_escalation(&bob(), "", &secrets).is_err());
    assert!(p.confirm_no_escalation(&bob(), "team-a", &secrets).is_err());
    assert!(
        p.confirm_no_escalation(&bob(), "", &[rule(&["get"], &[""], &["configmaps"], &[])])
            .is_ok()
    );
}

#[test]
fn resolution_errors_use_the_registry_wording() {
    let p = Policy::new(
        vec![],
        vec![],
        vec![RoleBinding {
            metadata: meta(Some("default"), "b"),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "Role".into(),
                name: "gone".into(),
            },
            subjects: Some(vec![user_subject()]),
        }],
        vec![],
    );
    let err = p
        .confirm_no_escalation(
            &bob(),
            "default",
            &[rule(&["get"], &[""], &["secrets"], &[])],
        )
        .expect_err("nothing held");
    assert!(
        err.reason(&bob()).ends_with(
            "Verbs:[\"get\"]}; resolution errors: [roles.rbac.authorization.k8s.io \"gone\" not found]"
        ),
        "{}",
        err.reason(&bob())
    );
}

#[test]
fn masters_and_full_authority() {
    let p = policy(vec![], vec![]);
    let master =
        UserInfo::authenticated("root".into(), String::new(), vec!["system:masters".into()]);
    assert!(
        p.confirm_no_escalation(&master, "", &full_authority())
            .is_ok()
    );
    assert!(
        p.confirm_no_escalation(&bob(), "", &full_authority())
            .is_err()
    );
    let admin = policy(vec![], full_authority());
    assert!(
        admin
            .confirm_no_escalation(&bob(), "", &full_authority())
            .is_ok()
    );
    assert!(
        admin
            .confirm_no_escalation(
                &bob(),
                "x",
                &[
                    urls(&["put"], &["/x"]),
                    rule(&["bind"], &["a"], &["b/c"], &["d"])
                ]
            )
            .is_ok()
    );
}

#[test]
fn escalate_and_bind_attributes() {
    let create = ResourceAttributes {
        verb: "create".into(),
        group: RBAC_GROUP.into(),
        version: "v1".into(),
        resource: "roles".into(),
        namespace: "team-a".into(),
        ..ResourceAttributes::default()
    };
    let escalate = escalate_attributes(&create).expect("roles qualify");
    assert_eq!(
        (
            escalate.verb.as_str(),
            escalate.resource.as_str(),
            escalate.namespace.as_str(),
            escalate.name.as_str()
        ),
        ("escalate", "roles", "team-a", "")
    );
    let secrets = ResourceAttributes {
        resource: "secrets".into(),
        group: String::new(),
        ..create
    };
    assert_eq!(escalate_attributes(&secrets), None);
    let role_ref = RoleRef {
        api_group: RBAC_GROUP.into(),
        kind: "ClusterRole".into(),
        name: "view".into(),
    };
    let bind = bind_attributes(&role_ref, "team-a").expect("ClusterRole qualifies");
    assert_eq!(
        (
            bind.verb.as_str(),
            bind.group.as_str(),
            bind.resource.as_str(),
            bind.namespace.as_str(),
            bind.name.as_str()
        ),
        ("bind", RBAC_GROUP, "clusterroles", "team-a", "view")
    );
    let odd = RoleRef {
        kind: "Foo".into(),
        ..role_ref
    };
    assert_eq!(bind_attributes(&odd, ""), None);
}

#[test]
fn compact_string_fields_and_quoting() {
    let r = PolicyRule {
        verbs: v(&["get", "list"]),
        api_groups: Some(v(&["", "apps"])),
        resources: Some(v(&["a\"b"])),
        resource_names: Some(v(&["n"])),
        non_resource_urls: Some(vec![]),
    };
    assert_eq!(
        compact_string(&r),
        r#"{APIGroups:["" "apps"], Resources:["a\"b"], ResourceNames:["n"], Verbs:["get" "list"]}"#
    );
}
