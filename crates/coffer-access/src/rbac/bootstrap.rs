//! The default ClusterRoles and ClusterRoleBindings (`reference/k8s-api.md` §15.5).
//!
//! Source: kubernetes `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go` and its
//! golden file `testdata/cluster-roles.yaml` (v1.3x, feature-gated rules with their gates off
//! by default left out: DRA's `resource.k8s.io`). Only the roles that matter to a secrets
//! server are here: `cluster-admin`, `admin`/`edit`/`view` and their
//! `system:aggregate-to-*` sources, `system:basic-user`, `system:discovery`,
//! `system:public-info-viewer`, `system:monitoring` and
//! `system:service-account-issuer-discovery`. The edit/view lists are upstream's, including
//! resources Coffer does not serve. As upstream's rule builder does, every list in a rule is
//! sorted. `admin`, `edit` and `view` carry only their `aggregationRule`: their rules come from
//! aggregation ([`super::aggregate_all`]).

use std::collections::BTreeMap;

use coffer_api::k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::escalation::RBAC_GROUP;

/// The label every default object carries.
pub const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The annotation that lets the server reconcile a default object on start.
pub const AUTOUPDATE_ANNOTATION: (&str, &str) =
    ("rbac.authorization.kubernetes.io/autoupdate", "true");
/// The label selecting ClusterRoles aggregated into `admin`.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// The label selecting ClusterRoles aggregated into `edit`.
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// The label selecting ClusterRoles aggregated into `view`.
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The default ClusterRoles, sorted by name.
pub fn bootstrap_cluster_roles() -> Vec<ClusterRole> {
    let mut roles = vec![
        plain(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated("edit", &[AGGREGATE_TO_ADMIN], AGGREGATE_TO_EDIT),
        aggregated("view", &[AGGREGATE_TO_EDIT], AGGREGATE_TO_VIEW),
        plain(
            "system:aggregate-to-admin",
            &[AGGREGATE_TO_ADMIN],
            aggregate_to_admin(),
        ),
        plain(
            "system:aggregate-to-edit",
            &[AGGREGATE_TO_EDIT],
            aggregate_to_edit(),
        ),
        plain(
            "system:aggregate-to-view",
            &[AGGREGATE_TO_VIEW],
            aggregate_to_view(),
        ),
        plain(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        plain(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        plain(
            "system:monitoring",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        plain(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        plain(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
        ),
    ];
    roles.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    roles
}

/// The default ClusterRoleBindings: `cluster-admin` to `system:masters`, `system:basic-user`
/// and `system:discovery` to `system:authenticated`, `system:public-info-viewer` to
/// `system:authenticated` and `system:unauthenticated`, `system:monitoring` to the group of
/// that name, `system:service-account-issuer-discovery` to `system:serviceaccounts`.
pub fn bootstrap_cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    [
        ("cluster-admin", &["system:masters"][..]),
        ("system:monitoring", &["system:monitoring"]),
        ("system:discovery", &["system:authenticated"]),
        ("system:basic-user", &["system:authenticated"]),
        (
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        (
            "system:service-account-issuer-discovery",
            &["system:serviceaccounts"],
        ),
    ]
    .into_iter()
    .map(|(name, groups)| ClusterRoleBinding {
        metadata: default_meta(name, &[]),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_owned(),
            kind: "ClusterRole".to_owned(),
            name: name.to_owned(),
        },
        subjects: Some(
            groups
                .iter()
                .map(|g| Subject {
                    api_group: Some(RBAC_GROUP.to_owned()),
                    kind: "Group".to_owned(),
                    name: (*g).to_owned(),
                    namespace: None,
                })
                .collect(),
        ),
    })
    .collect()
}

fn aggregate_to_admin() -> Vec<PolicyRule> {
    vec![
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
        rule(READ_WRITE, &[RBAC_GROUP], &["rolebindings", "roles"]),
    ]
}

fn aggregate_to_edit() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
        ),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "configmaps",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(WRITE, &["", "events.k8s.io"], &["events"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
        rule(
            WRITE,
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "ingresses",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
            ],
        ),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
        rule(
            WRITE,
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
        ),
        rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
    ]
}

fn aggregate_to_view() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            &[""],
            &[
                "bindings",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["", "events.k8s.io"], &["events"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(
            READ,
            &["extensions"],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
            ],
        ),
        rule(
            READ,
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
    ]
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..PolicyRule::default()
    }
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..PolicyRule::default()
    }
}

fn default_meta(name: &str, aggregate_labels: &[&str]) -> ObjectMeta {
    let mut labels = BTreeMap::from([(
        BOOTSTRAPPING_LABEL.0.to_owned(),
        BOOTSTRAPPING_LABEL.1.to_owned(),
    )]);
    for label in aggregate_labels {
        labels.insert((*label).to_owned(), "true".to_owned());
    }
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(
            AUTOUPDATE_ANNOTATION.0.to_owned(),
            AUTOUPDATE_ANNOTATION.1.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

fn plain(name: &str, aggregate_labels: &[&str], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: default_meta(name, aggregate_labels),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn aggregated(name: &str, aggregate_labels: &[&str], selects: &str) -> ClusterRole {
    ClusterRole {
        metadata: default_meta(name, aggregate_labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(selects.to_owned(), "true".to_owned())])),
                match_expressions: None,
            }]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::aggregation::aggregate_all;
    use crate::rbac::validation::{validate_cluster_role, validate_cluster_role_binding};

    fn find<'a>(roles: &'a [ClusterRole], name: &str) -> &'a ClusterRole {
        roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no role {name}"))
    }

    #[test]
    fn defaults_are_valid_and_labelled() {
        let roles = bootstrap_cluster_roles();
        for role in &roles {
            assert_eq!(
                validate_cluster_role(role, None),
                vec![],
                "{:?}",
                role.metadata.name
            );
            let labels = role.metadata.labels.clone().unwrap_or_default();
            assert_eq!(
                labels
                    .get("kubernetes.io/bootstrapping")
                    .map(String::as_str),
                Some("rbac-defaults")
            );
            let notes = role.metadata.annotations.clone().unwrap_or_default();
            assert_eq!(
                notes.get(AUTOUPDATE_ANNOTATION.0).map(String::as_str),
                Some("true")
            );
        }
        for binding in bootstrap_cluster_role_bindings() {
            assert_eq!(validate_cluster_role_binding(&binding, None), vec![]);
            let name = binding.metadata.name.clone();
            assert!(
                roles.iter().any(|r| r.metadata.name == name),
                "{name:?} has a role"
            );
        }
        let names: Vec<_> = roles
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        // Every list in every rule is sorted, as upstream's rule builder leaves it.
        for role in &roles {
            for rule in role.rules.iter().flatten() {
                for l in [
                    Some(rule.verbs.clone()),
                    rule.api_groups.clone(),
                    rule.resources.clone(),
                    rule.non_resource_urls.clone(),
                ] {
                    let l = l.unwrap_or_default();
                    let mut s = l.clone();
                    s.sort();
                    assert_eq!(l, s);
                }
            }
        }
    }

    #[test]
    fn aggregation_fills_admin_edit_view() {
        let mut roles = bootstrap_cluster_roles();
        let changed = aggregate_all(&mut roles);
        assert_eq!(changed.len(), 3, "{changed:?}");
        let view = find(&roles, "view").rules.clone().unwrap_or_default();
        let edit = find(&roles, "edit").rules.clone().unwrap_or_default();
        let admin = find(&roles, "admin").rules.clone().unwrap_or_default();
        assert_eq!(view, aggregate_to_view());
        // edit = aggregate-to-edit, then view (selected by name order: system:… < view).
        let mut want_edit = aggregate_to_edit();
        want_edit.extend(aggregate_to_view());
        assert_eq!(edit, want_edit);
        // admin = edit, then system:aggregate-to-admin ("edit" sorts first).
        let mut want_admin = want_edit.clone();
        want_admin.extend(aggregate_to_admin());
        assert_eq!(admin, want_admin);
    }
}
