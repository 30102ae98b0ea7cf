//! Subresources: `namespaces/{name}/status` and `/finalize` (§9.1) and
//! `serviceaccounts/{name}/token` (TokenRequest, §9.5).

use axum::http::HeaderMap;
use axum::response::Response;
use coffer_api::k8s_openapi::api::core::v1::Namespace;

use crate::authn::UserInfo;
use crate::body::{self, FieldValidation};
use crate::kinds::ApiKind;
use crate::negotiate::{self, PatchType};
use crate::resources::{ApiQuery, Target, json_ok};
use crate::state::AppState;
use crate::status::{ApiError, ApiResult};

/// GET on a subresource: `namespaces/{name}/status`, `<custom>/{name}/status`.
pub async fn get(state: &AppState, target: &Target, headers: &HeaderMap) -> ApiResult<Response> {
    if let ("", "secrets", Some("versions"), Some(ns)) = (
        target.group.as_str(),
        target.resource.as_str(),
        target.subresource.as_deref(),
        target.namespace(),
    ) {
        let versions = crate::history::versions(state, ns, target.name()).await?;
        return Ok(json_ok(&versions));
    }
    if target.subresource.as_deref() == Some("status") && namespace_subresource(target).is_none() {
        return crate::dispatch!(target, |K| {
            if K::STATUS_SUBRESOURCE {
                negotiate::output(headers, false)?;
                let obj: K = state.get(target.namespace(), target.name()).await?;
                Ok(json_ok(&obj))
            } else {
                Err(ApiError::UnknownPath)
            }
        });
    }
    match namespace_subresource(target) {
        Some(("status", name)) => {
            negotiate::output(headers, false)?;
            let ns: Namespace = state.get(None, name).await?;
            Ok(json_ok(&ns))
        }
        _ => Err(ApiError::UnknownPath),
    }
}

/// PUT on a subresource: `namespaces/{name}/status` replaces the status only,
/// `namespaces/{name}/finalize` the spec's finalizers only; the rest of the body is ignored,
/// as kube-apiserver's status and finalize strategies do.
pub async fn put(
    state: &AppState,
    target: &Target,
    q: &ApiQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let Some((sub, name)) = namespace_subresource(target) else {
        if target.subresource.as_deref() == Some("status") {
            return crate::dispatch!(target, |K| put_status::<K>(state, target, q, headers, body)
                .await);
        }
        return Err(ApiError::UnknownPath);
    };
    if sub != "status" && sub != "finalize" {
        return Err(ApiError::UnknownPath);
    }
    let dry_run = q.dry_run()?;
    let sent = body::decode::<Namespace>(headers, body, FieldValidation::Ignore)?.object;
    let (updated, _) = state
        .update::<Namespace, _>(None, name, dry_run, |mut current| {
            if sub == "status" {
                current.status.clone_from(&sent.status);
            } else {
                let spec = current.spec.get_or_insert_with(Default::default);
                spec.finalizers = sent
                    .spec
                    .as_ref()
                    .and_then(|s| s.finalizers.clone())
                    .filter(|f| !f.is_empty());
            }
            Ok(current)
        })
        .await?;
    Ok(json_ok(&updated))
}

/// PATCH on `<custom>/{name}/status`: the patch applies to the whole object; only the
/// resulting `status` is kept.
pub async fn patch(
    state: &AppState,
    target: &Target,
    q: &ApiQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    if target.subresource.as_deref() != Some("status") {
        return Err(ApiError::UnknownPath);
    }
    crate::dispatch!(target, |K| {
        if !K::STATUS_SUBRESOURCE {
            return Err(ApiError::UnknownPath);
        }
        let kind = negotiate::patch_type(headers)?;
        let patch: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
        let (updated, _) = state
            .update::<K, _>(
                target.namespace(),
                target.name(),
                q.dry_run()?,
                |mut current| {
                    let doc = serde_json::to_value(&current).map_err(ApiError::internal)?;
                    let doc = match kind {
                        PatchType::Json => coffer_api::apply_json_patch(&doc, &patch),
                        _ => coffer_api::apply_merge_patch(&doc, &patch),
                    }
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                    let patched = body::decode_value::<K>(doc, FieldValidation::Ignore)?.object;
                    current.set_status(patched.status());
                    Ok(current)
                },
            )
            .await?;
        Ok(json_ok(&updated))
    })
}

async fn put_status<K: ApiKind>(
    state: &AppState,
    target: &Target,
    q: &ApiQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    if !K::STATUS_SUBRESOURCE {
        return Err(ApiError::UnknownPath);
    }
    let sent = body::decode::<K>(headers, body, FieldValidation::Ignore)?.object;
    let (updated, _) = state
        .update::<K, _>(
            target.namespace(),
            target.name(),
            q.dry_run()?,
            |mut current| {
                current.set_status(sent.status());
                Ok(current)
            },
        )
        .await?;
    Ok(json_ok(&updated))
}

/// POST on a subresource: `serviceaccounts/{name}/token`.
pub async fn post(
    state: &AppState,
    user: &UserInfo,
    target: &Target,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    match (
        target.group.as_str(),
        target.resource.as_str(),
        target.subresource.as_deref(),
        target.namespace.as_deref(),
    ) {
        ("", "secrets", Some("rollback"), Some(namespace)) => {
            let restored = crate::history::rollback(state, namespace, target.name(), body).await?;
            Ok(json_ok(&restored))
        }
        ("", "serviceaccounts", Some("token"), Some(namespace)) => {
            crate::tokens::token_request(state, user, namespace, target.name(), headers, body).await
        }
        _ => Err(ApiError::UnknownPath),
    }
}

/// `(subresource, name)` for `/api/v1/namespaces/{name}/{subresource}`.
fn namespace_subresource(target: &Target) -> Option<(&str, &str)> {
    match (
        target.group.as_str(),
        target.resource.as_str(),
        target.namespace.as_deref(),
        target.subresource.as_deref(),
        target.name.as_deref(),
    ) {
        ("", "namespaces", None, Some(sub), Some(name)) => Some((sub, name)),
        _ => None,
    }
}
