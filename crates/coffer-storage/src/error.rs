//! Storage errors. Messages carry keys and revisions, never values.

use std::path::PathBuf;

use crate::contract::Revision;

/// The result type of every storage call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a storage call can fail with. The server maps these to `Status` in one place:
/// `Compacted` becomes 410 Gone, `ValueTooLarge` 413, `EmptyKey` 400, `Unavailable` 503 and
/// the rest 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested revision was compacted away (etcd's `mvcc: required revision has been
    /// compacted`).
    #[error(
        "storage: required revision {requested} has been compacted (compacted up to {compacted})"
    )]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compaction revision.
        compacted: Revision,
    },
    /// The requested revision is newer than anything written (etcd's `mvcc: required revision
    /// is a future revision`).
    #[error("storage: required revision {requested} is a future revision (current is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A key must have at least one byte.
    #[error("storage: key must not be empty")]
    EmptyKey,
    /// A value over [`crate::MAX_VALUE_BYTES`] was refused; nothing was written.
    #[error("storage: value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        /// The key the value was meant for.
        key: String,
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The watcher fell too far behind the writers and was cut off; watch again from the
    /// revision after the last event received.
    #[error("storage: watcher fell behind and was cut off; re-watch from the last revision seen")]
    WatchLagged,
    /// The embedded store's file cannot be read as a Coffer store.
    #[error("storage: {path} is corrupt or not a Coffer store: {reason}")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The embedded store's file is already opened by another process.
    #[error(
        "storage: {path} is in use by another process; stop the other coffer or use another --data-dir"
    )]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The backend cannot be reached right now (etcd members down, connection lost).
    /// Reads may be retried; a txn may or may not have been applied.
    #[error("storage: backend unavailable: {0}")]
    Unavailable(String),
    /// The store has been shut down.
    #[error("storage: the store is closed")]
    Closed,
    /// Any other backend failure (I/O, etcd error). Last resort; carries no value bytes.
    #[error("storage: backend error: {0}")]
    Backend(String),
}

impl Error {
    /// True for [`Error::Compacted`], which the API serves as 410 Gone.
    pub fn is_compacted(&self) -> bool {
        matches!(self, Error::Compacted { .. })
    }
}
