//! The sync engine: resolve (fetch through the shared cache, template) → plan (pure) →
//! apply (write the Secret and status through [`KubeAccess`]).

mod cache;
mod metrics;
mod plan;
mod resolve;
mod rewrite;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use tokio::time::Instant;

pub use cache::{FetchCache, FetchKey};
pub use metrics::Metrics;
pub use plan::{
    BASE_BACKOFF, MAX_BACKOFF, Plan, SecretWrite, backoff, data_hash, plan, should_refresh,
    since_window_start, sync_version, until_next_window,
};
pub use resolve::{
    Desired, PROVIDER_TTL, StoreLookup, SyncContext, SyncError, resolve, selector_matches,
};

use crate::types::{ANNOTATION_FORCE_SYNC, ExternalSecret, ExternalSecretStatus};

/// The Kubernetes side of a sync: the target Secret and the ExternalSecret's status. The
/// controller implements it with kube; tests with a map.
#[async_trait]
pub trait KubeAccess: Send + Sync {
    /// The Secret, if it exists.
    async fn get_secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String>;
    /// Creates a Secret.
    async fn create_secret(&self, secret: &Secret) -> Result<(), String>;
    /// Replaces a Secret (compare-and-swap on its resourceVersion).
    async fn update_secret(&self, secret: &Secret) -> Result<(), String>;
    /// Deletes a Secret.
    async fn delete_secret(&self, namespace: &str, name: &str) -> Result<(), String>;
    /// Writes the ExternalSecret's status.
    async fn update_status(
        &self,
        es: &ExternalSecret,
        status: &ExternalSecretStatus,
    ) -> Result<(), String>;
}

/// What one sync did.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncReport {
    /// Whether it succeeded.
    pub ok: bool,
    /// Whether the Secret was written.
    pub wrote: bool,
    /// When to run again.
    pub requeue_after: Option<Duration>,
    /// The Ready condition's message.
    pub message: String,
}

/// Syncs one ExternalSecret: the whole reconciler, the same code the controller runs.
/// `failures` is the count of consecutive failures before this run (for backoff).
pub async fn sync_one(
    es: &ExternalSecret,
    ctx: &SyncContext,
    kube: &dyn KubeAccess,
    failures: u32,
) -> SyncReport {
    sync_one_at(es, ctx, kube, failures, None).await
}

/// [`sync_one`] with an explicit start of the refresh window (`None`: the aligned window of
/// the ExternalSecret's refreshInterval). Every sync given the same `window_start` shares
/// one fetch per remote secret.
pub async fn sync_one_at(
    es: &ExternalSecret,
    ctx: &SyncContext,
    kube: &dyn KubeAccess,
    failures: u32,
    window_start: Option<Instant>,
) -> SyncReport {
    let started = std::time::Instant::now();
    let ns = es.namespace();
    let existing = match kube.get_secret(ns, es.target_name()).await {
        Ok(s) => s,
        Err(e) => {
            return report_failure(
                ctx,
                started,
                format!("reading Secret {ns}/{}: {e}", es.target_name()),
                failures,
            );
        }
    };
    if !should_refresh(es, existing.is_some()) {
        return SyncReport {
            ok: true,
            wrote: false,
            requeue_after: None,
            message: "not refreshed (refreshPolicy)".into(),
        };
    }
    let now = SystemTime::now();
    let interval = es.spec.refresh_interval.as_duration();
    // `force-sync` bypasses the shared cache for this ExternalSecret.
    let forced = es
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_FORCE_SYNC));
    let not_before = if let Some(w) = window_start {
        w
    } else if interval.is_zero() || forced {
        Instant::now()
    } else {
        Instant::now()
            .checked_sub(since_window_start(interval, now))
            .unwrap_or_else(Instant::now)
    };
    let outcome = resolve(es, ctx, not_before).await;
    let p = plan(es, outcome, existing.as_ref(), now, failures);
    let write = match &p.write {
        SecretWrite::None => Ok(false),
        SecretWrite::Create(s) => kube.create_secret(s).await.map(|_| true),
        SecretWrite::Update(s) => kube.update_secret(s).await.map(|_| true),
        SecretWrite::Delete => kube.delete_secret(ns, es.target_name()).await.map(|_| true),
    };
    let (ok, wrote, status, requeue) = match write {
        Ok(w) => (p.ok, w, p.status.clone(), p.requeue_after),
        Err(e) => {
            let failed = plan(
                es,
                Err(SyncError::Invalid(format!(
                    "{}: {e}",
                    crate::types::message::ERROR_UPDATE
                ))),
                existing.as_ref(),
                now,
                failures,
            );
            (false, false, failed.status, failed.requeue_after)
        }
    };
    if ok && !wrote {
        ctx.metrics.observe_skip();
    } else if wrote {
        ctx.metrics.observe_write();
    }
    if es.status.as_ref() != Some(&status)
        && let Err(e) = kube.update_status(es, &status).await
    {
        tracing::warn!(namespace = ns, name = es.name(), error = %e, "could not update ExternalSecret status");
    }
    ctx.metrics.observe_sync(ok, started.elapsed());
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    SyncReport {
        ok,
        wrote,
        requeue_after: requeue,
        message,
    }
}

fn report_failure(
    ctx: &SyncContext,
    started: std::time::Instant,
    message: String,
    failures: u32,
) -> SyncReport {
    ctx.metrics.observe_sync(false, started.elapsed());
    SyncReport {
        ok: false,
        wrote: false,
        requeue_after: Some(backoff(failures + 1)),
        message,
    }
}

/// Convenience for tests and the controller: a shared context.
pub type SharedContext = Arc<SyncContext>;
