//! The crash-safe state machine: AWS Secrets Manager's four steps, each recorded (with a
//! compare-and-swap on the rotation's status) BEFORE it is taken.
//!
//! ```text
//! rotate():  record createSecret ─ generate, write pending stage
//!            record setSecret    ─ target.set      (idle user / ALTER ROLE)
//!            record testSecret   ─ target.test     (log in with pending)
//!            record finishSecret ─ one Secret write: pending → current → previous,
//!                                  then target.finish (previous expires after grace)
//!            record done         ─ phase Succeeded, currentVersion, lastRotationTime
//! failure before finishSecret: record rollingBack ─ target.rollback, drop pending ─ Failed
//! resume():  re-runs the recorded step (every step is idempotent), or finishes a rollback
//! ```
//!
//! Invariant: the Secret's current value is replaced only after `test` passed, and the
//! target's previous credential is expired only after that replacement. With alternating
//! users the current credential is never touched before the new one was tested; with a
//! single user `set` replaces the only password, which is why that mode has a window.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, Result, StoreError, TargetError};
use crate::generate::{GenerateContext, generate};
use crate::rotation::{NoObserver, Observer, Outcome, Rotation, StepContext};
use crate::schedule::RotationMetrics;
use crate::secret::SecretData;
use crate::spec::Generator;
use crate::state::{InFlightStep, Phase, RotationStatus, StepName};
use crate::store::{Revision, RotationStore, StagedSecret, StagedValue, Versioned};

/// Runs rotations against a [`RotationStore`].
pub struct Engine {
    store: Arc<dyn RotationStore>,
    observer: Arc<dyn Observer>,
    metrics: Arc<RotationMetrics>,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// The status of a rotation as the engine holds it between steps.
struct Tracked {
    status: RotationStatus,
    revision: Option<Revision>,
}

impl Engine {
    /// An engine over `store` with the system clock, no observer and fresh metrics.
    pub fn new(store: Arc<dyn RotationStore>) -> Self {
        Self {
            store,
            observer: Arc::new(NoObserver),
            metrics: Arc::new(RotationMetrics::default()),
            clock: Arc::new(Timestamp::now),
        }
    }

    /// Calls `observer` as steps are recorded and taken.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Counts into `metrics` (share one across engines to expose them together).
    pub fn with_metrics(mut self, metrics: Arc<RotationMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> Timestamp + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    /// The metrics this engine counts into.
    pub fn metrics(&self) -> &Arc<RotationMetrics> {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn RotationStore> {
        &self.store
    }

    /// Starts and runs a rotation now. Refused while one is in flight ([`Error::InFlight`]:
    /// call [`Engine::resume`]) or while the previous value is inside its grace period
    /// ([`Error::PreviousStillValid`]).
    pub async fn rotate(&self, rotation: &Rotation) -> Result<Outcome> {
        let mut t = self.load(rotation).await?;
        let now = (self.clock)();
        if let Some(step) = &t.status.step {
            return Err(Error::InFlight {
                rotation: rotation.name.clone(),
                step: step.name,
                version: step.version,
            });
        }
        if let Some(until) = t.status.previous_valid_until.filter(|u| *u > now) {
            return Err(Error::PreviousStillValid {
                rotation: rotation.name.clone(),
                until,
            });
        }
        let secret = self.store.read_secret(&rotation.spec.secret_name).await?;
        let (current_version, pending_version) = secret
            .as_ref()
            .map(|s| {
                (
                    s.value.current_version,
                    s.value.pending.as_ref().map(|p| p.version),
                )
            })
            .unwrap_or_default();
        let version = current_version
            .max(t.status.current_version)
            .max(pending_version.unwrap_or(0))
            + 1;
        t.status.phase = Phase::Rotating;
        t.status.step = Some(InFlightStep {
            name: StepName::CreateSecret,
            version,
            started_time: now,
            rolling_back: false,
            reason: None,
            previous_valid_until: None,
        });
        t.status.set_condition(
            "Rotating",
            true,
            "Started",
            &format!("rotating in version {version}"),
            now,
        );
        self.save(rotation, &mut t).await?;
        self.observer
            .step_recorded(&rotation.name, StepName::CreateSecret);
        self.drive(rotation, t).await
    }

    /// Continues what a crash interrupted: re-runs the recorded step and goes on, or finishes
    /// a rollback that had begun. [`Outcome::Idle`] when nothing was in flight.
    pub async fn resume(&self, rotation: &Rotation) -> Result<Outcome> {
        let t = self.load(rotation).await?;
        match &t.status.step {
            None => Ok(Outcome::Idle),
            Some(step) => {
                self.metrics.count_resume();
                tracing::info!(rotation = %rotation.name, step = %step.name, version = step.version, rolling_back = step.rolling_back, "resuming rotation");
                if step.rolling_back {
                    let reason = step.reason.clone().unwrap_or_default();
                    self.finish_rollback(rotation, t, reason).await
                } else {
                    self.drive(rotation, t).await
                }
            }
        }
    }

    /// Drops the Secret's `previous` stage once its grace period has ended (the database
    /// enforces the end itself through `VALID UNTIL`). Returns whether it dropped one.
    pub async fn expire_previous(&self, rotation: &Rotation) -> Result<bool> {
        let t = self.load(rotation).await?;
        let now = (self.clock)();
        if t.status.previous_valid_until.is_some_and(|u| u > now) {
            return Ok(false);
        }
        let Some(secret) = self.store.read_secret(&rotation.spec.secret_name).await? else {
            return Ok(false);
        };
        if secret.value.previous.is_none() {
            return Ok(false);
        }
        let mut value = secret.value;
        value.previous = None;
        self.store
            .write_secret(&rotation.spec.secret_name, &value, Some(secret.revision))
            .await?;
        Ok(true)
    }

    /// Runs the recorded step and every step after it.
    async fn drive(&self, rotation: &Rotation, mut t: Tracked) -> Result<Outcome> {
        loop {
            let step = t.status.step.clone().ok_or_else(|| {
                StoreError::Backend("BUG: drive() without a recorded step".into())
            })?;
            let result = match step.name {
                StepName::CreateSecret => self.create_secret(rotation, &step).await,
                StepName::SetSecret | StepName::TestSecret => {
                    self.set_or_test(rotation, &step).await
                }
                StepName::FinishSecret => return self.finish_secret(rotation, t, &step).await,
            };
            match result {
                Ok(()) => {}
                Err(e @ Error::Store(_)) => {
                    // The state is unknown (a lost race, a broken store): leave the record as it
                    // is for resume() and count the failure.
                    self.metrics.count_failure();
                    return Err(e);
                }
                Err(e) => return self.start_rollback(rotation, t, step.name, e).await,
            }
            self.observer.step_taken(&rotation.name, step.name);
            let next = match step.name {
                StepName::CreateSecret => StepName::SetSecret,
                StepName::SetSecret => StepName::TestSecret,
                _ => StepName::FinishSecret,
            };
            let now = (self.clock)();
            let mut next_step = InFlightStep { name: next, ..step };
            if next == StepName::FinishSecret {
                let grace = SignedDuration::try_from(rotation.spec.grace_period.get())
                    .unwrap_or(SignedDuration::MAX);
                next_step.previous_valid_until =
                    Some(now.checked_add(grace).unwrap_or(Timestamp::MAX));
            }
            t.status.step = Some(next_step);
            self.save(rotation, &mut t).await?;
            self.observer.step_recorded(&rotation.name, next);
        }
    }

    async fn create_secret(&self, rotation: &Rotation, step: &InFlightStep) -> Result<()> {
        let name = &rotation.spec.secret_name;
        let secret = self.store.read_secret(name).await?;
        let taken = secret.as_ref().is_some_and(|s| {
            s.value
                .pending
                .as_ref()
                .is_some_and(|p| p.version == step.version)
        });
        if taken {
            return Ok(()); // taken before a crash; createSecret is idempotent on the version
        }
        let ca = match &rotation.spec.generator {
            Generator::TlsCertificate(t) => self
                .store
                .read_secret(&t.ca_secret_name)
                .await?
                .map(|s| s.value.current),
            _ => None,
        };
        let generator = rotation.spec.generator.clone();
        let generated = tokio::task::spawn_blocking(move || {
            generate(&generator, &GenerateContext { ca: ca.as_ref() })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("generator task: {e}")))??;
        let (mut value, revision) = match secret {
            Some(Versioned { value, revision }) => (value, Some(revision)),
            None => (StagedSecret::default(), None),
        };
        let data = rotation
            .target
            .prepare(&value.current, &generated.data)
            .await
            .map_err(|source| Error::Target {
                step: StepName::CreateSecret,
                source,
            })?;
        value.pending = Some(StagedValue {
            version: step.version,
            data,
        });
        if let Some(ty) = generated.secret_type {
            value.secret_type.get_or_insert_with(|| ty.to_owned());
        }
        self.store.write_secret(name, &value, revision).await?;
        Ok(())
    }

    async fn set_or_test(&self, rotation: &Rotation, step: &InFlightStep) -> Result<()> {
        let secret = self.read_target_secret(rotation).await?;
        let pending = pending_of(&secret.value, step)?;
        let ctx = StepContext {
            rotation: &rotation.name,
            pending,
            current: &secret.value.current,
            previous_valid_until: None,
            now: (self.clock)(),
        };
        let result = if step.name == StepName::SetSecret {
            rotation.target.set(&ctx).await
        } else {
            rotation.target.test(&ctx).await
        };
        result.map_err(|source| Error::Target {
            step: step.name,
            source,
        })
    }

    async fn finish_secret(
        &self,
        rotation: &Rotation,
        mut t: Tracked,
        step: &InFlightStep,
    ) -> Result<Outcome> {
        let name = &rotation.spec.secret_name;
        let secret = self.read_target_secret(rotation).await?;
        let mut value = secret.value;
        if value.current_version != step.version {
            let pending = pending_of(&value, step)?.clone();
            let old = StagedValue {
                version: value.current_version,
                data: std::mem::replace(&mut value.current, pending.data),
            };
            value.previous = (!old.data.is_empty()).then_some(old);
            value.current_version = step.version;
            value.pending = None;
            self.store
                .write_secret(name, &value, Some(secret.revision))
                .await?;
        }
        self.observer
            .published(&rotation.name, name, &value.current);
        let now = (self.clock)();
        let empty = StagedValue {
            version: 0,
            data: SecretData::new(),
        };
        let ctx = StepContext {
            rotation: &rotation.name,
            pending: &StagedValue {
                version: step.version,
                data: value.current.clone(),
            },
            current: value
                .previous
                .as_ref()
                .map(|p| &p.data)
                .unwrap_or(&empty.data),
            previous_valid_until: step.previous_valid_until,
            now,
        };
        if let Err(source) = rotation.target.finish(&ctx).await {
            // The new value is current and tested; only the old one's expiry is missing.
            // Keep the step so resume() retries it.
            self.metrics.count_failure();
            t.status.phase = Phase::Failed;
            t.status.consecutive_failures += 1;
            let err = Error::Target {
                step: StepName::FinishSecret,
                source,
            };
            t.status
                .set_condition("Rotating", true, "FinishRetrying", &err.to_string(), now);
            self.save(rotation, &mut t).await?;
            return Err(err);
        }
        self.observer
            .step_taken(&rotation.name, StepName::FinishSecret);
        t.status.phase = Phase::Succeeded;
        t.status.current_version = step.version;
        t.status.last_rotation_time = Some(now);
        t.status.previous_valid_until = value.previous.as_ref().and(step.previous_valid_until);
        t.status.step = None;
        t.status.consecutive_failures = 0;
        t.status
            .set_condition("Rotating", false, "Finished", "", now);
        t.status.set_condition(
            "Ready",
            true,
            "Rotated",
            &format!("version {} is current", step.version),
            now,
        );
        t.status.next_rotation_time =
            crate::schedule::next_rotation(&rotation.spec.schedule, &t.status, now).ok();
        self.save(rotation, &mut t).await?;
        self.metrics.count_rotation();
        tracing::info!(rotation = %rotation.name, version = step.version, "rotation finished");
        Ok(Outcome::Rotated {
            version: step.version,
        })
    }

    async fn start_rollback(
        &self,
        rotation: &Rotation,
        mut t: Tracked,
        failed: StepName,
        cause: Error,
    ) -> Result<Outcome> {
        tracing::warn!(rotation = %rotation.name, step = %failed, error = %cause, "rotation step failed; rolling back");
        let reason = cause.to_string();
        if let Some(step) = t.status.step.as_mut() {
            step.rolling_back = true;
            step.reason = Some(reason.clone());
        }
        self.save(rotation, &mut t).await?;
        self.finish_rollback(rotation, t, reason).await?;
        Err(Error::RolledBack {
            rotation: rotation.name.clone(),
            step: failed,
            source: Box::new(cause),
        })
    }

    async fn finish_rollback(
        &self,
        rotation: &Rotation,
        mut t: Tracked,
        reason: String,
    ) -> Result<Outcome> {
        let step = t
            .status
            .step
            .clone()
            .ok_or_else(|| StoreError::Backend("BUG: rollback without a step".into()))?;
        let name = &rotation.spec.secret_name;
        if let Some(secret) = self.store.read_secret(name).await? {
            let mut value = secret.value;
            if let Some(pending) = value.pending.clone().filter(|p| p.version == step.version) {
                if step.name >= StepName::SetSecret {
                    let ctx = StepContext {
                        rotation: &rotation.name,
                        pending: &pending,
                        current: &value.current,
                        previous_valid_until: None,
                        now: (self.clock)(),
                    };
                    rotation.target.rollback(&ctx).await.map_err(|source| {
                        self.metrics.count_failure();
                        Error::Target {
                            step: step.name,
                            source,
                        }
                    })?;
                }
                value.pending = None;
                self.store
                    .write_secret(name, &value, Some(secret.revision))
                    .await?;
            }
        }
        let now = (self.clock)();
        t.status.phase = Phase::Failed;
        t.status.step = None;
        t.status.consecutive_failures += 1;
        t.status
            .set_condition("Rotating", false, "RolledBack", &reason, now);
        t.status.set_condition(
            "Ready",
            true,
            "RolledBack",
            "the current value is unchanged",
            now,
        );
        t.status.next_rotation_time = Some(retry_time(now, t.status.consecutive_failures));
        self.save(rotation, &mut t).await?;
        self.metrics.count_failure();
        self.metrics.count_rollback();
        Ok(Outcome::RolledBack {
            version: step.version,
        })
    }

    async fn read_target_secret(&self, rotation: &Rotation) -> Result<Versioned<StagedSecret>> {
        let name = &rotation.spec.secret_name;
        Ok(self
            .store
            .read_secret(name)
            .await?
            .ok_or_else(|| StoreError::SecretNotFound(name.clone()))?)
    }

    async fn load(&self, rotation: &Rotation) -> Result<Tracked> {
        Ok(match self.store.load_status(&rotation.name).await? {
            Some(v) => Tracked {
                status: v.value,
                revision: Some(v.revision),
            },
            None => Tracked {
                status: RotationStatus::default(),
                revision: None,
            },
        })
    }

    async fn save(&self, rotation: &Rotation, t: &mut Tracked) -> Result<()> {
        let revision = self
            .store
            .save_status(&rotation.name, &t.status, t.revision)
            .await?;
        t.revision = Some(revision);
        Ok(())
    }
}

/// When to try again after `failures` failed attempts in a row: 30 s, doubling, at most 1 h.
fn retry_time(now: Timestamp, failures: u32) -> Timestamp {
    let secs = 30u64
        .saturating_mul(1 << failures.saturating_sub(1).min(7))
        .min(3600);
    now.checked_add(SignedDuration::from_secs(secs as i64))
        .unwrap_or(Timestamp::MAX)
}

fn pending_of<'a>(secret: &'a StagedSecret, step: &InFlightStep) -> Result<&'a StagedValue> {
    secret
        .pending
        .as_ref()
        .filter(|p| p.version == step.version)
        .ok_or_else(|| Error::Target {
            step: step.name,
            source: TargetError::Invalid(format!(
                "the Secret has no pending value of version {}; someone removed it",
                step.version
            )),
        })
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
