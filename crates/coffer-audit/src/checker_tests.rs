use super::*;
use crate::level::Stage;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:kube-proxy"]
  - level: None
    userGroups: ["system:nodes"]
    verbs: ["get"]
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: Request
    resources:
      - group: ""
        resources: ["pods/log"]
  - level: RequestResponse
    resources:
      - group: "apps"
        resources: ["*/scale"]
  - level: Request
    resources:
      - group: "apps"
        resources: ["deployments/*"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["endpoints"]
        resourceNames: ["kubernetes"]
  - level: Request
    namespaces: [""]
    omitStages: [Panic]
  - level: RequestResponse
    resources:
      - group: "rbac.authorization.k8s.io"
  - level: RequestResponse
    namespaces: ["prod"]
    resources:
      - group: ""
        resources: ["*"]
  - level: Metadata
    verbs: ["list"]
"#;

fn policy() -> Policy {
    Policy::from_slice(POLICY.as_bytes(), "t").expect("valid")
}

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        user: "alice".into(),
        groups: vec!["devs".into(), "system:authenticated".into()],
        verb: verb.into(),
        api_group: group.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        path: "/api/v1/x".into(),
        is_resource: true,
    }
}

fn non_res(path: &str) -> Attributes {
    Attributes {
        user: "alice".into(),
        verb: "get".into(),
        path: path.into(),
        ..Attributes::default()
    }
}

#[test]
fn rule_matching_table() {
    let p = policy();
    let cases: Vec<(&str, Attributes, Level)> = vec![
        (
            "user rule",
            Attributes {
                user: "system:kube-proxy".into(),
                ..res("list", "", "pods", "", "ns", "")
            },
            Level::None,
        ),
        (
            "group + verb",
            Attributes {
                groups: vec!["system:nodes".into()],
                ..res("get", "", "pods", "", "a", "p")
            },
            Level::None,
        ),
        (
            "group, other verb falls through",
            Attributes {
                groups: vec!["system:nodes".into()],
                ..res("list", "", "pods", "", "a", "")
            },
            Level::Metadata,
        ),
        (
            "non-resource prefix",
            non_res("/healthz/ready"),
            Level::None,
        ),
        ("non-resource exact", non_res("/version"), Level::None),
        (
            "non-resource exact is not a prefix",
            non_res("/version/x"),
            Level::None,
        ),
        (
            "res/sub exact",
            res("get", "", "pods", "log", "a", "p"),
            Level::Request,
        ),
        (
            "res alone does not match res/sub",
            res("get", "", "pods", "", "a", "p"),
            Level::None,
        ),
        (
            "*/sub",
            res("update", "apps", "statefulsets", "scale", "a", "s"),
            Level::RequestResponse,
        ),
        (
            "*/sub needs a subresource",
            res("update", "apps", "statefulsets", "", "a", "s"),
            Level::None,
        ),
        (
            "res/* matches the resource",
            res("get", "apps", "deployments", "", "a", "d"),
            Level::Request,
        ),
        (
            "res/* matches a subresource",
            res("get", "apps", "deployments", "status", "a", "d"),
            Level::Request,
        ),
        (
            "resourceNames hit",
            res("get", "", "endpoints", "", "default", "kubernetes"),
            Level::RequestResponse,
        ),
        (
            "resourceNames miss",
            res("get", "", "endpoints", "", "default", "other"),
            Level::None,
        ),
        (
            "cluster-scoped via namespace \"\"",
            res("get", "", "namespaces", "", "", "kube-system"),
            Level::Request,
        ),
        (
            "group without resources",
            res("get", "rbac.authorization.k8s.io", "roles", "", "a", "r"),
            Level::RequestResponse,
        ),
        (
            "* in a namespace",
            res("get", "", "pods", "exec", "prod", "p"),
            Level::RequestResponse,
        ),
        (
            "* is per group",
            res("get", "batch", "jobs", "", "prod", "j"),
            Level::None,
        ),
        (
            "no rule matches",
            res("watch", "", "pods", "", "a", ""),
            Level::None,
        ),
        (
            "verb-only rule",
            res("list", "batch", "jobs", "", "a", ""),
            Level::Metadata,
        ),
    ];
    for (what, attrs, want) in cases {
        assert_eq!(p.decide(&attrs).level, want, "{what}");
    }
}

#[test]
fn resource_rules_do_not_match_non_resource_requests() {
    let p = policy();
    // "/version/x" matches no nonResourceURLs; the namespaces [""] rule needs a resource request.
    assert_eq!(p.decide(&non_res("/version/x")).level, Level::None);
    assert_eq!(
        p.decide(&Attributes {
            verb: "list".into(),
            ..non_res("/x")
        })
        .level,
        Level::Metadata
    );
}

#[test]
fn omit_stages_union_and_default() {
    let p = policy();
    let cfg = p.decide(&res("get", "", "namespaces", "", "", "x"));
    assert!(cfg.omit_stages.contains(Stage::RequestReceived));
    assert!(cfg.omit_stages.contains(Stage::Panic));
    let none = p.decide(&res("watch", "", "pods", "", "a", ""));
    assert!(none.omit_stages.contains(Stage::RequestReceived));
    assert!(!none.omit_stages.contains(Stage::Panic));
}

#[test]
fn secret_like_resources_are_capped_at_metadata() {
    let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n";
    let p = Policy::from_slice(text.as_bytes(), "t").expect("valid");
    for (group, resource, sub) in [
        ("", "secrets", ""),
        ("", "configmaps", ""),
        ("", "serviceaccounts", "token"),
        ("authentication.k8s.io", "tokenreviews", ""),
        ("example.com", "secrets", "status"),
    ] {
        let (level, _) = p.level_for(&res("create", group, resource, sub, "a", "x"));
        assert_eq!(level, Level::Metadata, "{resource}/{sub}");
    }
    for (resource, sub) in [("serviceaccounts", ""), ("pods", "")] {
        let (level, _) = p.level_for(&res("create", "", resource, sub, "a", "x"));
        assert_eq!(level, Level::RequestResponse, "{resource}/{sub}");
    }
    // The cap never raises: None stays None.
    let none = Policy::from_slice(
        b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n",
        "t",
    )
    .expect("valid");
    assert_eq!(
        none.level_for(&res("get", "", "secrets", "", "a", "x")).0,
        Level::None
    );
}

#[test]
fn default_policy_gives_metadata_everywhere() {
    let p = Policy::default_metadata();
    assert_eq!(p.decide(&non_res("/healthz")).level, Level::Metadata);
    assert_eq!(
        p.decide(&res("get", "", "pods", "", "a", "x")).level,
        Level::Metadata
    );
}

#[test]
fn capped_helper() {
    assert!(capped("secrets", ""));
    assert!(capped("serviceaccounts", "token"));
    assert!(!capped("serviceaccounts", ""));
    assert!(!capped("pods", ""));
}
