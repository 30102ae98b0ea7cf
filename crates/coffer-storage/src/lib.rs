//! Coffer's storage engine: one contract, two backends.
//!
//! Everything above storage sees keys, values, revisions, compare-and-swap transactions and
//! watches, exactly as kube-apiserver sees etcd v3. The contract lives in [`Store`] (see
//! `contract.rs`, the one file to read first). Two backends implement it and pass the same
//! conformance suite (`testing::conformance`):
//!
//! - [`EmbeddedStore`]: the default, one redb file under the data directory, durable on every
//!   acknowledged write, with group commit and an in-memory watch window;
//! - [`EtcdStore`]: a real etcd cluster through the native gRPC client, for several servers.
//!
//! Values are opaque bytes: callers have already encoded and encrypted them. Keys follow
//! kube-apiserver's layout, built with [`KeyLayout`].
//!
//! What this crate is not: it knows nothing of Kubernetes objects, encryption or HTTP.
#![forbid(unsafe_code)]

mod compactor;
mod contract;
mod embedded;
mod error;
mod etcd;
mod keys;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

// The public interface.
pub use compactor::{COMPACT_REV_KEY, DEFAULT_COMPACTION_INTERVAL, compact_once, run_compactor};
pub use contract::{
    EventKind, GetResponse, KeyValue, Lookup, MAX_VALUE_BYTES, Op, RangeResponse, Revision, Store,
    Txn, TxnOutcome, WatchEvent, WatchStream,
};
pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use error::{Error, Result};

pub use etcd::{EtcdConfig, EtcdStore, EtcdTls};
pub use keys::{DEFAULT_PREFIX, KeyLayout};
