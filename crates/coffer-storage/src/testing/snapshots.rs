//! Conformance checks of [`Store::range_at`]: the state as of a past revision, compaction,
//! and pages of one snapshot while writers carry on (kube-apiserver's consistent LIST
//! pagination, `storage/testing/store_tests.go` `RunTestListContinuation`).

use std::sync::Arc;

use bytes::Bytes;

use super::conformance::{b, committed};
use crate::contract::{KeyValue, RangeResponse, Revision, Store, Txn};
use crate::error::Error;

/// `(key, value, mod_revision)` of each kv, for compact assertions.
fn states(kvs: &[KeyValue]) -> Vec<(Bytes, Bytes, Revision)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision))
        .collect()
}

async fn at(
    store: &dyn Store,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    rev: Revision,
) -> RangeResponse {
    store
        .range_at(
            prefix.as_bytes(),
            after.map(str::as_bytes),
            limit,
            Some(rev),
        )
        .await
        .unwrap_or_else(|e| panic!("range_at {rev}: {e}"))
}

/// A range at an old revision answers the state of then after updates, deletes, creates and
/// re-creates, with that generation's create revision and version, and never a sibling prefix.
pub async fn range_at_past_revision(store: Arc<dyn Store>) {
    let ra = committed(&*store, Txn::create(b("/s/ns/a"), b("a1"))).await;
    let rb = committed(&*store, Txn::create(b("/s/ns/b"), b("b1"))).await;
    let rc = committed(&*store, Txn::create(b("/s/ns/c"), b("c1"))).await;
    let r3 = rc;
    let ra2 = committed(&*store, Txn::update(b("/s/ns/a"), ra, b("a2"))).await;
    let r5 = committed(&*store, Txn::delete(b("/s/ns/b"), None)).await;
    committed(&*store, Txn::create(b("/s/ns/d"), b("d1"))).await;
    committed(&*store, Txn::delete(b("/s/ns/c"), None)).await;
    let rc2 = committed(&*store, Txn::create(b("/s/ns/c"), b("c2"))).await;
    committed(&*store, Txn::create(b("/s/nsx/a"), b("sibling"))).await;
    let rb2 = committed(&*store, Txn::create(b("/s/ns/b"), b("b2"))).await;

    let then = at(&*store, "/s/ns/", None, 0, r3).await;
    assert_eq!(then.revision, r3);
    assert_eq!(
        states(&then.kvs),
        [
            (b("/s/ns/a"), b("a1"), ra),
            (b("/s/ns/b"), b("b1"), rb),
            (b("/s/ns/c"), b("c1"), rc)
        ]
    );
    assert!(!then.more);
    assert_eq!(then.remaining, 0);
    assert_eq!((then.kvs[0].create_revision, then.kvs[0].version), (ra, 1));

    let later = at(&*store, "/s/ns/", None, 0, r5).await;
    assert_eq!(
        states(&later.kvs),
        [(b("/s/ns/a"), b("a2"), ra2), (b("/s/ns/c"), b("c1"), rc)]
    );
    assert_eq!(
        (later.kvs[0].create_revision, later.kvs[0].version),
        (ra, 2)
    );

    let now = store.range(b"/s/ns/", None, 0).await.expect("range");
    let latest = at(&*store, "/s/ns/", None, 0, now.revision).await;
    assert_eq!(latest, now);
    assert_eq!(
        states(&now.kvs),
        [
            (b("/s/ns/a"), b("a2"), ra2),
            (b("/s/ns/b"), b("b2"), rb2),
            (b("/s/ns/c"), b("c2"), rc2),
            (b("/s/ns/d"), b("d1"), Revision::new(r5.get() + 1)),
        ]
    );
    assert_eq!(now.kvs[2].create_revision, rc2);

    // Limits count what is left, at the revision read.
    let first = at(&*store, "/s/ns/", None, 1, r3).await;
    assert_eq!(states(&first.kvs), [(b("/s/ns/a"), b("a1"), ra)]);
    assert!(first.more);
    assert_eq!(first.remaining, 2);
    let rest = at(&*store, "/s/ns/", Some("/s/ns/a"), 1, r3).await;
    assert_eq!(states(&rest.kvs), [(b("/s/ns/b"), b("b1"), rb)]);
    assert_eq!((rest.more, rest.remaining), (true, 1));
    let limited_now = store.range(b"/s/ns/", None, 3).await.expect("range");
    assert_eq!((limited_now.more, limited_now.remaining), (true, 1));

    let current = store.current_revision().await.expect("rev");
    let future = store
        .range_at(b"/s/ns/", None, 0, Some(current.next()))
        .await;
    assert!(
        matches!(future, Err(Error::FutureRevision { requested, .. }) if requested == current.next()),
        "{future:?}"
    );
}

/// Reads before the compaction revision fail with `Compacted`; the compaction revision itself
/// and everything after it still read as they were.
pub async fn range_at_compaction(store: Arc<dyn Store>) {
    let r1 = committed(&*store, Txn::create(b("/sc/a"), b("a1"))).await;
    let r2 = committed(&*store, Txn::create(b("/sc/b"), b("b1"))).await;
    let r3 = committed(&*store, Txn::update(b("/sc/a"), r1, b("a2"))).await;
    committed(&*store, Txn::delete(b("/sc/b"), None)).await;
    committed(&*store, Txn::update(b("/sc/a"), r3, b("a3"))).await;
    let before = at(&*store, "/sc/", None, 0, r3).await;
    store.compact(r3).await.expect("compact");

    let old = store.range_at(b"/sc/", None, 0, Some(r2)).await;
    match old {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (r2, r3)),
        other => panic!("range before the compaction: {other:?}"),
    }
    let kept = at(&*store, "/sc/", None, 0, r3).await;
    assert_eq!(kept, before);
    assert_eq!(
        states(&kept.kvs),
        [(b("/sc/a"), b("a2"), r3), (b("/sc/b"), b("b1"), r2)]
    );
}

/// Pages read at the first page's revision give exactly that snapshot, whatever is written
/// between them; the remaining counts add up.
pub async fn range_at_pages_across_writes(store: Arc<dyn Store>) {
    let mut revs = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        revs.push(committed(&*store, Txn::create(b(&format!("/sp/{name}")), b(name))).await);
    }
    let expected = store.range(b"/sp/", None, 0).await.expect("range");
    let first = store.range(b"/sp/", None, 2).await.expect("range");
    let snapshot = first.revision;
    assert_eq!((first.more, first.remaining), (true, 3));

    committed(&*store, Txn::update(b("/sp/c"), revs[2], b("c-new"))).await;
    committed(&*store, Txn::delete(b("/sp/d"), None)).await;
    committed(&*store, Txn::create(b("/sp/bb"), b("inserted"))).await;
    committed(&*store, Txn::create(b("/sp/f"), b("appended"))).await;

    let mut seen = first.kvs.clone();
    let mut after = first.kvs.last().map(|kv| kv.key.clone());
    let mut remaining = vec![first.remaining];
    while let Some(key) = after.take() {
        let page = store
            .range_at(b"/sp/", Some(&key), 2, Some(snapshot))
            .await
            .expect("page");
        assert_eq!(page.revision, snapshot);
        remaining.push(page.remaining);
        seen.extend(page.kvs.iter().cloned());
        if page.more {
            after = page.kvs.last().map(|kv| kv.key.clone());
        }
    }
    assert_eq!(
        seen, expected.kvs,
        "every page shows the first page's snapshot"
    );
    assert_eq!(remaining, [3, 1, 0]);
    let now = store.range(b"/sp/", None, 0).await.expect("range");
    assert_eq!(now.kvs.len(), 6);
}
