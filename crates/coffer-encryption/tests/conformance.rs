//! The provider conformance suite (`coffer_encryption::testing`), run against every provider
//! that writes: round trip, tamper, wrong AAD, stale on a non-first key.

use std::path::Path;
use std::sync::Arc;

use coffer_encryption::testing::{self, Base64KmsV2, Setup};
use coffer_encryption::{
    ConfigError, EncryptionConfig, KmsConnector, KmsProvider, KmsV1Service, KmsV2Service, LoadMode,
    Transformer,
};
use futures::executor::block_on;

const K1: &str = "c2VjcmV0IGlzIHNlY3VyZQ=="; // 16 bytes
const K2: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="; // 32 bytes
const K3: &str = "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u"; // 24 bytes

/// Connects every KMS v2 provider to one shared mock plugin.
struct Mock(Arc<Base64KmsV2>);

impl KmsConnector for Mock {
    fn v2(&self, _: &KmsProvider) -> Result<Arc<dyn KmsV2Service>, ConfigError> {
        Ok(self.0.clone())
    }
    fn v1(&self, _: &KmsProvider) -> Result<Arc<dyn KmsV1Service>, ConfigError> {
        Ok(Arc::new(testing::Base64KmsV1))
    }
}

fn secrets(providers: &str, kms: &dyn KmsConnector) -> Arc<dyn Transformer> {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
    );
    let config = EncryptionConfig::parse(yaml.as_bytes(), Path::new("t"), LoadMode::Startup)
        .expect("valid config");
    config
        .build(kms)
        .expect("build")
        .for_resource("", "secrets")
}

fn keyed(provider: &str, a: (&str, &str), b: (&str, &str)) -> String {
    format!(
        "  - {provider}:\n      keys:\n      - {{name: {}, secret: '{}'}}\n      - {{name: {}, secret: '{}'}}\n",
        a.0, a.1, b.0, b.1
    )
}

fn local(provider: &str, k1: &str, k2: &str, authenticated: bool, binds_aad: bool) -> Setup {
    Setup {
        primary: secrets(
            &keyed(provider, ("one", k1), ("two", k2)),
            &Mock(Arc::new(Base64KmsV2::new("1"))),
        ),
        secondary: secrets(
            &keyed(provider, ("two", k2), ("one", k1)),
            &Mock(Arc::new(Base64KmsV2::new("1"))),
        ),
        authenticated,
        binds_aad,
    }
}

#[test]
fn aesgcm() {
    for (k1, k2) in [(K1, K2), (K2, K3), (K3, K1)] {
        block_on(testing::run_all(&local("aesgcm", k1, k2, true, true)));
    }
}

#[test]
fn aescbc() {
    for (k1, k2) in [(K1, K2), (K2, K3), (K3, K1)] {
        block_on(testing::run_all(&local("aescbc", k1, k2, false, false)));
    }
}

#[test]
fn secretbox() {
    let other = "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY="; // 32 bytes
    block_on(testing::run_all(&local(
        "secretbox",
        K2,
        other,
        true,
        false,
    )));
}

#[test]
fn identity() {
    // Identity first; the second entry's data (aesgcm) reads stale through it.
    let gcm = format!("  - aesgcm:\n      keys: [{{name: k, secret: '{K1}'}}]\n");
    let none = Mock(Arc::new(Base64KmsV2::new("1")));
    let setup = Setup {
        primary: secrets(&format!("  - identity: {{}}\n{gcm}"), &none),
        secondary: secrets(&format!("{gcm}  - identity: {{}}\n"), &none),
        authenticated: false,
        binds_aad: false,
    };
    block_on(testing::run_all(&setup));
}

#[test]
fn kms_v2() {
    let plugin = Arc::new(Base64KmsV2::new("key-2"));
    let kms = "  - kms: {apiVersion: v2, name: plugin, endpoint: 'unix:///@kms'}\n";
    let build = || {
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{kms}"
        );
        let c = EncryptionConfig::parse(yaml.as_bytes(), Path::new("t"), LoadMode::Startup)
            .expect("valid");
        c.build(&Mock(plugin.clone())).expect("build")
    };
    // The secondary probed while the plugin's key id was "key-2"; then the KEK rotates to
    // "key-1" and the primary probes. Values written under key-2 are stale for the primary.
    let secondary = build();
    block_on(secondary.kms_v2()[0].1.probe()).expect("healthy");
    plugin.set_key_id("key-1");
    let primary = build();
    block_on(primary.kms_v2()[0].1.probe()).expect("healthy");
    let setup = Setup {
        primary: primary.for_resource("", "secrets"),
        secondary: secondary.for_resource("", "secrets"),
        authenticated: true,
        binds_aad: true,
    };
    block_on(testing::run_all(&setup));
}
