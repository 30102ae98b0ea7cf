use coffer_api::invalid_message;
use coffer_api::k8s_openapi::api::rbac::v1::AggregationRule;
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

use super::*;

fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}

fn texts(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn v(l: &[&str]) -> Option<Vec<String>> {
    Some(l.iter().map(|s| s.to_string()).collect())
}

fn binding(kind: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some("default"), "rb"),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: kind.into(),
            name: role.into(),
        },
        subjects: Some(subjects),
    }
}

fn subject(kind: &str, name: &str, group: Option<&str>, ns: Option<&str>) -> Subject {
    Subject {
        api_group: group.map(Into::into),
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(Into::into),
    }
}

#[test]
fn policy_rule_messages() {
    let role = Role {
        metadata: meta(Some("default"), "r"),
        rules: Some(vec![
            PolicyRule {
                verbs: vec![],
                ..PolicyRule::default()
            },
            PolicyRule {
                verbs: vec!["get".into()],
                non_resource_urls: v(&["/healthz"]),
                api_groups: v(&[""]),
                ..PolicyRule::default()
            },
            PolicyRule {
                verbs: vec!["get".into()],
                api_groups: v(&[""]),
                resources: v(&["a", "b"]),
                resource_names: v(&["x"]),
                ..PolicyRule::default()
            },
        ]),
    };
    assert_eq!(
        texts(&validate_role(&role, None)),
        vec![
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
            "rules[0].resources: Required value: resource rules must supply at least one resource",
            r#"rules[1].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs"#,
            r#"rules[1].nonResourceURLs: Invalid value: ["/healthz"]: rules cannot apply to both regular resources and non-resource URLs"#,
            "rules[2].resourceNames: Required value: resource names cannot apply to multiple resources",
        ]
    );
    let cluster = ClusterRole {
        metadata: meta(None, "c"),
        rules: Some(vec![PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: v(&["/healthz"]),
            ..PolicyRule::default()
        }]),
        aggregation_rule: None,
    };
    assert_eq!(validate_cluster_role(&cluster, None), vec![]);
}

#[test]
fn names_are_path_segments_and_scopes_apply() {
    let role = Role {
        metadata: meta(None, "a/b"),
        rules: None,
    };
    let errs = texts(&validate_role(&role, None));
    assert!(
        errs.iter()
            .any(|e| e.starts_with(r#"metadata.name: Invalid value: "a/b": may not contain '/'"#)),
        "{errs:?}"
    );
    assert!(
        errs.contains(&"metadata.namespace: Required value".to_owned()),
        "{errs:?}"
    );
    let ok = Role {
        metadata: meta(Some("default"), "system:Odd Name"),
        rules: None,
    };
    assert_eq!(validate_role(&ok, None), vec![]);
    let cluster = ClusterRole {
        metadata: meta(Some("default"), "c"),
        rules: None,
        aggregation_rule: None,
    };
    assert_eq!(
        texts(&validate_cluster_role(&cluster, None)),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
}

#[test]
fn aggregation_rule_messages() {
    let mut cluster = ClusterRole {
        metadata: meta(None, "agg"),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: None,
        }),
    };
    assert_eq!(
        texts(&validate_cluster_role(&cluster, None)),
        vec![
            "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"
        ]
    );
    let expr = |op: &str, values: Option<Vec<String>>| LabelSelectorRequirement {
        key: "k".into(),
        operator: op.into(),
        values,
    };
    cluster.aggregation_rule = Some(AggregationRule {
        cluster_role_selectors: Some(vec![LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                expr("In", None),
                expr("Exists", v(&["x"])),
                expr("Near", None),
            ]),
        }]),
    });
    assert_eq!(
        texts(&validate_cluster_role(&cluster, None)),
        vec![
            "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "aggregationRule.clusterRoleSelectors[0].matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            r#"aggregationRule.clusterRoleSelectors[0].matchExpressions[2].operator: Invalid value: "Near": not a valid selector operator"#,
        ]
    );
}

#[test]
fn role_binding_messages() {
    let mut b = binding(
        "Secret",
        "",
        vec![
            subject(
                "ServiceAccount",
                "Bad_Name",
                Some("rbac.authorization.k8s.io"),
                None,
            ),
            subject("User", "", None, None),
            subject("Robot", "r2", None, None),
        ],
    );
    b.role_ref.api_group = "example.com".into();
    assert_eq!(
        texts(&validate_role_binding(&b, None)),
        vec![
            r#"roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#,
            r#"roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole""#,
            "roleRef.name: Required value",
            r#"subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
            r#"subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: """#,
            "subjects[1].name: Required value",
            r#"subjects[1].name: Invalid value: "": user name cannot be empty"#,
            r#"subjects[1].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io""#,
            r#"subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
        ]
    );
    let mut ok = binding(
        "ClusterRole",
        "view",
        vec![
            subject("Group", "devs", None, None),
            subject("ServiceAccount", "sa", None, None),
        ],
    );
    default_role_binding(&mut ok);
    assert_eq!(
        ok.subjects
            .as_ref()
            .and_then(|s| s[0].api_group.clone())
            .as_deref(),
        Some(RBAC_GROUP)
    );
    assert_eq!(
        ok.subjects.as_ref().and_then(|s| s[1].api_group.clone()),
        None
    );
    assert_eq!(validate_role_binding(&ok, None), vec![]);
}

#[test]
fn cluster_role_binding_messages_and_defaults() {
    let mut b = ClusterRoleBinding {
        metadata: meta(None, "crb"),
        role_ref: RoleRef {
            api_group: String::new(),
            kind: "Role".into(),
            name: "r".into(),
        },
        subjects: Some(vec![
            subject("ServiceAccount", "sa", None, None),
            subject("User", "bob", None, None),
        ]),
    };
    default_cluster_role_binding(&mut b);
    assert_eq!(b.role_ref.api_group, RBAC_GROUP);
    assert_eq!(
        texts(&validate_cluster_role_binding(&b, None)),
        vec![
            r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
            "subjects[0].namespace: Required value",
        ]
    );
}

#[test]
fn role_ref_is_immutable() {
    let old = binding("ClusterRole", "view", vec![]);
    let new = binding("ClusterRole", "edit", vec![]);
    let errs = validate_role_binding(&new, Some(&old));
    assert_eq!(
        texts(&errs),
        vec![
            r#"roleRef: Invalid value: {"APIGroup":"rbac.authorization.k8s.io","Kind":"ClusterRole","Name":"edit"}: cannot change roleRef"#
        ]
    );
    assert!(
        invalid_message("RoleBinding.rbac.authorization.k8s.io", "rb", &errs).starts_with(
            r#"RoleBinding.rbac.authorization.k8s.io "rb" is invalid: roleRef: Invalid value"#
        )
    );
    assert_eq!(validate_role_binding(&old, Some(&old)), vec![]);
    let renamed = RoleBinding {
        metadata: meta(Some("default"), "other"),
        ..old.clone()
    };
    assert!(
        texts(&validate_role_binding(&renamed, Some(&old)))
            .iter()
            .any(|e| e.starts_with("metadata.name: Invalid value"))
    );
}
