//! `coffer kms-plugin` as a real process: the library's gRPC client talks to it over its unix
//! socket (Status, Encrypt, Decrypt), `coffer kms-plugin rotate` changes the key_id the running
//! plugin reports while old ciphertext still decrypts, and SIGTERM stops it and removes the
//! socket file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_encryption::{GrpcKmsV2, KeyMaterial, KmsDecryptRequest, KmsEndpoint, KmsV2Service};

/// The running plugin, killed on drop if the test did not stop it.
struct Plugin(Child);

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn coffer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run coffer")
}

fn start(socket: &Path, key_file: &Path) -> Plugin {
    let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("kms-plugin")
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--key-file")
        .arg(key_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn coffer kms-plugin");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the plugin never bound its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Plugin(child)
}

#[tokio::test]
async fn serves_rotates_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kms.sock");
    let key_file = dir.path().join("kek.json");
    let mut plugin = start(&socket, &key_file);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }

    let client =
        GrpcKmsV2::connect_lazy(&KmsEndpoint::Path(socket.clone()), Duration::from_secs(5))
            .expect("client");
    let status = client.status().await.expect("Status");
    assert_eq!(
        (status.version.as_str(), status.healthz.as_str()),
        ("v2", "ok")
    );
    let first = status.key_id;
    assert!(first.starts_with("v1-"), "{first}");

    let seed = KeyMaterial::new(vec![42; 32]);
    let wrapped = client.encrypt("uid-1", &seed).await.expect("Encrypt");
    assert_eq!(wrapped.key_id, first);
    assert!(
        !wrapped.ciphertext.windows(32).any(|w| w == [42; 32]),
        "wrapped"
    );
    let old = KmsDecryptRequest {
        ciphertext: wrapped.ciphertext.clone(),
        key_id: wrapped.key_id.clone(),
        annotations: BTreeMap::new(),
    };
    let plain = client.decrypt("uid-2", &old).await.expect("Decrypt");
    assert_eq!(plain.expose_secret(), &[42; 32]);

    // Rotate with the CLI while the plugin runs.
    let out = coffer(&[
        "kms-plugin",
        "rotate",
        "--key-file",
        key_file.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(second.starts_with("v2-") && second != first, "{second}");
    let out = coffer(&[
        "kms-plugin",
        "key-id",
        "--key-file",
        key_file.to_str().expect("utf8"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), second);
    let key_text = std::fs::read_to_string(&key_file).expect("key file");

    assert_eq!(client.status().await.expect("Status").key_id, second);
    let rewrapped = client.encrypt("uid-3", &seed).await.expect("Encrypt");
    assert_eq!(rewrapped.key_id, second);
    let plain = client
        .decrypt("uid-4", &old)
        .await
        .expect("old ciphertext still decrypts");
    assert_eq!(plain.expose_secret(), &[42; 32]);
    let new = KmsDecryptRequest {
        ciphertext: rewrapped.ciphertext,
        key_id: second.clone(),
        annotations: BTreeMap::new(),
    };
    assert_eq!(
        client
            .decrypt("uid-5", &new)
            .await
            .expect("Decrypt")
            .expose_secret(),
        &[42; 32]
    );
    // A key id the plugin never issued is declined.
    let foreign = KmsDecryptRequest {
        key_id: "v7-00000000".into(),
        ..old
    };
    assert!(client.decrypt("uid-6", &foreign).await.is_err());

    // SIGTERM: clean exit, socket file gone.
    let pid = plugin.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = plugin.0.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    assert!(!socket.exists(), "the socket file is removed on exit");

    // Restarting on the same file keeps the rotated key.
    let plugin2 = start(&socket, &key_file);
    let client =
        GrpcKmsV2::connect_lazy(&KmsEndpoint::Path(socket.clone()), Duration::from_secs(5))
            .expect("client");
    assert_eq!(client.status().await.expect("Status").key_id, second);
    drop(plugin2);
    assert_eq!(
        std::fs::read_to_string(&key_file).expect("key file"),
        key_text
    );
}

#[test]
fn refuses_a_live_socket_and_reports_bad_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kms.sock");
    let key_file = dir.path().join("kek.json");
    let _plugin = start(&socket, &key_file);
    let out = coffer(&[
        "kms-plugin",
        "--listen",
        socket.to_str().expect("utf8"),
        "--key-file",
        key_file.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process is serving"), "{err}");

    let out = coffer(&["kms-plugin", "--listen", "http://x/y", "--key-file", "k"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only unix://"));

    let help = coffer(&["kms-plugin", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}
