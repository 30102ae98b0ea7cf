//! Server-side apply (`PATCH` with `application/apply-patch+yaml`, `reference/k8s-api.md`
//! §5.14, §11.4) and the `managedFields` upkeep of every other write. The merge, ownership and
//! conflict rules are `coffer_api::apply` / `coffer_api::update_managed_fields`; this module
//! reads the options, picks the manager name and runs the result through the same admission,
//! validation and storage path as any other create or update.

use axum::http::{HeaderMap, header};
use axum::response::Response;
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use coffer_api::{ApplyError, ApplySchema, FIELD_MANAGER_MAX_LEN, FieldError, FieldManager};
use serde_json::Value;

use super::{
    Admission, ApiQuery, add_warnings, finish_update, json_ok, require_active_namespace,
    revision_of, set_system_fields, store_created,
};
use crate::authn::UserInfo;
use crate::body::{self, FieldValidation};
use crate::kinds::ApiKind;
use crate::state::AppState;
use crate::status::{ApiError, ApiResult, Cause};

/// Who owns the fields a write changes.
#[derive(Clone, Copy)]
pub(super) enum Ownership<'a> {
    /// A create, PUT or non-apply PATCH by this manager (operation `Update`).
    Update(&'a str),
    /// A server-side apply: the object already carries its new `managedFields`.
    Applied,
}

/// The merge and ownership rules of `K`.
fn schema<K: ApiKind>() -> ApplySchema {
    ApplySchema::builtin(K::API_GROUP, K::kind())
        .unwrap_or_else(|| ApplySchema::custom(K::STATUS_SUBRESOURCE))
}

fn now() -> Time {
    Time(crate::kinds::now())
}

/// The manager of a non-apply write: `fieldManager`, else the User-Agent up to its first `/`
/// with unprintable characters dropped (`kubectl`, `OpenAPI-Generator`), as kube's
/// `managerOrUserAgent`. `options` names the options kind in the 422 (`CreateOptions`, ...).
/// `force` is refused here: it belongs to apply patches.
pub(super) fn update_manager(
    q: &ApiQuery,
    headers: &HeaderMap,
    options: &str,
) -> ApiResult<String> {
    let mut errors = Vec::new();
    if q.force.is_some() && options == "PatchOptions" {
        errors.push(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    let manager = q.field_manager.clone().unwrap_or_default();
    errors.extend(manager_errors(&manager));
    options_invalid(options, errors)?;
    if !manager.is_empty() {
        return Ok(manager);
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut out = String::new();
    for c in agent.split('/').next().unwrap_or("").chars() {
        if !is_printable(c) {
            continue;
        }
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LEN {
            break;
        }
        out.push(c);
    }
    Ok(out)
}

/// Sets `new`'s `managedFields` for a write by `manager` (`current` is `None` on create).
pub(super) fn record_update<K: ApiKind>(
    current: Option<&K>,
    new: &mut K,
    manager: &str,
) -> ApiResult<()> {
    let live = current
        .map(serde_json::to_value)
        .transpose()
        .map_err(ApiError::internal)?;
    let after = serde_json::to_value(&*new).map_err(ApiError::internal)?;
    let version = K::served_api_version();
    let who = FieldManager {
        manager,
        api_version: &version,
        time: now(),
    };
    new.metadata_mut().managed_fields =
        coffer_api::update_managed_fields(schema::<K>(), live.as_ref(), &after, &who);
    Ok(())
}

/// PATCH with `application/apply-patch+yaml`: creates the object when it is missing (201),
/// else merges the configuration into it (200).
pub(super) async fn patch<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    name: &str,
    q: &ApiQuery,
    body: &[u8],
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let manager = q.field_manager.clone().unwrap_or_default();
    let mut errors = Vec::new();
    if manager.is_empty() {
        errors.push(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        ));
    }
    errors.extend(manager_errors(&manager));
    options_invalid("PatchOptions", errors)?;
    let force = match q.force.as_deref() {
        None | Some("" | "false" | "False" | "0") => false,
        Some("true" | "True" | "1") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "force: Invalid value: {other:?}: not a boolean"
            )));
        }
    };
    let validation = FieldValidation::parse(q.field_validation.as_deref())?;
    let config = parse_config::<K>(body, namespace, name)?;
    let version = K::served_api_version();
    let who = FieldManager {
        manager: &manager,
        api_version: &version,
        time: now(),
    };
    // A create can lose to a concurrent create, an update to a concurrent delete: try again
    // with the other.
    for _ in 0..3 {
        let exists = state.try_get::<K>(namespace, name).await?.is_some();
        let result = if exists {
            update_applied::<K>(
                state, user, namespace, name, &config, &who, force, validation, dry_run,
            )
            .await
        } else {
            create_applied::<K>(
                state, user, namespace, name, &config, &who, force, validation, dry_run,
            )
            .await
        };
        match result {
            Err(ApiError::AlreadyExists { .. }) if !exists => continue,
            Err(ApiError::NotFound { .. }) if exists => continue,
            other => return other,
        }
    }
    Err(ApiError::Conflict {
        resource: K::group_resource(),
        name: name.to_owned(),
        why: crate::status::MODIFIED.to_owned(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn create_applied<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    name: &str,
    config: &Value,
    who: &FieldManager<'_>,
    force: bool,
    validation: FieldValidation,
    dry_run: bool,
) -> ApiResult<Response> {
    let merged = coffer_api::apply(schema::<K>(), None, config, who, force)
        .map_err(|e| apply_error::<K>(e, namespace, name))?;
    let decoded = body::decode_value::<K>(merged, validation)?;
    let mut obj = decoded.object;
    obj.metadata_mut().namespace = namespace.map(str::to_owned);
    if let Some(ns) = namespace {
        require_active_namespace::<K>(state, ns, name).await?;
    }
    set_system_fields(obj.metadata_mut());
    obj.normalise(None);
    store_created(state, user, namespace, obj, dry_run, &decoded.warnings).await
}

#[allow(clippy::too_many_arguments)]
async fn update_applied<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    name: &str,
    config: &Value,
    who: &FieldManager<'_>,
    force: bool,
    validation: FieldValidation,
    dry_run: bool,
) -> ApiResult<Response> {
    let ctx = Admission::new(state, user, namespace, "update");
    let mut warnings = Vec::new();
    let (updated, _) = state
        .update::<K, _>(namespace, name, dry_run, |current| {
            let live = serde_json::to_value(&current).map_err(ApiError::internal)?;
            let merged = coffer_api::apply(schema::<K>(), Some(&live), config, who, force)
                .map_err(|e| apply_error::<K>(e, namespace, name))?;
            let decoded = body::decode_value::<K>(merged, validation)?;
            warnings = decoded.warnings;
            finish_update(
                decoded.object,
                &current,
                namespace,
                name,
                &ctx,
                Ownership::Applied,
            )
        })
        .await?;
    state.rbac.wait_for::<K>(revision_of(&updated)).await;
    let mut response = json_ok(&updated);
    add_warnings(&mut response, &warnings);
    Ok(response)
}

/// The applied configuration: YAML or JSON, for this kind, name and namespace.
fn parse_config<K: ApiKind>(body: &[u8], namespace: Option<&str>, name: &str) -> ApiResult<Value> {
    if body.len() > body::MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(
            "Request entity too large: limit is 3145728".to_owned(),
        ));
    }
    // Positions only: the body may hold secret values.
    let config: Value = serde_yaml::from_slice(body).map_err(|e| {
        ApiError::BadRequest(match e.location() {
            Some(l) => format!(
                "error decoding YAML: invalid YAML at line {}, column {}",
                l.line(),
                l.column()
            ),
            None => "error decoding YAML: invalid YAML".to_owned(),
        })
    })?;
    if !config.is_object() {
        return Err(ApiError::BadRequest(
            "error decoding YAML: the body must be an object".to_owned(),
        ));
    }
    let api_version = config["apiVersion"].as_str().unwrap_or("");
    let kind = config["kind"].as_str().unwrap_or("");
    if api_version != K::served_api_version() || kind != K::kind() {
        let gv = if api_version.contains('/') {
            api_version.to_owned()
        } else {
            format!("/{api_version}")
        };
        return Err(ApiError::BadRequest(format!(
            "invalid object type: {gv}, Kind={kind}"
        )));
    }
    let meta = &config["metadata"];
    if let Some(body_name) = meta["name"].as_str()
        && body_name != name
    {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(url), Some(body_ns)) = (namespace, meta["namespace"].as_str())
        && !body_ns.is_empty()
        && body_ns != url
    {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_owned(),
        ));
    }
    Ok(config)
}

fn apply_error<K: ApiKind>(e: ApplyError, namespace: Option<&str>, name: &str) -> ApiError {
    match e {
        ApplyError::Conflicts(c) => ApiError::ApplyConflict {
            message: c.to_string(),
            causes: c
                .causes()
                .map(|(message, field)| Cause {
                    reason: "FieldManagerConflict".to_owned(),
                    message,
                    field,
                })
                .collect(),
        },
        ApplyError::Schema(e) => {
            let gv = K::served_api_version();
            let gv = if gv.contains('/') {
                gv.into_owned()
            } else {
                format!("/{gv}")
            };
            ApiError::BadRequest(format!(
                "failed to create typed patch object ({}/{name}; {gv}, Kind={}): {e}",
                namespace.unwrap_or(""),
                K::kind()
            ))
        }
        other => ApiError::BadRequest(other.to_string()),
    }
}

/// kube's `ValidateFieldManager`: at most 128 bytes, printable characters only.
fn manager_errors(manager: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LEN {
        errors.push(FieldError::too_long("fieldManager", FIELD_MANAGER_MAX_LEN));
    }
    for (i, c) in manager.chars().enumerate() {
        if !is_printable(c) {
            errors.push(FieldError::invalid(
                "fieldManager",
                coffer_api::FieldValue::Str(manager.to_owned()),
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errors
}

/// A 422 on the request options (`PatchOptions.meta.k8s.io "" is invalid: ...`).
fn options_invalid(options: &str, errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind: format!("{options}.meta.k8s.io"),
        name: String::new(),
        causes: errors
            .iter()
            .map(|e| Cause {
                reason: e.cause_reason().to_owned(),
                message: e.message(),
                field: e.field.clone(),
            })
            .collect(),
    })
}

/// Go's `unicode.IsPrint` for the characters a manager name can hold.
fn is_printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace())
}
