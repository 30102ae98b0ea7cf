//! Hostile input never panics: seeded random and mutated inputs into config parsing, KMS v2
//! envelope decoding, every provider's read path and the storage codec. A deterministic
//! stand-in for the `cargo fuzz` targets (the same entry points), so it runs in every test run.

use std::path::Path;
use std::sync::Arc;

use coffer_api::k8s_openapi::api::core::v1::Secret;
use coffer_encryption::testing::vectors::*;
use coffer_encryption::testing::{Base64KmsV1, Base64KmsV2};
use coffer_encryption::{
    ConfigError, EncryptedObject, EncryptionConfig, KmsConnector, KmsProvider, KmsV1Service,
    KmsV2Service, LoadMode, ReadTransformer,
};
use futures::executor::block_on;

/// xorshift64*: small, seeded, good enough to spray bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `base` with a few random byte flips, insertions, deletions or truncation.
    fn mutate(&mut self, base: &[u8]) -> Vec<u8> {
        let mut v = base.to_vec();
        for _ in 0..=self.below(4) {
            match self.below(4) {
                0 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] ^= 1 << self.below(8);
                }
                1 => {
                    let i = self.below(v.len() + 1);
                    v.insert(i, self.next() as u8);
                }
                2 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v.remove(i);
                }
                _ => v.truncate(self.below(v.len() + 1)),
            }
        }
        v
    }
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

const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets, '*.apps']
  providers:
  - aesgcm: {keys: [{name: key1, secret: 'c2VjcmV0IGlzIHNlY3VyZQ=='}]}
  - aescbc: {keys: [{name: A, secret: 'Owq7A4JrJpSjrvH8kXkvl4JmOLzvZ6j9BcGRkR8OPQ4='}]}
  - secretbox: {keys: [{name: key1, secret: 'YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY='}]}
  - kms: {name: mock, endpoint: 'unix:///tmp/k.sock', cachesize: 5, timeout: 1m30s}
  - kms: {apiVersion: v2, name: kms-provider, endpoint: 'unix:///@k'}
  - identity: {}
";

#[test]
fn config_parsing_survives_mutation() {
    let mut rng = Rng(0x00c0_ffee);
    for _ in 0..3000 {
        let input = rng.mutate(CONFIG.as_bytes());
        let _ = EncryptionConfig::parse(&input, Path::new("fuzz"), LoadMode::AutomaticReload);
    }
    let json = br#"{"apiVersion":"v1","kind":"EncryptionConfig","resources":[{"resources":["secrets"],"providers":[{"identity":{}}]}]}"#;
    for _ in 0..2000 {
        let input = rng.mutate(json);
        let _ = EncryptionConfig::parse(&input, Path::new("fuzz"), LoadMode::Startup);
    }
}

#[test]
fn envelope_and_provider_reads_survive_mutation() {
    let config = EncryptionConfig::parse(CONFIG.as_bytes(), Path::new("t"), LoadMode::Startup)
        .expect("valid");
    let t = config.build(&Mock).expect("build");
    block_on(t.kms_v2()[0].1.probe()).expect("healthy");
    let secrets = t.for_resource("", "secrets");
    let seeds: Vec<Vec<u8>> = [
        DERIVED_AESCBC,
        DERIVED_AESGCM,
        DERIVED_SECRETBOX,
        DERIVED_KMS_V1,
        KMS_V2_TYPE0_STORED,
        KMS_V2_TYPE1_STORED,
    ]
    .iter()
    .map(|h| hex::decode(h).expect("hex"))
    .collect();
    let mut rng = Rng(0x5eed);
    for i in 0..4000 {
        let input = rng.mutate(&seeds[i % seeds.len()]);
        let _ = block_on(secrets.from_storage(&input, DERIVED_AAD));
        let body = input.get(28..).unwrap_or_default();
        let _ = EncryptedObject::decode_validated(body);
    }
    for _ in 0..2000 {
        let len = rng.below(300);
        let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = block_on(secrets.from_storage(&random, DERIVED_AAD));
        let _ = EncryptedObject::decode_validated(&random);
    }
}

#[test]
fn storage_codec_survives_mutation() {
    let seeds: Vec<Vec<u8>> = [
        KMS_V2_TYPE0_PLAINTEXT,
        KMS_V2_TYPE1_PLAINTEXT,
        OLD_SECRET_PLAINTEXT,
    ]
    .iter()
    .map(|h| hex::decode(h).expect("hex"))
    .collect();
    let mut rng = Rng(0xdec0de);
    for i in 0..6000 {
        let input = rng.mutate(&seeds[i % seeds.len()]);
        if let Ok(secret) = coffer_api::decode_from_storage::<Secret>(&input) {
            // Whatever decodes must encode and decode again to the same object.
            let again = coffer_api::encode_for_storage(&secret);
            assert_eq!(
                coffer_api::decode_from_storage::<Secret>(&again).ok(),
                Some(secret)
            );
        }
    }
}
