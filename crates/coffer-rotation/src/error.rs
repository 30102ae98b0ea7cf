//! Errors: one top-level [`Error`] wrapping one enum per concern. No message ever contains a
//! secret value; each says what to do next.

use crate::state::StepName;

/// `pub type Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a rotation can fail with.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A generator could not make a value.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target system refused or failed a step.
    #[error("{step} failed in the target system: {source}")]
    Target {
        /// The step that failed.
        step: StepName,
        /// Why.
        #[source]
        source: TargetError,
    },
    /// A rotation is already in flight; `resume()` it (or wait for the rotator running it).
    #[error(
        "rotation {rotation:?} is already at step {step} of version {version}; resume it instead of starting another"
    )]
    InFlight {
        /// The rotation.
        rotation: String,
        /// Its current step.
        step: StepName,
        /// The pending version.
        version: u64,
    },
    /// The previous value is still inside its grace period; rotating now would invalidate it.
    #[error(
        "the previous value of rotation {rotation:?} stays valid until {until}; rotate after that, or shorten spec.gracePeriod"
    )]
    PreviousStillValid {
        /// The rotation.
        rotation: String,
        /// When the grace period ends.
        until: jiff::Timestamp,
    },
    /// The new value failed its test and the rotation was rolled back; the current value is
    /// unchanged.
    #[error(
        "rotation {rotation:?} rolled back after {step} failed: {source}; the current value is unchanged, fix the cause and rotate again"
    )]
    RolledBack {
        /// The rotation.
        rotation: String,
        /// The step that failed.
        step: StepName,
        /// Why.
        #[source]
        source: Box<Error>,
    },
}

/// An invalid [`crate::RotationSpec`] field.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A field has a value it may not have.
    #[error("spec.{field}: {reason}")]
    Invalid {
        /// The JSON path below `spec`.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A duration did not parse.
    #[error("invalid duration {0:?}: write it as Go does, e.g. 30s, 15m, 24h or 1h30m")]
    Duration(String),
}

impl SpecError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A generator failure.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The operating system's random source failed.
    #[error("the operating system's random number generator failed: {0}; check /dev/urandom")]
    Random(String),
    /// Key generation or encoding failed.
    #[error("{algorithm} key generation failed: {reason}")]
    Key {
        /// Which algorithm.
        algorithm: &'static str,
        /// The library's message (never key material).
        reason: String,
    },
    /// The CA Secret is missing or not usable.
    #[error(
        "CA Secret {secret:?}: {reason}; it must be a kubernetes.io/tls Secret with tls.crt and tls.key (PEM)"
    )]
    Ca {
        /// The CA Secret's name.
        secret: String,
        /// What is wrong.
        reason: String,
    },
}

/// A [`crate::RotationStore`] failure.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The compare-and-swap lost: someone else wrote the object since it was read.
    #[error(
        "{object} was changed by someone else (expected revision {expected:?}, found {found:?}); reload and retry"
    )]
    Conflict {
        /// What was written (`rotation NAME` or `secret NAME`).
        object: String,
        /// The revision the writer expected.
        expected: Option<u64>,
        /// The revision found.
        found: Option<u64>,
    },
    /// A Secret the rotation needs does not exist.
    #[error("secret {0:?} not found; create it first")]
    SecretNotFound(String),
    /// The backend failed (I/O, API server).
    #[error("rotation store: {0}")]
    Backend(String),
}

/// A failure in the target system (the database), or a test login that did not work.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target could not be reached.
    #[error("cannot connect to {what}: {reason}; check host, port and that the server is up")]
    Connect {
        /// Which connection (`admin`, `test login as NAME`).
        what: String,
        /// The driver's message.
        reason: String,
    },
    /// A login with the credential failed.
    #[error("login as {user:?} failed: {reason}")]
    Login {
        /// The role.
        user: String,
        /// The driver's message.
        reason: String,
    },
    /// A statement failed.
    #[error("{statement} failed: {reason}")]
    Statement {
        /// What was being done (never the SQL text, which may hold a verifier).
        statement: String,
        /// The server's message.
        reason: String,
    },
    /// The admin Secret lacks a key.
    #[error("admin Secret {secret:?} has no {key:?} key; it needs username and password")]
    AdminSecret {
        /// The admin Secret.
        secret: String,
        /// The missing key.
        key: &'static str,
    },
    /// A value the target needs is missing or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The target is not supported yet.
    #[error("{0}")]
    Unsupported(String),
}

impl From<StoreError> for TargetError {
    fn from(e: StoreError) -> Self {
        TargetError::Invalid(e.to_string())
    }
}
