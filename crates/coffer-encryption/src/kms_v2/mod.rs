//! The KMS v2 envelope provider (`reference/encryption.md` §2.6, §3.4; upstream
//! `envelope/kmsv2/envelope.go`).
//!
//! The plugin is reached through the [`KmsV2Service`] trait, so this module does no I/O: the
//! gRPC client implements the trait, and tests use an in-process plugin.
//!
//! **State.** Writes need a *write state*: a 32-byte seed, its ciphertext from the plugin and
//! the plugin's key id. [`KmsV2::probe`] creates it: it calls `Status`, and when the key id
//! changed (or there is no state yet) it makes a new seed and calls `Encrypt` once. A state is
//! good for writes for [`WRITE_STATE_TTL`] after the last successful probe, so a caller must
//! probe at least that often (upstream polls every minute, every 10 s while failing). There is
//! no plugin call per write. Reads call `Decrypt` once per distinct stored DEK source and cache
//! the result. Until the first successful probe, reads and writes both fail, as upstream's do.
//!
//! **Stale.** A value whose key id differs from the current state's, or that was written as
//! type 0, reads as [`Freshness::Stale`].

mod object;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prost::Message as _;

pub use object::{DekSourceType, EncryptedObject, hash_of};

use crate::aesgcm::{ExtendedNonceGcm, Gcm, SEED};
use crate::error::{KmsError, TransformError};
use crate::secret::{KeyMaterial, SecretBytes};
use crate::transformer::{Freshness, ReadTransformer, Transformer};

/// How long a write state stays usable after the last successful probe
/// (`kmsv2PluginWriteDEKSourceMaxTTL`).
pub const WRITE_STATE_TTL: Duration = Duration::from_secs(3 * 60);
/// How long [`KmsV2::healthz`] reuses a successful probe.
pub const HEALTHZ_CACHE_OK: Duration = Duration::from_secs(20);
/// How long [`KmsV2::healthz`] reuses a failed probe.
pub const HEALTHZ_CACHE_FAILED: Duration = Duration::from_secs(3);
/// Most distinct DEK sources kept decrypted; past this the cache starts over.
const CACHE_CAPACITY: usize = 4096;

/// `StatusResponse` of the KMS v2 API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsStatus {
    /// `v2` (or the older `v2beta1`).
    pub version: String,
    /// `ok` when healthy; anything else is the plugin's health error.
    pub healthz: String,
    /// The KEK id new data will be encrypted under.
    pub key_id: String,
}

/// `EncryptResponse` of the KMS v2 API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsEncrypted {
    /// The plugin's ciphertext (not secret).
    pub ciphertext: Vec<u8>,
    /// The KEK id used.
    pub key_id: String,
    /// Plugin annotations, stored in plaintext.
    pub annotations: BTreeMap<String, Vec<u8>>,
}

/// A `DecryptRequest` of the KMS v2 API: what was stored with the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsDecryptRequest {
    /// The plugin's ciphertext.
    pub ciphertext: Vec<u8>,
    /// The KEK id stored with it.
    pub key_id: String,
    /// The annotations stored with it.
    pub annotations: BTreeMap<String, Vec<u8>>,
}

/// The three calls of `v2.KeyManagementService`. `uid` is a fresh UUID per call, for the
/// plugin's logs. Implementations must apply the configured timeout to each call.
#[async_trait]
pub trait KmsV2Service: Send + Sync {
    /// `Status`.
    async fn status(&self) -> Result<KmsStatus, KmsError>;
    /// `Encrypt`: wraps a seed.
    async fn encrypt(&self, uid: &str, plaintext: &KeyMaterial) -> Result<KmsEncrypted, KmsError>;
    /// `Decrypt`: unwraps a seed or DEK.
    async fn decrypt(&self, uid: &str, req: &KmsDecryptRequest) -> Result<KeyMaterial, KmsError>;
}

/// The write state made by a successful probe.
struct WriteState {
    writer: ExtendedNonceGcm,
    key_id: String,
    encrypted_dek_source: Vec<u8>,
    annotations: BTreeMap<String, Vec<u8>>,
    /// When writes must stop unless a probe succeeds first.
    expires: Mutex<Instant>,
}

/// A decrypted DEK source, ready to open values.
enum ReadCipher {
    Key(Gcm),
    Seed(ExtendedNonceGcm),
}

/// The KMS v2 transformer. Cheap to share behind an `Arc`.
pub struct KmsV2 {
    service: Arc<dyn KmsV2Service>,
    /// The current write state; `None` until the first successful probe. Never held across an
    /// await.
    state: RwLock<Option<Arc<WriteState>>>,
    /// The first `Status` version seen; it must not change afterwards.
    version: Mutex<Option<String>>,
    /// Decrypted DEK sources by the hash of their cache key. Never held across an await; taken
    /// after `state` when both are needed.
    cache: Mutex<HashMap<[u8; 32], Arc<ReadCipher>>>,
    /// How long a write state lasts after the last successful probe.
    write_ttl: Duration,
    /// The last `healthz` result and when it was taken. Never held across an await.
    last_health: Mutex<Option<(Instant, Result<(), KmsError>)>>,
}

impl KmsV2 {
    /// A transformer with no state yet: call [`KmsV2::probe`] before use.
    pub fn new(service: Arc<dyn KmsV2Service>) -> Self {
        Self::with_write_state_ttl(service, WRITE_STATE_TTL)
    }

    /// Like [`KmsV2::new`] with another write-state lifetime than upstream's
    /// [`WRITE_STATE_TTL`]; for tests of expiry, or a deployment that probes at another pace.
    pub fn with_write_state_ttl(service: Arc<dyn KmsV2Service>, write_ttl: Duration) -> Self {
        Self {
            service,
            state: RwLock::new(None),
            version: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            write_ttl,
            last_health: Mutex::new(None),
        }
    }

    /// One health probe: `Status`, then a new seed if the key id changed, else the write
    /// state's expiry is pushed forward. On failure the old state stays in force until it
    /// expires.
    pub async fn probe(&self) -> Result<(), KmsError> {
        let status = self.service.status().await?;
        self.check_status(&status)?;
        {
            let guard = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(current) = guard.as_ref().filter(|s| s.key_id == status.key_id) {
                *current
                    .expires
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Instant::now() + self.write_ttl;
                return Ok(());
            }
        }
        let seed =
            KeyMaterial::random(SEED).map_err(|_| KmsError::Service("no randomness".into()))?;
        let resp = self.service.encrypt(&new_uid(), &seed).await?;
        if resp.key_id != status.key_id {
            return Err(KmsError::InvalidEncryptResponse(format!(
                "key id hash {:?} does not match the Status key id hash {:?}",
                hash_of(resp.key_id.as_bytes()),
                hash_of(status.key_id.as_bytes())
            )));
        }
        object::validate_dek_source(&resp.ciphertext).map_err(KmsError::InvalidEncryptResponse)?;
        object::validate_annotations(&resp.annotations)
            .map_err(KmsError::InvalidEncryptResponse)?;
        let state = WriteState {
            writer: ExtendedNonceGcm::new(seed).expect("BUG: the seed was made 32 bytes long"),
            key_id: resp.key_id,
            encrypted_dek_source: resp.ciphertext,
            annotations: resp.annotations,
            expires: Mutex::new(Instant::now() + self.write_ttl),
        };
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(state));
        Ok(())
    }

    /// The health check behind `/healthz` and `/readyz`: a [`KmsV2::probe`], whose result is
    /// reused for [`HEALTHZ_CACHE_OK`] after a success and [`HEALTHZ_CACHE_FAILED`] after a
    /// failure, as upstream caches it. The caller prefixes the provider name when reporting.
    pub async fn healthz(&self) -> Result<(), KmsError> {
        {
            let cached = self
                .last_health
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, result)) = cached.as_ref() {
                let ttl = if result.is_ok() {
                    HEALTHZ_CACHE_OK
                } else {
                    HEALTHZ_CACHE_FAILED
                };
                if at.elapsed() < ttl {
                    return result.clone();
                }
            }
        }
        let result = self.probe().await;
        *self
            .last_health
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), result.clone()));
        result
    }

    /// The key id of the current write state, if any (public, not secret).
    pub fn current_key_id(&self) -> Option<String> {
        let guard = self.state.read().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(|s| s.key_id.clone())
    }

    fn check_status(&self, s: &KmsStatus) -> Result<(), KmsError> {
        if s.healthz != "ok" {
            return Err(KmsError::Unhealthy(format!(
                "got unexpected healthz status: {}",
                s.healthz
            )));
        }
        if s.version != "v2" && s.version != "v2beta1" {
            return Err(KmsError::Unhealthy(format!(
                "expected KMSv2 API version v2, got {}",
                s.version
            )));
        }
        {
            let mut first = self.version.lock().unwrap_or_else(PoisonError::into_inner);
            match first.as_deref() {
                None => *first = Some(s.version.clone()),
                Some(v) if v != s.version => {
                    return Err(KmsError::Unhealthy(format!(
                        "KMSv2 API version should not change after the initial status response version {v}, got {}",
                        s.version
                    )));
                }
                Some(_) => {}
            }
        }
        object::validate_key_id(&s.key_id).map_err(|e| {
            KmsError::Unhealthy(format!(
                "got invalid KMSv2 KeyID hash {:?}: {e}",
                hash_of(s.key_id.as_bytes())
            ))
        })
    }

    fn current(&self) -> Result<Arc<WriteState>, KmsError> {
        let guard = self.state.read().unwrap_or_else(PoisonError::into_inner);
        guard.clone().ok_or(KmsError::NotReady)
    }

    async fn read_cipher(&self, eo: &EncryptedObject) -> Result<Arc<ReadCipher>, TransformError> {
        let key = object::cache_key(eo);
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Arc::clone(c));
        }
        let req = KmsDecryptRequest {
            ciphertext: eo.encrypted_dek_source.clone(),
            key_id: eo.key_id.clone(),
            annotations: eo.annotations.clone(),
        };
        let source = self.service.decrypt(&new_uid(), &req).await?;
        let cipher = match eo.source_type() {
            Some(DekSourceType::HkdfSha256XNonceAesGcmSeed) => {
                ReadCipher::Seed(ExtendedNonceGcm::new(source)?)
            }
            _ => ReadCipher::Key(Gcm::new(source.expose_secret()).ok_or_else(|| {
                KmsError::Service(format!(
                    "plugin returned a {}-byte DEK; AES needs 16, 24 or 32",
                    source.len()
                ))
            })?),
        };
        let cipher = Arc::new(cipher);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&cipher));
        Ok(cipher)
    }
}

impl std::fmt::Debug for KmsV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key_id_hash = self.current_key_id().map(|k| hash_of(k.as_bytes()));
        f.debug_struct("KmsV2")
            .field("key_id_hash", &key_id_hash)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ReadTransformer for KmsV2 {
    async fn from_storage(
        &self,
        data: &[u8],
        aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        let eo = EncryptedObject::decode_validated(data)?;
        let state = self.current()?;
        let plain = match self.read_cipher(&eo).await?.as_ref() {
            ReadCipher::Key(gcm) => gcm.open(&eo.encrypted_data, aad)?,
            ReadCipher::Seed(x) => x.from_storage(&eo.encrypted_data, aad).await?.0,
        };
        let current = eo.key_id == state.key_id
            && eo.source_type() == Some(DekSourceType::HkdfSha256XNonceAesGcmSeed);
        Ok((
            plain,
            if current {
                Freshness::Current
            } else {
                Freshness::Stale
            },
        ))
    }
}

#[async_trait]
impl Transformer for KmsV2 {
    async fn to_storage(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let state = self.current()?;
        let now = Instant::now();
        let expires = *state.expires.lock().unwrap_or_else(PoisonError::into_inner);
        if now > expires {
            return Err(KmsError::Expired {
                key_id_hash: hash_of(state.key_id.as_bytes()),
                seconds_ago: now.duration_since(expires).as_secs(),
            }
            .into());
        }
        let eo = EncryptedObject {
            encrypted_data: state.writer.to_storage(plain, aad).await?,
            key_id: state.key_id.clone(),
            encrypted_dek_source: state.encrypted_dek_source.clone(),
            annotations: state.annotations.clone(),
            encrypted_dek_source_type: DekSourceType::HkdfSha256XNonceAesGcmSeed.number(),
        };
        eo.validate()?;
        Ok(eo.encode_to_vec())
    }
}

/// A random (version 4) UUID for the plugin's logs.
fn new_uid() -> String {
    let mut b = [0u8; 16];
    // A failed RNG only weakens log correlation; the zero UUID is still a valid string.
    let _ = crate::secret::fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests;
