//! The deprecated KMS v1 envelope provider, read-only (`reference/encryption.md` §2.5; upstream
//! `envelope/envelope.go`).
//!
//! Layout after the `k8s:enc:kms:v1:<name>:` prefix: `u16_be(len(encDEK)) || encDEK || inner`,
//! where `inner` is `nonce(12) || AES-GCM(DEK, plaintext, AAD = storage key) || tag`, or for data
//! from before 1.25, `IV(16) || AES-CBC(DEK, PKCS7(plaintext))`. GCM is tried first; a CBC read
//! is stale. Coffer never writes KMS v1 (kube-apiserver ≥ 1.29 refuses it by default), so this
//! provider is only a [`ReadTransformer`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::aescbc::{self, AesCbc};
use crate::aesgcm::Gcm;
use crate::error::{KmsError, TransformError};
use crate::secret::{KeyMaterial, SecretBytes};
use crate::transformer::{Freshness, ReadTransformer};

/// The one call of `v1beta1.KeyManagementService` a reader needs. Implementations send
/// `version = "v1beta1"` and apply the configured timeout.
#[async_trait]
pub trait KmsV1Service: Send + Sync {
    /// `Decrypt`: unwraps a DEK.
    async fn decrypt(&self, cipher: &[u8]) -> Result<KeyMaterial, KmsError>;
}

/// Reads KMS v1 values. DEKs are cached by their ciphertext, up to `cache_size` entries.
pub struct KmsV1Reader {
    service: Arc<dyn KmsV1Service>,
    /// `None` disables the cache (a negative `cachesize` in the config).
    cache_size: Option<usize>,
    /// Decrypted DEKs by their ciphertext. Never held across an await.
    cache: Mutex<HashMap<Vec<u8>, KeyMaterial>>,
}

impl KmsV1Reader {
    /// A reader with a DEK cache of `cache_size` entries (`None`: no cache).
    pub fn new(service: Arc<dyn KmsV1Service>, cache_size: Option<usize>) -> Self {
        Self {
            service,
            cache_size,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn dek(&self, enc_dek: &[u8]) -> Result<KeyMaterial, TransformError> {
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(enc_dek)
        {
            return Ok(k.clone());
        }
        let dek = self.service.decrypt(enc_dek).await?;
        if let Some(cap) = self.cache_size {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= cap {
                cache.clear();
            }
            cache.insert(enc_dek.to_vec(), dek.clone());
        }
        Ok(dek)
    }
}

impl std::fmt::Debug for KmsV1Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsV1Reader")
            .field("cache_size", &self.cache_size)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ReadTransformer for KmsV1Reader {
    async fn from_storage(
        &self,
        data: &[u8],
        aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        let (len, rest) = data.split_first_chunk::<2>().ok_or(KmsError::V1Envelope)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(KmsError::V1Envelope.into());
        }
        let (enc_dek, inner) = rest.split_at(len);
        let dek = self.dek(enc_dek).await?;
        let bad_dek = || KmsError::Service(format!("plugin returned a {}-byte DEK", dek.len()));
        let gcm = Gcm::new(dek.expose_secret()).ok_or_else(bad_dek)?;
        match gcm.open(inner, aad) {
            Ok(plain) => Ok((plain, Freshness::Current)),
            Err(gcm_err) => {
                let cbc = AesCbc::new(dek.clone()).ok_or_else(bad_dek)?;
                match aescbc::open(&cbc, inner) {
                    Ok(plain) => Ok((plain, Freshness::Stale)),
                    Err(_) => Err(gcm_err),
                }
            }
        }
    }
}
