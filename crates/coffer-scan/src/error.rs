//! The crate's error type.
//!
//! Errors carry paths and causes, never file contents: a scanner error must not become the
//! leak it was meant to find.

use std::path::PathBuf;

/// Everything that can stop a scan.
///
/// Files that cannot be read in the middle of a tree walk do not stop the scan; they are counted
/// in [`crate::ScanStats::skipped_files`]. These errors are for the inputs the user named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory the user named could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The allowlist file is not valid.
    #[error("invalid allowlist {path}: {reason}")]
    Allowlist {
        /// The allowlist file.
        path: PathBuf,
        /// What is wrong with it (parser message or the bad regex).
        reason: String,
    },
    /// The baseline file is not a JSON report written by `coffer scan --format json`.
    #[error("invalid baseline {path}: {reason}")]
    Baseline {
        /// The baseline file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Objects passed for a live audit are not JSON or YAML.
    #[error("cannot parse objects: {reason}")]
    Objects {
        /// The parser's message.
        reason: String,
    },
    /// The Git repository could not be opened or read.
    #[error("git repository {path}: {reason}")]
    Git {
        /// The repository path.
        path: PathBuf,
        /// The reader's message (object ids and ref names only).
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn git(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Git {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_the_path() {
        let err = Error::io(
            "/tmp/x",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert_eq!(err.to_string(), "cannot read /tmp/x: gone");
    }
}
