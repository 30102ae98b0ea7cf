//! End to end: `coffer serve` with a KMS v2 provider first in its EncryptionConfiguration,
//! backed by a real `coffer kms-plugin` process on a unix socket. kubectl writes and reads a
//! Secret; the store holds kube-apiserver's KMS v2 envelope and no plaintext.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Coffer;

struct Plugin(Child);

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_encrypts_with_a_kms_v2_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kms.sock");
    let plugin = Plugin(
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("kms-plugin")
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            .arg("--key-file")
            .arg(dir.path().join("kek.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kms-plugin"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the plugin never bound its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = dir.path().join("encryption.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - kms:\n          apiVersion: v2\n          name: coffer-kms\n          endpoint: unix://{}\n          timeout: 3s\n      - identity: {{}}\n",
            socket.display()
        ),
    )
    .expect("config");

    let mut coffer = Coffer::start(&[
        "--encryption-provider-config",
        config.to_str().expect("utf8"),
    ]);
    let canary = "kms-canary-4b1d-never-on-disk";
    coffer.ok(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "k1",
            &format!("--from-literal=v={canary}"),
        ],
    );
    let value = coffer.ok("1.27", &["get", "secret", "k1", "-o", "jsonpath={.data.v}"]);
    assert_eq!(value, base64(canary.as_bytes()));
    let status = coffer.stop();
    assert!(status.success());
    let stored = std::fs::read(coffer.store_file()).expect("store");
    assert!(
        !stored.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "plaintext on disk"
    );
    let envelope = b"k8s:enc:kms:v2:coffer-kms:";
    assert!(
        stored.windows(envelope.len()).any(|w| w == envelope),
        "KMS v2 envelope on disk"
    );
    drop(plugin);
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
