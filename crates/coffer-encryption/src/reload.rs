//! Automatic reload of the encryption configuration, as kube-apiserver's
//! `--encryption-provider-config-automatic-reload` (`reference/encryption.md` §1.6; upstream
//! `server/options/encryptionconfig/controller/controller.go`).
//!
//! [`ReloadingTransformers`] is the handle a server reads through: it holds the transformers in
//! force (in an `ArcSwap`, so a read takes no lock) together with the KMS v2 probe loops of that
//! configuration. [`ConfigWatcher`] polls the file: when the SHA-256 of its bytes differs from
//! the configuration in force, it loads and validates the new file (as for a reload, so KMS
//! names must be unique), builds its transformers, waits until every KMS v2 plugin of the new
//! configuration has answered a healthy `Status`, and only then swaps. Anything that fails
//! leaves the old configuration in force; the reason is logged and counted
//! ([`ReloadCounts`], like upstream's `automatic_reloads_total{status}`), and the next poll
//! tries again.
//!
//! Reads and writes that began before a swap finish with the transformers they started with.
//! The old configuration's probe loops stop at the swap; its KMS connections close when the
//! last request using them ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::config::{
    EncryptionConfig, KmsApiVersion, KmsConnector, LoadMode, ProviderConfig, ResourceTransformers,
    file_hash,
};
use crate::error::{ConfigError, KmsError};
use crate::kms_grpc::probe_forever;
use crate::transformer::PrefixTransformers;

/// How often kube-apiserver polls the file.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// The least time a new configuration's KMS plugins get to report healthy (upstream's
/// `minKMSPluginCloseGracePeriod`).
const MIN_KMS_HEALTH_WAIT: Duration = Duration::from_secs(10);
/// The pace of the health check of a new configuration's KMS plugins.
const KMS_HEALTH_POLL: Duration = Duration::from_millis(100);
/// How long the first probe of each KMS v2 plugin may take at start before serving goes on
/// without it (the probe loop keeps trying).
const FIRST_PROBE_WAIT: Duration = Duration::from_secs(10);

/// The transformers in force, swapped by a [`ConfigWatcher`]. Cheap to clone; every clone
/// sees the same configuration.
#[derive(Clone)]
pub struct ReloadingTransformers(Arc<Shared>);

struct Shared {
    current: ArcSwap<Generation>,
    success: AtomicU64,
    failure: AtomicU64,
    /// The reason of the last failed reload, cleared by a success. Never holds key material.
    last_error: Mutex<Option<String>>,
}

/// One loaded configuration.
struct Generation {
    transformers: ResourceTransformers,
    hash: String,
    /// The KMS v2 probe loops of this configuration; aborted when it is dropped.
    probes: Vec<JoinHandle<()>>,
}

impl Drop for Generation {
    fn drop(&mut self) {
        for p in &self.probes {
            p.abort();
        }
    }
}

/// How many automatic reloads succeeded and failed, and why the last one failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadCounts {
    /// Reloads that put a new configuration in force.
    pub success: u64,
    /// Polls that found a changed file and could not use it.
    pub failure: u64,
    /// Why the last reload failed, until one succeeds.
    pub last_error: Option<String>,
}

/// What one poll did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The file's hash equals the configuration in force.
    Unchanged,
    /// A new configuration is in force.
    Reloaded {
        /// `sha256:<hex>` of the new file.
        hash: String,
    },
}

/// Why a changed file was not put in force. The old configuration stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file could not be read, or is not a valid configuration.
    #[error("{0}; the previous configuration stays in force until the file is fixed")]
    Config(#[from] ConfigError),
    /// A KMS v2 plugin of the new configuration did not report healthy in time.
    #[error(
        "KMS v2 provider {provider:?} of the new configuration did not become healthy within {waited:?}: {error}; the previous configuration stays in force"
    )]
    KmsUnhealthy {
        /// The provider's name.
        provider: String,
        /// How long it was given.
        waited: Duration,
        /// Its last error.
        error: KmsError,
    },
}

impl ReloadingTransformers {
    /// Builds `config`'s transformers (KMS clients from `kms`), probes each KMS v2 plugin once
    /// (waiting up to 10 s each; a plugin that is not healthy yet is logged, and its provider
    /// fails reads and writes until it is) and starts each one's probe loop, as kube-apiserver
    /// does at start. Must run inside a Tokio runtime.
    pub async fn start(
        config: &EncryptionConfig,
        kms: &dyn KmsConnector,
    ) -> Result<Self, ConfigError> {
        let transformers = config.build(kms)?;
        for (name, kms) in transformers.kms_v2() {
            match tokio::time::timeout(FIRST_PROBE_WAIT, kms.probe()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(provider = %name, error = %e, "KMS v2 plugin is not healthy yet");
                }
                Err(_) => {
                    tracing::warn!(provider = %name, "KMS v2 plugin did not answer within 10 s");
                }
            }
        }
        Ok(Self::with_generation(generation(
            transformers,
            config.hash().to_owned(),
        )))
    }

    /// Transformers that run no probes (for tools and tests); a watcher may still replace them.
    pub fn fixed(transformers: ResourceTransformers, hash: &str) -> Self {
        Self::with_generation(Generation {
            transformers,
            hash: hash.to_owned(),
            probes: Vec::new(),
        })
    }

    fn with_generation(generation: Generation) -> Self {
        Self(Arc::new(Shared {
            current: ArcSwap::from_pointee(generation),
            success: AtomicU64::new(0),
            failure: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }))
    }

    /// The transformer list for (group, resource) in the configuration in force now. Use the
    /// returned list for the whole of one read or write.
    pub fn for_resource(&self, group: &str, resource: &str) -> Arc<PrefixTransformers> {
        self.0
            .current
            .load()
            .transformers
            .for_resource(group, resource)
    }

    /// `sha256:<hex>` of the file in force (upstream's `last_config_info` hash).
    pub fn config_hash(&self) -> String {
        self.0.current.load().hash.clone()
    }

    /// The counts of automatic reloads so far.
    pub fn reload_counts(&self) -> ReloadCounts {
        ReloadCounts {
            success: self.0.success.load(Ordering::Relaxed),
            failure: self.0.failure.load(Ordering::Relaxed),
            last_error: self
                .0
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    fn record(&self, result: &Result<ReloadOutcome, ReloadError>) {
        let mut last = self
            .0
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(ReloadOutcome::Unchanged) => {}
            Ok(ReloadOutcome::Reloaded { .. }) => {
                self.0.success.fetch_add(1, Ordering::Relaxed);
                *last = None;
            }
            Err(e) => {
                self.0.failure.fetch_add(1, Ordering::Relaxed);
                *last = Some(e.to_string());
            }
        }
    }
}

impl std::fmt::Debug for ReloadingTransformers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.0.current.load();
        f.debug_struct("ReloadingTransformers")
            .field("transformers", &current.transformers)
            .field("hash", &current.hash)
            .field("counts", &self.reload_counts())
            .finish()
    }
}

/// Polls an `EncryptionConfiguration` file and puts each valid change in force in a
/// [`ReloadingTransformers`]. See the module docs.
pub struct ConfigWatcher {
    path: PathBuf,
    target: ReloadingTransformers,
    kms: Arc<dyn KmsConnector + Send + Sync>,
}

impl ConfigWatcher {
    /// Watches `path` for `target`; KMS clients of new configurations come from `kms`.
    pub fn new(
        path: &Path,
        target: ReloadingTransformers,
        kms: Arc<dyn KmsConnector + Send + Sync>,
    ) -> Self {
        Self {
            path: path.to_owned(),
            target,
            kms,
        }
    }

    /// One poll: compares the file's hash with the configuration in force and, when it
    /// differs, loads, checks and swaps. The result is counted in
    /// [`ReloadingTransformers::reload_counts`].
    pub async fn check(&self) -> Result<ReloadOutcome, ReloadError> {
        let result = self.try_reload().await;
        self.target.record(&result);
        result
    }

    /// Polls every `interval` until the task is dropped, logging each reload and each failure.
    pub async fn run(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            match self.check().await {
                Ok(ReloadOutcome::Unchanged) => {}
                Ok(ReloadOutcome::Reloaded { hash }) => {
                    tracing::info!(file = %self.path.display(), %hash, "loaded a new encryption configuration");
                }
                Err(error) => {
                    tracing::error!(file = %self.path.display(), %error, "error processing encryption config file");
                }
            }
        }
    }

    async fn try_reload(&self) -> Result<ReloadOutcome, ReloadError> {
        // One read serves both the hash and the parse, so what is hashed is what is loaded.
        let bytes = zeroize::Zeroizing::new(std::fs::read(&self.path).map_err(|source| {
            ConfigError::Read {
                path: self.path.clone(),
                source,
            }
        })?);
        if file_hash(&bytes) == self.target.0.current.load().hash {
            return Ok(ReloadOutcome::Unchanged);
        }
        let config = EncryptionConfig::parse(&bytes, &self.path, LoadMode::AutomaticReload)?;
        drop(bytes);
        for warning in config.warnings() {
            tracing::warn!(%warning, "new encryption config");
        }
        let transformers = config.build(self.kms.as_ref())?;
        let wait = kms_health_wait(&config);
        for (name, kms) in transformers.kms_v2() {
            healthy_within(kms, wait)
                .await
                .map_err(|error| ReloadError::KmsUnhealthy {
                    provider: name.clone(),
                    waited: wait,
                    error,
                })?;
        }
        let hash = config.hash().to_owned();
        self.target
            .0
            .current
            .store(Arc::new(generation(transformers, hash.clone())));
        Ok(ReloadOutcome::Reloaded { hash })
    }
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A generation with a probe loop per KMS v2 provider.
fn generation(transformers: ResourceTransformers, hash: String) -> Generation {
    let probes = transformers
        .kms_v2()
        .iter()
        .map(|(name, kms)| {
            let name = name.clone();
            tokio::spawn(probe_forever(Arc::clone(kms), move |result| {
                if let Err(e) = result {
                    tracing::warn!(provider = %name, error = %e, "KMS v2 plugin probe failed");
                }
            }))
        })
        .collect();
    Generation {
        transformers,
        hash,
        probes,
    }
}

/// Upstream's `KMSCloseGracePeriod` (twice the sum of the KMS timeouts, a v1 timeout counted
/// twice), at least 10 s: how long a new configuration's plugins get to become healthy.
fn kms_health_wait(config: &EncryptionConfig) -> Duration {
    let sum: Duration = config
        .entries()
        .iter()
        .flat_map(|e| &e.providers)
        .filter_map(|p| match p {
            ProviderConfig::Kms(k) if k.api_version == KmsApiVersion::V1 => Some(k.timeout * 2),
            ProviderConfig::Kms(k) => Some(k.timeout),
            _ => None,
        })
        .sum();
    (sum * 2).max(MIN_KMS_HEALTH_WAIT)
}

/// Probes every 100 ms until one succeeds or `wait` has passed; the last error otherwise.
async fn healthy_within(kms: &crate::KmsV2, wait: Duration) -> Result<(), KmsError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let error = match tokio::time::timeout_at(deadline, kms.probe()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => return Err(KmsError::Service("no answer before the deadline".into())),
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(error);
        }
        tokio::time::sleep(KMS_HEALTH_POLL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests;
