//! The rotation controller: watcher → reflector store → reconciler (STYLE rule 11), built
//! from `kube::runtime` against any API server — `coffer serve` or a real cluster.
//!
//! ```text
//! SecretRotation watch (all namespaces) ─► reflector store ─► reconcile(rotation)
//!   reconcile: status.step set?          ─► Engine::resume   (a crash or a lost write)
//!              rotate-now annotation new? ─► Engine::rotate  (then remember the value)
//!              due by the schedule?       ─► Engine::rotate
//!              grace period over?         ─► Engine::expire_previous
//!              status.nextRotationTime    ─► requeue at that time
//! ```
//!
//! Every change of a `SecretRotation` (spec, annotations, our own status writes) triggers a
//! reconcile; reconciling is idempotent, so the extra ones only re-read. Kube's controller
//! never reconciles one object twice at once, so a recorded step seen at the start of a
//! reconcile was left by an interrupted run and is resumed (this is how in-flight rotations
//! are resumed when the controller starts).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};

use crate::engine::Engine;
use crate::error::{Error, StoreError};
use crate::kube_store::{KubeStore, rotation_resource};
use crate::rotation::Rotation;
use crate::schedule::{RotationMetrics, next_rotation};
use crate::spec::RotationSpec;
use crate::state::{Phase, RotationStatus};
use crate::store::RotationStore;

/// The annotation whose change asks for a rotation now (`coffer rotate now` sets it to the
/// current time).
pub const ROTATE_NOW_ANNOTATION: &str = "coffer.dev/rotate-now";

/// The longest the controller sleeps before looking at a rotation again.
const MAX_REQUEUE: Duration = Duration::from_secs(300);
/// The shortest (a rotation due right now is requeued after this).
const MIN_REQUEUE: Duration = Duration::from_millis(50);
/// After an error the reconcile is retried after this.
const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// How the controller runs.
#[derive(Clone, Debug, Default)]
pub struct ControllerOptions {
    /// Watch only this namespace; `None`: every namespace.
    pub namespace: Option<String>,
    /// Counters, shared with whoever exposes them.
    pub metrics: Arc<RotationMetrics>,
    /// When each rotation last rotated, for the age gauge.
    pub ages: Arc<SecretAges>,
}

/// When each rotation (namespace, name) last rotated its Secret: the source of
/// `coffer_rotation_secret_age_seconds`.
#[derive(Debug, Default)]
pub struct SecretAges(Mutex<BTreeMap<(String, String), Timestamp>>);

impl SecretAges {
    fn set(&self, namespace: &str, name: &str, at: Timestamp) {
        // Every mutation is one insert: a poisoned map is still consistent.
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((namespace.to_owned(), name.to_owned()), at);
    }

    fn snapshot(&self) -> BTreeMap<(String, String), Timestamp> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Why the controller stopped, or a reconcile failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}; pass --kubeconfig with a readable file")]
    Kubeconfig(String),
    /// The store (API server) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] Error),
}

struct Context {
    client: kube::Client,
    metrics: Arc<RotationMetrics>,
    ages: Arc<SecretAges>,
}

/// A client from `kubeconfig` (or the default kubeconfig / in-cluster config when `None`).
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
) -> Result<kube::Client, ControllerError> {
    let options = kube::config::KubeConfigOptions::default();
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| ControllerError::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| ControllerError::Kubeconfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ControllerError::Kubeconfig(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| ControllerError::Kubeconfig(e.to_string()))
}

/// Runs the controller until `shutdown` completes (then waits for running reconciles).
pub async fn run(
    client: kube::Client,
    options: ControllerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let resource = rotation_resource();
    let api: Api<DynamicObject> = match &options.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let context = Arc::new(Context {
        client,
        metrics: options.metrics,
        ages: options.ages,
    });
    Controller::new_with(api, watcher::Config::default(), resource)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "rotation controller");
            }
        })
        .await;
}

fn error_policy(object: Arc<DynamicObject>, error: &ControllerError, _: Arc<Context>) -> Action {
    tracing::warn!(namespace = ?object.namespace(), rotation = %object.name_any(), error = %error, "rotation reconcile failed; retrying");
    Action::requeue(ERROR_REQUEUE)
}

fn requeue_at(at: Timestamp, now: Timestamp) -> Action {
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
    Action::requeue(wait.clamp(MIN_REQUEUE, MAX_REQUEUE))
}

async fn reconcile(
    object: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let name = object.name_any();
    let Some(namespace) = object.namespace() else {
        return Ok(Action::await_change());
    };
    if object.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let store: Arc<dyn RotationStore> = Arc::new(KubeStore::new(ctx.client.clone(), &namespace));
    let engine = Engine::new(store.clone()).with_metrics(ctx.metrics.clone());
    let spec = object.data.get("spec").cloned().unwrap_or_default();
    let rotation = serde_json::from_value::<RotationSpec>(spec)
        .map_err(|e| e.to_string())
        .and_then(|spec| {
            Rotation::new(name.clone(), spec, store.clone()).map_err(|e| e.to_string())
        });
    let rotation = match rotation {
        Ok(r) => r,
        Err(message) => {
            report_invalid(&*store, &name, &message).await?;
            return Ok(Action::await_change());
        }
    };
    let created = object
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);

    // 1. Whatever an interrupted run left in flight.
    let status = load(&*store, &name).await?;
    if status.step.is_some() {
        match engine.resume(&rotation).await {
            Ok(outcome) => tracing::info!(%namespace, rotation = %name, ?outcome, "resumed"),
            Err(e) => tracing::warn!(%namespace, rotation = %name, error = %e, "resuming failed"),
        }
    }

    // 2. On demand, then by schedule.
    let requested = object.annotations().get(ROTATE_NOW_ANNOTATION).cloned();
    let status = load(&*store, &name).await?;
    let now = Timestamp::now();
    let on_demand = requested
        .as_ref()
        .is_some_and(|r| status.rotate_now_handled.as_ref() != Some(r));
    let due_at = due_time(&rotation, &status, created);
    if status.step.is_none() && (on_demand || due_at <= now) {
        match engine.rotate(&rotation).await {
            Err(Error::PreviousStillValid { until, .. }) => {
                // Wait for the grace period (rotating now would cut off the previous value).
                return Ok(requeue_at(until, Timestamp::now()));
            }
            Ok(outcome) => {
                tracing::info!(%namespace, rotation = %name, ?outcome, on_demand, "rotation ran")
            }
            Err(e) => tracing::warn!(%namespace, rotation = %name, error = %e, "rotation failed"),
        }
        if on_demand {
            let mut status = store.load_status(&name).await?;
            if let Some(v) = status.as_mut() {
                v.value.rotate_now_handled = requested.clone();
                store.save_status(&name, &v.value, Some(v.revision)).await?;
            }
        }
    }

    // 3. Drop the previous stage once its grace period is over.
    if let Err(e) = engine.expire_previous(&rotation).await {
        tracing::debug!(%namespace, rotation = %name, error = %e, "expiring the previous value");
    }

    // 4. Keep nextRotationTime current (a spec change moves it) and sleep until then.
    let loaded = store.load_status(&name).await?;
    let (mut status, revision) = match loaded {
        Some(v) => (v.value, Some(v.revision)),
        None => (RotationStatus::default(), None),
    };
    if let Some(last) = status.last_rotation_time {
        ctx.ages.set(&namespace, &name, last);
    }
    let next = due_time(&rotation, &status, created);
    if status.next_rotation_time != Some(next) && status.step.is_none() {
        status.next_rotation_time = Some(next);
        store.save_status(&name, &status, revision).await?;
    }
    let mut wake = next;
    if let Some(until) = status
        .previous_valid_until
        .filter(|u| *u > Timestamp::now())
    {
        wake = wake.min(until);
    }
    Ok(requeue_at(wake, Timestamp::now()))
}

/// When `rotation` is due: after a failure the engine's retry time, else the schedule.
fn due_time(rotation: &Rotation, status: &RotationStatus, created: Timestamp) -> Timestamp {
    if status.phase == Phase::Failed
        && let Some(retry) = status.next_rotation_time
    {
        return retry;
    }
    next_rotation(&rotation.spec.schedule, status, created).unwrap_or(Timestamp::MAX)
}

async fn load(store: &dyn RotationStore, name: &str) -> Result<RotationStatus, StoreError> {
    Ok(store
        .load_status(name)
        .await?
        .map(|v| v.value)
        .unwrap_or_default())
}

/// Sets `Ready=False, reason InvalidSpec` (once per message).
async fn report_invalid(
    store: &dyn RotationStore,
    name: &str,
    message: &str,
) -> Result<(), StoreError> {
    let loaded = store.load_status(name).await?;
    let (mut status, revision) = match loaded {
        Some(v) => (v.value, Some(v.revision)),
        None => (RotationStatus::default(), None),
    };
    let same = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.reason == "InvalidSpec" && c.message == message);
    if same {
        return Ok(());
    }
    tracing::warn!(rotation = %name, error = %message, "invalid SecretRotation spec");
    status.set_condition("Ready", false, "InvalidSpec", message, Timestamp::now());
    store.save_status(name, &status, revision).await?;
    Ok(())
}

/// The counters and the age of each rotated Secret in Prometheus' text format.
pub fn prometheus_text(metrics: &RotationMetrics, ages: &SecretAges) -> String {
    let m = metrics.snapshot();
    let mut out = String::new();
    for (name, help, value) in [
        (
            "coffer_rotation_rotations_total",
            "Rotations that finished.",
            m.rotations,
        ),
        (
            "coffer_rotation_failures_total",
            "Failed rotation attempts.",
            m.failures,
        ),
        (
            "coffer_rotation_rollbacks_total",
            "Rotations rolled back.",
            m.rollbacks,
        ),
        (
            "coffer_rotation_resumes_total",
            "In-flight rotations resumed.",
            m.resumes,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    let name = "coffer_rotation_secret_age_seconds";
    out.push_str(&format!(
        "# HELP {name} Seconds since the rotation last replaced its Secret's value.\n# TYPE {name} gauge\n"
    ));
    let now = Timestamp::now();
    for ((namespace, rotation), at) in ages.snapshot() {
        let age = now.duration_since(at).as_secs_f64().max(0.0);
        out.push_str(&format!(
            "{name}{{namespace=\"{namespace}\",rotation=\"{rotation}\"}} {age:.3}\n"
        ));
    }
    out
}
