//! The review APIs (`reference/k8s-api.md` §9.4): SelfSubjectAccessReview,
//! SelfSubjectRulesReview, SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectReview and
//! TokenReview. Nothing is stored: the request is echoed with `status` filled, answered 201.

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::authn::UserInfo;
use crate::resources::Target;
use crate::state::AppState;
use crate::status::ApiResult;

/// Answers a POST to a review resource; `None` when `target` is not one.
pub async fn handle(
    _state: &AppState,
    _user: &UserInfo,
    _target: &Target,
    _headers: &HeaderMap,
    _body: &Bytes,
) -> Option<ApiResult<Response>> {
    None
}
