//! Periodic compaction, as kube-apiserver's compactor does it for etcd
//! (`--etcd-compaction-interval`, default 5 minutes): every interval, history is discarded up
//! to the revision that was current one interval earlier, so watches and continue tokens always
//! have at least one interval of history, and the store stops growing with every write.
//!
//! Several servers sharing one store coordinate through one key, [`COMPACT_REV_KEY`] (kube's
//! `compact_rev_key`): a server compacts only if its compare-and-swap on that key wins, so each
//! interval compacts once however many servers run.

use std::sync::Arc;
use std::time::Duration;

use crate::contract::{Revision, Store, Txn, TxnOutcome};
use crate::error::Error;

/// The key that records the last compaction target (kube-apiserver's name).
pub const COMPACT_REV_KEY: &[u8] = b"compact_rev_key";

/// kube-apiserver's default `--etcd-compaction-interval`.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// Runs until dropped: every `interval`, compacts `store` to the revision seen at the
/// previous tick. Failures are logged and retried at the next tick; nothing stops the loop.
pub async fn run_compactor(store: Arc<dyn Store>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut previous: Option<Revision> = None;
    loop {
        ticker.tick().await;
        if let Some(target) = previous {
            match compact_once(&*store, target).await {
                Ok(true) => tracing::debug!(revision = %target, "compacted storage history"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "storage compaction failed; retrying"),
            }
        }
        previous = match store.current_revision().await {
            Ok(revision) => Some(revision),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the storage revision for compaction");
                None
            }
        };
    }
}

/// Compacts to `target` unless another server already took this round (its write to
/// [`COMPACT_REV_KEY`] is newer than `target`) or the store is already compacted past it.
/// Returns whether this call compacted.
pub async fn compact_once(store: &dyn Store, target: Revision) -> Result<bool, Error> {
    let recorded = store.get(COMPACT_REV_KEY).await?.kv;
    if let Some(kv) = &recorded
        && kv.mod_revision >= target
    {
        // Someone recorded a compaction since `target` was read: this round is theirs.
        return Ok(false);
    }
    let expected = recorded.map_or(Revision::ZERO, |kv| kv.mod_revision);
    let claim = Txn::update(
        COMPACT_REV_KEY,
        expected,
        target.get().to_string().into_bytes(),
    );
    match store.txn(claim).await? {
        TxnOutcome::Committed { .. } => {}
        TxnOutcome::Failed { .. } => return Ok(false),
    }
    match store.compact(target).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_compacted() => Ok(false),
        Err(e) => Err(e),
    }
}
