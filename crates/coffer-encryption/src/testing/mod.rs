//! Test support: the provider conformance suite, in-process KMS plugins shaped like upstream's
//! mock `Base64Plugin`, and the real kube-apiserver test vectors of `reference/encryption.md`
//! §5, and a real SoftHSM2 token for the PKCS#11 backend. Enabled by the `testing` feature;
//! not part of the stable API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::KmsError;
use crate::kms_v1::KmsV1Service;
use crate::kms_v2::{KmsDecryptRequest, KmsEncrypted, KmsStatus, KmsV2Service};
use crate::secret::KeyMaterial;
use crate::transformer::{Freshness, Transformer};

pub mod softhsm;
pub mod vectors;

/// Upstream's mock KMS v2 plugin: `Encrypt` returns `base64(plaintext)` under the current key
/// id with annotation `local-kek.kms.kubernetes.io: encrypted-local-kek`; `Decrypt` base64-decodes.
#[derive(Debug)]
pub struct Base64KmsV2 {
    key_id: Mutex<String>,
    healthz: Mutex<String>,
}

impl Base64KmsV2 {
    /// A healthy plugin reporting `key_id`.
    pub fn new(key_id: &str) -> Self {
        Self {
            key_id: Mutex::new(key_id.into()),
            healthz: Mutex::new("ok".into()),
        }
    }

    /// Rotates the KEK: later `Status` and `Encrypt` calls report `key_id`.
    pub fn set_key_id(&self, key_id: &str) {
        *self.key_id.lock().unwrap_or_else(PoisonError::into_inner) = key_id.into();
    }

    /// Sets what `Status` reports as `healthz`.
    pub fn set_healthz(&self, healthz: &str) {
        *self.healthz.lock().unwrap_or_else(PoisonError::into_inner) = healthz.into();
    }

    fn key_id(&self) -> String {
        self.key_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl KmsV2Service for Base64KmsV2 {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        Ok(KmsStatus {
            version: "v2".into(),
            healthz: self
                .healthz
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            key_id: self.key_id(),
        })
    }

    async fn encrypt(&self, _uid: &str, plaintext: &KeyMaterial) -> Result<KmsEncrypted, KmsError> {
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "local-kek.kms.kubernetes.io".into(),
            b"encrypted-local-kek".to_vec(),
        );
        Ok(KmsEncrypted {
            ciphertext: STANDARD.encode(plaintext.expose_secret()).into_bytes(),
            key_id: self.key_id(),
            annotations,
        })
    }

    async fn decrypt(&self, _uid: &str, req: &KmsDecryptRequest) -> Result<KeyMaterial, KmsError> {
        STANDARD
            .decode(&req.ciphertext)
            .map(KeyMaterial::new)
            .map_err(|_| KmsError::Service("mock plugin: ciphertext is not base64".into()))
    }
}

/// A KMS v1 plugin whose ciphertext is `base64(DEK)`.
#[derive(Debug, Default)]
pub struct Base64KmsV1;

#[async_trait]
impl KmsV1Service for Base64KmsV1 {
    async fn decrypt(&self, cipher: &[u8]) -> Result<KeyMaterial, KmsError> {
        STANDARD
            .decode(cipher)
            .map(KeyMaterial::new)
            .map_err(|_| KmsError::Service("mock plugin: ciphertext is not base64".into()))
    }
}

/// One provider under test, configured twice with the same two keys in opposite order.
pub struct Setup {
    /// Writes with key 1 and reads keys 1 and 2.
    pub primary: Arc<dyn Transformer>,
    /// Writes with key 2; what it writes must read as stale through `primary`.
    pub secondary: Arc<dyn Transformer>,
    /// Whether tampering is always detected (false only for aescbc and identity).
    pub authenticated: bool,
    /// Whether the storage key is bound as AAD.
    pub binds_aad: bool,
}

const AAD: &[u8] = b"/registry/secrets/default/conformance";

/// Runs every conformance check against `s`.
pub async fn run_all(s: &Setup) {
    round_trip(s).await;
    tamper_is_detected(s).await;
    wrong_aad(s).await;
    stale_on_non_first_key(s).await;
}

/// Every plaintext length of interest reads back exactly, fresh.
pub async fn round_trip(s: &Setup) {
    let lengths = (0..=17).chain([128, 1024]);
    for len in lengths {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let stored = s.primary.to_storage(&plain, AAD).await.expect("write");
        let (read, freshness) = s
            .primary
            .from_storage(&stored, AAD)
            .await
            .expect("read back");
        assert_eq!(read.expose_secret(), plain.as_slice(), "length {len}");
        assert_eq!(freshness, Freshness::Current, "length {len}");
    }
}

/// A flipped byte anywhere after the prefix never yields the original plaintext, and is an
/// error for authenticated providers.
pub async fn tamper_is_detected(s: &Setup) {
    let plain = b"conformance plaintext, 32 bytes!".to_vec();
    let stored = s.primary.to_storage(&plain, AAD).await.expect("write");
    for i in [stored.len() / 2, stored.len() - 1] {
        let mut bad = stored.clone();
        bad[i] ^= 0x01;
        match s.primary.from_storage(&bad, AAD).await {
            Err(_) => {}
            Ok((read, _)) => {
                assert!(!s.authenticated, "tampered byte {i} was accepted");
                assert_ne!(read.expose_secret(), plain.as_slice(), "tampered byte {i}");
            }
        }
    }
}

/// A value read under another storage key fails where the provider binds the AAD.
pub async fn wrong_aad(s: &Setup) {
    let stored = s
        .primary
        .to_storage(b"moved value", AAD)
        .await
        .expect("write");
    let moved = s
        .primary
        .from_storage(&stored, b"/registry/secrets/default/other")
        .await;
    if s.binds_aad {
        assert!(moved.is_err(), "value moved to another key was accepted");
    } else {
        let (read, _) = moved.expect("provider ignores AAD");
        assert_eq!(read.expose_secret(), b"moved value");
    }
}

/// A value written by the second key reads as stale through the first.
pub async fn stale_on_non_first_key(s: &Setup) {
    let stored = s
        .secondary
        .to_storage(b"old key", AAD)
        .await
        .expect("write with key 2");
    let (read, freshness) = s
        .primary
        .from_storage(&stored, AAD)
        .await
        .expect("read key 2");
    assert_eq!(read.expose_secret(), b"old key");
    assert_eq!(freshness, Freshness::Stale);
}
