//! `coffer kms-plugin` with its PKCS#11 backend on a real SoftHSM2 token, as real processes:
//! the gRPC client round-trips seeds through it, `coffer kms-plugin rotate` (another process)
//! changes the key_id the running plugin reports while old ciphertext still decrypts, a wrong
//! PIN stops the plugin at start with a clear error, and end to end `coffer serve` writes
//! Secrets created with kubectl through it, after which a rotation, `coffer storage rewrap` and
//! `coffer storage verify` leave no stale value.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use coffer_encryption::testing::softhsm::SoftHsm;
use coffer_encryption::{GrpcKmsV2, KeyMaterial, KmsDecryptRequest, KmsEndpoint, KmsV2Service};
use support::{Coffer, KmsPlugin};

const TOKEN: &str = "coffer-e2e";
const KEY_LABEL: &str = "e2e-kek";
/// A Secret value that must never show in any output or on disk.
const CANARY: &str = "Pkcs11Canary-51f0e2";

/// The backend flags for `hsm`, with `pin_file`.
fn flags<'a>(hsm: &'a SoftHsm, pin_file: &'a Path) -> Vec<&'a OsStr> {
    vec![
        OsStr::new("--pkcs11-module"),
        hsm.module.as_os_str(),
        OsStr::new("--pkcs11-token-label"),
        OsStr::new(TOKEN),
        OsStr::new("--pkcs11-pin-file"),
        pin_file.as_os_str(),
        OsStr::new("--pkcs11-key-label"),
        OsStr::new(KEY_LABEL),
    ]
}

/// Runs `coffer kms-plugin <action>` against the token.
fn plugin_cli(hsm: &SoftHsm, action: &str) -> Output {
    let (var, conf) = hsm.env();
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["kms-plugin", action])
        .args(flags(hsm, &hsm.pin_file))
        .env(var, conf)
        .stdin(Stdio::null())
        .output()
        .expect("run coffer kms-plugin");
    assert!(
        out.status.success(),
        "coffer kms-plugin {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn plugin_round_trip_rotate_and_wrong_pin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hsm = SoftHsm::init(dir.path(), TOKEN);
    let socket = dir.path().join("kms.sock");

    // A wrong PIN: the plugin refuses to start, says why, never prints the PIN.
    let wrong = dir.path().join("wrong-pin");
    std::fs::write(&wrong, "987654\n").expect("write");
    let (var, conf) = hsm.env();
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("kms-plugin")
        .arg("--listen")
        .arg(&socket)
        .args(flags(&hsm, &wrong))
        .env(var, conf)
        .stdin(Stdio::null())
        .output()
        .expect("run coffer kms-plugin");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a wrong PIN");
    assert!(
        stderr.contains("CKR_PIN_INCORRECT") && stderr.contains("wrong-pin"),
        "{stderr}"
    );
    assert!(!stderr.contains("987654"), "the PIN was printed: {stderr}");
    assert!(!socket.exists(), "no socket after a failed start");

    let _plugin = KmsPlugin::start(&socket, &flags(&hsm, &hsm.pin_file), &[hsm.env()]);
    let client =
        GrpcKmsV2::connect_lazy(&KmsEndpoint::Path(socket.clone()), Duration::from_secs(5))
            .expect("client");
    let status = client.status().await.expect("Status");
    assert_eq!(
        (status.version.as_str(), status.healthz.as_str()),
        ("v2", "ok")
    );
    let first = status.key_id;
    assert!(first.starts_with("e2e-kek/v1-"), "{first}");
    assert_eq!(stdout_line(&plugin_cli(&hsm, "key-id")), first);

    let seed = KeyMaterial::new(vec![7; 32]);
    let wrapped = client.encrypt("uid-1", &seed).await.expect("Encrypt");
    assert_eq!(wrapped.key_id, first);
    let old = KmsDecryptRequest {
        ciphertext: wrapped.ciphertext,
        key_id: wrapped.key_id,
        annotations: BTreeMap::new(),
    };
    assert_eq!(
        client
            .decrypt("uid-2", &old)
            .await
            .expect("Decrypt")
            .expose_secret(),
        &[7; 32]
    );

    // Rotate from another process while the plugin runs.
    let second = stdout_line(&plugin_cli(&hsm, "rotate"));
    assert!(
        second.starts_with("e2e-kek/v2-") && second != first,
        "{second}"
    );
    assert_eq!(client.status().await.expect("Status").key_id, second);
    assert_eq!(stdout_line(&plugin_cli(&hsm, "key-id")), second);
    let rewrapped = client.encrypt("uid-3", &seed).await.expect("Encrypt");
    assert_eq!(rewrapped.key_id, second);
    assert_eq!(
        client
            .decrypt("uid-4", &old)
            .await
            .expect("old key still decrypts")
            .expose_secret(),
        &[7; 32]
    );

    // Corrupted ciphertext and a wrong key id are gRPC errors; the plugin keeps serving.
    let mut corrupted = old.clone();
    corrupted.ciphertext[15] ^= 1;
    let err = client
        .decrypt("uid-5", &corrupted)
        .await
        .expect_err("corrupted");
    assert!(err.to_string().contains("does not open"), "{err}");
    let foreign = KmsDecryptRequest {
        key_id: "e2e-kek/v9-00000000".into(),
        ..old.clone()
    };
    let err = client
        .decrypt("uid-6", &foreign)
        .await
        .expect_err("foreign");
    assert!(err.to_string().contains("was not issued"), "{err}");
    assert_eq!(client.status().await.expect("still serving").healthz, "ok");
}

/// The number on a summary line such as `stale:     3`.
fn count(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{report}"))
}

/// `coffer storage <tool> --data-dir <dir> <args>`; asserts the canary never shows.
fn storage(coffer: &Coffer, tool: &str, args: &[&str]) -> (bool, String) {
    let dir = coffer.data_dir().to_str().expect("utf8");
    let mut all = vec!["storage", tool, "--data-dir", dir];
    all.extend_from_slice(args);
    let out = coffer.coffer(&all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(CANARY), "a secret value leaked: {text}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn serve_through_an_hsm_plugin_then_rotate_rewrap_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hsm = SoftHsm::init(dir.path(), TOKEN);
    let socket = dir.path().join("kms.sock");
    let _plugin = KmsPlugin::start(&socket, &flags(&hsm, &hsm.pin_file), &[hsm.env()]);
    let config = dir.path().join("encryption.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - kms:\n          apiVersion: v2\n          name: hsm\n          endpoint: unix://{}\n          timeout: 3s\n      - identity: {{}}\n",
            socket.display()
        ),
    )
    .expect("config");
    let config_flag = config.to_str().expect("utf8");

    let mut coffer = Coffer::start(&["--encryption-provider-config", config_flag]);
    let names = ["hsm-one", "hsm-two", "hsm-three"];
    for name in names {
        coffer.ok(
            "1.33",
            &[
                "create",
                "secret",
                "generic",
                name,
                "--from-literal=user=admin",
                &format!("--from-literal=password={CANARY}"),
            ],
        );
    }
    assert!(coffer.stop().success());
    let stored = std::fs::read(coffer.store_file()).expect("store");
    assert!(
        !stored.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
        "plaintext on disk"
    );
    let first = stdout_line(&plugin_cli(&hsm, "key-id"));
    let (ok, out) = storage(
        &coffer,
        "verify",
        &["--encryption-provider-config", config_flag],
    );
    assert!(ok, "{out}");
    assert_eq!(count(&out, "stale:"), 0, "{out}");
    assert!(
        out.contains(&format!("3  kms v2 hsm key_id {first}")),
        "{out}"
    );

    // Rotate in the token; the values written under the old key are now stale.
    let second = stdout_line(&plugin_cli(&hsm, "rotate"));
    assert_ne!(second, first);
    let (ok, out) = storage(
        &coffer,
        "verify",
        &["--encryption-provider-config", config_flag],
    );
    assert!(ok, "{out}");
    assert_eq!(count(&out, "stale:"), 3, "{out}");
    let (ok, out) = storage(
        &coffer,
        "rewrap",
        &["--encryption-provider-config", config_flag],
    );
    assert!(ok, "{out}");
    assert_eq!(count(&out, "rewrapped:"), 3, "{out}");
    let (ok, out) = storage(
        &coffer,
        "verify",
        &[
            "--encryption-provider-config",
            config_flag,
            "--require-encrypted",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(count(&out, "stale:"), 0, "{out}");
    assert_eq!(count(&out, "failed:"), 0, "{out}");
    assert!(
        out.contains(&format!("3  kms v2 hsm key_id {second}")),
        "{out}"
    );

    // The server reads them back through the plugin.
    coffer.restart(&["--encryption-provider-config", config_flag]);
    for name in names {
        let got = coffer.ok(
            "1.27",
            &["get", "secret", name, "-o", "jsonpath={.data.password}"],
        );
        assert_eq!(got, "UGtjczExQ2FuYXJ5LTUxZjBlMg==", "{name}"); // base64 of CANARY
    }
}
