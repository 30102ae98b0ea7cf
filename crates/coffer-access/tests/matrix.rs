//! The RBAC decision matrix (`tests/rbac_matrix.yaml`): every case is asked of a [`Policy`]
//! built from the file's objects plus the bootstrap policy, with aggregation settled. Each
//! mismatch is printed with its case before the test fails.

use coffer_access::rbac::{
    Policy, aggregate_all, bootstrap_cluster_role_bindings, bootstrap_cluster_roles,
    validate_cluster_role, validate_cluster_role_binding, validate_role, validate_role_binding,
};
use coffer_access::{NonResourceAttributes, RequestAttributes, ResourceAttributes, UserInfo};
use coffer_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

#[path = "common/matrix_file.rs"]
mod matrix_file;

use matrix_file::{Case, Expect, Matrix};

/// What Coffer serves as plain requests (resource cases without `sar_only` stay inside it).
const SERVED: &[(&str, &str, &str)] = &[
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("", "serviceaccounts", ""),
    ("", "serviceaccounts", "token"),
    ("", "namespaces", ""),
    ("rbac.authorization.k8s.io", "roles", ""),
    ("rbac.authorization.k8s.io", "rolebindings", ""),
    ("rbac.authorization.k8s.io", "clusterroles", ""),
    ("rbac.authorization.k8s.io", "clusterrolebindings", ""),
];
const PATHS: &[&str] = &[
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/api",
    "/api/v1",
    "/apis",
    "/apis/rbac.authorization.k8s.io/v1",
    "/openapi/v3",
    "/metrics",
];
const PLAIN_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn load() -> Matrix {
    matrix_file::parse(include_str!("rbac_matrix.yaml"))
}

fn parse<T: serde::de::DeserializeOwned>(object: &serde_json::Value) -> T {
    serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("bad object {object}: {e}"))
}

/// The file's objects plus the bootstrap policy, aggregation settled.
fn policy(objects: &[serde_json::Value]) -> Policy {
    let (mut roles, mut bindings, mut crbs) =
        (Vec::new(), Vec::new(), bootstrap_cluster_role_bindings());
    let mut cluster_roles = bootstrap_cluster_roles();
    for object in objects {
        match object["kind"].as_str() {
            Some("Role") => roles.push(parse::<Role>(object)),
            Some("ClusterRole") => cluster_roles.push(parse::<ClusterRole>(object)),
            Some("RoleBinding") => bindings.push(parse::<RoleBinding>(object)),
            Some("ClusterRoleBinding") => crbs.push(parse::<ClusterRoleBinding>(object)),
            other => panic!("unexpected kind {other:?}"),
        }
    }
    aggregate_all(&mut cluster_roles);
    Policy::new(roles, cluster_roles, bindings, crbs)
}

fn attributes(case: &Case) -> RequestAttributes {
    match (&case.path, &case.resource) {
        (Some(path), None) => RequestAttributes::NonResource(NonResourceAttributes {
            verb: case.verb.clone(),
            path: path.clone(),
        }),
        (None, Some(resource)) => RequestAttributes::Resource(ResourceAttributes {
            verb: case.verb.clone(),
            group: case.group.clone().expect("resource cases name their group"),
            version: "v1".to_owned(),
            resource: resource.clone(),
            subresource: case.subresource.clone(),
            namespace: case.namespace.clone(),
            name: case.name.clone(),
        }),
        _ => panic!("a case has either a path or a resource: {case:?}"),
    }
}

#[test]
fn every_case_matches_kubernetes_semantics() {
    let matrix = load();
    let policy = policy(&matrix.objects);
    let mut mismatches = Vec::new();
    for (i, case) in matrix.cases.iter().enumerate() {
        let entry = matrix
            .users
            .get(&case.user)
            .unwrap_or_else(|| panic!("case {i}: unknown user {}", case.user));
        let user = UserInfo {
            name: case.user.clone(),
            groups: entry.groups.clone(),
            ..UserInfo::default()
        };
        let decision = policy.authorize(&user, &attributes(case));
        let got = if decision.allowed {
            Expect::Allow
        } else {
            Expect::Deny
        };
        if got != case.expect {
            mismatches.push(format!(
                "case {i}: {case:?} -> {got:?} (reason {:?})",
                decision.reason
            ));
        }
    }
    for m in &mismatches {
        eprintln!("{m}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ",
        mismatches.len(),
        matrix.cases.len()
    );
}

#[test]
fn the_file_keeps_its_promises() {
    let matrix = load();
    assert!(matrix.cases.len() >= 250, "{} cases", matrix.cases.len());
    for expect in [Expect::Allow, Expect::Deny] {
        assert!(matrix.cases.iter().filter(|c| c.expect == expect).count() > 80);
    }
    for (i, case) in matrix.cases.iter().enumerate() {
        if let Some(path) = &case.path {
            assert!(PATHS.contains(&path.as_str()), "case {i}: path {path}");
            continue;
        }
        let served = SERVED.iter().any(|(g, r, s)| {
            case.group.as_deref() == Some(g)
                && case.resource.as_deref() == Some(r)
                && case.subresource == *s
        });
        let token_ok = case.subresource != "token" || case.verb == "create";
        let plain = served && token_ok && PLAIN_VERBS.contains(&case.verb.as_str());
        assert!(plain || case.sar_only, "case {i} needs sar_only: {case:?}");
        let nameless_create = case.verb == "create" && case.subresource.is_empty();
        assert!(
            case.name.is_empty() || !nameless_create,
            "case {i}: create has no name"
        );
        let _ = &case.note;
    }
    // Every object is valid, so the end-to-end tests can create them through the API.
    for object in &matrix.objects {
        let errors = match object["kind"].as_str() {
            Some("Role") => validate_role(&parse(object), None),
            Some("ClusterRole") => validate_cluster_role(&parse(object), None),
            Some("RoleBinding") => validate_role_binding(&parse(object), None),
            Some("ClusterRoleBinding") => validate_cluster_role_binding(&parse(object), None),
            other => panic!("unexpected kind {other:?}"),
        };
        assert!(errors.is_empty(), "{object}: {errors:?}");
    }
}
