//! The `aesgcm` provider and the extended-nonce (HKDF) GCM used by KMS v2
//! (`reference/encryption.md` §2.3, §2.6.2; upstream `encrypt/aes/aes.go`,
//! `aes_extended_nonce.go`).
//!
//! **Nonce budget.** [`AesGcm`] draws a random 12-byte nonce per write. NIST limits random-nonce
//! GCM to 2^32 messages per key, and kube-apiserver's docs ask for a key rotation every 200,000
//! writes; nobody else counts for you, so rotate the key (or prefer secretbox or KMS v2).
//! [`ExtendedNonceGcm`] derives a fresh key per write from a seed, so it has no such limit.
//!
//! The nonce size is fixed at 12 bytes by the stored format; changing it would make every
//! existing value unreadable.

use std::sync::atomic::{AtomicU64, Ordering};

use aes::Aes192;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use async_trait::async_trait;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::TransformError;
use crate::secret::{KeyMaterial, SecretBytes, fill_random};
use crate::transformer::{Freshness, ReadTransformer, Transformer};

/// GCM nonce length in bytes.
pub(crate) const NONCE: usize = 12;
/// Seed, info and derived key length of the extended-nonce format.
pub(crate) const SEED: usize = 32;

type Aes192Gcm = aes_gcm::AesGcm<Aes192, U12>;

/// An AES-GCM cipher of any of the three key sizes. The AES key schedules zero on drop.
pub(crate) enum Gcm {
    A128(Box<Aes128Gcm>),
    A192(Box<Aes192Gcm>),
    A256(Box<Aes256Gcm>),
}

impl Gcm {
    /// `None` unless the key is 16, 24 or 32 bytes.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Aes128Gcm::new_from_slice(key)
                .ok()
                .map(|c| Gcm::A128(Box::new(c))),
            24 => Aes192Gcm::new_from_slice(key)
                .ok()
                .map(|c| Gcm::A192(Box::new(c))),
            32 => Aes256Gcm::new_from_slice(key)
                .ok()
                .map(|c| Gcm::A256(Box::new(c))),
            _ => None,
        }
    }

    /// `nonce || ciphertext || tag` with a fresh random nonce.
    pub(crate) fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut nonce = [0u8; NONCE];
        fill_random(&mut nonce)?;
        let n = Nonce::from_slice(&nonce);
        let payload = Payload { msg: plain, aad };
        let sealed = match self {
            Gcm::A128(c) => c.encrypt(n, payload),
            Gcm::A192(c) => c.encrypt(n, payload),
            Gcm::A256(c) => c.encrypt(n, payload),
        }
        // Encryption fails only for inputs over GCM's 64 GiB limit.
        .map_err(|_| TransformError::GcmAuthentication)?;
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens `nonce || ciphertext || tag`.
    pub(crate) fn open(&self, data: &[u8], aad: &[u8]) -> Result<SecretBytes, TransformError> {
        if data.len() < NONCE {
            return Err(TransformError::TooShort);
        }
        let (nonce, body) = data.split_at(NONCE);
        let n = Nonce::from_slice(nonce);
        let payload = Payload { msg: body, aad };
        match self {
            Gcm::A128(c) => c.decrypt(n, payload),
            Gcm::A192(c) => c.decrypt(n, payload),
            Gcm::A256(c) => c.decrypt(n, payload),
        }
        .map(SecretBytes::new)
        .map_err(|_| TransformError::GcmAuthentication)
    }
}

/// Writes after which kube-apiserver's docs say an `aesgcm` key must be rotated.
pub const AESGCM_ROTATE_AFTER_WRITES: u64 = 200_000;

/// The `aesgcm` provider: AES-GCM with a random 96-bit nonce and the storage key as AAD.
/// Keys are 16, 24 or 32 bytes. See the module docs for the nonce budget; [`AesGcm::writes`]
/// counts this process's writes so the server can warn well before
/// [`AESGCM_ROTATE_AFTER_WRITES`].
pub struct AesGcm {
    gcm: Gcm,
    writes: AtomicU64,
}

impl AesGcm {
    /// Builds the provider. Returns `None` unless the key is 16, 24 or 32 bytes.
    pub fn new(key: &KeyMaterial) -> Option<Self> {
        Gcm::new(key.expose_secret()).map(|gcm| Self {
            gcm,
            writes: AtomicU64::new(0),
        })
    }

    /// Values this process has encrypted with this key (not counting other processes or
    /// earlier runs, which share the nonce budget).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for AesGcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesGcm([REDACTED])")
    }
}

#[async_trait]
impl ReadTransformer for AesGcm {
    async fn from_storage(
        &self,
        data: &[u8],
        aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        Ok((self.gcm.open(data, aad)?, Freshness::Current))
    }
}

#[async_trait]
impl Transformer for AesGcm {
    async fn to_storage(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.gcm.seal(plain, aad)
    }
}

/// AES-256-GCM whose key is derived per value from a seed: `info(32) || nonce(12) ||
/// ciphertext || tag`, with `key = HKDF-Expand-SHA256(seed, info, 32)` and no Extract step.
/// This is the body of KMS v2 type 1 (`HKDF_SHA256_XNONCE_AES_GCM_SEED`).
pub struct ExtendedNonceGcm {
    seed: KeyMaterial,
}

impl ExtendedNonceGcm {
    /// Builds the transformer. A seed shorter than 32 bytes is refused, as upstream does on read;
    /// longer seeds are allowed.
    pub fn new(seed: KeyMaterial) -> Result<Self, TransformError> {
        if seed.len() < SEED {
            return Err(TransformError::SeedLength(seed.len()));
        }
        Ok(Self { seed })
    }

    fn derive(&self, info: &[u8]) -> Result<Gcm, TransformError> {
        let hk = Hkdf::<Sha256>::from_prk(self.seed.expose_secret())
            .map_err(|_| TransformError::SeedLength(self.seed.len()))?;
        let mut key = Zeroizing::new([0u8; SEED]);
        hk.expand(info, key.as_mut())
            .expect("BUG: 32 bytes is far below HKDF-SHA256's 8160-byte output limit");
        Ok(Gcm::new(key.as_ref()).expect("BUG: a 32-byte key is a valid AES-256 key"))
    }
}

impl std::fmt::Debug for ExtendedNonceGcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtendedNonceGcm")
            .field("seed", &self.seed)
            .finish()
    }
}

#[async_trait]
impl ReadTransformer for ExtendedNonceGcm {
    async fn from_storage(
        &self,
        data: &[u8],
        aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        if data.len() < SEED {
            return Err(TransformError::TooShort);
        }
        let (info, rest) = data.split_at(SEED);
        Ok((self.derive(info)?.open(rest, aad)?, Freshness::Current))
    }
}

#[async_trait]
impl Transformer for ExtendedNonceGcm {
    async fn to_storage(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut info = [0u8; SEED];
        fill_random(&mut info)?;
        let sealed = self.derive(&info)?.seal(plain, aad)?;
        let mut out = Vec::with_capacity(SEED + sealed.len());
        out.extend_from_slice(&info);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn all_key_sizes_round_trip_and_bind_aad() {
        for n in [16, 24, 32] {
            let t = AesGcm::new(&KeyMaterial::new(vec![3; n])).expect("valid size");
            let out = block_on(t.to_storage(b"hello", b"/registry/a")).expect("write");
            assert_eq!(out.len(), 12 + 5 + 16);
            assert_eq!(t.writes(), 1);
            let (p, _) = block_on(t.from_storage(&out, b"/registry/a")).expect("read");
            assert_eq!(p.expose_secret(), b"hello");
            let err = block_on(t.from_storage(&out, b"/registry/b")).unwrap_err();
            assert_eq!(err.to_string(), "cipher: message authentication failed");
        }
        assert!(AesGcm::new(&KeyMaterial::new(vec![3; 20])).is_none());
    }

    #[test]
    fn short_data() {
        let t = AesGcm::new(&KeyMaterial::new(vec![3; 16])).expect("valid size");
        let err = block_on(t.from_storage(&[0; 11], b"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the stored data was shorter than the required size"
        );
        let x = ExtendedNonceGcm::new(KeyMaterial::new(vec![1; 32])).expect("seed");
        let err = block_on(x.from_storage(&[0; 31], b"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the stored data was shorter than the required size"
        );
    }

    #[test]
    fn short_seed_is_refused() {
        let err = ExtendedNonceGcm::new(KeyMaterial::new(vec![1; 31])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid seed length 31 used for key generation"
        );
        assert!(ExtendedNonceGcm::new(KeyMaterial::new(vec![1; 48])).is_ok());
    }

    #[test]
    fn hkdf_is_expand_only() {
        // reference/encryption.md §5.2: the derived DEK computed independently by two
        // implementations.
        let seed = hex::decode("5d40323a820ff95561675e3b95e81867c5fdd561d35a88a2d08b08aa9d4fcf5c")
            .expect("hex");
        let info = hex::decode("2442759e33945fbad709db577a0f037fd8a709fc76979b8942209debcecb9d57")
            .expect("hex");
        let hk = Hkdf::<Sha256>::from_prk(&seed).expect("32-byte prk");
        let mut dek = [0u8; 32];
        hk.expand(&info, &mut dek).expect("32 bytes");
        assert_eq!(
            hex::encode(dek),
            "6e58b7659c304b0c382f42f16bd700465def1dead80bf6f1bf1d52073bdb0c00"
        );
    }
}
