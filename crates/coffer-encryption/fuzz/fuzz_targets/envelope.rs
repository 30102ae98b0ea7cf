//! Any bytes as a stored value of a Secret: every provider's read path (through the prefix
//! dispatch of a config naming all of them, with in-process KMS plugins) and the KMS v2
//! `EncryptedObject` decoder must not panic.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use coffer_encryption::testing::{Base64KmsV1, Base64KmsV2};
use coffer_encryption::{
    ConfigError, EncryptedObject, EncryptionConfig, KmsConnector, KmsProvider, KmsV1Service,
    KmsV2Service, LoadMode, PrefixTransformers, ReadTransformer,
};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;

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
- resources: [secrets]
  providers:
  - aesgcm: {keys: [{name: key1, secret: 'c2VjcmV0IGlzIHNlY3VyZQ=='}]}
  - aescbc: {keys: [{name: A, secret: 'Owq7A4JrJpSjrvH8kXkvl4JmOLzvZ6j9BcGRkR8OPQ4='}]}
  - secretbox: {keys: [{name: key1, secret: 'YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY='}]}
  - kms: {name: mock, endpoint: 'unix:///tmp/k.sock'}
  - kms: {apiVersion: v2, name: kms-provider, endpoint: 'unix:///@k'}
  - identity: {}
";

fn secrets() -> &'static Arc<PrefixTransformers> {
    static T: OnceLock<Arc<PrefixTransformers>> = OnceLock::new();
    T.get_or_init(|| {
        let config = EncryptionConfig::parse(CONFIG.as_bytes(), Path::new("fuzz"), LoadMode::Startup)
            .expect("the fuzz config is valid");
        let t = config.build(&Mock).expect("build");
        block_on(t.kms_v2()[0].1.probe()).expect("mock plugin is healthy");
        t.for_resource("", "secrets")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = block_on(secrets().from_storage(data, b"/registry/secrets/default/fuzz"));
    let _ = EncryptedObject::decode_validated(data);
});
