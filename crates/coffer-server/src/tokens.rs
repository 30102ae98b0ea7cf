//! TokenRequest (`POST .../serviceaccounts/{name}/token`, §9.5).

use axum::http::HeaderMap;
use axum::response::Response;

use crate::authn::UserInfo;
use crate::state::AppState;
use crate::status::{ApiError, ApiResult};

/// Issues a bound ServiceAccount token.
pub async fn token_request(
    _state: &AppState,
    _user: &UserInfo,
    _namespace: &str,
    _name: &str,
    _headers: &HeaderMap,
    _body: &[u8],
) -> ApiResult<Response> {
    Err(ApiError::UnknownPath)
}

/// TokenReview: validates a token for another system.
pub async fn token_review(
    _state: &AppState,
    _headers: &HeaderMap,
    _body: &[u8],
) -> ApiResult<Response> {
    Err(ApiError::UnknownPath)
}
