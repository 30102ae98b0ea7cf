//! The storage conformance suite on the etcd backend, each test against its own real etcd
//! member (Debian `etcd-server`) on free loopback ports.

use std::sync::Arc;

use coffer_storage::testing::conformance::Fixture;
use coffer_storage::testing::etcd::EtcdCluster;

async fn setup() -> Fixture {
    let cluster = EtcdCluster::start_single().await;
    let store = cluster.store().await;
    Fixture {
        store: Arc::new(store),
        guard: Box::new(cluster),
    }
}

coffer_storage::conformance_suite!(setup);
