//! The periodic compactor (kube-apiserver's `--etcd-compaction-interval`) on both backends:
//! history older than one interval goes, the latest state stays, and two servers sharing a
//! store compact once per round between them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coffer_storage::testing::etcd::EtcdCluster;
use coffer_storage::{
    COMPACT_REV_KEY, EmbeddedStore, Revision, Store, Txn, TxnOutcome, compact_once, run_compactor,
};
use futures::StreamExt;

async fn put(store: &dyn Store, key: &str, value: &str) -> Revision {
    let txn = Txn::put(Bytes::from(key.to_owned()), Bytes::from(value.to_owned()));
    match store.txn(txn).await.expect("txn") {
        TxnOutcome::Committed { revision, .. } => revision,
        other => panic!("{other:?}"),
    }
}

/// True when a watch from `start` is refused as compacted.
async fn compacted(store: &dyn Store, start: Revision) -> bool {
    let mut stream = store.watch(b"/t/", start).await.expect("watch");
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.next()).await,
        Ok(Some(Err(e))) if e.is_compacted()
    )
}

/// Two claims for the same round: one compacts, the other sees the round taken.
async fn one_compaction_per_round(store: &dyn Store) {
    let first = put(store, "/t/a", "1").await;
    put(store, "/t/a", "2").await;
    let target = put(store, "/t/a", "3").await;
    assert!(compact_once(store, target).await.expect("first claim"));
    assert!(
        !compact_once(store, target).await.expect("second claim"),
        "the round was taken"
    );
    assert!(
        compacted(store, first).await,
        "history before the target is gone"
    );
    let kv = store.get(b"/t/a").await.expect("get").kv.expect("a");
    assert_eq!(kv.value, Bytes::from_static(b"3"), "the latest state stays");
    let recorded = store
        .get(COMPACT_REV_KEY)
        .await
        .expect("get")
        .kv
        .expect("key");
    assert_eq!(recorded.value, Bytes::from(target.get().to_string()));
}

#[tokio::test]
async fn embedded_compacts_once_per_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("s.redb")).expect("open");
    one_compaction_per_round(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_compacts_once_per_round() {
    let cluster = EtcdCluster::start_single().await;
    let store = cluster.store().await;
    one_compaction_per_round(&store).await;
}

/// The loop keeps one interval of history: a revision from before the previous tick is
/// compacted away, while the data written stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_discards_history_older_than_one_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("s.redb")).expect("open"));
    let old = put(&*store, "/t/a", "old").await;
    put(&*store, "/t/a", "new").await;
    let compactor = tokio::spawn(run_compactor(store.clone(), Duration::from_millis(200)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !compacted(&*store, old).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no compaction within 10 s at a 200 ms interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    compactor.abort();
    let kv = store.get(b"/t/a").await.expect("get").kv.expect("a");
    assert_eq!(kv.value, Bytes::from_static(b"new"));
}
