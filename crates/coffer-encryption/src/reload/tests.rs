//! The watcher on real files: an unchanged file does nothing, a valid change swaps, a bad
//! change keeps the old configuration and records why (without key material), and a new
//! configuration's KMS v2 plugin must report healthy before it is put in force.

use std::sync::Arc;

use super::*;
use crate::config::{KmsProvider, NoKms};
use crate::kms_v1::KmsV1Service;
use crate::kms_v2::KmsV2Service;
use crate::testing::Base64KmsV2;
use crate::transformer::{ReadTransformer, Transformer};

/// base64 of `0123456789abcdef0123456789abcdef`.
const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// base64 of `abcdefghijklmnopqrstuvwxyz012345`.
const KEY2: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU=";
const AAD: &[u8] = b"/registry/secrets/default/s";

fn aesgcm(keys: &[(&str, &str)]) -> String {
    let keys: String = keys
        .iter()
        .map(|(name, secret)| {
            format!("              - name: {name}\n                secret: {secret}\n")
        })
        .collect();
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - aesgcm:\n          keys:\n{keys}      - identity: {{}}\n"
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

async fn start(
    path: &Path,
    kms: Arc<dyn KmsConnector + Send + Sync>,
) -> (ReloadingTransformers, ConfigWatcher) {
    let config = EncryptionConfig::load(path, LoadMode::AutomaticReload).expect("valid");
    let handle = ReloadingTransformers::start(&config, kms.as_ref())
        .await
        .expect("build");
    let watcher = ConfigWatcher::new(path, handle.clone(), kms);
    (handle, watcher)
}

/// The stored prefix a write uses now.
async fn written_with(handle: &ReloadingTransformers) -> String {
    let stored = handle
        .for_resource("", "secrets")
        .to_storage(b"value", AAD)
        .await
        .expect("write");
    let text = String::from_utf8_lossy(&stored);
    text.split(':').take(5).collect::<Vec<_>>().join(":")
}

#[tokio::test]
async fn unchanged_valid_and_invalid_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.yaml");
    write(&path, &aesgcm(&[("key1", KEY1)]));
    let (handle, watcher) = start(&path, Arc::new(NoKms)).await;
    let first_hash = handle.config_hash();
    assert!(first_hash.starts_with("sha256:"));
    assert_eq!(written_with(&handle).await, "k8s:enc:aesgcm:v1:key1");
    let old_value = handle
        .for_resource("", "secrets")
        .to_storage(b"old", AAD)
        .await
        .expect("write");

    // Unchanged (even if rewritten with the same bytes): nothing happens, nothing counted.
    write(&path, &aesgcm(&[("key1", KEY1)]));
    assert_eq!(
        watcher.check().await.expect("poll"),
        ReloadOutcome::Unchanged
    );
    assert_eq!(handle.reload_counts(), ReloadCounts::default());
    assert_eq!(handle.config_hash(), first_hash);

    // A valid change: the new key is first; writes use it, old values read as stale.
    write(&path, &aesgcm(&[("key2", KEY2), ("key1", KEY1)]));
    let outcome = watcher.check().await.expect("reload");
    assert!(
        matches!(&outcome, ReloadOutcome::Reloaded { hash } if *hash != first_hash),
        "{outcome:?}"
    );
    assert_eq!(written_with(&handle).await, "k8s:enc:aesgcm:v1:key2");
    let (plain, freshness) = handle
        .for_resource("", "secrets")
        .from_storage(&old_value, AAD)
        .await
        .expect("old value still reads");
    assert_eq!(
        (plain.expose_secret(), freshness.is_stale()),
        (&b"old"[..], true)
    );
    let counts = handle.reload_counts();
    assert_eq!((counts.success, counts.failure), (1, 0));
    let good_hash = handle.config_hash();

    // Bad changes: each poll fails, is counted with its reason, and the last good stays.
    for (bad, why) in [
        ("resources: [".to_owned(), "error decoding"),
        (aesgcm(&[("key3", "Q0FOQVJZLWtleQ==")]), "expected length"),
        (String::new(), "is empty"),
    ] {
        write(&path, &bad);
        let err = watcher.check().await.expect_err("bad file");
        let text = err.to_string();
        assert!(
            text.contains(why) && text.contains("previous configuration stays"),
            "{text}"
        );
        assert!(
            !text.contains("Q0FOQVJZ") && !text.contains("CANARY"),
            "key material: {text}"
        );
        assert_eq!(handle.config_hash(), good_hash);
        assert_eq!(written_with(&handle).await, "k8s:enc:aesgcm:v1:key2");
        assert_eq!(handle.reload_counts().last_error, Some(text));
    }
    assert_eq!(handle.reload_counts().failure, 3);
    std::fs::remove_file(&path).expect("remove");
    assert!(matches!(
        watcher.check().await,
        Err(ReloadError::Config(ConfigError::Read { .. }))
    ));
    assert_eq!(handle.reload_counts().failure, 4);

    // Fixed: in force again, the error cleared.
    write(&path, &aesgcm(&[("key1", KEY1)]));
    assert!(matches!(
        watcher.check().await,
        Ok(ReloadOutcome::Reloaded { .. })
    ));
    assert_eq!(written_with(&handle).await, "k8s:enc:aesgcm:v1:key1");
    let counts = handle.reload_counts();
    assert_eq!(
        (counts.success, counts.failure, counts.last_error),
        (2, 4, None)
    );
}

/// Hands out one shared mock plugin for every KMS v2 provider.
struct MockKms(Arc<Base64KmsV2>);

impl KmsConnector for MockKms {
    fn v2(&self, _: &KmsProvider) -> Result<Arc<dyn KmsV2Service>, ConfigError> {
        Ok(self.0.clone())
    }
    fn v1(&self, p: &KmsProvider) -> Result<Arc<dyn KmsV1Service>, ConfigError> {
        NoKms.v1(p)
    }
}

fn kms_first(name: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - kms:\n          apiVersion: v2\n          name: {name}\n          endpoint: unix:///tmp/unused.sock\n          timeout: 3s\n      - aesgcm:\n          keys:\n            - name: key1\n              secret: {KEY1}\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_new_kms_plugin_must_be_healthy_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.yaml");
    write(&path, &aesgcm(&[("key1", KEY1)]));
    let plugin = Arc::new(Base64KmsV2::new("kek-1"));
    let (handle, watcher) = start(&path, Arc::new(MockKms(plugin.clone()))).await;

    // The plugin of the new file is unhealthy: after upstream's wait (max(2 x 3 s, 10 s)) of
    // polling, the old configuration stays.
    plugin.set_healthz("token not present");
    write(&path, &kms_first("hsm"));
    let before = tokio::time::Instant::now();
    let err = watcher.check().await.expect_err("unhealthy");
    assert!(
        before.elapsed() >= Duration::from_secs(10),
        "{:?}",
        before.elapsed()
    );
    assert!(
        matches!(&err, ReloadError::KmsUnhealthy { provider, .. } if provider == "hsm"),
        "{err}"
    );
    assert!(err.to_string().contains("token not present"), "{err}");
    assert_eq!(written_with(&handle).await, "k8s:enc:aesgcm:v1:key1");

    // Healthy: the KMS provider writes.
    plugin.set_healthz("ok");
    assert!(matches!(
        watcher.check().await,
        Ok(ReloadOutcome::Reloaded { .. })
    ));
    assert_eq!(written_with(&handle).await, "k8s:enc:kms:v2:hsm");
    let counts = handle.reload_counts();
    assert_eq!((counts.success, counts.failure), (1, 1));
}
