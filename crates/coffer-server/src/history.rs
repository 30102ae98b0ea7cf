//! Secret versions (issue 9, item 1): every change to a Secret's `data` or `type` is kept as a
//! numbered version, encrypted like the Secret itself (the `secrets` entry of the
//! EncryptionConfiguration, the history's own storage key as AAD), up to `--secret-history`
//! versions per Secret. Stage labels follow AWS Secrets Manager: the newest version is
//! `current`, the one before it `previous`. Deleting a Secret keeps its versions for
//! `--secret-recovery-window` (soft delete) so it can be restored; then they are purged.
//!
//! The recorder follows the storage watch of `secrets` (with the value before each change), so
//! it sees every write however it was made, and several servers on one etcd record each
//! version once: an entry remembers the storage revision it came from and is not added twice.
//!
//! API: `GET .../secrets/{name}/versions` (needs `get` on the Secret) lists the versions with
//! their values; `POST .../secrets/{name}/rollback` with `{"version": N}` (needs `update`)
//! makes version N current again as a new version — or recreates a deleted Secret.

use std::collections::BTreeMap;
use std::time::Duration;

use coffer_api::CodecError;
use coffer_api::k8s_openapi::ByteString;
use coffer_api::k8s_openapi::api::core::v1::Secret;
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use coffer_api::k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use coffer_storage::{EventKind, Revision};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kinds::ApiKind;
use crate::state::AppState;
use crate::status::{ApiError, ApiResult, Cause};

/// How long the history of a deleted Secret is kept, and how many versions, by default.
#[derive(Clone, Copy, Debug)]
pub struct HistoryOptions {
    /// Versions kept per Secret (`--secret-history`); 0 turns the history off.
    pub limit: usize,
    /// How long a deleted Secret can be restored (`--secret-recovery-window`).
    pub recovery_window: Duration,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            limit: 10,
            recovery_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The versions of one Secret (stored; never served as an object of its own).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretHistory {
    /// Name and namespace of the Secret.
    pub metadata: ObjectMeta,
    /// Oldest first.
    #[serde(default)]
    pub versions: Vec<Version>,
    /// When the Secret was deleted (RFC 3339), while it is soft-deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

/// One version of a Secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// 1, 2, 3 ... per Secret, never reused.
    pub version: u64,
    /// The storage revision that wrote it (dedups recorders).
    pub revision: u64,
    /// When it was written (RFC 3339).
    pub created: String,
    /// The Secret's `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// The Secret's `data`.
    #[serde(default)]
    pub data: BTreeMap<String, ByteString>,
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("version", &self.version)
            .field("revision", &self.revision)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Resource for SecretHistory {
    const API_VERSION: &'static str = "coffer.dev/v1";
    const GROUP: &'static str = "coffer.dev";
    const KIND: &'static str = "SecretHistory";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "secrethistories";
    type Scope = NamespaceResourceScope;
}

impl Metadata for SecretHistory {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl ApiKind for SecretHistory {
    const RESOURCE: &'static str = "secrethistories";
    const API_GROUP: &'static str = "coffer.dev";
    const ENCRYPTED_AS: (&'static str, &'static str) = ("", "secrets");

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("BUG: a history always serializes")
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::Json {
            line: e.line(),
            column: e.column(),
        })
    }

    fn validate(&self, _old: Option<&Self>) -> Vec<Cause> {
        Vec::new()
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        &[]
    }

    fn cells(&self) -> Vec<Value> {
        Vec::new()
    }
}

/// Follows the Secrets watch and records versions; purges expired soft-deleted histories.
pub fn start(state: &AppState, options: HistoryOptions) {
    if options.limit == 0 {
        return;
    }
    let recorder = state.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = follow(&recorder, options).await {
                tracing::warn!(error = %e.status()["message"], "secret history: watch ended; resuming");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600).min(options.recovery_window));
        loop {
            tick.tick().await;
            if let Err(e) = purge_expired(&sweeper, options.recovery_window).await {
                tracing::warn!(error = %e.status()["message"], "secret history: purge failed");
            }
        }
    });
}

async fn follow(state: &AppState, options: HistoryOptions) -> ApiResult<()> {
    let start = state.store.current_revision().await?.next();
    let prefix = state.prefix_of::<Secret>(None);
    let mut events = state.store.watch(&prefix, start).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        let revision = event.revision();
        match event.kind {
            EventKind::Put => {
                let secret: Secret = state.decode(&event.kv).await?;
                let before: Option<Secret> = match &event.prev_kv {
                    Some(prev) => Some(state.decode(prev).await?),
                    None => None,
                };
                if before
                    .as_ref()
                    .is_none_or(|b| b.data != secret.data || b.type_ != secret.type_)
                {
                    record(state, &secret, revision, options.limit).await?;
                }
            }
            EventKind::Delete => {
                if let Some(prev) = &event.prev_kv {
                    let gone: Secret = state.decode(prev).await?;
                    mark_deleted(state, &gone).await?;
                }
            }
        }
    }
    Ok(())
}

fn names(secret: &Secret) -> (String, String) {
    (
        secret.metadata.namespace.clone().unwrap_or_default(),
        secret.metadata.name.clone().unwrap_or_default(),
    )
}

async fn record(
    state: &AppState,
    secret: &Secret,
    revision: Revision,
    limit: usize,
) -> ApiResult<()> {
    let (ns, name) = names(secret);
    let version = |number: u64| Version {
        version: number,
        revision: revision.get(),
        created: crate::kinds::now().to_string(),
        r#type: secret.type_.clone(),
        data: secret.data.clone().unwrap_or_default(),
    };
    // One read-modify-write when the history exists (the common case); created otherwise. A
    // create that loses to another server's recorder falls back to the update.
    let append = || {
        state.update::<SecretHistory, _>(Some(&ns), &name, false, |mut h| {
            if h.versions.iter().any(|v| v.revision == revision.get()) {
                return Ok(h);
            }
            let next = h.versions.last().map_or(1, |v| v.version + 1);
            h.versions.push(version(next));
            let excess = h.versions.len().saturating_sub(limit);
            h.versions.drain(..excess);
            h.deleted = None;
            Ok(h)
        })
    };
    match append().await {
        Err(ApiError::NotFound { .. }) => {}
        other => return other.map(|_| ()),
    }
    let history = SecretHistory {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        versions: vec![version(1)],
        deleted: None,
    };
    match state.create(Some(&ns), history, false).await {
        Err(ApiError::AlreadyExists { .. }) => append().await.map(|_| ()),
        other => other.map(|_| ()),
    }
}

async fn mark_deleted(state: &AppState, secret: &Secret) -> ApiResult<()> {
    let (ns, name) = names(secret);
    match state
        .update::<SecretHistory, _>(Some(&ns), &name, false, |mut h| {
            h.deleted
                .get_or_insert_with(|| crate::kinds::now().to_string());
            Ok(h)
        })
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn purge_expired(state: &AppState, window: Duration) -> ApiResult<()> {
    let page = state
        .list::<SecretHistory>(
            None,
            &crate::registry::ListRequest {
                limit: 0,
                start_after: None,
                filter: &|h: &SecretHistory| h.deleted.is_some(),
            },
        )
        .await?;
    let now = crate::kinds::now();
    for h in page.items {
        let expired = h
            .deleted
            .as_deref()
            .and_then(|d| d.parse::<coffer_api::k8s_openapi::jiff::Timestamp>().ok())
            .is_some_and(|d| {
                now.as_second() - d.as_second()
                    >= i64::try_from(window.as_secs()).unwrap_or(i64::MAX)
            });
        if expired {
            let (ns, name) = (
                h.metadata.namespace.clone(),
                h.metadata.name.clone().unwrap_or_default(),
            );
            let _ = state
                .delete::<SecretHistory>(ns.as_deref(), &name, None, None, false)
                .await;
        }
    }
    Ok(())
}

/// `GET .../secrets/{name}/versions`: newest first, with stage labels.
pub async fn versions(state: &AppState, namespace: &str, name: &str) -> ApiResult<Value> {
    let history = history_of(state, namespace, name).await?;
    let newest = history.versions.last().map(|v| v.version);
    let items: Vec<Value> = history
        .versions
        .iter()
        .rev()
        .enumerate()
        .map(|(i, v)| {
            let stages: Vec<&str> = match (i, history.deleted.is_some()) {
                (0, false) => vec!["current"],
                (1, false) => vec!["previous"],
                _ => vec![],
            };
            json!({"version": v.version, "stages": stages, "created": v.created, "type": v.r#type, "data": v.data})
        })
        .collect();
    Ok(json!({
        "kind": "SecretVersionList",
        "apiVersion": "coffer.dev/v1",
        "metadata": {"name": name, "namespace": namespace, "deleted": history.deleted},
        "currentVersion": newest.filter(|_| history.deleted.is_none()),
        "items": items,
    }))
}

/// `POST .../secrets/{name}/rollback` `{"version": N}`: version N's data and type become the
/// Secret's again (a new version); a soft-deleted Secret is recreated.
pub async fn rollback(
    state: &AppState,
    namespace: &str,
    name: &str,
    body: &[u8],
) -> ApiResult<Secret> {
    #[derive(Deserialize)]
    struct Request {
        version: u64,
    }
    let request: Request = serde_json::from_slice(body).map_err(|_| {
        ApiError::BadRequest(
            "the body must be {\"version\": N} with the version to restore".to_owned(),
        )
    })?;
    let history = history_of(state, namespace, name).await?;
    let Some(target) = history
        .versions
        .iter()
        .find(|v| v.version == request.version)
    else {
        let known: Vec<String> = history
            .versions
            .iter()
            .map(|v| v.version.to_string())
            .collect();
        return Err(ApiError::BadRequest(format!(
            "secret {name:?} has no version {}; versions kept: {}",
            request.version,
            known.join(", ")
        )));
    };
    let data = (!target.data.is_empty()).then(|| target.data.clone());
    if history.deleted.is_some()
        && state
            .try_get::<Secret>(Some(namespace), name)
            .await?
            .is_none()
    {
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            data,
            type_: target.r#type.clone(),
            ..Secret::default()
        };
        crate::resources::set_system_fields(&mut secret.metadata);
        return state.create(Some(namespace), secret, false).await;
    }
    let (updated, _) = state
        .update::<Secret, _>(Some(namespace), name, false, |mut s| {
            if s.immutable == Some(true) {
                return Err(ApiError::BadRequest(format!(
                    "secret {name:?} is immutable; it cannot be rolled back"
                )));
            }
            s.data.clone_from(&data);
            s.type_.clone_from(&target.r#type);
            s.metadata.resource_version = None;
            Ok(s)
        })
        .await?;
    Ok(updated)
}

async fn history_of(state: &AppState, namespace: &str, name: &str) -> ApiResult<SecretHistory> {
    state
        .try_get::<SecretHistory>(Some(namespace), name)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            resource: Secret::group_resource(),
            name: name.to_owned(),
        })
}
