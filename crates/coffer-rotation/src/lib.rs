//! Coffer's rotation engine (issue 9): generators, schedules, the crash-safe four-step state
//! machine, and PostgreSQL rotators.
//!
//! Where to start:
//!
//! - [`RotationSpec`] is `SecretRotation.spec` (group `coffer.dev`) and
//!   [`RotationStatus`] its status; [`RotationSpec::validate`] names any bad field.
//! - [`Engine::rotate`] runs AWS Secrets Manager's four steps (createSecret, setSecret,
//!   testSecret, finishSecret), recording each in the [`RotationStore`] before taking it;
//!   [`Engine::resume`] continues or rolls back what a crash interrupted. [`Rotation::new`]
//!   builds the target from the spec ([`PostgresRotator`] or [`NoTarget`]).
//! - [`generate`] makes values (passwords, random bytes, Ed25519/RSA keys, TLS certificates)
//!   into [`SecretData`], whose values are zeroized and never `Debug`-printed.
//! - [`next_rotation`] and [`Scheduler`] say what is due; [`RotationMetrics`] counts.
//!
//! - [`KubeStore`] is the [`RotationStore`] over the Kubernetes API (the `SecretRotation`
//!   status subresource; the target Secret plus its `<name>.coffer-stages` companion), and
//!   [`run`] the controller (kube-runtime's watcher → store → reconciler) that `coffer serve`
//!   and `coffer rotate controller` start. [`MemoryStore`] and [`FileStore`] serve tests.
//!
//! What this crate is not: it serves no HTTP and holds no server; it talks to one.
#![forbid(unsafe_code)]

mod controller;
mod engine;
mod error;
mod file_store;
mod generate;
mod kube_store;
mod postgres;
mod rotation;
mod schedule;
mod secret;
mod spec;
mod state;
mod store;
mod validate;

// The public interface.
pub use controller::{
    ControllerError, ControllerOptions, ROTATE_NOW_ANNOTATION, SecretAges, connect,
    prometheus_text, run,
};
pub use engine::Engine;
pub use error::{Error, GenerateError, Result, SpecError, StoreError, TargetError};
pub use file_store::FileStore;
pub use generate::password::{DEFAULT_SYMBOLS, generate_password};
pub use generate::{GenerateContext, Generated, TLS_SECRET_TYPE, generate};
pub use kube_store::{
    COMPANION_LABEL, COMPANION_SUFFIX, COMPANION_TYPE, KubeStore, companion_name, rotation_resource,
};
pub use postgres::{PostgresRotator, quote_ident, quote_literal};
pub use rotation::{NoTarget, Observer, Outcome, Rotation, StepContext, Target};
pub use schedule::{
    DueEntry, MetricsSnapshot, RotationMetrics, Scheduler, next_rotation, parse_cron,
};
pub use secret::{SecretData, SecretValue};
pub use spec::{
    ByteEncoding, ClassMinimums, Ed25519Spec, Generator, GoDuration, PasswordSpec, PostgresMode,
    PostgresTarget, RandomBytesSpec, RotationSpec, RsaSpec, Schedule, SslMode, Symbols, TargetSpec,
    TlsCertificateSpec,
};
pub use state::{InFlightStep, Phase, RotationStatus, StepName};
pub use store::{
    MemoryStore, Revision, RotationStore, StagedSecret, StagedValue, Versioned,
    check_store_conformance,
};
pub use validate::MAX_ROLE_NAME_LEN;
