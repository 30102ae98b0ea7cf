//! The embedded store's on-disk layout: three redb tables and the byte layout of their values.
//!
//! ```text
//! index : key bytes            -> IndexEntry  (live keys only; a delete removes the entry)
//! revs  : revision (u64)       -> Record      (one per put or delete, until compacted)
//! meta  : "revision"|"compacted"|"format" -> u64
//! ```
//!
//! This is etcd's split between the key index and the revision-keyed backend
//! (`mvcc/key_index.go`, `mvcc/revision.go`): a value is written once, under its revision;
//! `get` looks the key up in `index` and then reads `revs[mod_revision]`; watch catch-up and
//! `prev_kv` read `revs` directly.

use bytes::Bytes;
use redb::TableDefinition;

use crate::contract::{EventKind, KeyValue, Revision, WatchEvent};

pub(super) const INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("index");
pub(super) const REVS: TableDefinition<u64, &[u8]> = TableDefinition::new("revs");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `meta` key of the latest committed revision.
pub(super) const META_REVISION: &str = "revision";
/// `meta` key of the last compaction revision.
pub(super) const META_COMPACTED: &str = "compacted";
/// `meta` key of the on-disk format version.
pub(super) const META_FORMAT: &str = "format";
/// The format this code writes and reads. Bump it when the layout below changes.
pub(super) const FORMAT_VERSION: u64 = 1;

const KIND_PUT: u8 = 0;
const KIND_DELETE: u8 = 1;

/// A live key's entry in `index`: 24 bytes, big-endian `mod | create | version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IndexEntry {
    pub mod_revision: u64,
    pub create_revision: u64,
    pub version: u64,
}

impl IndexEntry {
    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[0..8].copy_from_slice(&self.mod_revision.to_be_bytes());
        out[8..16].copy_from_slice(&self.create_revision.to_be_bytes());
        out[16..24].copy_from_slice(&self.version.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 24 {
            return None;
        }
        Some(IndexEntry {
            mod_revision: read_u64(bytes, 0)?,
            create_revision: read_u64(bytes, 8)?,
            version: read_u64(bytes, 16)?,
        })
    }
}

/// One put or delete in `revs`:
/// `kind u8 | create u64 | version u64 | prev_mod u64 | key_len u32 | key | value`.
/// `prev_mod` is the key's `mod_revision` before this change (0 if it did not exist), so a
/// watch event's `prev_kv` is `revs[prev_mod]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub kind: EventKind,
    pub key: Bytes,
    pub value: Bytes,
    pub create_revision: u64,
    pub version: u64,
    pub prev_mod_revision: u64,
}

const RECORD_HEADER: usize = 1 + 8 + 8 + 8 + 4;

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.key.len() + self.value.len());
        out.push(match self.kind {
            EventKind::Put => KIND_PUT,
            EventKind::Delete => KIND_DELETE,
        });
        out.extend_from_slice(&self.create_revision.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.prev_mod_revision.to_be_bytes());
        let key_len = u32::try_from(self.key.len()).expect("BUG: keys are far below 4 GiB");
        out.extend_from_slice(&key_len.to_be_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.value);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let kind = match *bytes.first()? {
            KIND_PUT => EventKind::Put,
            KIND_DELETE => EventKind::Delete,
            _ => return None,
        };
        let create_revision = read_u64(bytes, 1)?;
        let version = read_u64(bytes, 9)?;
        let prev_mod_revision = read_u64(bytes, 17)?;
        let key_len = u32::from_be_bytes(bytes.get(25..29)?.try_into().ok()?) as usize;
        let key_end = RECORD_HEADER.checked_add(key_len)?;
        let key = Bytes::copy_from_slice(bytes.get(RECORD_HEADER..key_end)?);
        let value = Bytes::copy_from_slice(bytes.get(key_end..)?);
        Some(Record {
            kind,
            key,
            value,
            create_revision,
            version,
            prev_mod_revision,
        })
    }

    /// The key and `prev_mod_revision` of an encoded record, without copying its value (for
    /// scans of `revs` that only need to know which keys changed).
    pub fn key_and_prev(bytes: &[u8]) -> Option<(&[u8], u64)> {
        let prev_mod_revision = read_u64(bytes, 17)?;
        let key_len = u32::from_be_bytes(bytes.get(25..29)?.try_into().ok()?) as usize;
        let key = bytes.get(RECORD_HEADER..RECORD_HEADER.checked_add(key_len)?)?;
        Some((key, prev_mod_revision))
    }

    /// The key-value this record describes, as stored at `revision`.
    pub fn key_value(&self, revision: u64) -> KeyValue {
        KeyValue {
            key: self.key.clone(),
            value: self.value.clone(),
            create_revision: Revision::new(self.create_revision),
            mod_revision: Revision::new(revision),
            version: self.version,
        }
    }

    /// The watch event for this record at `revision`, with `prev` as its previous state.
    pub fn event(&self, revision: u64, prev: Option<KeyValue>) -> WatchEvent {
        let kv = match self.kind {
            EventKind::Put => self.key_value(revision),
            EventKind::Delete => KeyValue {
                key: self.key.clone(),
                value: Bytes::new(),
                create_revision: Revision::ZERO,
                mod_revision: Revision::new(revision),
                version: 0,
            },
        };
        WatchEvent {
            kind: self.kind,
            kv,
            prev_kv: prev,
        }
    }
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = Record {
            kind: EventKind::Put,
            key: Bytes::from_static(b"/registry/secrets/a/b"),
            value: Bytes::from_static(b"\x00\x01value"),
            create_revision: 3,
            version: 2,
            prev_mod_revision: 3,
        };
        assert_eq!(
            Record::key_and_prev(&r.encode()),
            Some((&b"/registry/secrets/a/b"[..], 3))
        );
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let e = IndexEntry {
            mod_revision: 9,
            create_revision: 3,
            version: 4,
        };
        assert_eq!(IndexEntry::decode(&e.encode()), Some(e));
    }

    #[test]
    fn truncated_records_are_rejected() {
        let r = Record {
            kind: EventKind::Delete,
            key: Bytes::from_static(b"key"),
            value: Bytes::new(),
            create_revision: 0,
            version: 0,
            prev_mod_revision: 1,
        };
        let bytes = r.encode();
        for len in 0..RECORD_HEADER + 3 {
            assert_eq!(Record::decode(&bytes[..len]), None, "length {len}");
        }
        assert_eq!(Record::decode(&[7u8; 40]), None);
        assert_eq!(IndexEntry::decode(&[0u8; 23]), None);
    }
}
