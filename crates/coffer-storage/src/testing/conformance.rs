//! The storage conformance suite: one set of behaviour checks that every backend runs against
//! its own fresh store, as kube-apiserver's `storage/testing/store_tests.go` does.
//!
//! A backend's `tests/` calls [`conformance_suite!`](crate::conformance_suite) with an async
//! function returning a [`Fixture`] (a fresh, empty store plus whatever keeps it alive).

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::contract::{
    EventKind, GetResponse, Lookup, MAX_VALUE_BYTES, Revision, Store, Txn, TxnOutcome, WatchEvent,
    WatchStream,
};
use crate::error::Error;

pub use super::snapshots::{
    range_at_compaction, range_at_pages_across_writes, range_at_past_revision,
};

/// A fresh, empty store and the guard (temp dir, etcd process) that keeps it alive.
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Dropped after the test.
    pub guard: Box<dyn Any + Send>,
}

/// Generates one `#[tokio::test]` per conformance check, each on a fresh store from `$setup`.
#[macro_export]
macro_rules! conformance_suite {
    ($setup:path) => {
        $crate::conformance_suite!(@tests $setup;
            get_missing_key, create_then_get, create_existing_fails, update_checks_revision,
            unconditional_put, delete_checks_revision, recreate_starts_new_generation,
            range_prefix_order_and_pages, revisions_increase_by_one, watch_from_past_revision,
            watch_from_now, watch_filters_by_prefix, compaction, limits_refuse_and_keep_state,
            concurrent_creates_one_wins, concurrent_writers_unique_revisions,
            watch_sees_concurrent_writes_in_order, range_at_past_revision,
            range_at_compaction, range_at_pages_across_writes, get_unless_skips_only_unchanged);
    };
    (@tests $setup:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $setup().await;
                $crate::testing::conformance::$name(fixture.store.clone()).await;
                drop(fixture);
            }
        )*
    };
}

pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(crate) async fn committed(store: &dyn Store, txn: Txn) -> Revision {
    match store.txn(txn).await.expect("txn") {
        TxnOutcome::Committed { revision, .. } => revision,
        TxnOutcome::Failed { .. } => panic!("txn unexpectedly failed its compare"),
    }
}

/// Receives the next item, failing the test after 10 s.
pub async fn next_event(stream: &mut WatchStream) -> Result<WatchEvent, Error> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch event within 10 s")
        .expect("watch stream ended")
}

/// Asserts that no event arrives within 300 ms.
async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

/// A missing key reads as `None`.
pub async fn get_missing_key(store: Arc<dyn Store>) {
    let got = store.get(b"/t/missing").await.expect("get");
    assert_eq!(got.kv, None);
    assert_eq!(got.revision, store.current_revision().await.expect("rev"));
}

/// A create stores the value at a new revision with version 1.
pub async fn create_then_get(store: Arc<dyn Store>) {
    let before = store.current_revision().await.expect("rev");
    let rev = committed(&*store, Txn::create(b("/t/a"), b("v1"))).await;
    assert_eq!(rev, before.next());
    let got = store.get(b"/t/a").await.expect("get");
    let kv = got.kv.expect("present");
    assert_eq!(kv.value, b("v1"));
    assert_eq!(kv.create_revision, rev);
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(kv.version, 1);
    assert_eq!(got.revision, rev);
}

/// `get_unless` answers `Unchanged` exactly while the key keeps the known mod revision, and
/// otherwise what `get` answers: the new value after an update, nothing after a delete.
pub async fn get_unless_skips_only_unchanged(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/t/u"), b("v1"))).await;
    assert_eq!(
        store.get_unless(b"/t/u", r1).await.expect("get_unless"),
        Lookup::Unchanged
    );
    // Any other known revision reads the key.
    let Lookup::Current(got) = store.get_unless(b"/t/u", r1.next()).await.expect("get") else {
        panic!("a different known revision must read the key");
    };
    assert_eq!(got, store.get(b"/t/u").await.expect("get"));
    let r2 = committed(&*store, Txn::update(b("/t/u"), r1, b("v2"))).await;
    let Lookup::Current(got) = store.get_unless(b"/t/u", r1).await.expect("get") else {
        panic!("an update must be seen");
    };
    let kv = got.kv.expect("present");
    assert_eq!((kv.value, kv.mod_revision), (b("v2"), r2));
    assert_eq!(got.revision, r2);
    assert_eq!(
        store.get_unless(b"/t/u", r2).await.expect("get_unless"),
        Lookup::Unchanged
    );
    let r3 = committed(&*store, Txn::delete(b("/t/u"), Some(r2))).await;
    let Lookup::Current(got) = store.get_unless(b"/t/u", r2).await.expect("get") else {
        panic!("a delete must be seen");
    };
    assert_eq!((got.kv, got.revision), (None, r3));
    // A missing key is never "unchanged", whatever the caller knew.
    assert!(matches!(
        store
            .get_unless(b"/t/never", Revision::ZERO)
            .await
            .expect("get"),
        Lookup::Current(GetResponse { kv: None, .. })
    ));
}

/// A create of an existing key fails its compare and reports the current state.
pub async fn create_existing_fails(store: Arc<dyn Store>) {
    let rev = committed(&*store, Txn::create(b("/t/a"), b("v1"))).await;
    match store
        .txn(Txn::create(b("/t/a"), b("v2")))
        .await
        .expect("txn")
    {
        TxnOutcome::Failed { current, revision } => {
            let current = current.expect("current state");
            assert_eq!(current.value, b("v1"));
            assert_eq!(current.mod_revision, rev);
            assert_eq!(revision, rev);
        }
        other => panic!("expected a failed compare, got {other:?}"),
    }
    assert_eq!(store.current_revision().await.expect("rev"), rev);
}

/// An update applies only at the expected revision; a stale one changes nothing.
pub async fn update_checks_revision(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/t/a"), b("v1"))).await;
    match store
        .txn(Txn::update(b("/t/a"), r1, b("v2")))
        .await
        .expect("txn")
    {
        TxnOutcome::Committed { revision, prev } => {
            assert_eq!(revision, r1.next());
            let prev = prev.expect("prev");
            assert_eq!(prev.value, b("v1"));
            assert_eq!(prev.mod_revision, r1);
        }
        other => panic!("expected commit, got {other:?}"),
    }
    let stale = store
        .txn(Txn::update(b("/t/a"), r1, b("v3")))
        .await
        .expect("txn");
    match stale {
        TxnOutcome::Failed { current, .. } => {
            assert_eq!(current.expect("current").value, b("v2"));
        }
        other => panic!("expected a failed compare, got {other:?}"),
    }
    let kv = store.get(b"/t/a").await.expect("get").kv.expect("present");
    assert_eq!(kv.value, b("v2"));
    assert_eq!(kv.version, 2);
    assert_eq!(kv.create_revision, r1);
    assert_eq!(kv.mod_revision, r1.next());
    // Updating a key that does not exist fails too.
    let missing = store
        .txn(Txn::update(b("/t/none"), r1, b("x")))
        .await
        .expect("txn");
    assert!(matches!(missing, TxnOutcome::Failed { current: None, .. }));
}

/// An unconditional put creates or overwrites.
pub async fn unconditional_put(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::put(b("/t/a"), b("v1"))).await;
    let r2 = committed(&*store, Txn::put(b("/t/a"), b("v1"))).await;
    assert_eq!(
        r2,
        r1.next(),
        "every put bumps the revision, even with the same value"
    );
    let kv = store.get(b"/t/a").await.expect("get").kv.expect("present");
    assert_eq!(
        (kv.version, kv.create_revision, kv.mod_revision),
        (2, r1, r2)
    );
}

/// A delete applies only at the expected revision; deleting an absent key changes nothing.
pub async fn delete_checks_revision(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/t/a"), b("v1"))).await;
    let wrong = store
        .txn(Txn::delete(b("/t/a"), Some(Revision::new(r1.get() + 100))))
        .await
        .expect("txn");
    assert!(matches!(
        wrong,
        TxnOutcome::Failed {
            current: Some(_),
            ..
        }
    ));
    match store
        .txn(Txn::delete(b("/t/a"), Some(r1)))
        .await
        .expect("txn")
    {
        TxnOutcome::Committed { revision, prev } => {
            assert_eq!(revision, r1.next());
            assert_eq!(prev.expect("prev").value, b("v1"));
        }
        other => panic!("expected commit, got {other:?}"),
    }
    assert_eq!(store.get(b"/t/a").await.expect("get").kv, None);
    let current = store.current_revision().await.expect("rev");
    match store.txn(Txn::delete(b("/t/a"), None)).await.expect("txn") {
        TxnOutcome::Committed { revision, prev } => {
            assert_eq!(
                revision, current,
                "deleting nothing does not bump the revision"
            );
            assert_eq!(prev, None);
        }
        other => panic!("expected commit, got {other:?}"),
    }
    assert_eq!(store.current_revision().await.expect("rev"), current);
}

/// A key deleted and created again starts a new generation.
pub async fn recreate_starts_new_generation(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/t/a"), b("v1"))).await;
    committed(&*store, Txn::put(b("/t/a"), b("v2"))).await;
    committed(&*store, Txn::delete(b("/t/a"), None)).await;
    let r4 = committed(&*store, Txn::create(b("/t/a"), b("v3"))).await;
    assert_eq!(r4, Revision::new(r1.get() + 3));
    let kv = store.get(b"/t/a").await.expect("get").kv.expect("present");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r4, r4, 1)
    );
}

/// Range returns one prefix in byte order, pages with `limit`/`start_after`, and never
/// matches a sibling prefix.
pub async fn range_prefix_order_and_pages(store: Arc<dyn Store>) {
    for name in ["c", "a", "b", "e", "d"] {
        committed(&*store, Txn::create(b(&format!("/r/ns/{name}")), b(name))).await;
    }
    committed(&*store, Txn::create(b("/r/nsx/a"), b("other"))).await;
    committed(&*store, Txn::create(b("/r/ns"), b("exact"))).await;
    let all = store.range(b"/r/ns/", None, 0).await.expect("range");
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        ["a", "b", "c", "d", "e"].map(|n| b(&format!("/r/ns/{n}")))
    );
    assert!(!all.more);
    assert_eq!(all.revision, store.current_revision().await.expect("rev"));
    assert!(all.kvs.iter().all(|kv| kv.mod_revision <= all.revision));
    assert_eq!(all.kvs[0].value, b("a"));

    let mut seen = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = store
            .range(b"/r/ns/", after.as_deref(), 2)
            .await
            .expect("range");
        assert!(page.kvs.len() <= 2);
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        after = page.kvs.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, keys, "pages cover the prefix exactly once");
    let everything = store.range(b"", None, 0).await.expect("range");
    assert_eq!(everything.kvs.len(), 7);
    let none = store.range(b"/zzz/", None, 0).await.expect("range");
    assert!(none.kvs.is_empty() && !none.more);
}

/// Every write bumps the one global revision by exactly one, whatever the key.
pub async fn revisions_increase_by_one(store: Arc<dyn Store>) {
    let start = store.current_revision().await.expect("rev");
    let mut expected = start;
    for i in 0..20 {
        expected = expected.next();
        let rev = committed(&*store, Txn::put(b(&format!("/k/{}", i % 7)), b("v"))).await;
        assert_eq!(rev, expected);
    }
    assert_eq!(store.current_revision().await.expect("rev"), expected);
}

/// A watch from a past revision replays history in order with `prev_kv`, then goes live.
pub async fn watch_from_past_revision(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/w/a"), b("v1"))).await;
    committed(&*store, Txn::update(b("/w/a"), r1, b("v2"))).await;
    committed(&*store, Txn::delete(b("/w/a"), None)).await;
    let mut watch = store.watch(b"/w/", r1).await.expect("watch");
    let e1 = next_event(&mut watch).await.expect("event");
    assert_eq!(
        (e1.kind, e1.revision(), e1.kv.value.clone()),
        (EventKind::Put, r1, b("v1"))
    );
    assert_eq!(e1.prev_kv, None);
    let e2 = next_event(&mut watch).await.expect("event");
    assert_eq!((e2.kind, e2.revision()), (EventKind::Put, r1.next()));
    assert_eq!(e2.kv.version, 2);
    assert_eq!(e2.prev_kv.as_ref().expect("prev").value, b("v1"));
    let e3 = next_event(&mut watch).await.expect("event");
    assert_eq!(
        (e3.kind, e3.revision()),
        (EventKind::Delete, Revision::new(r1.get() + 2))
    );
    assert_eq!(e3.kv.key, b("/w/a"));
    assert_eq!(e3.prev_kv.as_ref().expect("prev").value, b("v2"));
    let r4 = committed(&*store, Txn::create(b("/w/b"), b("live"))).await;
    let e4 = next_event(&mut watch).await.expect("event");
    assert_eq!((e4.revision(), e4.kv.value.clone()), (r4, b("live")));
}

/// A watch from `Revision::ZERO` sees only changes made after it started.
pub async fn watch_from_now(store: Arc<dyn Store>) {
    committed(&*store, Txn::create(b("/w/old"), b("old"))).await;
    let mut watch = store.watch(b"/w/", Revision::ZERO).await.expect("watch");
    let rev = committed(&*store, Txn::create(b("/w/new"), b("new"))).await;
    let event = next_event(&mut watch).await.expect("event");
    assert_eq!((event.kv.key.clone(), event.revision()), (b("/w/new"), rev));
    assert_quiet(&mut watch).await;
}

/// A watch sees only its prefix.
pub async fn watch_filters_by_prefix(store: Arc<dyn Store>) {
    let mut watch = store.watch(b"/p/a/", Revision::ZERO).await.expect("watch");
    committed(&*store, Txn::create(b("/p/ab/x"), b("no"))).await;
    committed(&*store, Txn::create(b("/p/b/x"), b("no"))).await;
    let rev = committed(&*store, Txn::create(b("/p/a/x"), b("yes"))).await;
    let event = next_event(&mut watch).await.expect("event");
    assert_eq!((event.kv.key.clone(), event.revision()), (b("/p/a/x"), rev));
    assert_quiet(&mut watch).await;
}

/// Compaction keeps the latest state, refuses watches from before it, and rejects
/// future or repeated compactions.
pub async fn compaction(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/c/a"), b("v1"))).await;
    let r2 = committed(&*store, Txn::update(b("/c/a"), r1, b("v2"))).await;
    committed(&*store, Txn::create(b("/c/gone"), b("x"))).await;
    committed(&*store, Txn::delete(b("/c/gone"), None)).await;
    let r5 = committed(&*store, Txn::create(b("/c/b"), b("b1"))).await;
    let current = store.current_revision().await.expect("rev");

    let future = store.compact(current.next()).await;
    assert!(
        matches!(future, Err(Error::FutureRevision { .. })),
        "compacting the future: {future:?}"
    );
    store.compact(r5).await.expect("compact");
    let again = store.compact(r2).await;
    assert!(again.as_ref().is_err_and(Error::is_compacted), "{again:?}");

    let kv = store.get(b"/c/a").await.expect("get").kv.expect("present");
    assert_eq!((kv.value.clone(), kv.mod_revision), (b("v2"), r2));
    assert_eq!(store.get(b"/c/gone").await.expect("get").kv, None);
    assert_eq!(
        store.range(b"/c/", None, 0).await.expect("range").kvs.len(),
        2
    );

    let mut old = store.watch(b"/c/", r1).await.expect("watch");
    let err = next_event(&mut old).await.expect_err("compacted");
    assert!(err.is_compacted(), "{err:?}");

    let mut from_compaction = store.watch(b"/c/", r5).await.expect("watch");
    let event = next_event(&mut from_compaction).await.expect("event");
    assert_eq!(event.revision(), r5);
    let r6 = committed(&*store, Txn::update(b("/c/a"), r2, b("v3"))).await;
    let event = next_event(&mut from_compaction).await.expect("event");
    assert_eq!(event.revision(), r6);
    assert_eq!(
        event.prev_kv.expect("prev kept across compaction").value,
        b("v2")
    );
}

/// Empty keys and oversized values are refused with their own errors, and nothing changes;
/// a value of exactly the limit is accepted.
pub async fn limits_refuse_and_keep_state(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/l/a"), b("kept"))).await;
    let too_big = Bytes::from(vec![7u8; MAX_VALUE_BYTES + 1]);
    let err = store
        .txn(Txn::put(b("/l/a"), too_big.clone()))
        .await
        .expect_err("too big");
    assert!(
        matches!(err, Error::ValueTooLarge { size, .. } if size == MAX_VALUE_BYTES + 1),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("\u{7}"),
        "the error carries no value bytes"
    );
    let err = store
        .txn(Txn::create(Bytes::new(), b("x")))
        .await
        .expect_err("empty key");
    assert!(matches!(err, Error::EmptyKey), "{err:?}");
    let kv = store.get(b"/l/a").await.expect("get").kv.expect("present");
    assert_eq!((kv.value, kv.mod_revision), (b("kept"), r1));
    assert_eq!(store.current_revision().await.expect("rev"), r1);

    let max = Bytes::from(vec![1u8; MAX_VALUE_BYTES]);
    committed(&*store, Txn::put(b("/l/max"), max.clone())).await;
    let kv = store
        .get(b"/l/max")
        .await
        .expect("get")
        .kv
        .expect("present");
    assert_eq!(kv.value, max);
}

/// Of many concurrent creates of one key, exactly one wins.
pub async fn concurrent_creates_one_wins(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .txn(Txn::create(b("/cc/key"), b(&format!("{i}"))))
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if let TxnOutcome::Committed { .. } = task.await.expect("join").expect("txn") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let kv = store
        .get(b"/cc/key")
        .await
        .expect("get")
        .kv
        .expect("present");
    assert_eq!(kv.version, 1);
}

/// Concurrent writers each get a distinct revision, and together they fill the range exactly.
pub async fn concurrent_writers_unique_revisions(store: Arc<dyn Store>) {
    let start = store.current_revision().await.expect("rev");
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..25 {
                    let key = b(&format!("/cw/{w}/{i}"));
                    revs.push(committed(&*store, Txn::create(key, b("v"))).await);
                }
                revs
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for task in tasks {
        for rev in task.await.expect("join") {
            assert!(all.insert(rev), "revision {rev} handed out twice");
        }
    }
    let expected: BTreeSet<_> = (start.get() + 1..=start.get() + 200)
        .map(Revision::new)
        .collect();
    assert_eq!(all, expected);
    assert_eq!(
        store
            .range(b"/cw/", None, 0)
            .await
            .expect("range")
            .kvs
            .len(),
        200
    );
}

/// A watcher sees every event of concurrent writers once, in revision order.
pub async fn watch_sees_concurrent_writes_in_order(store: Arc<dyn Store>) {
    let start = store.current_revision().await.expect("rev").next();
    let mut watch = store.watch(b"/wc/", start).await.expect("watch");
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    committed(&*store, Txn::put(b(&format!("/wc/{w}/{}", i % 5)), b("v"))).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join");
    }
    let mut expected = start;
    for _ in 0..120 {
        let event = next_event(&mut watch).await.expect("event");
        assert_eq!(event.revision(), expected, "no gap, no repeat");
        expected = expected.next();
    }
    assert_quiet(&mut watch).await;
}
