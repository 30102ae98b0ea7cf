//! etcd-backend behaviour beyond the shared contract, against real etcd members on loopback:
//! watches that resume after a lost connection, and a 3-member cluster losing a member.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use coffer_storage::testing::conformance::next_event;
use coffer_storage::testing::etcd::EtcdCluster;
use coffer_storage::{Error, EtcdStore, Revision, Store, Txn, TxnOutcome, WatchStream};

fn value_for(key: &str) -> Bytes {
    Bytes::from(format!("value-of-{key}"))
}

/// Creates `key`, retrying while etcd is unavailable. A retried create whose first attempt
/// did land reports a failed compare with our own value: that is a success too.
async fn create(store: &EtcdStore, key: &str) -> Revision {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match store
            .txn(Txn::create(Bytes::from(key.to_owned()), value_for(key)))
            .await
        {
            Ok(TxnOutcome::Committed { revision, .. }) => return revision,
            Ok(TxnOutcome::Failed {
                current: Some(kv), ..
            }) if kv.value == value_for(key) => {
                return kv.mod_revision;
            }
            Ok(other) => panic!("{key}: {other:?}"),
            Err(Error::Unavailable(reason)) if tokio::time::Instant::now() < deadline => {
                eprintln!("{key}: unavailable ({reason}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{key}: {e}"),
        }
    }
}

/// Reads `n` events and checks they are exactly `expected` (revision → key), in order.
async fn expect_events(watch: &mut WatchStream, expected: &BTreeMap<Revision, String>) {
    for (rev, key) in expected {
        let event = next_event(watch).await.expect("event");
        assert_eq!(event.revision(), *rev, "events arrive once each, in order");
        assert_eq!(event.kv.key, Bytes::from(key.clone()));
        assert_eq!(event.kv.value, value_for(key));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_etcd_restarts_without_loss_or_repeat() {
    let mut cluster = EtcdCluster::start_single().await;
    let store = cluster.store().await;
    let mut watch = store.watch(b"/rs/", Revision::ZERO).await.expect("watch");
    let mut expected = BTreeMap::new();
    for i in 0..10 {
        let key = format!("/rs/a{i}");
        expected.insert(create(&store, &key).await, key);
    }
    expect_events(&mut watch, &expected).await;

    cluster.stop_member(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start_member(0);
    cluster.wait_ready().await;

    let mut after = BTreeMap::new();
    for i in 0..10 {
        let key = format!("/rs/b{i}");
        after.insert(create(&store, &key).await, key);
    }
    expect_events(&mut watch, &after).await;
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        futures::StreamExt::next(&mut watch),
    )
    .await;
    assert!(quiet.is_err(), "no repeated events: {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_cluster_keeps_working_through_a_member_outage() {
    let mut cluster = EtcdCluster::start(3).await;
    let store = cluster.store().await;
    let mut watch = store.watch(b"/cl/", Revision::ZERO).await.expect("watch");
    let mut written = BTreeMap::new();

    for i in 0..30 {
        let key = format!("/cl/before-{i:02}");
        written.insert(create(&store, &key).await, key);
    }
    cluster.stop_member(0);
    for i in 0..30 {
        let key = format!("/cl/during-{i:02}");
        written.insert(create(&store, &key).await, key);
    }
    cluster.start_member(0);
    cluster.wait_ready().await;
    for i in 0..30 {
        let key = format!("/cl/after-{i:02}");
        written.insert(create(&store, &key).await, key);
    }

    // The watch saw every write once, in order, across the outage.
    expect_events(&mut watch, &written).await;

    // Nothing was lost: every key reads back through the client...
    let all = store.range(b"/cl/", None, 0).await.expect("range");
    assert_eq!(all.kvs.len(), 90);
    for kv in &all.kvs {
        let key = String::from_utf8(kv.key.to_vec()).expect("utf8");
        assert_eq!(written.get(&kv.mod_revision), Some(&key));
        assert_eq!(kv.value, value_for(&key));
    }
    // ...and the member that was down caught up with the writes it missed.
    let mut only_restarted = cluster.config();
    only_restarted.endpoints = vec![cluster.endpoints()[0].clone()];
    let restarted = EtcdStore::connect(&only_restarted).await.expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = restarted.range(b"/cl/", None, 0).await.expect("range");
        if got.kvs.len() == 90 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "restarted member has {} of 90 keys",
            got.kvs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
