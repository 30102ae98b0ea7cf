//! What the engine drives: a [`Rotation`] (name, validated spec, target), the [`Target`] trait
//! for the system whose credential changes (every method idempotent: after a crash the engine
//! calls the recorded step again), and the [`Observer`] hooks.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::error::{Result, TargetError};
use crate::secret::SecretData;
use crate::spec::{RotationSpec, TargetSpec};
use crate::state::StepName;
use crate::store::{RotationStore, StagedValue};

/// One rotation: its name, its validated spec and the target it drives.
#[derive(Clone)]
pub struct Rotation {
    pub(crate) name: String,
    pub(crate) spec: RotationSpec,
    pub(crate) target: Arc<dyn Target>,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("name", &self.name)
            .field("secret", &self.spec.secret_name)
            .finish_non_exhaustive()
    }
}

impl Rotation {
    /// Validates `spec` and builds its target (a PostgreSQL target reads its admin Secret
    /// from `store` at each step).
    pub fn new(
        name: impl Into<String>,
        spec: RotationSpec,
        store: Arc<dyn RotationStore>,
    ) -> Result<Self> {
        spec.validate()?;
        let target: Arc<dyn Target> = match &spec.target {
            TargetSpec::None => Arc::new(NoTarget),
            TargetSpec::Postgres(pg) => {
                Arc::new(crate::postgres::PostgresRotator::new(pg.clone(), store))
            }
        };
        Ok(Self {
            name: name.into(),
            spec,
            target,
        })
    }

    /// Validates `spec` and uses `target` instead of the one the spec names (tests, or targets
    /// the engine does not know).
    pub fn with_target(
        name: impl Into<String>,
        spec: RotationSpec,
        target: Arc<dyn Target>,
    ) -> Result<Self> {
        spec.validate()?;
        Ok(Self {
            name: name.into(),
            spec,
            target,
        })
    }

    /// The rotation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its spec.
    pub fn spec(&self) -> &RotationSpec {
        &self.spec
    }
}

/// Hooks called as the state machine moves; all default to doing nothing.
pub trait Observer: Send + Sync {
    /// `step` was durably recorded and is about to be taken.
    fn step_recorded(&self, _rotation: &str, _step: StepName) {}
    /// `step` was taken (its effects are done; the next record is not written yet).
    fn step_taken(&self, _rotation: &str, _step: StepName) {}
    /// The Secret's current value changed to `data` (after finishSecret's Secret write).
    /// In a server consumers learn this from the Secret's watch; tests write files here.
    fn published(&self, _rotation: &str, _secret: &str, _data: &SecretData) {}
}

pub(crate) struct NoObserver;
impl Observer for NoObserver {}

/// What a call to [`Engine::rotate`] or [`Engine::resume`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing was in flight (resume) or due.
    Idle,
    /// The rotation finished: `version` is current.
    Rotated {
        /// The new current version.
        version: u64,
    },
    /// An in-flight rotation was rolled back; the current value is unchanged.
    RolledBack {
        /// The version that was abandoned.
        version: u64,
    },
}

/// What a step sees.
#[derive(Debug)]
pub struct StepContext<'a> {
    /// The rotation's name.
    pub rotation: &'a str,
    /// The value being rotated in.
    pub pending: &'a StagedValue,
    /// The Secret's current data (before `finishSecret`), or the value rotated out (during
    /// and after it).
    pub current: &'a SecretData,
    /// Until when the value rotated out stays valid (set for `finishSecret`).
    pub previous_valid_until: Option<Timestamp>,
    /// Now, by the engine's clock.
    pub now: Timestamp,
}

/// A system whose credential a rotation changes.
///
/// Order of calls for one rotation: `prepare` (in createSecret), `set`, `test`, then — after
/// the Secret's stages have moved — `finish`. `rollback` may follow `prepare`, `set` or `test`
/// (never `finish`) and must leave the current credential working.
#[async_trait]
pub trait Target: Send + Sync {
    /// Builds the pending Secret data from the current data and the generated keys. No side
    /// effects.
    async fn prepare(
        &self,
        current: &SecretData,
        generated: &SecretData,
    ) -> Result<SecretData, TargetError> {
        let mut data = current.clone();
        data.merge(generated);
        Ok(data)
    }

    /// Applies the pending value in the target system. Must not invalidate the current
    /// credential where the target can avoid it.
    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError>;

    /// Proves the pending value works (a login).
    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError>;

    /// Called after pending became current: gives the previous credential its end of validity
    /// (`ctx.previous_valid_until`).
    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError>;

    /// Undoes `set` so the current credential works as before.
    async fn rollback(&self, ctx: &StepContext<'_>) -> Result<(), TargetError>;
}

/// `target: none`: only the Secret changes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTarget;

#[async_trait]
impl Target for NoTarget {
    async fn set(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }

    async fn test(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }

    async fn finish(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }

    async fn rollback(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }
}
