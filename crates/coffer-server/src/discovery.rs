//! Discovery (`reference/k8s-api.md` §2): `/version`, `/api`, `/apis`, `/api/v1`, legacy and
//! aggregated (v2, v2beta1) forms, all generated from one table of served resources.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::negotiate::{self, DISCOVERY_V2, DISCOVERY_V2BETA1, Discovery};
use crate::state::AppState;

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

/// The core (`v1`) resources Coffer serves.
pub const CORE_V1: &[ResourceInfo] = &[
    ResourceInfo {
        name: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["cm"],
    },
    ResourceInfo {
        name: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        short_names: &["ns"],
    },
    ResourceInfo {
        name: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &[],
    },
    ResourceInfo {
        name: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["sa"],
    },
];

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
        Discovery::Legacy => {
            json_response(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
        }
        d => aggregated(d, Vec::new()),
    }
}

async fn api_v1() -> Response {
    json_response(json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": CORE_V1.iter().map(|r| {
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

/// The resource-table entry for `name` in the core group.
pub fn core_resource(name: &str) -> Option<&'static ResourceInfo> {
    CORE_V1.iter().find(|r| r.name == name)
}
