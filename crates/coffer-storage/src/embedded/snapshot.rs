//! Ranges as of a past revision, rebuilt from `index` and the `revs` history.
//!
//! `index` holds each live key's latest state. A key whose `mod_revision` is at or before the
//! read revision `R` has not changed since, so its state at `R` is that entry. A key changed
//! after `R` (or deleted since, so absent from `index`) is found by scanning `revs` in
//! `(R, now]`: the first record of that key after `R` carries `prev_mod_revision`, the
//! revision of its state at `R` (0 when it did not exist then). Compaction at `C <= R` keeps
//! every record this needs: the latest put of each key at or before `C`, and all of `(C, now]`.
//!
//! Worked example, read at `R = 5`, now 8:
//!
//! ```text
//! revs: 3 put a  | 4 put b | 5 put c | 6 put a (prev 3) | 7 delete b (prev 4) | 8 put d (prev 0)
//! index: a -> 6, c -> 5, d -> 8
//! changed after 5: a -> 3, b -> 4, d -> 0
//! state at 5: a = revs[3], b = revs[4], c = revs[5] (unchanged), d absent
//! ```

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::iter::Peekable;
use std::ops::Bound;

use bytes::Bytes;
use redb::ReadableTable;

use super::Shared;
use super::records::Record;
use crate::error::Result;

/// Every key under `prefix` changed in `(after, through]`, mapped to the revision of its state
/// at `after` (0: it did not exist then).
pub(super) fn changed_since(
    shared: &Shared,
    revs: &impl ReadableTable<u64, &'static [u8]>,
    prefix: &[u8],
    after: u64,
    through: u64,
) -> Result<BTreeMap<Bytes, u64>> {
    let mut changed = BTreeMap::new();
    if after >= through {
        return Ok(changed);
    }
    for item in revs
        .range(after + 1..=through)
        .map_err(|e| shared.backend(e))?
    {
        let (_, raw) = item.map_err(|e| shared.backend(e))?;
        let (key, prev) = Record::key_and_prev(raw.value())
            .ok_or_else(|| shared.corrupt("bad revision record"))?;
        if key.starts_with(prefix) && !changed.contains_key(key) {
            changed.insert(Bytes::copy_from_slice(key), prev);
        }
    }
    Ok(changed)
}

/// The start bound of a range: after `start_after` when it lies at or past `prefix`, else the
/// prefix itself.
pub(super) fn start_bound<'k>(prefix: &'k [u8], start_after: Option<&'k [u8]>) -> Bound<&'k [u8]> {
    match start_after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

/// A key as the merge compares it, borrowed from redb's page (no copy per key: a range at the
/// latest revision walks every key through here).
pub(super) trait KeyBytes {
    /// The key's bytes.
    fn key_bytes(&self) -> &[u8];
}

impl KeyBytes for redb::AccessGuard<'_, &'static [u8]> {
    fn key_bytes(&self) -> &[u8] {
        self.value()
    }
}

/// The keys of a range at the read revision, in key order, each as the `revs` revision that
/// holds its state then: live keys unchanged since, merged with changed keys that existed.
pub(super) struct AtRevision<'a, K, I: Iterator<Item = Result<(K, u64)>>> {
    live: Peekable<I>,
    past: Peekable<btree_map::Range<'a, Bytes, u64>>,
    changed: &'a BTreeMap<Bytes, u64>,
}

impl<'a, K: KeyBytes, I: Iterator<Item = Result<(K, u64)>>> AtRevision<'a, K, I> {
    /// `live`: `index` entries from the start bound on, as `(key, mod_revision)`, ending at
    /// the prefix's end. `changed`: from [`changed_since`].
    pub fn new(live: I, changed: &'a BTreeMap<Bytes, u64>, start: Bound<&[u8]>) -> Self {
        AtRevision {
            live: live.peekable(),
            past: changed
                .range::<[u8], _>((start, Bound::Unbounded))
                .peekable(),
            changed,
        }
    }
}

impl<K: KeyBytes, I: Iterator<Item = Result<(K, u64)>>> Iterator for AtRevision<'_, K, I> {
    type Item = Result<u64>;

    fn next(&mut self) -> Option<Result<u64>> {
        // Changed keys that did not exist at the read revision are skipped; live keys that
        // changed are answered from `past`.
        while self.past.next_if(|(_, prev)| **prev == 0).is_some() {}
        while self
            .live
            .next_if(|l| {
                l.as_ref()
                    .is_ok_and(|(k, _)| self.changed.contains_key(k.key_bytes()))
            })
            .is_some()
        {}
        let take_live = match (self.live.peek(), self.past.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(Ok(_)), None) => true,
            (Some(Ok((live, _))), Some((past, _))) => live.key_bytes() < past.as_ref(),
            (None, Some(_)) => false,
        };
        if take_live {
            self.live.next().map(|l| l.map(|(_, revision)| revision))
        } else {
            self.past.next().map(|(_, prev)| Ok(*prev))
        }
    }
}
