//! The embedded backend: one redb file, the default store.
//!
//! - Writes go through one committer thread (`commit.rs`) that groups every transaction queued
//!   while the previous commit was syncing into one redb write transaction with
//!   `Durability::Immediate`: a txn is acknowledged only after its batch is on disk, and durable
//!   throughput grows with the number of concurrent writers (group commit).
//! - Reads use redb's MVCC read transactions and never wait for the committer.
//! - Watches are served from the in-memory window in `hub.rs`, and from the `revs` table for
//!   older revisions not yet compacted.

mod commit;
mod hub;
mod latest;
mod records;
mod snapshot;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::contract::{
    GetResponse, KeyValue, Lookup, RangeResponse, Revision, Store, Txn, TxnOutcome, WatchEvent,
    WatchStream,
};
use crate::error::{Error, Result};
use commit::{Committer, Request};
use hub::{CatchUp, Hub, HubStream};
use latest::LatestIndex;
use records::{INDEX, IndexEntry, REVS, Record};

/// Tuning for [`EmbeddedStore`]. The defaults suit a single server.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Most events kept in memory for watch catch-up (older ones are read from the file).
    pub watch_window_events: usize,
    /// Most key and value bytes kept in that window.
    pub watch_window_bytes: usize,
    /// Most transactions grouped into one commit.
    pub max_batch: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            watch_window_events: 10_000,
            watch_window_bytes: 64 * 1024 * 1024,
            max_batch: 1024,
        }
    }
}

/// The embedded store: a single redb file. Cheap to clone; all clones share one file and one
/// committer, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    committer: Arc<Committer>,
}

/// State shared by the store handles and the committer thread.
pub(super) struct Shared {
    db: Database,
    path: PathBuf,
    /// The latest committed revision. Written only by the committer, after its commit.
    revision: AtomicU64,
    /// The last compaction revision. Written only by the committer, after its commit.
    compacted: AtomicU64,
    /// Guards the watch window and watcher list (see `hub.rs`). Never held across I/O.
    hub: Mutex<Hub>,
    /// Every live key's mod revision, kept by the committer (`latest.rs`).
    latest: LatestIndex,
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating it if absent. A file that is not a Coffer store, or
    /// is damaged beyond redb's repair, gives [`Error::Corrupt`] naming the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, EmbeddedOptions::default())
    }

    /// [`EmbeddedStore::open`] with explicit tuning.
    pub fn open_with(path: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let db = open_database(&path)?;
        let (revision, compacted) = commit::initialise(&db, &path)?;
        let latest = load_latest(&db, &path)?;
        let shared = Arc::new(Shared {
            db,
            path,
            latest,
            revision: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            hub: Mutex::new(Hub::new(
                revision,
                options.watch_window_events,
                options.watch_window_bytes,
            )),
        });
        let committer = Arc::new(Committer::start(Arc::clone(&shared), options.max_batch)?);
        Ok(EmbeddedStore { shared, committer })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The last compaction revision (0 if never compacted).
    pub fn compacted_revision(&self) -> Revision {
        Revision::new(self.shared.compacted.load(Ordering::Acquire))
    }
}

/// Reads every live key's mod revision from the index, for [`LatestIndex`].
fn load_latest(db: &Database, path: &Path) -> Result<LatestIndex> {
    let fail = |e: redb::Error| Error::Backend(format!("{}: {e}", path.display()));
    let read = db.begin_read().map_err(|e| fail(e.into()))?;
    let index = read.open_table(INDEX).map_err(|e| fail(e.into()))?;
    let mut keys = Vec::new();
    for entry in index.iter().map_err(|e| fail(e.into()))? {
        let (key, value) = entry.map_err(|e| fail(e.into()))?;
        let entry = IndexEntry::decode(value.value()).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            reason: "bad index entry".to_owned(),
        })?;
        keys.push((Bytes::copy_from_slice(key.value()), entry.mod_revision));
    }
    Ok(LatestIndex::load(keys))
}

/// Opens or creates the redb file, turning redb's errors (and its debug-build panics on
/// corrupt pages) into errors that name the file.
fn open_database(path: &Path) -> Result<Database> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Backend(format!("cannot create {}: {e}", dir.display())))?;
    }
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| Database::create(path)));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(Error::InUse {
            path: path.to_path_buf(),
        }),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if e.kind() != std::io::ErrorKind::InvalidData =>
        {
            Err(Error::Backend(format!(
                "cannot open {}: {e}",
                path.display()
            )))
        }
        Ok(Err(e)) => Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(_) => Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "the storage engine rejected the file's pages".to_owned(),
        }),
    }
}

impl Shared {
    /// Wraps a redb failure, naming the file.
    fn backend(&self, e: impl Into<redb::Error>) -> Error {
        match e.into() {
            redb::Error::Corrupted(reason) => Error::Corrupt {
                path: self.path.clone(),
                reason,
            },
            other => Error::Backend(format!("{}: {other}", self.path.display())),
        }
    }

    fn corrupt(&self, what: &str) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            reason: what.to_owned(),
        }
    }

    /// [`Store::get_unless`]: the in-memory [`LatestIndex`] answers an unchanged key without
    /// touching the file; anything else (changed, pending, missing) is a [`Shared::get`].
    fn get_unless(&self, key: &[u8], known: Revision) -> Result<Lookup> {
        if self.latest.is_at(key, known.get()) {
            return Ok(Lookup::Unchanged);
        }
        self.get(key).map(Lookup::Current)
    }

    /// Reads one key at a consistent snapshot: the index entry, then its revision record.
    fn get(&self, key: &[u8]) -> Result<GetResponse> {
        let read = self.db.begin_read().map_err(|e| self.backend(e))?;
        let revision = commit::read_meta(&read, self)?.0;
        let index = read.open_table(INDEX).map_err(|e| self.backend(e))?;
        let revs = read.open_table(REVS).map_err(|e| self.backend(e))?;
        let entry = index.get(key).map_err(|e| self.backend(e))?;
        let kv = match entry {
            Some(entry) => {
                let entry = IndexEntry::decode(entry.value())
                    .ok_or_else(|| self.corrupt("bad index entry"))?;
                Some(self.load(&revs, entry.mod_revision)?)
            }
            None => None,
        };
        Ok(GetResponse {
            kv,
            revision: Revision::new(revision),
        })
    }

    /// A range as of `at` (`None`/0: the latest), in one read transaction (see
    /// `snapshot.rs`). Keys past the limit are counted, not loaded.
    fn range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        at: Option<Revision>,
    ) -> Result<RangeResponse> {
        let read = self.db.begin_read().map_err(|e| self.backend(e))?;
        let (current, compacted) = commit::read_meta(&read, self)?;
        let at = match at.map(Revision::get) {
            None | Some(0) => current,
            Some(at) if at > current => {
                return Err(Error::FutureRevision {
                    requested: Revision::new(at),
                    current: Revision::new(current),
                });
            }
            Some(at) if at < compacted => {
                return Err(Error::Compacted {
                    requested: Revision::new(at),
                    compacted: Revision::new(compacted),
                });
            }
            Some(at) => at,
        };
        let index = read.open_table(INDEX).map_err(|e| self.backend(e))?;
        let revs = read.open_table(REVS).map_err(|e| self.backend(e))?;
        let changed = snapshot::changed_since(self, &revs, prefix, at, current)?;
        let start = snapshot::start_bound(prefix, start_after);
        let live = index
            .range::<&[u8]>((start, std::ops::Bound::Unbounded))
            .map_err(|e| self.backend(e))?
            .map(|item| {
                let (k, v) = item.map_err(|e| self.backend(e))?;
                let entry =
                    IndexEntry::decode(v.value()).ok_or_else(|| self.corrupt("bad index entry"))?;
                Ok((k, entry.mod_revision))
            })
            .take_while(|item| {
                item.as_ref()
                    .map_or(true, |(k, _)| k.value().starts_with(prefix))
            });
        let mut kvs = Vec::new();
        let mut remaining = 0;
        for revision in snapshot::AtRevision::new(live, &changed, start) {
            let revision = revision?;
            if limit != 0 && kvs.len() == limit {
                remaining += 1;
            } else {
                kvs.push(self.load(&revs, revision)?);
            }
        }
        Ok(RangeResponse {
            kvs,
            more: remaining > 0,
            remaining,
            revision: Revision::new(at),
        })
    }

    /// Reads the record at `revision` as the key's state then.
    fn load(
        &self,
        revs: &impl ReadableTable<u64, &'static [u8]>,
        revision: u64,
    ) -> Result<KeyValue> {
        let raw = revs
            .get(revision)
            .map_err(|e| self.backend(e))?
            .ok_or_else(|| self.corrupt("index points at a missing revision"))?;
        let record =
            Record::decode(raw.value()).ok_or_else(|| self.corrupt("bad revision record"))?;
        Ok(record.key_value(revision))
    }

    /// Reads the events in `[start, last]` under `prefix` from the file, for a watcher whose
    /// start is older than the in-memory window.
    fn events_from_file(
        &self,
        prefix: &[u8],
        start: u64,
        last: u64,
    ) -> Result<Vec<Result<WatchEvent>>> {
        let read = self.db.begin_read().map_err(|e| self.backend(e))?;
        let (_, compacted) = commit::read_meta(&read, self)?;
        if start < compacted {
            return Ok(vec![Err(Error::Compacted {
                requested: Revision::new(start),
                compacted: Revision::new(compacted),
            })]);
        }
        let revs = read.open_table(REVS).map_err(|e| self.backend(e))?;
        let mut out = Vec::new();
        for item in revs.range(start..=last).map_err(|e| self.backend(e))? {
            let (rev, raw) = item.map_err(|e| self.backend(e))?;
            let record =
                Record::decode(raw.value()).ok_or_else(|| self.corrupt("bad revision record"))?;
            if !record.key.starts_with(prefix) {
                continue;
            }
            let prev = match record.prev_mod_revision {
                0 => None,
                p => revs
                    .get(p)
                    .map_err(|e| self.backend(e))?
                    .and_then(|raw| Record::decode(raw.value()))
                    .map(|r| r.key_value(p)),
            };
            out.push(Ok(record.event(rev.value(), prev)));
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &[u8]) -> Result<GetResponse> {
        // A point read is a few page lookups in redb's cache; it runs inline.
        self.shared.get(key)
    }

    async fn get_unless(&self, key: &[u8], known: Revision) -> Result<Lookup> {
        self.shared.get_unless(key, known)
    }

    async fn range_at(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<RangeResponse> {
        let shared = Arc::clone(&self.shared);
        let prefix = prefix.to_vec();
        let start_after = start_after.map(<[u8]>::to_vec);
        tokio::task::spawn_blocking(move || {
            shared.range(&prefix, start_after.as_deref(), limit, revision)
        })
        .await
        .map_err(|e| Error::Backend(format!("range task failed: {e}")))?
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        txn.validate()?;
        self.committer
            .submit(|reply| Request::Txn(txn, reply))
            .await
    }

    async fn watch(&self, prefix: &[u8], start: Revision) -> Result<WatchStream> {
        let prefix = Bytes::copy_from_slice(prefix);
        let (start, parts, catch_up) = {
            let mut hub = self.shared.hub.lock().expect("BUG: hub lock poisoned");
            // Read under the hub lock: the committer publishes under it, so no event is both
            // in the catch-up and the live channel, and none falls between them.
            let current = self.shared.revision.load(Ordering::Acquire);
            let compacted = self.shared.compacted.load(Ordering::Acquire);
            let start = hub::effective_start(start, current);
            if start < compacted {
                let err = Error::Compacted {
                    requested: Revision::new(start),
                    compacted: Revision::new(compacted),
                };
                return Ok(Box::pin(HubStream::failed(err)));
            }
            let (parts, catch_up) = hub.register(prefix.clone(), start);
            (start, parts, catch_up)
        };
        let events = match catch_up {
            None => Vec::new(),
            Some(CatchUp::Memory(events)) => events
                .into_iter()
                .map(|e| Ok(WatchEvent::clone(&e)))
                .collect(),
            Some(CatchUp::File { start, last }) => {
                let shared = Arc::clone(&self.shared);
                tokio::task::spawn_blocking(move || shared.events_from_file(&prefix, start, last))
                    .await
                    .map_err(|e| Error::Backend(format!("watch catch-up task failed: {e}")))??
            }
        };
        Ok(Box::pin(HubStream::new(start, events, parts)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.committer
            .submit(|reply| Request::Compact(revision, reply))
            .await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(Revision::new(self.shared.revision.load(Ordering::Acquire)))
    }
}
