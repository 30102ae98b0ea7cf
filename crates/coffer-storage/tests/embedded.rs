//! Embedded-backend behaviour beyond the shared contract: durability across reopen, damaged
//! files, exclusive use, watch catch-up from the file, and cutting off slow watchers.

use std::time::Duration;

use bytes::Bytes;
use coffer_storage::testing::conformance::next_event;
use coffer_storage::{EmbeddedOptions, EmbeddedStore, Error, Revision, Store, Txn, TxnOutcome};
use futures::StreamExt;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn put(store: &EmbeddedStore, key: &str, value: &str) -> Revision {
    match store.txn(Txn::put(b(key), b(value))).await.expect("txn") {
        TxnOutcome::Committed { revision, .. } => revision,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn reopen_keeps_data_revision_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let (r2, r3) = {
        let store = EmbeddedStore::open(&path).expect("open");
        put(&store, "/a", "1").await;
        let r2 = put(&store, "/a", "2").await;
        let r3 = put(&store, "/b", "3").await;
        store.compact(r2).await.expect("compact");
        (r2, r3)
    };
    let store = EmbeddedStore::open(&path).expect("reopen");
    assert_eq!(store.current_revision().await.expect("rev"), r3);
    assert_eq!(store.compacted_revision(), r2);
    let kv = store.get(b"/a").await.expect("get").kv.expect("present");
    assert_eq!((kv.value, kv.version, kv.mod_revision), (b("2"), 2, r2));
    // History after the compaction is still served from the file.
    let mut watch = store.watch(b"/", r2).await.expect("watch");
    assert_eq!(next_event(&mut watch).await.expect("event").revision(), r2);
    assert_eq!(next_event(&mut watch).await.expect("event").revision(), r3);
    // The next write continues the revision sequence.
    assert_eq!(put(&store, "/c", "4").await, r3.next());
}

#[tokio::test]
async fn garbage_file_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5au8; 64 * 1024]).expect("write");
    let err = EmbeddedStore::open(&path).err().expect("refused");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.redb"), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        vec![0x5au8; 64 * 1024],
        "file untouched"
    );
}

#[tokio::test]
async fn truncated_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trunc.redb");
    {
        let store = EmbeddedStore::open(&path).expect("open");
        for i in 0..200 {
            put(&store, &format!("/k/{i}"), &"x".repeat(1024)).await;
        }
    }
    let len = std::fs::metadata(&path).expect("meta").len();
    for cut in [len / 2, len / 3, 100, 1] {
        let copy = dir.path().join(format!("cut-{cut}.redb"));
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&copy, &bytes[..usize::try_from(cut).expect("fits")]).expect("write");
        match EmbeddedStore::open(&copy) {
            Err(err) => assert!(
                err.to_string().contains(&format!("cut-{cut}.redb")),
                "{err}"
            ),
            // redb may recover an older consistent state from a cut file; then it must read.
            Ok(store) => {
                let range = store.range(b"/k/", None, 0).await;
                assert!(range.is_ok() || range.is_err(), "no panic");
            }
        }
    }
}

#[tokio::test]
async fn second_open_is_refused_while_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let first = EmbeddedStore::open(&path).expect("open");
    let err = EmbeddedStore::open(&path).err().expect("refused");
    assert!(matches!(err, Error::InUse { .. }), "{err:?}");
    assert!(
        err.to_string().contains("--data-dir"),
        "says what to do: {err}"
    );
    drop(first);
    EmbeddedStore::open(&path).expect("free again after the first is dropped");
}

#[tokio::test]
async fn watch_older_than_the_memory_window_reads_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        watch_window_events: 5,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(dir.path().join("s.redb"), options).expect("open");
    let first = put(&store, "/w/0", "v0").await;
    for i in 1..50 {
        put(&store, &format!("/w/{}", i % 3), &format!("v{i}")).await;
    }
    let mut watch = store.watch(b"/w/", first).await.expect("watch");
    for i in 0..50u64 {
        let event = next_event(&mut watch).await.expect("event");
        assert_eq!(event.revision(), Revision::new(first.get() + i));
        if i >= 3 {
            let prev = event.prev_kv.expect("prev from file");
            assert_eq!(prev.value, b(&format!("v{}", i - 3)));
        }
    }
    let live = put(&store, "/w/x", "live").await;
    assert_eq!(
        next_event(&mut watch).await.expect("event").revision(),
        live
    );
}

#[tokio::test]
async fn slow_watcher_is_cut_off_and_writers_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("s.redb")).expect("open");
    let mut slow = store.watch(b"/s/", Revision::ZERO).await.expect("watch");
    // More events than a watcher may queue; nobody reads `slow` meanwhile.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..700 {
                    put(&store, &format!("/s/{w}/{}", i % 10), "v").await;
                }
            })
        })
        .collect();
    for w in writers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("writers are never blocked by a slow watcher")
            .expect("join");
    }
    let mut received = 0;
    let end = loop {
        match slow.next().await {
            Some(Ok(_)) => received += 1,
            Some(Err(e)) => break e,
            None => panic!("stream ended without saying it was cut off"),
        }
    };
    assert!(matches!(end, Error::WatchLagged), "{end:?}");
    assert!(received < 5600, "the watcher was cut off before the end");
    assert!(slow.next().await.is_none());
}

#[tokio::test]
async fn unsupported_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    drop(EmbeddedStore::open(&path).expect("open"));
    {
        let db = redb::Database::create(&path).expect("redb");
        let write = db.begin_write().expect("write");
        {
            let mut meta = write
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .expect("meta");
            meta.insert("format", 99).expect("insert");
        }
        write.commit().expect("commit");
    }
    let err = EmbeddedStore::open(&path).err().expect("refused");
    assert!(err.to_string().contains("format 99"), "{err}");
}

/// `get_unless` answers from the in-memory index loaded at open: keys written before a
/// reopen are "unchanged" at their revision, and writes, compare failures and deletes after
/// it keep the answers exact.
#[tokio::test]
async fn get_unless_is_exact_across_reopen_and_writes() {
    use coffer_storage::Lookup;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let (ra, rb) = {
        let store = EmbeddedStore::open(&path).expect("open");
        (put(&store, "/a", "1").await, put(&store, "/b", "2").await)
    };
    let store = EmbeddedStore::open(&path).expect("reopen");
    assert_eq!(
        store.get_unless(b"/a", ra).await.expect("a"),
        Lookup::Unchanged
    );
    assert_eq!(
        store.get_unless(b"/b", rb).await.expect("b"),
        Lookup::Unchanged
    );
    // A compare that fails changes nothing.
    let failed = store
        .txn(Txn::update(b("/a"), rb, b("x")))
        .await
        .expect("txn");
    assert!(matches!(failed, TxnOutcome::Failed { .. }));
    assert_eq!(
        store.get_unless(b"/a", ra).await.expect("a"),
        Lookup::Unchanged
    );
    let ra2 = put(&store, "/a", "3").await;
    let Lookup::Current(got) = store.get_unless(b"/a", ra).await.expect("a") else {
        panic!("the update must be seen");
    };
    assert_eq!(got.kv.expect("a").value, b("3"));
    assert_eq!(
        store.get_unless(b"/a", ra2).await.expect("a"),
        Lookup::Unchanged
    );
    store
        .txn(Txn::delete(b("/b"), Some(rb)))
        .await
        .expect("delete");
    let Lookup::Current(got) = store.get_unless(b"/b", rb).await.expect("b") else {
        panic!("the delete must be seen");
    };
    assert_eq!(got.kv, None);
    // Re-created at a new revision: the old one is not "unchanged".
    let rb2 = put(&store, "/b", "4").await;
    assert!(matches!(
        store.get_unless(b"/b", rb).await.expect("b"),
        Lookup::Current(_)
    ));
    assert_eq!(
        store.get_unless(b"/b", rb2).await.expect("b"),
        Lookup::Unchanged
    );
}
