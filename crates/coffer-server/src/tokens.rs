//! ServiceAccount tokens (`reference/k8s-api.md` §9.5, §13.4): TokenRequest issues bound JWTs,
//! the authenticator accepts them while their ServiceAccount (and bound object) still exists
//! with the same uid, and TokenReview lets other systems (Vault's kubernetes auth, say) check
//! a token. Tokens are never logged; the audit log caps TokenRequest and TokenReview at
//! `Metadata`, so their bodies never reach it.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::response::Response;
use coffer_access::serviceaccount::{
    BoundKind, BoundObject, user_info, validate_expiration_capped,
};
use coffer_access::{ServiceAccountToken, TokenError, TokenSpec};
use coffer_api::k8s_openapi::api::authentication::v1 as authn;
use coffer_api::k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::authn::UserInfo;
use crate::reviews::{created, decode_body};
use crate::state::AppState;
use crate::status::{ApiError, ApiResult, Cause};

/// The user a verified ServiceAccount token stands for, once its ServiceAccount — and the
/// Secret it is bound to, if any — still exist with the uids in the token. Anything else is
/// 401, as kube-apiserver answers for a token of a deleted ServiceAccount.
pub async fn service_account_user(
    state: &AppState,
    token: &ServiceAccountToken,
) -> ApiResult<UserInfo> {
    let sa: Option<ServiceAccount> = state.try_get(Some(&token.namespace), &token.name).await?;
    let live = |uid: Option<&String>, want: &str| uid.is_some_and(|u| u == want);
    if !sa.is_some_and(|sa| live(sa.metadata.uid.as_ref(), &token.uid)) {
        return Err(ApiError::Unauthorized);
    }
    if let Some(bound) = &token.bound {
        let alive = match bound.kind {
            BoundKind::Secret => {
                let secret: Option<Secret> =
                    state.try_get(Some(&token.namespace), &bound.name).await?;
                secret.is_some_and(|s| {
                    live(s.metadata.uid.as_ref(), &bound.uid)
                        && s.metadata.deletion_timestamp.is_none()
                })
            }
            // Coffer serves no Pods or Nodes, so it never issues tokens bound to them; one
            // from another issuer sharing our key cannot be checked and is refused.
            _ => false,
        };
        if !alive {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(user_info(token))
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token` (`kubectl create token`).
pub async fn token_request(
    state: &AppState,
    _user: &UserInfo,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut request: authn::TokenRequest = decode_body(headers, body)?;
    let sa: ServiceAccount = state.get(Some(namespace), name).await?;
    let seconds = validate_expiration_capped(
        request.spec.expiration_seconds,
        state.service_accounts.max_expiration_seconds,
    )
    .map_err(|why| ApiError::Invalid {
        kind: "TokenRequest.authentication.k8s.io".to_owned(),
        name: String::new(),
        causes: vec![Cause {
            reason: "FieldValueInvalid".to_owned(),
            field: "spec.expirationSeconds".to_owned(),
            message: format!(
                "Invalid value: {}: {why}",
                request.spec.expiration_seconds.unwrap_or_default()
            ),
        }],
    })?;
    let bound_object = match &request.spec.bound_object_ref {
        Some(reference) => Some(bind(state, namespace, name, reference).await?),
        None => None,
    };
    if request.spec.audiences.is_empty() {
        request
            .spec
            .audiences
            .clone_from(&state.service_accounts.api_audiences);
    }
    let issued = state
        .service_accounts
        .issuer
        .issue(&TokenSpec {
            namespace: namespace.to_owned(),
            sa_name: name.to_owned(),
            sa_uid: sa.metadata.uid.clone().unwrap_or_default(),
            audiences: request.spec.audiences.clone(),
            expiration_seconds: seconds,
            bound_object,
            now: SystemTime::now(),
        })
        .map_err(ApiError::internal)?;
    request.spec.expiration_seconds = Some(seconds);
    request.metadata.name = Some(name.to_owned());
    request.metadata.namespace = Some(namespace.to_owned());
    let expires = issued
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    request.status = Some(authn::TokenRequestStatus {
        token: issued.token.expose_secret().to_owned(),
        expiration_timestamp: Time(
            coffer_api::k8s_openapi::jiff::Timestamp::from_second(expires)
                .map_err(ApiError::internal)?,
        ),
    });
    Ok(created(&request))
}

/// Checks a `boundObjectRef` (§9.5): only Secrets can exist here; the uid must match.
async fn bind(
    state: &AppState,
    namespace: &str,
    sa_name: &str,
    reference: &authn::BoundObjectReference,
) -> ApiResult<BoundObject> {
    let kind = reference.kind.as_deref().unwrap_or("");
    let object = reference.name.clone().unwrap_or_default();
    let Some(kind) = BoundKind::parse(kind) else {
        return Err(ApiError::BadRequest(format!(
            "cannot bind token for serviceaccount {sa_name:?} to object of type {kind}"
        )));
    };
    if kind != BoundKind::Secret {
        let resource = if kind == BoundKind::Pod {
            "pods"
        } else {
            "nodes"
        };
        return Err(ApiError::BadRequest(format!(
            "cannot bind token to {resource} {object:?}: Coffer serves no {resource}"
        )));
    }
    let secret: Secret = state.get(Some(namespace), &object).await?;
    let uid = secret.metadata.uid.clone().unwrap_or_default();
    if let Some(want) = reference.uid.as_deref().filter(|u| !u.is_empty())
        && want != uid
    {
        return Err(ApiError::Conflict {
            resource: crate::status::GroupResource {
                group: "",
                resource: "secrets",
            },
            name: object,
            why: format!(
                "the UID in the bound object reference ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
            ),
        });
    }
    Ok(BoundObject {
        kind,
        name: object,
        uid,
    })
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: the server's bearer-token
/// authenticators (token file, ServiceAccount JWTs) judge `spec.token` for
/// `spec.audiences` (default: the API audiences). The token is not echoed back.
pub async fn token_review(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut review: authn::TokenReview = decode_body(headers, body)?;
    let token = review.spec.token.take().unwrap_or_default();
    let audiences = review.spec.audiences.clone();
    let status = match review_token(state, &token, audiences.as_deref()).await {
        Ok((user, audiences)) => authn::TokenReviewStatus {
            authenticated: Some(true),
            user: Some(authn::UserInfo {
                username: Some(user.name),
                uid: (!user.uid.is_empty()).then_some(user.uid),
                groups: Some(user.groups),
                extra: (!user.extra.is_empty()).then_some(user.extra),
            }),
            audiences: Some(audiences),
            error: None,
        },
        Err(why) => authn::TokenReviewStatus {
            authenticated: Some(false),
            user: None,
            audiences: None,
            error: Some(why),
        },
    };
    review.status = Some(status);
    Ok(created(&review))
}

async fn review_token(
    state: &AppState,
    token: &str,
    audiences: Option<&[String]>,
) -> Result<(UserInfo, Vec<String>), String> {
    if token.is_empty() {
        return Err("token is required".to_owned());
    }
    if let Some(user) = state.authn.static_user(token) {
        let audiences = audiences.map_or_else(
            || state.service_accounts.api_audiences.clone(),
            <[String]>::to_vec,
        );
        return Ok((UserInfo::clone(user), audiences));
    }
    let verified = state
        .service_accounts
        .authenticator
        .authenticate_at(token, audiences, SystemTime::now())
        .map_err(|e| match e {
            TokenError::NotAServiceAccountToken => "invalid bearer token".to_owned(),
            other => format!("invalid bearer token, {other}"),
        })?;
    let user = service_account_user(state, &verified).await.map_err(|_| {
        "invalid bearer token, service account or bound object no longer exists".to_owned()
    })?;
    Ok((user, verified.audiences))
}
