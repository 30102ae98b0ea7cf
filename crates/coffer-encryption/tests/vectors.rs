//! Every test vector of `reference/encryption.md` §5 that involves encryption, read through
//! full configurations: the values written by real kube-apiserver 1.27 and 1.28, upstream's
//! fixed GCM ciphertexts, and our own derived vectors.

use std::path::Path;
use std::sync::Arc;

use coffer_encryption::testing::vectors::*;
use coffer_encryption::testing::{Base64KmsV1, Base64KmsV2};
use coffer_encryption::{
    AesGcm, ConfigError, EncryptionConfig, ExtendedNonceGcm, Freshness, KeyMaterial, KmsConnector,
    KmsProvider, KmsV1Service, KmsV2Service, LoadMode, ReadTransformer, Transformer,
};
use futures::executor::block_on;

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).expect("vector hex")
}

struct Mock;

impl KmsConnector for Mock {
    fn v2(&self, _: &KmsProvider) -> Result<Arc<dyn KmsV2Service>, ConfigError> {
        Ok(Arc::new(Base64KmsV2::new("1")))
    }
    fn v1(&self, _: &KmsProvider) -> Result<Arc<dyn KmsV1Service>, ConfigError> {
        Ok(Arc::new(Base64KmsV1))
    }
}

#[test]
fn gcm_legacy_data() {
    // §5.1, upstream TestGCMLegacyDataCompatibility.
    let t = AesGcm::new(&KeyMaterial::new(GCM_LEGACY_KEY.to_vec())).expect("16-byte key");
    let (p, _) = block_on(t.from_storage(&hex(GCM_LEGACY_STORED), LEGACY_AAD)).expect("decrypts");
    assert_eq!(p.expose_secret(), LEGACY_PLAINTEXT);
}

#[test]
fn extended_nonce_gcm_legacy_data() {
    // §5.2, upstream TestExtendedNonceGCMLegacyDataCompatibility.
    let t = ExtendedNonceGcm::new(KeyMaterial::new(hex(XNONCE_LEGACY_SEED))).expect("seed");
    let (p, _) =
        block_on(t.from_storage(&hex(XNONCE_LEGACY_STORED), LEGACY_AAD)).expect("decrypts");
    assert_eq!(p.expose_secret(), LEGACY_PLAINTEXT);
}

#[test]
fn kms_v2_values_from_real_kube_apiserver() {
    // §5.3a (1.27, type 0) and §5.3b (1.28, type 1), through a config naming "kms-provider".
    let yaml = b"apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - kms: {apiVersion: v2, name: kms-provider, endpoint: 'unix:///@kms-provider.sock'}
";
    let c = EncryptionConfig::parse(yaml, Path::new("t"), LoadMode::Startup).expect("valid");
    let t = c.build(&Mock).expect("build");
    block_on(t.kms_v2()[0].1.probe()).expect("healthy");
    let secrets = t.for_resource("", "secrets");
    for (stored, aad, plain) in [
        (
            KMS_V2_TYPE0_STORED,
            KMS_V2_TYPE0_AAD,
            KMS_V2_TYPE0_PLAINTEXT,
        ),
        (
            KMS_V2_TYPE1_STORED,
            KMS_V2_TYPE1_AAD,
            KMS_V2_TYPE1_PLAINTEXT,
        ),
    ] {
        let (p, _) = block_on(secrets.from_storage(&hex(stored), aad)).expect("decrypts");
        assert_eq!(p.expose_secret(), hex(plain).as_slice());
        // The AAD binds the value to its key: under the other secret's key it fails.
        let other = if aad == KMS_V2_TYPE0_AAD {
            KMS_V2_TYPE1_AAD
        } else {
            KMS_V2_TYPE0_AAD
        };
        assert!(block_on(secrets.from_storage(&hex(stored), other)).is_err());
    }
}

#[test]
fn kms_v1_derived_vector_and_cbc_fallback() {
    // §5.6 kms v1, read only.
    let yaml = b"apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - kms: {name: mock, endpoint: 'unix:///tmp/kms.sock', cachesize: 10}
";
    let c = EncryptionConfig::parse(yaml, Path::new("t"), LoadMode::Startup).expect("valid");
    let t = c.build(&Mock).expect("build").for_resource("", "secrets");
    let (p, f) = block_on(t.from_storage(&hex(DERIVED_KMS_V1), DERIVED_AAD)).expect("decrypts");
    assert_eq!(p.expose_secret(), hex(OLD_SECRET_PLAINTEXT).as_slice());
    assert_eq!(f, Freshness::Current);
    // KMS v1 is never written.
    assert!(block_on(t.to_storage(b"x", DERIVED_AAD)).is_err());
    // Legacy CBC inner data (pre-1.25) reads, stale. Built with the aescbc provider's body.
    let dek: Vec<u8> = (0u8..32).collect();
    let cbc = coffer_encryption::AesCbc::new(KeyMaterial::new(dek.clone())).expect("key");
    let inner = block_on(cbc.to_storage(b"legacy", b"")).expect("cbc");
    let enc_dek = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mut stored = b"k8s:enc:kms:v1:mock:".to_vec();
    stored.extend_from_slice(&(enc_dek.len() as u16).to_be_bytes());
    stored.extend_from_slice(enc_dek);
    stored.extend_from_slice(&inner);
    let (p, f) = block_on(t.from_storage(&stored, DERIVED_AAD)).expect("cbc fallback");
    assert_eq!((p.expose_secret(), f), (&b"legacy"[..], Freshness::Stale));
    let err = block_on(t.from_storage(b"k8s:enc:kms:v1:mock:\xff", DERIVED_AAD)).unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to read uint16 length prefixed data"),
        "{err}"
    );
}
