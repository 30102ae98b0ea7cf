//! OpenAPI (`reference/k8s-api.md` §3): `/openapi/v2` as an empty protobuf document (enough for
//! kubectl 1.27/1.28, which then use v3), and `/openapi/v3` with a group document for `api/v1`
//! that has the schemas of every served kind (for `kubectl explain`) and PATCH operations that
//! advertise `fieldValidation` (so kubectl relies on the server's validation).

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::discovery::{CORE_V1, ResourceInfo};
use crate::state::AppState;

/// Routes for `/openapi/v2` and `/openapi/v3`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi/v2", get(v2))
        .route("/swagger-2.0.0.pb-v1", get(v2))
        .route("/openapi/v3", get(v3_root))
        .route("/openapi/v3/api/v1", get(v3_core))
        .route(
            "/openapi/v3/apis/rbac.authorization.k8s.io/v1",
            get(v3_rbac),
        )
        .route("/openapi/v3/apis/{group}/{version}", get(v3_custom))
}

async fn v2() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        Vec::<u8>::new(),
    )
        .into_response()
}

/// A serialized group document and its hash (the `?hash=` and `ETag` kubectl caches by).
type Doc = (Vec<u8>, String);

fn finish(doc: &Value) -> Doc {
    let body = serde_json::to_vec(doc).expect("BUG: a Value always serializes");
    let hash = Sha256::digest(&body)
        .iter()
        .take(16)
        .map(|b| format!("{b:02X}"))
        .collect();
    (body, hash)
}

static CORE_DOC: LazyLock<Doc> = LazyLock::new(|| finish(&core_document()));
static RBAC_DOC: LazyLock<Doc> = LazyLock::new(|| finish(&crate::openapi_rbac::document()));

/// The custom group-versions with a document, and the documents.
const CUSTOM: [(&str, &str); 3] = [
    ("external-secrets.io", "v1"),
    ("external-secrets.io", "v1beta1"),
    ("coffer.dev", "v1"),
];
static CUSTOM_DOCS: LazyLock<Vec<Doc>> = LazyLock::new(|| {
    CUSTOM
        .iter()
        .map(|(g, v)| finish(&crate::openapi_custom::document(g, v)))
        .collect()
});

async fn v3_root() -> Response {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".to_owned(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", CORE_DOC.1)}),
    );
    paths.insert(
        "apis/rbac.authorization.k8s.io/v1".to_owned(),
        json!({"serverRelativeURL": format!(
            "/openapi/v3/apis/rbac.authorization.k8s.io/v1?hash={}", RBAC_DOC.1)}),
    );
    for ((group, version), doc) in CUSTOM.iter().zip(CUSTOM_DOCS.iter()) {
        paths.insert(
            format!("apis/{group}/{version}"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{group}/{version}?hash={}", doc.1)}),
        );
    }
    crate::discovery::json_response(json!({ "paths": paths }))
}

async fn v3_custom(
    axum::extract::Path((group, version)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match CUSTOM
        .iter()
        .position(|(g, v)| *g == group && *v == version)
    {
        Some(i) => serve_doc(&CUSTOM_DOCS[i], &headers),
        None => crate::status::ApiError::UnknownPath.into_response(),
    }
}

async fn v3_core(headers: HeaderMap) -> Response {
    serve_doc(&CORE_DOC, &headers)
}

async fn v3_rbac(headers: HeaderMap) -> Response {
    serve_doc(&RBAC_DOC, &headers)
}

fn serve_doc((body, hash): &Doc, headers: &HeaderMap) -> Response {
    let etag = format!("\"{hash}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "public, immutable".to_owned()),
        ],
        body.clone(),
    )
        .into_response()
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "version": version, "kind": kind}])
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
        ),
    ];
    if patch {
        p.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    p
}

/// Where a group's schemas live: (`""`, `io.k8s.api.core.v1`) or
/// (`rbac.authorization.k8s.io`, `io.k8s.api.rbac.v1`).
pub struct Api {
    /// The group.
    pub group: &'static str,
    /// The version.
    pub version: &'static str,
    /// The URL prefix, `/api/v1` or `/apis/<group>/v1`.
    pub prefix: &'static str,
    /// The schema name prefix.
    pub schema: &'static str,
}

fn op(api: &Api, kind: &str, action: &str, params: Vec<Value>) -> Value {
    json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": api.group, "version": api.version, "kind": kind},
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}.{kind}", api.schema)}}}}},
    })
}

/// The collection and item paths of one resource.
pub fn paths_for(api: &Api, r: &ResourceInfo) -> Vec<(String, Value)> {
    let prefix = api.prefix;
    let (collection, item) = if r.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", r.name),
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.name),
        )
    } else {
        (
            format!("{prefix}/{}", r.name),
            format!("{prefix}/{}/{{name}}", r.name),
        )
    };
    vec![
        (
            collection,
            json!({"get": op(api, r.kind, "list", vec![]), "post": op(api, r.kind, "post", write_params(false))}),
        ),
        (
            item,
            json!({
                "get": op(api, r.kind, "get", vec![]),
                "put": op(api, r.kind, "put", write_params(false)),
                "patch": op(api, r.kind, "patch", write_params(true)),
                "delete": op(api, r.kind, "delete", vec![]),
            }),
        ),
    ]
}

fn string_map(description: &str, byte: bool) -> Value {
    let items = if byte {
        json!({"type": "string", "format": "byte"})
    } else {
        json!({"type": "string"})
    };
    json!({"type": "object", "description": description, "additionalProperties": items})
}

/// `metadata`, a `$ref` to ObjectMeta.
pub fn meta_ref() -> Value {
    json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {},
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"})
}

fn type_meta_props() -> Value {
    json!({
        "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
        "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
        "metadata": meta_ref(),
    })
}

fn kind_schema(kind: &str, description: &str, extra: Value) -> Value {
    group_kind_schema("", "v1", kind, description, extra)
}

/// The schema of a top-level kind: type meta, metadata and `extra` properties.
pub fn group_kind_schema(
    group: &str,
    version: &str,
    kind: &str,
    description: &str,
    extra: Value,
) -> Value {
    let mut props = type_meta_props();
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "description": description, "properties": props, "x-kubernetes-group-version-kind": gvk(group, version, kind)})
}

fn core_document() -> Value {
    let mut paths = serde_json::Map::new();
    let api = Api {
        group: "",
        version: "v1",
        prefix: "/api/v1",
        schema: "io.k8s.api.core.v1",
    };
    for r in CORE_V1 {
        for (path, item) in paths_for(&api, r) {
            paths.insert(path, item);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Coffer", "version": "v1"},
        "paths": paths,
        "components": {"schemas": {
            "io.k8s.api.core.v1.Secret": kind_schema("Secret",
                "Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.",
                json!({
                    "data": string_map("Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4", true),
                    "stringData": string_map("stringData allows specifying non-binary secret data in string form. It is provided as a write-only input field for convenience. All keys and values are merged into the data field on write, overwriting any existing values. The stringData field is never output when reading from the API.", false),
                    "type": {"type": "string", "description": "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"},
                    "immutable": {"type": "boolean", "description": "Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified). If not set to true, the field can be modified at any time. Defaulted to nil."},
                })),
            "io.k8s.api.core.v1.ConfigMap": kind_schema("ConfigMap", "ConfigMap holds configuration data for pods to consume.", json!({
                "data": string_map("Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'.", false),
                "binaryData": string_map("BinaryData contains the binary data. Each key must consist of alphanumeric characters, '-', '_' or '.'.", true),
                "immutable": {"type": "boolean", "description": "Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified)."},
            })),
            "io.k8s.api.core.v1.Namespace": kind_schema("Namespace", "Namespace provides a scope for Names. Use of multiple namespaces is optional.", json!({
                "spec": {"type": "object", "description": "Spec defines the behavior of the Namespace.", "properties": {"finalizers": {"type": "array", "items": {"type": "string"}}}},
                "status": {"type": "object", "description": "Status describes the current status of a Namespace.", "properties": {"phase": {"type": "string"}}},
            })),
            "io.k8s.api.core.v1.ServiceAccount": kind_schema("ServiceAccount", "ServiceAccount binds together: * a name, understood by users, and perhaps by peripheral systems, for an identity * a principal that can be authenticated and authorized * a set of secrets", json!({
                "automountServiceAccountToken": {"type": "boolean", "description": "AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted."},
                "imagePullSecrets": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "secrets": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}}},
            })),
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": object_meta_schema(),
        }},
    })
}

/// The ObjectMeta schema every document carries.
pub fn object_meta_schema() -> Value {
    json!({
                "type": "object",
                "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
                "properties": {
                    "name": {"type": "string", "description": "Name must be unique within a namespace."},
                    "generateName": {"type": "string", "description": "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."},
                    "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique."},
                    "labels": string_map("Map of string keys and values that can be used to organize and categorize (scope and select) objects.", false),
                    "annotations": string_map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata.", false),
                    "uid": {"type": "string"},
                    "resourceVersion": {"type": "string"},
                    "creationTimestamp": {"type": "string", "format": "date-time"},
                    "deletionTimestamp": {"type": "string", "format": "date-time"},
                    "finalizers": {"type": "array", "items": {"type": "string"}},
                    "ownerReferences": {"type": "array", "items": {"type": "object"}},
                    "managedFields": {"type": "array", "items": {"type": "object"}},
                },
    })
}
