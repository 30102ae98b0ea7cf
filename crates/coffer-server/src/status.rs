//! The one place errors become Kubernetes `Status` responses (`reference/k8s-api.md` §10).
//!
//! Handlers return [`ApiError`]; [`ApiError::into_response`] picks the code, the reason and the
//! wording kube-apiserver uses. An internal failure answers with a generic message; its cause is
//! logged with the request's audit id, never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The resource an error is about: plural resource name and API group, as in kube-apiserver's
/// messages (`secrets "x" not found`, `roles.rbac.authorization.k8s.io "r" not found`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupResource<'a> {
    /// API group, empty for the core group.
    pub group: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
}

impl GroupResource<'_> {
    /// `resource` or `resource.group`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// One field problem inside a 422 `Invalid` (a `StatusCause`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: String,
    /// The text without the leading field path.
    pub message: String,
    /// The field path, e.g. `data[a b]`.
    pub field: String,
}

impl Cause {
    /// `<field>: <message>`, kube-apiserver's rendering of one field error.
    pub fn text(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// Every way an API request can fail. Each variant documents its HTTP code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 `BadRequest` with a free-text message (decode errors, selector errors, mismatches).
    #[error("{0}")]
    BadRequest(String),
    /// 401 `Unauthorized`: a credential was presented and is not valid, or none was.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 `Forbidden`.
    #[error("forbidden")]
    Forbidden {
        /// `(group, resource)` if the request was for a resource (the resource may carry a
        /// `/subresource`, which kube-apiserver's messages keep out of the qualified name).
        resource: Option<(String, String)>,
        /// The object name, if any.
        name: Option<String>,
        /// The reason text after `is forbidden: `.
        reason: String,
    },
    /// 404 `NotFound` for an object.
    #[error("not found")]
    NotFound {
        /// The resource.
        resource: GroupResource<'static>,
        /// The object name.
        name: String,
    },
    /// 404 for a path the server does not serve.
    #[error("the server could not find the requested resource")]
    UnknownPath,
    /// 405 `MethodNotAllowed`.
    #[error("{verb} is not supported on resources of kind {resource:?}")]
    MethodNotAllowed {
        /// The verb.
        verb: &'static str,
        /// The resource.
        resource: GroupResource<'static>,
    },
    /// 406 `NotAcceptable`.
    #[error("only the following media types are accepted: {0}")]
    NotAcceptable(String),
    /// 409 `AlreadyExists`.
    #[error("already exists")]
    AlreadyExists {
        /// The resource.
        resource: GroupResource<'static>,
        /// The object name.
        name: String,
    },
    /// 409 `Conflict`.
    #[error("conflict")]
    Conflict {
        /// The resource.
        resource: GroupResource<'static>,
        /// The object name.
        name: String,
        /// Why, e.g. the "object has been modified" text.
        why: String,
    },
    /// 409 `Conflict` from server-side apply: fields other managers own would change
    /// (`Apply failed with 1 conflict: conflict with "m" using v1: .data.k`). The causes are
    /// `FieldManagerConflict`s naming the fields, never their values.
    #[error("{message}")]
    ApplyConflict {
        /// The whole text, as `coffer_api::Conflicts` renders it.
        message: String,
        /// One cause per field: message `conflict with "m" using v1`, field `.data.k`.
        causes: Vec<Cause>,
    },
    /// 410 `Expired` (a compacted resourceVersion or continue token).
    #[error("{0}")]
    Expired(String),
    /// 410 `Expired` for a continue token whose snapshot was compacted (§12.2): kube's fixed
    /// text, and in the Status's `metadata.continue` a token resuming from the latest state.
    #[error("{}", crate::listing::CONTINUE_EXPIRED)]
    ContinueExpired {
        /// The inconsistent continuation token.
        fresh: String,
    },
    /// 413 `RequestEntityTooLarge`.
    #[error("{0}")]
    TooLarge(String),
    /// 415 `UnsupportedMediaType`.
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// 422 `Invalid` with field causes.
    #[error("invalid")]
    Invalid {
        /// `Kind` or `Kind.group`, e.g. `Secret`.
        kind: String,
        /// The object name (may be empty).
        name: String,
        /// The field problems.
        causes: Vec<Cause>,
    },
    /// 403 `Forbidden` from namespace lifecycle: the namespace is being deleted.
    #[error("namespace terminating")]
    NamespaceTerminating {
        /// The resource being created.
        resource: GroupResource<'static>,
        /// The object name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// 504 `Timeout`: a LIST asked for a resourceVersion newer than the store's (kube's
    /// `storage.NewTooLargeResourceVersionError`, with a `ResourceVersionTooLarge` cause).
    #[error("Timeout: Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// The resourceVersion asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },
    /// 503 `ServiceUnavailable`: storage cannot be reached.
    #[error("storage unavailable")]
    Unavailable(String),
    /// 500 `InternalError`. The text is logged, never returned.
    #[error("internal error")]
    Internal(String),
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

/// The "object has been modified" text of a 409 Conflict.
pub const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

impl ApiError {
    /// A 500 whose cause is logged but not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    /// The HTTP status code.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::NamespaceTerminating { .. } => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound { .. } | ApiError::UnknownPath => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => StatusCode::CONFLICT,
            ApiError::Expired(_) | ApiError::ContinueExpired { .. } => StatusCode::GONE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLargeResourceVersion { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Status` object for this error.
    pub fn status(&self) -> Value {
        let (reason, message, details) = match self {
            ApiError::BadRequest(m) => ("BadRequest", m.clone(), None),
            ApiError::Unauthorized => ("Unauthorized", "Unauthorized".to_owned(), None),
            ApiError::Forbidden { resource, name, reason } => {
                let qualified = resource.as_ref().map(|(group, resource)| {
                    let resource = resource.split('/').next().unwrap_or_default();
                    (GroupResource { group, resource }.qualified(), group, resource)
                });
                let message = match (&qualified, name) {
                    (Some((q, _, _)), Some(n)) => {
                        format!("{q} {} is forbidden: {reason}", coffer_api::go_quote(n))
                    }
                    (Some((q, _, _)), None) => format!("{q} is forbidden: {reason}"),
                    (None, _) => format!("forbidden: {reason}"),
                };
                let details = qualified.map(|(_, group, resource)| {
                    details(GroupResource { group, resource }, name.as_deref())
                });
                ("Forbidden", message, details)
            }
            ApiError::NamespaceTerminating { resource, name, namespace } => (
                "Forbidden",
                format!(
                    "{} {name:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    resource.qualified()
                ),
                Some(details(*resource, Some(name))),
            ),
            ApiError::NotFound { resource, name } => (
                "NotFound",
                format!("{} {name:?} not found", resource.qualified()),
                Some(details(*resource, Some(name))),
            ),
            ApiError::UnknownPath => ("NotFound", self.to_string(), Some(json!({}))),
            ApiError::MethodNotAllowed { verb, resource } => (
                "MethodNotAllowed",
                format!("{verb} is not supported on resources of kind {:?}", resource.qualified()),
                None,
            ),
            ApiError::NotAcceptable(_) => ("NotAcceptable", self.to_string(), None),
            ApiError::AlreadyExists { resource, name } => (
                "AlreadyExists",
                format!("{} {name:?} already exists", resource.qualified()),
                Some(details(*resource, Some(name))),
            ),
            ApiError::Conflict { resource, name, why } => (
                "Conflict",
                format!("Operation cannot be fulfilled on {} {name:?}: {why}", resource.qualified()),
                Some(details(*resource, Some(name))),
            ),
            ApiError::ApplyConflict { message, causes } => (
                "Conflict",
                message.clone(),
                Some(json!({
                    "causes": causes.iter().map(|c| json!({
                        "reason": c.reason, "message": c.message, "field": c.field,
                    })).collect::<Vec<_>>(),
                })),
            ),
            ApiError::Expired(m) => ("Expired", m.clone(), None),
            ApiError::ContinueExpired { .. } => ("Expired", self.to_string(), None),
            ApiError::TooLarge(m) => ("RequestEntityTooLarge", m.clone(), None),
            ApiError::UnsupportedMediaType(_) => ("UnsupportedMediaType", self.to_string(), None),
            ApiError::Invalid { kind, name, causes } => {
                let mut texts: Vec<String> = Vec::new();
                for c in causes {
                    let t = c.text();
                    if !texts.contains(&t) {
                        texts.push(t);
                    }
                }
                let joined = if texts.len() == 1 {
                    texts.remove(0)
                } else {
                    format!("[{}]", texts.join(", "))
                };
                let (group, bare_kind) = match kind.split_once('.') {
                    Some((k, g)) => (Some(g), k),
                    None => (None, kind.as_str()),
                };
                let mut d = json!({
                    "name": name,
                    "kind": bare_kind,
                    "causes": causes.iter().map(|c| json!({
                        "reason": c.reason, "message": c.message, "field": c.field,
                    })).collect::<Vec<_>>(),
                });
                if let Some(g) = group {
                    d["group"] = json!(g);
                }
                ("Invalid", format!("{kind} {name:?} is invalid: {joined}"), Some(d))
            }
            ApiError::TooLargeResourceVersion { .. } => (
                "Timeout",
                self.to_string(),
                Some(json!({
                    "causes": [{
                        "reason": "ResourceVersionTooLarge",
                        "message": "Too large resource version",
                    }],
                    "retryAfterSeconds": 1,
                })),
            ),
            ApiError::Unavailable(_) => (
                "ServiceUnavailable",
                "the storage backend is unavailable; try again".to_owned(),
                None,
            ),
            ApiError::Internal(_) => (
                "InternalError",
                "Internal error occurred: the server could not complete the request; see the server log"
                    .to_owned(),
                None,
            ),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": self.code().as_u16(),
        });
        if let Some(d) = details {
            status["details"] = d;
        }
        if let ApiError::ContinueExpired { fresh } = self {
            status["metadata"]["continue"] = json!(fresh);
        }
        status
    }
}

fn details(resource: GroupResource<'_>, name: Option<&str>) -> Value {
    let mut d = json!({ "kind": resource.resource });
    if let Some(n) = name {
        d["name"] = json!(n);
    }
    if !resource.group.is_empty() {
        d["group"] = json!(resource.group);
    }
    d
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) | ApiError::Unavailable(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let body = serde_json::to_vec(&self.status()).expect("BUG: a Status always serializes");
        let mut response = (self.code(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<coffer_storage::Error> for ApiError {
    fn from(e: coffer_storage::Error) -> Self {
        use coffer_storage::Error as E;
        match e {
            E::Compacted {
                requested,
                compacted,
            } => ApiError::Expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            E::FutureRevision { requested, current } => ApiError::TooLargeResourceVersion {
                requested: requested.get(),
                current: current.get(),
            },
            E::ValueTooLarge { size, limit, .. } => ApiError::TooLarge(format!(
                "the object is {size} bytes once encoded and encrypted, over the storage limit of {limit} bytes"
            )),
            E::Unavailable(reason) => ApiError::Unavailable(reason),
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: GroupResource = GroupResource {
        group: "",
        resource: "secrets",
    };

    #[test]
    fn not_found_matches_kube_apiserver() {
        let s = ApiError::NotFound {
            resource: SECRETS,
            name: "nonexist".into(),
        }
        .status();
        assert_eq!(
            s,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"secrets \"nonexist\" not found","reason":"NotFound",
                "details":{"name":"nonexist","kind":"secrets"},"code":404})
        );
    }

    #[test]
    fn invalid_joins_causes() {
        let cause = |f: &str| Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: f.into(),
        };
        let e = ApiError::Invalid {
            kind: "Secret".into(),
            name: "s".into(),
            causes: vec![cause("data[username]"), cause("data[password]")],
        };
        assert_eq!(
            e.status()["message"],
            "Secret \"s\" is invalid: [data[username]: Required value, data[password]: Required value]"
        );
        assert_eq!(e.code(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn forbidden_wording() {
        let e = ApiError::Forbidden {
            resource: Some((String::new(), "secrets".to_owned())),
            name: None,
            reason: "User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"".into(),
        };
        assert_eq!(
            e.status()["message"],
            "secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal("decrypt failed for key /registry/secrets/a/b: tag mismatch");
        let text = e.status().to_string();
        assert!(!text.contains("tag mismatch"));
        assert_eq!(e.code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
