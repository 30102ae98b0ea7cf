//! End to end with `coffer-api`'s codec: the etcd values real kube-apiserver 1.27 and 1.28
//! wrote (`reference/encryption.md` §5.3) decrypt and decode to the expected Secret, and the
//! decoded Secret re-encodes to the identical plaintext, which then round-trips through our
//! own KMS v2 write path.

use std::path::Path;
use std::sync::Arc;

use coffer_api::k8s_openapi::api::core::v1::Secret;
use coffer_api::{decode_from_storage, encode_for_storage};
use coffer_encryption::testing::vectors::*;
use coffer_encryption::testing::{Base64KmsV1, Base64KmsV2};
use coffer_encryption::{
    ConfigError, EncryptionConfig, Freshness, KmsConnector, KmsProvider, KmsV1Service,
    KmsV2Service, LoadMode, ReadTransformer, Transformer,
};
use futures::executor::block_on;

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
fn real_etcd_values_decrypt_decode_and_reencode() {
    let yaml = b"apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - kms: {apiVersion: v2, name: kms-provider, endpoint: 'unix:///@kms-provider.sock'}
";
    let config = EncryptionConfig::parse(yaml, Path::new("t"), LoadMode::Startup).expect("valid");
    let transformers = config.build(&Mock).expect("build");
    block_on(transformers.kms_v2()[0].1.probe()).expect("healthy");
    let secrets = transformers.for_resource("", "secrets");
    for (stored, aad, name) in [
        (
            KMS_V2_TYPE0_STORED,
            KMS_V2_TYPE0_AAD,
            "dek-source-aes-gcm-key",
        ),
        (
            KMS_V2_TYPE1_STORED,
            KMS_V2_TYPE1_AAD,
            "dek-source-hkdf-sha256-xnonce-aes-gcm-seed",
        ),
    ] {
        let stored = ::hex::decode(stored).expect("hex");
        let (plain, _) = block_on(secrets.from_storage(&stored, aad)).expect("decrypts");
        let secret: Secret = decode_from_storage(plain.expose_secret()).expect("decodes");
        assert_eq!(secret.metadata.name.as_deref(), Some(name));
        assert_eq!(
            secret.metadata.namespace.as_deref(),
            Some("kms-v2-legacy-data")
        );
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let value = &secret.data.as_ref().expect("data")["api_key"].0;
        assert_eq!(value, b"086a7ffc-0225-11e8-ba89-0ed5f89f718b");
        let reencoded = encode_for_storage(&secret);
        assert_eq!(
            reencoded,
            plain.expose_secret(),
            "{name}: byte-identical plaintext"
        );
        // Our write path: type 1 under the current key id, readable and current.
        let ours = block_on(secrets.to_storage(&reencoded, aad)).expect("write");
        assert!(ours.starts_with(b"k8s:enc:kms:v2:kms-provider:"));
        let (again, freshness) = block_on(secrets.from_storage(&ours, aad)).expect("read back");
        assert_eq!(again.expose_secret(), reencoded.as_slice());
        assert_eq!(freshness, Freshness::Current);
    }
}

#[test]
fn derived_vectors_decode_to_the_old_secret() {
    // §5.6: every derived vector's plaintext is the §5.4 Secret.
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc: {{keys: [{{name: A, secret: '{DERIVED_AESCBC_KEY}'}}]}}
  - aesgcm: {{keys: [{{name: key1, secret: '{DERIVED_AESGCM_KEY}'}}]}}
  - secretbox: {{keys: [{{name: key1, secret: '{DERIVED_SECRETBOX_KEY}'}}]}}
  - kms: {{name: mock, endpoint: 'unix:///tmp/kms-v1.sock'}}
  - kms: {{apiVersion: v2, name: mock2, endpoint: 'unix:///tmp/kms-v2.sock'}}
"
    );
    let config =
        EncryptionConfig::parse(yaml.as_bytes(), Path::new("t"), LoadMode::Startup).expect("valid");
    let transformers = config.build(&Mock).expect("build");
    let secrets = transformers.for_resource("", "secrets");
    for (i, stored) in [
        DERIVED_AESCBC,
        DERIVED_AESGCM,
        DERIVED_SECRETBOX,
        DERIVED_KMS_V1,
    ]
    .into_iter()
    .enumerate()
    {
        let stored = ::hex::decode(stored).expect("hex");
        let (plain, freshness) =
            block_on(secrets.from_storage(&stored, DERIVED_AAD)).expect("decrypts");
        assert_eq!(
            freshness,
            if i == 0 {
                Freshness::Current
            } else {
                Freshness::Stale
            }
        );
        let secret: Secret = decode_from_storage(plain.expose_secret()).expect("decodes");
        assert_eq!(secret.metadata.name.as_deref(), Some("test-secret"));
        assert_eq!(
            secret.data.as_ref().expect("data")["api_key"].0,
            "🤗🐼".as_bytes()
        );
    }
}
