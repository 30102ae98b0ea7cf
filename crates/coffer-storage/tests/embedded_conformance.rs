//! The storage conformance suite on the embedded (redb) backend.

use std::sync::Arc;

use coffer_storage::EmbeddedStore;
use coffer_storage::testing::conformance::Fixture;

async fn setup() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("coffer.redb")).expect("open");
    Fixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    }
}

coffer_storage::conformance_suite!(setup);
