//! The review APIs (`reference/k8s-api.md` §9.4): SelfSubjectAccessReview,
//! SelfSubjectRulesReview, SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectReview and
//! TokenReview. Nothing is stored: the request is echoed with `status` filled, answered 201.
//! Who may create them is decided by RBAC like any request (the default
//! `system:basic-user` role lets every authenticated user create the self reviews).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use coffer_access::{NonResourceAttributes, RequestAttributes, ResourceAttributes};
use coffer_api::k8s_openapi::api::authorization::v1 as authz;
use coffer_api::{RequestObject, decode_request};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::authn::UserInfo;
use crate::body;
use crate::negotiate::{self, BodyFormat};
use crate::resources::{Target, json_ok};
use crate::state::AppState;
use crate::status::{ApiError, ApiResult};

/// Answers a POST to a review resource; `None` when `target` is not one.
pub async fn handle(
    state: &AppState,
    user: &UserInfo,
    target: &Target,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<ApiResult<Response>> {
    let result = match (
        target.group.as_str(),
        target.resource.as_str(),
        target.namespace(),
    ) {
        ("authorization.k8s.io", "selfsubjectaccessreviews", None) => {
            self_subject_access_review(state, user, headers, body)
        }
        ("authorization.k8s.io", "subjectaccessreviews", None) => {
            subject_access_review(state, headers, body)
        }
        ("authorization.k8s.io", "localsubjectaccessreviews", Some(ns)) => {
            local_subject_access_review(state, ns, headers, body)
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews", None) => {
            self_subject_rules_review(state, user, headers, body)
        }
        ("authentication.k8s.io", "selfsubjectreviews", None) => {
            Ok(self_subject_review(user, &target.version))
        }
        ("authentication.k8s.io", "tokenreviews", None) => {
            crate::tokens::token_review(state, headers, body).await
        }
        _ => return None,
    };
    Some(result)
}

/// Decodes a review body: protobuf (kubectl ≥ 1.32), JSON or YAML.
pub fn decode_body<T: RequestObject + DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<T> {
    let bad = |why: String| {
        ApiError::BadRequest(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf ({why})"
        ))
    };
    let mut value: serde_json::Value = match negotiate::body_format(headers)? {
        BodyFormat::Protobuf => return decode_request(body).map_err(|e| bad(e.to_string())),
        // Bodies carry tokens: errors keep positions and types, never quoted input.
        BodyFormat::Yaml => serde_yaml::from_slice(body).map_err(|e| bad(body::yaml_error(&e)))?,
        _ => serde_json::from_slice(body).map_err(|e| bad(body::json_error(&e)))?,
    };
    // Go reads `null` as the zero value; kubectl 1.27 sends `"audiences": null`. `status`
    // is the server's to fill, so whatever the client sent there is dropped.
    drop_nulls(&mut value);
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    serde_json::from_value(value).map_err(|e| bad(body::strip_values(&e.to_string())))
}

fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// 201 with the review echoed.
pub fn created<T: Serialize>(review: &T) -> Response {
    let mut response = json_ok(review);
    *response.status_mut() = StatusCode::CREATED;
    response
}

fn self_subject_access_review(
    state: &AppState,
    user: &UserInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut review: authz::SelfSubjectAccessReview = decode_body(headers, body)?;
    let attrs = attributes(
        review.spec.resource_attributes.as_ref(),
        review.spec.non_resource_attributes.as_ref(),
    )?;
    review.status = Some(decide(state, user, &attrs));
    Ok(created(&review))
}

fn subject_access_review(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut review: authz::SubjectAccessReview = decode_body(headers, body)?;
    let subject = subject(&review.spec)?;
    let attrs = attributes(
        review.spec.resource_attributes.as_ref(),
        review.spec.non_resource_attributes.as_ref(),
    )?;
    review.status = Some(decide(state, &subject, &attrs));
    Ok(created(&review))
}

fn local_subject_access_review(
    state: &AppState,
    namespace: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut review: authz::LocalSubjectAccessReview = decode_body(headers, body)?;
    let in_spec = review
        .spec
        .resource_attributes
        .as_ref()
        .and_then(|r| r.namespace.as_deref())
        .unwrap_or("");
    if in_spec != namespace {
        return Err(ApiError::BadRequest(format!(
            "spec.resourceAttributes.namespace must match metadata.namespace: {in_spec:?} != {namespace:?}"
        )));
    }
    let subject = subject(&review.spec)?;
    let attrs = attributes(
        review.spec.resource_attributes.as_ref(),
        review.spec.non_resource_attributes.as_ref(),
    )?;
    review.status = Some(decide(state, &subject, &attrs));
    review.metadata.namespace = Some(namespace.to_owned());
    Ok(created(&review))
}

fn self_subject_rules_review(
    state: &AppState,
    user: &UserInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut review: authz::SelfSubjectRulesReview = decode_body(headers, body)?;
    let namespace = review.spec.namespace.clone().unwrap_or_default();
    let rules = state.rbac.policy().rules_for(user, &namespace);
    review.status = Some(authz::SubjectRulesReviewStatus {
        resource_rules: rules.resource_rules,
        non_resource_rules: rules.non_resource_rules,
        incomplete: rules.incomplete,
        evaluation_error: (!rules.evaluation_error.is_empty()).then_some(rules.evaluation_error),
    });
    Ok(created(&review))
}

/// `kubectl auth whoami` (v1, and v1beta1 for kubectl 1.27).
fn self_subject_review(user: &UserInfo, version: &str) -> Response {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    created(&json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": info},
    }))
}

/// The subject of a SubjectAccessReview, taken as given (no `system:authenticated` is
/// added, as kube-apiserver does not add one).
fn subject(spec: &authz::SubjectAccessReviewSpec) -> ApiResult<UserInfo> {
    let user = spec.user.clone().unwrap_or_default();
    let groups = spec.groups.clone().unwrap_or_default();
    if user.is_empty() && groups.is_empty() {
        return Err(invalid_spec(
            "spec.user",
            "at least one of user or group must be specified",
        ));
    }
    Ok(UserInfo {
        name: user,
        uid: spec.uid.clone().unwrap_or_default(),
        groups,
        extra: spec.extra.clone().unwrap_or_default(),
    })
}

fn attributes(
    resource: Option<&authz::ResourceAttributes>,
    non_resource: Option<&authz::NonResourceAttributes>,
) -> ApiResult<RequestAttributes> {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    match (resource, non_resource) {
        (Some(r), None) => Ok(RequestAttributes::Resource(ResourceAttributes {
            verb: s(&r.verb),
            group: s(&r.group),
            version: s(&r.version),
            resource: s(&r.resource),
            subresource: s(&r.subresource),
            namespace: s(&r.namespace),
            name: s(&r.name),
        })),
        (None, Some(n)) => Ok(RequestAttributes::NonResource(NonResourceAttributes {
            verb: s(&n.verb),
            path: s(&n.path),
        })),
        (Some(_), Some(_)) => Err(invalid_spec(
            "spec.nonResourceAttributes",
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid_spec(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn invalid_spec(field: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("{field}: Invalid value: {why}"))
}

fn decide(
    state: &AppState,
    user: &UserInfo,
    attrs: &RequestAttributes,
) -> authz::SubjectAccessReviewStatus {
    let decision = state.rbac.policy().authorize(user, attrs);
    authz::SubjectAccessReviewStatus {
        allowed: decision.allowed,
        denied: None,
        reason: (!decision.reason.is_empty()).then_some(decision.reason),
        evaluation_error: None,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, header};
    use coffer_api::k8s_openapi::api::authentication::v1::TokenReview;

    use super::*;

    #[test]
    fn decode_errors_never_quote_the_token() {
        let canary = "tok-canary-8f2e";
        for (content_type, body) in [
            (
                "application/json",
                format!(r#"{{"spec":{{"token":["{canary}"]}}}}"#),
            ),
            ("application/yaml", format!("spec:\n  token: [{canary}]\n")),
            ("application/yaml", format!("spec: {{token: \"{canary}\"\n")),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            let err = decode_body::<TokenReview>(&headers, body.as_bytes())
                .expect_err("malformed review");
            let text = err.status().to_string();
            assert!(!text.contains(canary), "{content_type}: {text}");
        }
    }
}
