//! End to end: `coffer serve --encryption-provider-config-automatic-reload` picks up a new
//! EncryptionConfiguration without a restart (a new aesgcm key put first is used for the next
//! write), and a broken file is logged and ignored: the server keeps serving and writing with
//! the last good configuration. `coffer storage verify` then counts which key wrote what.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::Coffer;

const KUBECTL: &str = "1.33";
/// base64 of `0123456789abcdef0123456789abcdef`.
const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// base64 of `abcdefghijklmnopqrstuvwxyz012345`.
const KEY2: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU=";
const RELOADED: &str = "loaded a new encryption configuration";
const REFUSED: &str = "error processing encryption config file";

fn config(keys: &[(&str, &str)]) -> String {
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

/// Replaces the file as editors and config managers do: a new file renamed over the old.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Waits until the server's log holds `needle` `times` times.
fn wait_for_log(coffer: &Coffer, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while coffer.log().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} (x{times}) in the log:\n{}",
            coffer.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create(coffer: &Coffer, name: &str) {
    coffer.ok(
        KUBECTL,
        &["create", "secret", "generic", name, "--from-literal=k=v"],
    );
}

#[test]
fn a_changed_config_is_used_without_restart_and_a_broken_one_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("encryption.yaml");
    replace(&path, &config(&[("key1", KEY1)]));
    let flag = path.to_str().expect("utf8");
    let mut coffer = Coffer::start(&[
        "--encryption-provider-config",
        flag,
        "--encryption-provider-config-automatic-reload",
        "--encryption-provider-config-automatic-reload-interval",
        "100ms",
    ]);
    create(&coffer, "before");

    // A new key first (the old one kept to read): the next write uses it.
    replace(&path, &config(&[("key2", KEY2), ("key1", KEY1)]));
    wait_for_log(&coffer, RELOADED, 1);
    create(&coffer, "after");

    // A broken file: refused with the reason, and the server goes on with key2.
    replace(
        &path,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [",
    );
    wait_for_log(&coffer, REFUSED, 1);
    let log = coffer.log();
    assert!(
        log.contains("previous configuration stays in force"),
        "{log}"
    );
    create(&coffer, "while-broken");
    for name in ["before", "after", "while-broken"] {
        let got = coffer.ok(
            KUBECTL,
            &["get", "secret", name, "-o", "jsonpath={.data.k}"],
        );
        assert_eq!(got, "dg==", "{name}");
    }
    // Invalid (not only undecodable): a key of the wrong length. Still refused; nothing else
    // changed, and the key material is not in the log.
    replace(&path, &config(&[("key3", "c2hvcnQ="), ("key2", KEY2)]));
    wait_for_log(&coffer, "expected length", 1);
    assert!(
        !coffer.log().contains("c2hvcnQ="),
        "key material in the log"
    );
    assert_eq!(
        coffer.log().matches(RELOADED).count(),
        1,
        "{}",
        coffer.log()
    );
    assert!(coffer.stop().success());

    // What wrote what: `before` under key1 (stale now), the other two under key2.
    replace(&path, &config(&[("key2", KEY2), ("key1", KEY1)]));
    let out = coffer.coffer(&[
        "storage",
        "verify",
        "--data-dir",
        coffer.data_dir().to_str().expect("utf8"),
        "--encryption-provider-config",
        flag,
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("2  aesgcm key key2"), "{report}");
    assert!(report.contains("1  aesgcm key key1"), "{report}");
}

#[test]
fn the_reload_interval_needs_the_reload_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["serve", "--secure-port", "0", "--data-dir"])
        .arg(dir.path())
        .args([
            "--encryption-provider-config-automatic-reload-interval",
            "1s",
        ])
        .output()
        .expect("run coffer serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--encryption-provider-config-automatic-reload"),
        "{err}"
    );
}
