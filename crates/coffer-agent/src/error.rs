//! The crate's top-level error: one narrow error per stage of `coffer run`.

use std::io;

use crate::{ClientError, EnvError, ManifestError, VolumeError, WorkspaceError, WriteError};

/// Why `coffer run` could not start or keep its process. Messages name manifests, containers,
/// Secrets and keys, never values.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest could not be read.
    #[error("reading {path}: {source}")]
    ReadManifest {
        /// The manifest's path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The manifest has no usable pod spec or container.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The kubeconfig or the API server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The environment could not be built (missing Secret or key). Boxed: it is large.
    #[error(transparent)]
    Env(Box<EnvError>),
    /// A volume's files could not be made (missing Secret or key). Boxed: it is large.
    #[error(transparent)]
    Volume(Box<VolumeError>),
    /// A volume could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The in-memory directory or a mount path could not be set up.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// The manifest's namespace and `--namespace` disagree.
    #[error(
        "the namespace from the provided object {manifest:?} does not match the namespace {flag:?}; you must pass '--namespace={manifest}' to perform this operation"
    )]
    NamespaceMismatch {
        /// `metadata.namespace` of the manifest.
        manifest: String,
        /// `--namespace`.
        flag: String,
    },
    /// Neither the container nor the command line gives a command.
    #[error(
        "container {0:?} has no command (coffer run cannot run an image's entrypoint); give one after --, as in: coffer run -f pod.yaml -- ./server"
    )]
    NoCommand(String),
    /// The process could not be started.
    #[error("starting {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Waiting for, or signalling, the process failed.
    #[error("managing the process: {0}")]
    Process(#[source] io::Error),
}

impl From<EnvError> for Error {
    fn from(err: EnvError) -> Self {
        Self::Env(Box::new(err))
    }
}

impl From<VolumeError> for Error {
    fn from(err: VolumeError) -> Self {
        Self::Volume(Box::new(err))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
