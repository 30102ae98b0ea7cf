#![allow(missing_docs)] // A benchmark binary; its module docs say what it measures.
//! Provider benchmark: encrypt and decrypt of 1 KiB and 64 KiB values through each provider's
//! full configured path (prefix dispatch included), next to raw AES-256-GCM from the same
//! crate in the same run, printing medians of 5 repetitions and the ratio to raw GCM.
//!
//! Run with `cargo bench -p coffer-encryption --bench providers`. `COFFER_BENCH_MILLIS` sets the
//! length of each measurement (default 300 ms). The machine is shared and noisy: compare the
//! ratios, not the absolute numbers. KMS v2 uses the in-process mock plugin, so it measures the
//! envelope work (HKDF per write, cached seed per read), not a plugin round trip.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_encryption::testing::Base64KmsV2;
use coffer_encryption::{
    ConfigError, EncryptionConfig, KmsConnector, KmsProvider, KmsV1Service, KmsV2Service, LoadMode,
    PrefixTransformers, ReadTransformer, Transformer,
};
use futures::executor::block_on;

const REPETITIONS: usize = 5;
const AAD: &[u8] = b"/registry/secrets/default/bench";

struct Mock;

impl KmsConnector for Mock {
    fn v2(&self, _: &KmsProvider) -> Result<Arc<dyn KmsV2Service>, ConfigError> {
        Ok(Arc::new(Base64KmsV2::new("1")))
    }
    fn v1(&self, _: &KmsProvider) -> Result<Arc<dyn KmsV1Service>, ConfigError> {
        Ok(Arc::new(coffer_encryption::testing::Base64KmsV1))
    }
}

fn provider(spec: &str) -> Arc<PrefixTransformers> {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - {spec}\n"
    );
    let config = EncryptionConfig::parse(yaml.as_bytes(), Path::new("bench"), LoadMode::Startup)
        .expect("valid bench config");
    let t = config.build(&Mock).expect("build");
    for (_, kms) in t.kms_v2() {
        block_on(kms.probe()).expect("mock plugin is healthy");
    }
    t.for_resource("", "secrets")
}

/// Median throughput in MiB/s of `op` over `REPETITIONS` runs of `window` each.
fn measure(window: Duration, bytes: usize, mut op: impl FnMut()) -> f64 {
    let mut rates = Vec::with_capacity(REPETITIONS);
    for _ in 0..REPETITIONS {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < window {
            op();
            n += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        rates.push(n as f64 * bytes as f64 / secs / (1024.0 * 1024.0));
    }
    rates.sort_by(f64::total_cmp);
    rates[REPETITIONS / 2]
}

fn main() {
    let millis = std::env::var("COFFER_BENCH_MILLIS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let window = Duration::from_millis(millis);
    let k32 = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=";
    let providers = [
        ("identity", "identity: {}".to_string()),
        (
            "aescbc",
            format!("aescbc: {{keys: [{{name: k, secret: '{k32}'}}]}}"),
        ),
        (
            "aesgcm",
            format!("aesgcm: {{keys: [{{name: k, secret: '{k32}'}}]}}"),
        ),
        (
            "secretbox",
            format!("secretbox: {{keys: [{{name: k, secret: '{k32}'}}]}}"),
        ),
        (
            "kms v2",
            "kms: {apiVersion: v2, name: bench, endpoint: 'unix:///@bench'}".to_string(),
        ),
    ];
    println!(
        "{:<10} {:>7} {:>14} {:>14} {:>10} {:>10}",
        "provider", "size", "encrypt MiB/s", "decrypt MiB/s", "enc/raw", "dec/raw"
    );
    for size in [1024usize, 64 * 1024] {
        let plain = vec![0x5au8; size];
        let raw = Aes256Gcm::new_from_slice(&[7u8; 32]).expect("32-byte key");
        let nonce = [1u8; 12];
        let sealed = raw
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .expect("seal");
        let raw_enc = measure(window, size, || {
            let _ = raw.encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            );
        });
        let raw_dec = measure(window, size, || {
            let _ = raw.decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: AAD,
                },
            );
        });
        println!(
            "{:<10} {:>7} {:>14.1} {:>14.1} {:>10} {:>10}",
            "raw gcm", size, raw_enc, raw_dec, "1.00", "1.00"
        );
        for (name, spec) in &providers {
            let t = provider(spec);
            let stored = block_on(t.to_storage(&plain, AAD)).expect("write");
            let enc = measure(window, size, || {
                let _ = block_on(t.to_storage(&plain, AAD));
            });
            let dec = measure(window, size, || {
                let _ = block_on(t.from_storage(&stored, AAD));
            });
            println!(
                "{:<10} {:>7} {:>14.1} {:>14.1} {:>10.2} {:>10.2}",
                name,
                size,
                enc,
                dec,
                enc / raw_enc,
                dec / raw_dec
            );
        }
    }
}
