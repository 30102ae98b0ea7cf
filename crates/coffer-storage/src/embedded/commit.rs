//! The committer: one thread that owns every write to the redb file.
//!
//! Group commit: the thread blocks for one request, then drains whatever else is queued (up to
//! `max_batch`) and applies it all in one redb write transaction with `Durability::Immediate`.
//! Each txn in the batch gets its own revision and sees the effects of the txns before it, so
//! the batch is equivalent to running them one by one; only the fsync is shared. Nobody is
//! answered before the batch is durable. If the commit fails, every txn in the batch fails and
//! nothing of it is visible (redb discards the uncommitted transaction).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use redb::{Database, ReadTransaction, ReadableTable, Table};
use tokio::sync::oneshot;

use super::Shared;
use super::records::{
    FORMAT_VERSION, INDEX, IndexEntry, META, META_COMPACTED, META_FORMAT, META_REVISION, REVS,
    Record,
};
use crate::contract::{EventKind, KeyValue, Op, Revision, Txn, TxnOutcome, WatchEvent};
use crate::error::{Error, Result};

type Reply<T> = oneshot::Sender<Result<T>>;

/// A unit of work for the committer thread.
pub(super) enum Request {
    Txn(Txn, Reply<TxnOutcome>),
    Compact(Revision, Reply<()>),
}

/// Handle to the committer thread. Dropping it closes the queue and joins the thread, so the
/// file is closed when the last store handle goes away.
pub(super) struct Committer {
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub fn start(shared: Arc<Shared>, max_batch: usize) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("coffer-commit".to_owned())
            .spawn(move || run(&shared, &rx, max_batch.max(1)))
            .map_err(|e| Error::Backend(format!("cannot start the committer thread: {e}")))?;
        Ok(Committer {
            queue: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    /// Queues one request and waits for its answer.
    pub async fn submit<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = self
                .queue
                .lock()
                .expect("BUG: committer queue lock poisoned");
            let sender = queue.as_ref().ok_or(Error::Closed)?;
            sender.send(make(reply)).map_err(|_| Error::Closed)?;
        }
        answer.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Creates the tables of a new file and checks the format of an existing one. Returns the
/// committed revision and the compaction revision.
pub(super) fn initialise(db: &Database, path: &std::path::Path) -> Result<(u64, u64)> {
    let fail = |e: redb::Error| match e {
        redb::Error::Corrupted(reason) => Error::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        other => Error::Backend(format!("{}: {other}", path.display())),
    };
    let write = db.begin_write().map_err(|e| fail(e.into()))?;
    let (revision, compacted) = {
        let mut meta = write.open_table(META).map_err(|e| fail(e.into()))?;
        write.open_table(INDEX).map_err(|e| fail(e.into()))?;
        write.open_table(REVS).map_err(|e| fail(e.into()))?;
        let format = meta
            .get(META_FORMAT)
            .map_err(|e| fail(e.into()))?
            .map(|v| v.value());
        match format {
            None => {
                meta.insert(META_FORMAT, FORMAT_VERSION)
                    .map_err(|e| fail(e.into()))?;
            }
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!(
                        "store format {other} is not supported by this coffer (it reads format {FORMAT_VERSION})"
                    ),
                });
            }
        }
        let get = |k| -> Result<u64> {
            Ok(meta
                .get(k)
                .map_err(|e| fail(e.into()))?
                .map_or(0, |v| v.value()))
        };
        (get(META_REVISION)?, get(META_COMPACTED)?)
    };
    write.commit().map_err(|e| fail(e.into()))?;
    Ok((revision, compacted))
}

/// Reads `(revision, compacted)` in a read transaction.
pub(super) fn read_meta(read: &ReadTransaction, shared: &Shared) -> Result<(u64, u64)> {
    let meta = read.open_table(META).map_err(|e| shared.backend(e))?;
    let get = |k| -> Result<u64> {
        Ok(meta
            .get(k)
            .map_err(|e| shared.backend(e))?
            .map_or(0, |v| v.value()))
    };
    Ok((get(META_REVISION)?, get(META_COMPACTED)?))
}

fn run(shared: &Shared, queue: &mpsc::Receiver<Request>, max_batch: usize) {
    while let Ok(first) = queue.recv() {
        let mut txns = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                Request::Txn(txn, reply) => txns.push((txn, reply)),
                Request::Compact(revision, reply) => {
                    // Compaction runs alone, after the txns queued before it.
                    commit_txns(shared, std::mem::take(&mut txns));
                    let _ = reply.send(compact(shared, revision.get()));
                }
            }
            next = if txns.len() < max_batch {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        commit_txns(shared, txns);
    }
    shared
        .hub
        .lock()
        .expect("BUG: hub lock poisoned")
        .close_all();
}

/// Applies a batch in one durable redb transaction, then publishes its events and answers.
fn commit_txns(shared: &Shared, batch: Vec<(Txn, Reply<TxnOutcome>)>) {
    if batch.is_empty() {
        return;
    }
    let start = shared.revision.load(Ordering::Acquire);
    let mut revision = start;
    let mut events = Vec::new();
    // Before anything of the batch can become visible (`latest.rs`).
    let marked = shared.latest.mark(batch.iter().map(|(txn, _)| &txn.key));
    let result = (|| -> Result<Vec<TxnOutcome>> {
        // `Durability::Immediate` is redb's default: commit() returns after the fsync.
        let write = shared.db.begin_write().map_err(|e| shared.backend(e))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut index = write.open_table(INDEX).map_err(|e| shared.backend(e))?;
            let mut revs = write.open_table(REVS).map_err(|e| shared.backend(e))?;
            let mut meta = write.open_table(META).map_err(|e| shared.backend(e))?;
            for (txn, _) in &batch {
                let mut tables = Tables {
                    shared,
                    index: &mut index,
                    revs: &mut revs,
                };
                outcomes.push(tables.apply(txn, &mut revision, &mut events)?);
            }
            meta.insert(META_REVISION, revision)
                .map_err(|e| shared.backend(e))?;
        }
        write.commit().map_err(|e| shared.backend(e))?;
        Ok(outcomes)
    })();
    match result {
        Ok(outcomes) => {
            // Each changed key's state after the batch (the last event per key wins).
            let after: HashMap<Bytes, Option<u64>> = events
                .iter()
                .map(|e| {
                    let revision = match e.kind {
                        EventKind::Put => Some(e.kv.mod_revision.get()),
                        EventKind::Delete => None,
                    };
                    (e.kv.key.clone(), revision)
                })
                .collect();
            shared.latest.settle(marked, &after);
            {
                let mut hub = shared.hub.lock().expect("BUG: hub lock poisoned");
                shared.revision.store(revision, Ordering::Release);
                hub.publish(events);
            }
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(err) => {
            shared.latest.restore(marked);
            tracing::error!(error = %err, first_revision = start + 1, "storage commit failed");
            for (_, reply) in batch {
                let _ = reply.send(Err(same_error(&err)));
            }
        }
    }
}

/// The open tables of one write transaction.
struct Tables<'a, 't> {
    shared: &'a Shared,
    index: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    revs: &'a mut Table<'t, u64, &'static [u8]>,
}

impl Tables<'_, '_> {
    /// Applies one txn on top of the batch so far; bumps `revision` when it changes a key.
    fn apply(
        &mut self,
        txn: &Txn,
        revision: &mut u64,
        events: &mut Vec<Arc<WatchEvent>>,
    ) -> Result<TxnOutcome> {
        let shared = self.shared;
        let current = match self
            .index
            .get(&txn.key[..])
            .map_err(|e| shared.backend(e))?
        {
            Some(raw) => Some(
                IndexEntry::decode(raw.value()).ok_or_else(|| shared.corrupt("bad index entry"))?,
            ),
            None => None,
        };
        let prev = match current {
            Some(entry) => Some(self.load(entry.mod_revision)?),
            None => None,
        };
        if let Some(expected) = txn.expected_mod_revision {
            let actual = current.map_or(0, |c| c.mod_revision);
            if actual != expected.get() {
                return Ok(TxnOutcome::Failed {
                    revision: Revision::new(*revision),
                    current: prev,
                });
            }
        }
        let record = match (&txn.op, current) {
            (Op::Delete, None) => {
                return Ok(TxnOutcome::Committed {
                    revision: Revision::new(*revision),
                    prev: None,
                });
            }
            (Op::Delete, Some(entry)) => {
                *revision += 1;
                self.index
                    .remove(&txn.key[..])
                    .map_err(|e| shared.backend(e))?;
                Record {
                    kind: EventKind::Delete,
                    key: txn.key.clone(),
                    value: Bytes::new(),
                    create_revision: 0,
                    version: 0,
                    prev_mod_revision: entry.mod_revision,
                }
            }
            (Op::Put(value), current) => {
                *revision += 1;
                let entry = IndexEntry {
                    mod_revision: *revision,
                    create_revision: current.map_or(*revision, |c| c.create_revision),
                    version: current.map_or(1, |c| c.version + 1),
                };
                self.index
                    .insert(&txn.key[..], &entry.encode()[..])
                    .map_err(|e| shared.backend(e))?;
                Record {
                    kind: EventKind::Put,
                    key: txn.key.clone(),
                    value: value.clone(),
                    create_revision: entry.create_revision,
                    version: entry.version,
                    prev_mod_revision: current.map_or(0, |c| c.mod_revision),
                }
            }
        };
        self.revs
            .insert(*revision, &record.encode()[..])
            .map_err(|e| shared.backend(e))?;
        events.push(Arc::new(record.event(*revision, prev.clone())));
        Ok(TxnOutcome::Committed {
            revision: Revision::new(*revision),
            prev,
        })
    }

    fn load(&self, revision: u64) -> Result<KeyValue> {
        let shared = self.shared;
        let raw = self
            .revs
            .get(revision)
            .map_err(|e| shared.backend(e))?
            .ok_or_else(|| shared.corrupt("index points at a missing revision"))?;
        let record =
            Record::decode(raw.value()).ok_or_else(|| shared.corrupt("bad revision record"))?;
        Ok(record.key_value(revision))
    }
}

/// Compaction at `target`, etcd's rule: for each key, the latest record at or before `target`
/// stays if it is a put (it is the key's state at `target`, and the `prev_kv` of its next
/// event); superseded records and tombstones before `target` go. Records at exactly `target`
/// stay, so a watch from `target` still sees every event.
fn compact(shared: &Shared, target: u64) -> Result<()> {
    let current = shared.revision.load(Ordering::Acquire);
    let compacted = shared.compacted.load(Ordering::Acquire);
    if target > current {
        return Err(Error::FutureRevision {
            requested: Revision::new(target),
            current: Revision::new(current),
        });
    }
    if target <= compacted {
        return Err(Error::Compacted {
            requested: Revision::new(target),
            compacted: Revision::new(compacted),
        });
    }
    let write = shared.db.begin_write().map_err(|e| shared.backend(e))?;
    let removed = {
        let mut revs = write.open_table(REVS).map_err(|e| shared.backend(e))?;
        let mut doomed = Vec::new();
        let mut seen: HashSet<Bytes> = HashSet::new();
        for item in revs.range(..=target).map_err(|e| shared.backend(e))?.rev() {
            let (rev, raw) = item.map_err(|e| shared.backend(e))?;
            let record =
                Record::decode(raw.value()).ok_or_else(|| shared.corrupt("bad revision record"))?;
            let first_seen = seen.insert(record.key.clone());
            let latest_put = first_seen && record.kind == EventKind::Put;
            if rev.value() != target && !latest_put {
                doomed.push(rev.value());
            }
        }
        for rev in &doomed {
            revs.remove(*rev).map_err(|e| shared.backend(e))?;
        }
        let mut meta = write.open_table(META).map_err(|e| shared.backend(e))?;
        meta.insert(META_COMPACTED, target)
            .map_err(|e| shared.backend(e))?;
        doomed.len()
    };
    write.commit().map_err(|e| shared.backend(e))?;
    shared.compacted.store(target, Ordering::Release);
    tracing::debug!(revision = target, removed, "storage compacted");
    Ok(())
}

/// The same failure again, for the next txn of a failed batch.
fn same_error(err: &Error) -> Error {
    match err {
        Error::Corrupt { path, reason } => Error::Corrupt {
            path: path.clone(),
            reason: reason.clone(),
        },
        other => Error::Backend(other.to_string()),
    }
}
