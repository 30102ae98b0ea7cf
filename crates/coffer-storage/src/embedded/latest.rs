//! Every live key's mod revision in memory (etcd keeps its whole key index in memory the same
//! way, `mvcc/index.go`), so that [`Store::get_unless`](crate::Store::get_unless) can answer
//! "unchanged" without a redb read transaction.
//!
//! The one invariant: when the map says key `k` is at revision `R`, the committed file has `k`
//! at `R` and no commit touching `k` is in flight. The committer keeps it: before a batch's
//! commit makes it visible, every key the batch touches is marked [`Latest::Pending`]; after
//! the commit, each takes its new revision (or leaves the map, if deleted); if the commit
//! fails, each gets back what it had. A reader that finds anything but `At(known)` (pending,
//! absent, another revision) reads the file, so the map can only ever make a read cheaper,
//! never older.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use bytes::Bytes;

/// What the map knows of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Latest {
    /// Committed at this mod revision, nothing in flight.
    At(u64),
    /// A commit touching the key is in flight: ask the file.
    Pending,
}

/// The map, filled from the index at open and kept by the committer.
#[derive(Default)]
pub(super) struct LatestIndex {
    keys: RwLock<HashMap<Bytes, Latest>>,
}

/// The keys of one batch as they were before it, to restore or settle after the commit.
pub(super) struct Marked {
    before: HashMap<Bytes, Option<Latest>>,
}

impl LatestIndex {
    /// A map of `keys` (key, mod revision), as read from the index at open.
    pub fn load(keys: impl IntoIterator<Item = (Bytes, u64)>) -> Self {
        LatestIndex {
            keys: RwLock::new(keys.into_iter().map(|(k, r)| (k, Latest::At(r))).collect()),
        }
    }

    /// True when `key` is committed at exactly `revision` with no commit in flight.
    pub fn is_at(&self, key: &[u8], revision: u64) -> bool {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(key) == Some(&Latest::At(revision))
    }

    /// Marks `keys` pending before their commit becomes visible.
    pub fn mark<'a>(&self, keys: impl IntoIterator<Item = &'a Bytes>) -> Marked {
        let mut map = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let mut before = HashMap::new();
        for key in keys {
            if !before.contains_key(key) {
                before.insert(key.clone(), map.get(key).copied());
                map.insert(key.clone(), Latest::Pending);
            }
        }
        Marked { before }
    }

    /// After a successful commit: each key in `after` takes its committed mod revision
    /// (`None`: deleted); the other marked keys (txns whose compare failed) get back what
    /// they had.
    pub fn settle(&self, marked: Marked, after: &HashMap<Bytes, Option<u64>>) {
        let mut map = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        for (key, before) in marked.before {
            let now = match after.get(&key) {
                Some(Some(revision)) => Some(Latest::At(*revision)),
                Some(None) => None,
                None => before,
            };
            match now {
                Some(latest) => map.insert(key, latest),
                None => map.remove(&key),
            };
        }
    }

    /// After a failed commit: every marked key gets back what it had.
    pub fn restore(&self, marked: Marked) {
        self.settle(marked, &HashMap::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn pending_keys_are_never_at_a_revision() {
        let index = LatestIndex::load([(b("a"), 3), (b("b"), 4)]);
        assert!(index.is_at(b"a", 3));
        assert!(!index.is_at(b"a", 4));
        assert!(!index.is_at(b"c", 0));
        let marked = index.mark([&b("a"), &b("c"), &b("a")]);
        assert!(!index.is_at(b"a", 3), "in flight: ask the file");
        assert!(index.is_at(b"b", 4), "untouched keys keep answering");
        index.settle(
            marked,
            &HashMap::from([(b("a"), Some(5)), (b("c"), Some(6))]),
        );
        assert!(index.is_at(b"a", 5));
        assert!(index.is_at(b"c", 6));
    }

    #[test]
    fn deletes_leave_and_failures_restore() {
        let index = LatestIndex::load([(b("a"), 3), (b("b"), 4)]);
        let marked = index.mark([&b("a"), &b("b")]);
        // `a` deleted; `b`'s compare failed, so it keeps revision 4.
        index.settle(marked, &HashMap::from([(b("a"), None)]));
        assert!(!index.is_at(b"a", 3));
        assert!(index.is_at(b"b", 4));
        let marked = index.mark([&b("b"), &b("new")]);
        index.restore(marked);
        assert!(index.is_at(b"b", 4));
        assert!(!index.is_at(b"new", 0));
        assert_eq!(
            index.keys.read().unwrap().len(),
            1,
            "the failed create left nothing"
        );
    }
}
