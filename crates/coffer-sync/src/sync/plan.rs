//! The reconciler's decision, as a pure function: from (ExternalSecret, what was fetched,
//! the Secret as it is, now) to a [`Plan`]: the Secret write (or none), the new status and
//! when to look again. No I/O, so every branch is tested without a server.
//!
//! Better than ESO: unchanged data never rewrites the Secret (no churn, no consumer
//! restarts); a provider failure never touches the Secret and retries with capped
//! exponential backoff; only `deletionPolicy: Delete` with the remote data gone deletes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use sha3::Digest as _;

use super::resolve::{Desired, SyncError};
use crate::types::{
    ANNOTATION_DATA_HASH, Condition, CreationPolicy, DeletionPolicy, ExternalSecret,
    ExternalSecretStatus, LABEL_CREATED_BY, LABEL_MANAGED, RefreshPolicy, message, reason,
};

/// What to do with the target Secret.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SecretWrite {
    /// Nothing: it already holds the data, or the policy says not to write.
    None,
    /// Create this Secret.
    Create(Box<Secret>),
    /// Replace the Secret with this one (same resourceVersion: a compare-and-swap).
    Update(Box<Secret>),
    /// Delete the Secret (`deletionPolicy: Delete` and the remote data is gone).
    Delete,
}

/// The reconciler's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The Secret write.
    pub write: SecretWrite,
    /// The ExternalSecret's new status.
    pub status: ExternalSecretStatus,
    /// Whether the sync succeeded (drives backoff).
    pub ok: bool,
    /// When to reconcile again (`None`: only on a change of the ExternalSecret).
    pub requeue_after: Option<Duration>,
}

/// First retry after a failure; doubled per consecutive failure up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between retries after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait after `failures` consecutive failures (1 = first failure).
pub fn backoff(failures: u32) -> Duration {
    BASE_BACKOFF
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Time to the next refresh boundary: refreshes align to multiples of the interval since the
/// Unix epoch, so every ExternalSecret with the same interval refreshes in the same window
/// and shares one fetch per remote secret.
pub fn until_next_window(interval: Duration, now: SystemTime) -> Duration {
    let secs = interval.as_secs().max(1);
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let into = Duration::from_nanos((since.as_nanos() % (u128::from(secs) * 1_000_000_000)) as u64);
    Duration::from_secs(secs) - into
}

/// How long ago the current refresh window began.
pub fn since_window_start(interval: Duration, now: SystemTime) -> Duration {
    Duration::from_secs(interval.as_secs().max(1)) - until_next_window(interval, now)
}

/// Whether `es` should fetch now, per `refreshPolicy` (ESO's `shouldRefresh`).
pub fn should_refresh(es: &ExternalSecret, secret_exists: bool) -> bool {
    let synced = es
        .status
        .as_ref()
        .and_then(|s| s.synced_resource_version.as_deref());
    let current = sync_version(es);
    match es.spec.refresh_policy {
        RefreshPolicy::CreatedOnce => !(secret_exists && synced.is_some()),
        RefreshPolicy::OnChange => synced != Some(current.as_str()) || !secret_exists,
        RefreshPolicy::Periodic => true,
    }
}

/// ESO's `syncedResourceVersion`: `<generation>-<hash of labels and annotations>`, here the
/// generation (or resourceVersion when the server sets no generation).
pub fn sync_version(es: &ExternalSecret) -> String {
    match es.metadata.generation {
        Some(g) => g.to_string(),
        None => es.metadata.resource_version.clone().unwrap_or_default(),
    }
}

/// ESO's data hash: SHA3-224 of Go's `%+v` of the `map[string][]byte` (`esutils.ObjectHash`).
pub fn data_hash(data: &BTreeMap<String, ByteString>) -> String {
    let mut text = String::from("map[");
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(k);
        text.push_str(":[");
        let bytes: Vec<String> = v.0.iter().map(u8::to_string).collect();
        text.push_str(&bytes.join(" "));
        text.push(']');
    }
    text.push(']');
    sha3::Sha3_224::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decides what to do. `failures` counts consecutive failures before this one.
pub fn plan(
    es: &ExternalSecret,
    outcome: Result<Desired, SyncError>,
    existing: Option<&Secret>,
    now: SystemTime,
    failures: u32,
) -> Plan {
    let now_time = Time(k8s_openapi::jiff::Timestamp::try_from(now).unwrap_or_default());
    let old = es.status.clone().unwrap_or_default();
    let interval = es.spec.refresh_interval.as_duration();
    let periodic = es.spec.refresh_policy == RefreshPolicy::Periodic && !interval.is_zero();
    let next_ok = periodic.then(|| until_next_window(interval, now));
    let fail = |msg: String| Plan {
        write: SecretWrite::None,
        status: with_ready(&old, false, reason::SECRET_SYNCED_ERROR, msg, &now_time),
        ok: false,
        requeue_after: Some(backoff(failures + 1)),
    };
    let done = |write, reason: &str, msg: &str| {
        let mut status = with_ready(&old, true, reason, msg.to_owned(), &now_time);
        status.refresh_time = Some(now_time.clone());
        status.synced_resource_version = Some(sync_version(es));
        status.binding = Some(crate::types::Binding {
            name: es.target_name().to_owned(),
        });
        Plan {
            write,
            status,
            ok: true,
            requeue_after: next_ok,
        }
    };
    let policy = es.spec.target.creation_policy;
    let desired = match outcome {
        Ok(d) => d,
        Err(e) if e.is_not_found() && existing.is_some() => {
            return match es.spec.target.deletion_policy {
                DeletionPolicy::Delete
                    if owned_by(existing, es) || policy != CreationPolicy::Owner =>
                {
                    done(
                        SecretWrite::Delete,
                        reason::SECRET_DELETED,
                        message::DELETED,
                    )
                }
                _ => done(
                    SecretWrite::None,
                    reason::SECRET_SYNCED,
                    message::SYNCED_RETAIN,
                ),
            };
        }
        Err(e) => return fail(format!("{}: {e}", message::ERROR_GET_DATA)),
    };
    if let Some(bad) = desired.data.keys().find(|k| !valid_key(k)) {
        return fail(format!(
            "{}: key {bad:?} is not a valid Secret key (letters, digits, '-', '_', '.'); add a rewrite",
            message::ERROR_UPDATE
        ));
    }
    if let Some(s) = existing
        && policy == CreationPolicy::Owner
        && let Some(other) =
            controller_owner(s).filter(|o| Some(o.uid.as_str()) != es.metadata.uid.as_deref())
    {
        return fail(format!(
            "{}: {} {}",
            message::ERROR_IS_OWNED,
            other.kind,
            other.name
        ));
    }
    let target = match (policy, existing) {
        (CreationPolicy::None, _) => {
            return done(SecretWrite::None, reason::SECRET_SYNCED, message::SYNCED);
        }
        (CreationPolicy::Merge, None) => {
            let mut p = done(SecretWrite::None, reason::SECRET_MISSING, message::MISSING);
            p.status = with_ready(
                &old,
                false,
                reason::SECRET_MISSING,
                message::MISSING.to_owned(),
                &now_time,
            );
            return p;
        }
        (_, existing) => build_secret(es, &desired, existing),
    };
    match existing {
        None => done(
            SecretWrite::Create(Box::new(target)),
            reason::SECRET_SYNCED,
            message::SYNCED,
        ),
        Some(cur) if same_content(cur, &target) => {
            done(SecretWrite::None, reason::SECRET_SYNCED, message::SYNCED)
        }
        Some(_) if es.spec.target.immutable => {
            fail(format!("{}, target is immutable", message::ERROR_UPDATE))
        }
        Some(_) => done(
            SecretWrite::Update(Box::new(target)),
            reason::SECRET_SYNCED,
            message::SYNCED,
        ),
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn controller_owner(s: &Secret) -> Option<&OwnerReference> {
    s.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

fn owned_by(s: Option<&Secret>, es: &ExternalSecret) -> bool {
    s.and_then(controller_owner)
        .is_some_and(|o| Some(o.uid.as_str()) == es.metadata.uid.as_deref())
}

fn with_ready(
    old: &ExternalSecretStatus,
    ok: bool,
    reason: &str,
    msg: String,
    now: &Time,
) -> ExternalSecretStatus {
    let mut status = old.clone();
    let status_text = if ok { "True" } else { "False" };
    let prev = status.conditions.iter().find(|c| c.type_ == "Ready");
    let transition = match prev {
        Some(c) if c.status == status_text => c.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.push(Condition {
        type_: "Ready".into(),
        status: status_text.into(),
        reason: Some(reason.into()),
        message: Some(msg),
        last_transition_time: transition,
    });
    status
}

/// The Secret as it should be: existing metadata kept, ESO's labels and annotations set,
/// data per policy (Merge/CreateOrMerge keep other keys).
fn build_secret(es: &ExternalSecret, d: &Desired, existing: Option<&Secret>) -> Secret {
    let mut s = existing.cloned().unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(es.target_name().to_owned()),
            namespace: Some(es.namespace().to_owned()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    });
    let policy = es.spec.target.creation_policy;
    let mut data: BTreeMap<String, ByteString> = if matches!(
        policy,
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge
    ) {
        s.data.clone().unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    for (k, v) in &d.data {
        data.insert(k.clone(), ByteString(v.expose_secret().to_vec()));
    }
    let labels = s.metadata.labels.get_or_insert_with(BTreeMap::new);
    let src_labels = d
        .labels
        .clone()
        .unwrap_or_else(|| es.metadata.labels.clone().unwrap_or_default());
    labels.extend(src_labels);
    labels.insert(LABEL_MANAGED.into(), "true".into());
    if policy == CreationPolicy::Owner {
        labels.insert(LABEL_CREATED_BY.into(), created_by(es.name()));
    }
    let annotations = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let src_ann = d.annotations.clone().unwrap_or_else(|| {
        let mut a = es.metadata.annotations.clone().unwrap_or_default();
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
        a
    });
    annotations.extend(src_ann);
    annotations.insert(ANNOTATION_DATA_HASH.into(), data_hash(&data));
    if policy == CreationPolicy::Owner
        && let Some(uid) = &es.metadata.uid
    {
        let refs = s.metadata.owner_references.get_or_insert_with(Vec::new);
        refs.retain(|o| o.uid != *uid);
        refs.push(OwnerReference {
            api_version: es
                .api_version
                .clone()
                .unwrap_or_else(|| "external-secrets.io/v1".into()),
            kind: "ExternalSecret".into(),
            name: es.name().to_owned(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
    }
    if existing.is_none() || d.type_.is_some() {
        s.type_ = Some(d.type_.clone().unwrap_or_else(|| "Opaque".into()));
    }
    if es.spec.target.immutable {
        s.immutable = Some(true);
    }
    s.data = Some(data);
    s.string_data = None;
    s
}

/// ESO's `created-by` label value: the name, or its SHA3-224 (first 63 hex) when too long.
fn created_by(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_owned();
    }
    let hex: String = sha3::Sha3_224::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..63].to_owned()
}

fn same_content(a: &Secret, b: &Secret) -> bool {
    a.data.clone().unwrap_or_default() == b.data.clone().unwrap_or_default()
        && a.type_ == b.type_
        && a.metadata.labels == b.metadata.labels
        && a.metadata.annotations == b.metadata.annotations
        && a.metadata.owner_references == b.metadata.owner_references
        && a.immutable == b.immutable
}

#[cfg(test)]
mod tests;
