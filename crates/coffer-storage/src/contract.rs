//! The storage contract, modelled on etcd v3's MVCC `KV` and `Watchable` interfaces
//! (etcd `server/storage/mvcc/kv.go`).
//!
//! - One global revision counter, strictly increasing. Every successful put, and every delete
//!   that removes a key, bumps it by exactly one and emits exactly one watch event.
//!   Reads, failed compares, deletes of absent keys and compaction never bump it.
//! - Each key carries `create_revision` (the revision that created this generation of the key),
//!   `mod_revision` (the last revision that changed it) and `version` (puts since creation,
//!   starting at 1). A deleted and re-created key starts a new generation.
//! - `resourceVersion` in the Kubernetes API is a [`Revision`].

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::error::{Error, Result};

/// The largest value either backend accepts: etcd's default `--max-request-bytes` (1.5 MiB).
/// Larger values are refused with [`Error::ValueTooLarge`] before anything is written.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// A storage revision. `Revision::ZERO` never names a write: as a compare target it means
/// "the key must not exist", and as a watch start it means "from now on".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(u64);

impl Revision {
    /// The revision before the first write.
    pub const ZERO: Revision = Revision(0);

    /// Wraps a raw revision number, as read from a store or a `resourceVersion`.
    pub const fn new(raw: u64) -> Self {
        Revision(raw)
    }

    /// The raw revision number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next revision.
    pub const fn next(self) -> Self {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One key's current state. `Debug` shows the key and revisions, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full storage key.
    pub key: Bytes,
    /// The stored bytes (already encoded and encrypted by the caller). Empty for a delete event.
    pub value: Bytes,
    /// The revision that created this generation of the key (0 in a delete event).
    pub create_revision: Revision,
    /// The revision of the last change (for a delete event, the delete's revision).
    pub mod_revision: Revision,
    /// Number of puts since the key was created (0 in a delete event).
    pub version: u64,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .finish()
    }
}

/// The answer to [`Store::get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResponse {
    /// The key's current state, or `None` when it does not exist.
    pub kv: Option<KeyValue>,
    /// The store's revision when the read was made.
    pub revision: Revision,
}

/// The answer to [`Store::get_unless`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The key still has the mod revision the caller knows; its value was not read.
    Unchanged,
    /// The key's current state, as [`Store::get`] answers it.
    Current(GetResponse),
}

/// The answer to [`Store::range`] and [`Store::range_at`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// Matching keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// True when the limit cut the answer short and more keys match after the last one.
    pub more: bool,
    /// How many matching keys follow the last one returned, at `revision` (0 unless `more`;
    /// kube-apiserver's `remainingItemCount`, from etcd's `count`).
    pub remaining: u64,
    /// The revision the read was made at: the one asked for, or the store's latest; every kv
    /// has `mod_revision <= revision`.
    pub revision: Revision,
}

/// What a transaction does when its compare holds.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Store this value under the key.
    Put(Bytes),
    /// Remove the key.
    Delete,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put(v) => write!(f, "Put({} bytes)", v.len()),
            Op::Delete => f.write_str("Delete"),
        }
    }
}

/// A single-key compare-and-swap, the shape kube-apiserver's etcd3 store uses for create
/// (`mod_revision == 0`), guaranteed update and preconditioned delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// The key compared and changed.
    pub key: Bytes,
    /// `Some(r)`: apply only if the key's `mod_revision` is `r` (0 = the key must not exist).
    /// `None`: apply unconditionally.
    pub expected_mod_revision: Option<Revision>,
    /// The change applied when the compare holds.
    pub op: Op,
}

impl Txn {
    /// Creates `key` only if it does not exist.
    pub fn create(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Txn {
            key: key.into(),
            expected_mod_revision: Some(Revision::ZERO),
            op: Op::Put(value.into()),
        }
    }

    /// Overwrites `key` only if its `mod_revision` is still `expected`.
    pub fn update(key: impl Into<Bytes>, expected: Revision, value: impl Into<Bytes>) -> Self {
        Txn {
            key: key.into(),
            expected_mod_revision: Some(expected),
            op: Op::Put(value.into()),
        }
    }

    /// Writes `key` whatever its state.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Txn {
            key: key.into(),
            expected_mod_revision: None,
            op: Op::Put(value.into()),
        }
    }

    /// Deletes `key`; with `expected`, only if its `mod_revision` is still that.
    pub fn delete(key: impl Into<Bytes>, expected: Option<Revision>) -> Self {
        Txn {
            key: key.into(),
            expected_mod_revision: expected,
            op: Op::Delete,
        }
    }

    /// Refuses what no backend may store: an empty key or a value over [`MAX_VALUE_BYTES`].
    /// Both backends call this before writing anything.
    pub fn validate(&self) -> Result<()> {
        if self.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if let Op::Put(value) = &self.op
            && value.len() > MAX_VALUE_BYTES
        {
            return Err(Error::ValueTooLarge {
                key: String::from_utf8_lossy(&self.key).into_owned(),
                size: value.len(),
                limit: MAX_VALUE_BYTES,
            });
        }
        Ok(())
    }
}

/// The result of a [`Txn`]. A failed compare is an outcome, not an error: the caller turns it
/// into `AlreadyExists` or `Conflict` with the current state in hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// The compare held and the op was applied.
    Committed {
        /// The store's revision after the txn: the new revision for a put or a delete that
        /// removed a key, the unchanged current revision for a delete of an absent key.
        revision: Revision,
        /// The key's state before the op, if it existed.
        prev: Option<KeyValue>,
    },
    /// The compare failed; nothing changed.
    Failed {
        /// The store's revision when the compare was evaluated.
        revision: Revision,
        /// The key's current state, if it exists.
        current: Option<KeyValue>,
    },
}

/// Whether a watch event stored or removed a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or overwritten.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change, delivered to watchers in revision order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete, only `key` and `mod_revision` are set.
    pub kv: KeyValue,
    /// The key's state just before the change, when it existed and is still retained.
    pub prev_kv: Option<KeyValue>,
}

impl WatchEvent {
    /// The revision of this change.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A stream of watch events. It ends with an `Err` item when the watch cannot go on:
/// [`Error::Compacted`] if its start was compacted, [`Error::WatchLagged`] if the watcher fell
/// too far behind and was cut off (writers are never blocked by a slow watcher).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// The storage contract every backend implements and `testing::conformance` checks.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key at the current revision. Never bumps the revision.
    async fn get(&self, key: &[u8]) -> Result<GetResponse>;

    /// Reads one key like [`Store::get`], unless its mod revision is still `known`: then
    /// [`Lookup::Unchanged`], and the value is not loaded. For a caller that already holds
    /// the object at `known` (the server's object cache answers most GETs this way). The
    /// default reads the key and compares.
    async fn get_unless(&self, key: &[u8], known: Revision) -> Result<Lookup> {
        let got = self.get(key).await?;
        Ok(match &got.kv {
            Some(kv) if kv.mod_revision == known => Lookup::Unchanged,
            _ => Lookup::Current(got),
        })
    }

    /// Reads keys starting with `prefix` in ascending order, after `start_after` when given,
    /// at most `limit` of them (0 = no limit), all at the latest revision. Never bumps the
    /// revision.
    async fn range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RangeResponse> {
        self.range_at(prefix, start_after, limit, None).await
    }

    /// [`Store::range`] as of `revision` (`None` or `Revision::ZERO`: the latest): every key
    /// that existed then, with its value, `mod_revision`, `create_revision` and `version` of
    /// then, including keys deleted since, and none created since (etcd's range with
    /// `revision`). Paging with `start_after` at one revision gives a consistent snapshot.
    /// Never bumps the revision; the embedded backend's cost grows with the writes since
    /// `revision` (it replays their keys). Errors: [`Error::Compacted`] before the last
    /// compaction (the compaction revision itself is still readable, as in etcd),
    /// [`Error::FutureRevision`] beyond the current revision.
    async fn range_at(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<RangeResponse>;

    /// Applies a single-key compare-and-swap atomically and durably: once it returns
    /// `Committed`, the change survives a crash. Bumps the revision by one when it changes a
    /// key, and emits one watch event.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome>;

    /// Streams every change to keys under `prefix` with revision `>= start`, in revision
    /// order, then live changes. `start == Revision::ZERO` means "changes after now". A start
    /// older than the last compaction yields [`Error::Compacted`] as the first item.
    async fn watch(&self, prefix: &[u8], start: Revision) -> Result<WatchStream>;

    /// Discards history before `revision`: the latest state of every key at `revision` is
    /// kept, older superseded versions and tombstones go. Afterwards a watch starting before
    /// `revision` fails with [`Error::Compacted`]. Never bumps the revision.
    /// Errors: [`Error::FutureRevision`] beyond the current revision, [`Error::Compacted`] at or
    /// before an earlier compaction.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The latest committed revision.
    async fn current_revision(&self) -> Result<Revision>;
}
