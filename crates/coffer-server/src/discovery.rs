//! Discovery (`reference/k8s-api.md` §2): `/version`, `/api`, `/apis`, `/api/v1`, legacy and
//! aggregated (v2, v2beta1) forms, all generated from one table of served resources.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::negotiate::{self, DISCOVERY_V2, DISCOVERY_V2BETA1, Discovery};
use crate::state::AppState;
use crate::status::ApiError;

/// One served resource, as discovery describes it.
#[derive(Clone, Copy, Debug)]
pub struct ResourceInfo {
    /// Plural name, e.g. `secrets`.
    pub name: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Short names (`ns`, `sa`, `cm`).
    pub short_names: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Only `create` (review APIs, TokenRequest).
const CREATE_ONLY: &[&str] = &["create"];

const RBAC_VERBS: &[&str] = ALL_VERBS;

/// One served group-version and its resources.
#[derive(Clone, Copy, Debug)]
pub struct GroupVersion {
    /// The group, empty for the core group.
    pub group: &'static str,
    /// The version.
    pub version: &'static str,
    /// The resources, sorted by name.
    pub resources: &'static [ResourceInfo],
}

impl GroupVersion {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn resource(
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short_names: &'static [&'static str],
) -> ResourceInfo {
    ResourceInfo {
        name,
        singular,
        kind,
        namespaced,
        verbs,
        short_names,
    }
}

/// The core (`v1`) resources Coffer serves.
pub const CORE_V1: &[ResourceInfo] = &[
    resource(
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        ALL_VERBS,
        &["cm"],
    ),
    resource(
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        &["ns"],
    ),
    resource("secrets", "secret", "Secret", true, ALL_VERBS, &[]),
    resource(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        ALL_VERBS,
        &["sa"],
    ),
];

const RBAC_V1: &[ResourceInfo] = &[
    resource(
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        RBAC_VERBS,
        &[],
    ),
    resource(
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        RBAC_VERBS,
        &[],
    ),
    resource(
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        RBAC_VERBS,
        &[],
    ),
    resource("roles", "role", "Role", true, RBAC_VERBS, &[]),
];

const AUTHORIZATION_V1: &[ResourceInfo] = &[
    resource(
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        true,
        CREATE_ONLY,
        &[],
    ),
    resource(
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        CREATE_ONLY,
        &[],
    ),
    resource(
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        false,
        CREATE_ONLY,
        &[],
    ),
    resource(
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
        CREATE_ONLY,
        &[],
    ),
];

const AUTHENTICATION_V1: &[ResourceInfo] = &[
    resource(
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        false,
        CREATE_ONLY,
        &[],
    ),
    resource(
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        false,
        CREATE_ONLY,
        &[],
    ),
];

const AUTHENTICATION_V1BETA1: &[ResourceInfo] = &[resource(
    "selfsubjectreviews",
    "selfsubjectreview",
    "SelfSubjectReview",
    false,
    CREATE_ONLY,
    &[],
)];

const ESO: &[ResourceInfo] = &[
    resource(
        "clusterexternalsecrets",
        "clusterexternalsecret",
        "ClusterExternalSecret",
        false,
        ALL_VERBS,
        &["ces"],
    ),
    resource(
        "clustersecretstores",
        "clustersecretstore",
        "ClusterSecretStore",
        false,
        ALL_VERBS,
        &["css"],
    ),
    resource(
        "externalsecrets",
        "externalsecret",
        "ExternalSecret",
        true,
        ALL_VERBS,
        &["es"],
    ),
    resource(
        "secretstores",
        "secretstore",
        "SecretStore",
        true,
        ALL_VERBS,
        &["ss"],
    ),
];

const COFFER_V1: &[ResourceInfo] = &[resource(
    "secretrotations",
    "secretrotation",
    "SecretRotation",
    true,
    ALL_VERBS,
    &["srot"],
)];

/// Every served group-version; within a group the preferred version comes first.
pub const GROUP_VERSIONS: &[GroupVersion] = &[
    GroupVersion {
        group: "",
        version: "v1",
        resources: CORE_V1,
    },
    GroupVersion {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resources: RBAC_V1,
    },
    GroupVersion {
        group: "authorization.k8s.io",
        version: "v1",
        resources: AUTHORIZATION_V1,
    },
    GroupVersion {
        group: "authentication.k8s.io",
        version: "v1",
        resources: AUTHENTICATION_V1,
    },
    GroupVersion {
        group: "authentication.k8s.io",
        version: "v1beta1",
        resources: AUTHENTICATION_V1BETA1,
    },
    GroupVersion {
        group: "external-secrets.io",
        version: "v1",
        resources: ESO,
    },
    GroupVersion {
        group: "external-secrets.io",
        version: "v1beta1",
        resources: ESO,
    },
    GroupVersion {
        group: "coffer.dev",
        version: "v1",
        resources: COFFER_V1,
    },
];

/// The served group-version `group/version`.
pub fn group_version(group: &str, version: &str) -> Option<&'static GroupVersion> {
    GROUP_VERSIONS
        .iter()
        .find(|gv| gv.group == group && gv.version == version)
}

/// The discovery entry of a resource in a group (any served version).
pub fn find_resource(group: &str, name: &str) -> Option<&'static ResourceInfo> {
    GROUP_VERSIONS
        .iter()
        .filter(|gv| gv.group == group)
        .flat_map(|gv| gv.resources)
        .find(|r| r.name == name)
}

/// The named groups (all but core), each with its versions, preferred first.
fn named_groups() -> Vec<(&'static str, Vec<&'static GroupVersion>)> {
    let mut groups: Vec<(&'static str, Vec<&'static GroupVersion>)> = Vec::new();
    for gv in GROUP_VERSIONS.iter().filter(|gv| !gv.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == gv.group) {
            Some((_, versions)) => versions.push(gv),
            None => groups.push((gv.group, vec![gv])),
        }
    }
    groups
}

/// The Kubernetes version Coffer reports: the newest kubectl it is tested with.
pub const KUBE_MINOR: &str = "33";

/// Routes for discovery and health.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/api", get(api))
        .route("/api/", get(api))
        .route("/apis", get(apis))
        .route("/apis/", get(apis))
        .route("/api/v1", get(api_v1))
        .route("/api/v1/", get(api_v1))
        .route("/apis/{group}", get(api_group))
        .route("/apis/{group}/", get(api_group))
        .route("/apis/{group}/{version}", get(api_group_version))
        .route("/apis/{group}/{version}/", get(api_group_version))
}

async fn ok() -> &'static str {
    "ok"
}

async fn version() -> Response {
    json_response(json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-coffer.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn api(headers: HeaderMap) -> Response {
    match negotiate::discovery(&headers) {
        Discovery::Legacy => json_response(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        })),
        d => aggregated(
            d,
            vec![json!({
                "metadata": {"creationTimestamp": null},
                "versions": [{"version": "v1", "freshness": "Current", "resources": aggregated_resources("", "v1", CORE_V1)}],
            })],
        ),
    }
}

async fn apis(headers: HeaderMap) -> Response {
    match negotiate::discovery(&headers) {
        Discovery::Legacy => json_response(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": named_groups().iter().map(|(g, versions)| group_json(g, versions)).collect::<Vec<_>>(),
        })),
        d => aggregated(
            d,
            named_groups()
                .iter()
                .map(|(g, versions)| {
                    json!({
                        "metadata": {"name": g, "creationTimestamp": null},
                        "versions": versions.iter().map(|gv| json!({
                            "version": gv.version,
                            "freshness": "Current",
                            "resources": aggregated_resources(gv.group, gv.version, gv.resources),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
    }
}

fn group_json(group: &str, versions: &[&GroupVersion]) -> Value {
    let version =
        |gv: &GroupVersion| json!({"groupVersion": gv.api_version(), "version": gv.version});
    json!({
        "name": group,
        "versions": versions.iter().map(|gv| version(gv)).collect::<Vec<_>>(),
        "preferredVersion": version(versions[0]),
    })
}

async fn api_v1() -> Response {
    resource_list(&GROUP_VERSIONS[0])
}

async fn api_group(Path(group): Path<String>) -> Response {
    match named_groups().into_iter().find(|(g, _)| *g == group) {
        Some((g, versions)) => {
            let mut body = group_json(g, &versions);
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            json_response(body)
        }
        None => ApiError::UnknownPath.into_response(),
    }
}

async fn api_group_version(Path((group, version)): Path<(String, String)>) -> Response {
    match group_version(&group, &version) {
        Some(gv) => resource_list(gv),
        None => ApiError::UnknownPath.into_response(),
    }
}

fn resource_list(gv: &GroupVersion) -> Response {
    json_response(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv.api_version(),
        "resources": gv.resources.iter().map(|r| {
            let mut v = json!({
                "name": r.name,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            v
        }).collect::<Vec<_>>(),
    }))
}

fn aggregated_resources(group: &str, version: &str, resources: &[ResourceInfo]) -> Vec<Value> {
    resources
        .iter()
        .map(|r| {
            let mut v = json!({
                "resource": r.name,
                "responseKind": {"group": group, "version": version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            v
        })
        .collect()
}

fn aggregated(version: Discovery, items: Vec<Value>) -> Response {
    let (api_version, content_type) = match version {
        Discovery::V2 => ("apidiscovery.k8s.io/v2", DISCOVERY_V2),
        _ => ("apidiscovery.k8s.io/v2beta1", DISCOVERY_V2BETA1),
    };
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    });
    let mut response = json_response(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response with `Content-Type: application/json`.
pub fn json_response(body: Value) -> Response {
    let bytes = serde_json::to_vec(&body).expect("BUG: a Value always serializes");
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
