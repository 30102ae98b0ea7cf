//! KMS plugins over gRPC on a unix socket (`reference/encryption.md` §3): the clients that
//! implement [`KmsV2Service`](crate::KmsV2Service) and [`KmsV1Service`](crate::KmsV1Service),
//! the [`GrpcKms`] connector that builds them from a configuration, a server for the plugin
//! side with two key backends (a local key file and a PKCS#11 token), and the health-probe loop kube-apiserver runs for each
//! KMS v2 provider.

mod client;
mod local_kek;
mod pkcs11;
pub mod proto;
mod server;

use std::sync::Arc;
use std::time::Duration;

pub use client::{GrpcKmsV1, GrpcKmsV2};
pub use local_kek::LocalKekFile;
pub use pkcs11::{DEFAULT_PKCS11_KEY_LABEL, Pkcs11Error, Pkcs11Kek, Pkcs11Options, TokenSelector};
pub use server::KmsV2Server;

use crate::config::{KmsConnector, KmsProvider};
use crate::error::{ConfigError, KmsError};
use crate::kms_v1::KmsV1Service;
use crate::kms_v2::{KmsV2, KmsV2Service};

/// Probe interval while the plugin is healthy (§3.4).
pub const PROBE_INTERVAL_HEALTHY: Duration = Duration::from_secs(60);
/// Probe interval while the plugin is failing (§3.4).
pub const PROBE_INTERVAL_FAILING: Duration = Duration::from_secs(10);

/// Connects each KMS provider of a configuration to its plugin over gRPC. `build` must run
/// inside a Tokio runtime (each channel spawns a task), or it fails with
/// [`ConfigError::KmsClient`]; connections are made on first use.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcKms;

impl KmsConnector for GrpcKms {
    fn v2(&self, p: &KmsProvider) -> Result<Arc<dyn KmsV2Service>, ConfigError> {
        let client = GrpcKmsV2::connect_lazy(&p.endpoint, p.timeout).map_err(|source| {
            ConfigError::KmsClient {
                name: p.name.clone(),
                source,
            }
        })?;
        Ok(Arc::new(client))
    }
    fn v1(&self, p: &KmsProvider) -> Result<Arc<dyn KmsV1Service>, ConfigError> {
        let client = GrpcKmsV1::connect_lazy(&p.endpoint, p.timeout).map_err(|source| {
            ConfigError::KmsClient {
                name: p.name.clone(),
                source,
            }
        })?;
        Ok(Arc::new(client))
    }
}

/// Probes `kms` forever as kube-apiserver does: every minute while healthy, every 10 seconds
/// while failing. `report` sees each result (for logs and health endpoints; errors carry no
/// key material). Spawn it once per KMS v2 provider; drop the task to stop.
pub async fn probe_forever(kms: Arc<KmsV2>, mut report: impl FnMut(Result<(), &KmsError>) + Send) {
    loop {
        let result = kms.probe().await;
        let pause = if result.is_ok() {
            PROBE_INTERVAL_HEALTHY
        } else {
            PROBE_INTERVAL_FAILING
        };
        report(result.as_ref().map(|_| ()));
        tokio::time::sleep(pause).await;
    }
}
