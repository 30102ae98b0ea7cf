//! `coffer storage verify` and `coffer storage rewrap` on the embedded store, end to end:
//! secrets are created through the real `coffer serve` and kubectl, the server is stopped, the
//! EncryptionConfiguration is changed as kube-apiserver's rotation procedure says
//! (`reference/encryption.md` §6), the tools run, and the server reads the secrets back.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::Coffer;

const KUBECTL: &str = "1.33";
/// A value that must never appear in any tool output.
const CANARY: &str = "CanaryValue-7f3a9c";
/// base64 of 32 fixed bytes, a test key.
const KEY2: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Another 32-byte test key (`abcdefghijklmnopqrstuvwxyz012345`).
const OTHER_KEY: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU=";

fn create_secrets(coffer: &Coffer, names: &[&str]) {
    for name in names {
        coffer.ok(
            KUBECTL,
            &[
                "create",
                "secret",
                "generic",
                name,
                "--from-literal=username=admin",
                &format!("--from-literal=password={CANARY}"),
            ],
        );
    }
}

fn assert_read_back(coffer: &Coffer, names: &[&str]) {
    for name in names {
        let got = coffer.ok(
            KUBECTL,
            &["get", "secret", name, "-o", "jsonpath={.data.password}"],
        );
        let expected = "Q2FuYXJ5VmFsdWUtN2YzYTlj"; // base64 of CANARY
        assert_eq!(got, expected, "secret {name}");
    }
}

/// Runs a `coffer storage` tool on the data directory; asserts the canary never shows.
fn tool(coffer: &Coffer, args: &[&str]) -> (bool, String, String) {
    let dir = coffer.data_dir().to_str().expect("utf8");
    let mut all = vec!["storage"];
    all.extend_from_slice(&args[..1]);
    all.extend_from_slice(&["--data-dir", dir]);
    all.extend_from_slice(&args[1..]);
    let out: Output = coffer.coffer(&all);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !stdout.contains(CANARY) && !stderr.contains(CANARY),
        "a secret value leaked: {stdout}{stderr}"
    );
    (out.status.success(), stdout, stderr)
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

fn config_path(coffer: &Coffer) -> std::path::PathBuf {
    coffer.data_dir().join("encryption-config.yaml")
}

/// kube-apiserver's local-key rotation: new key first, rewrap, verify, restart, read back,
/// drop the old key, restart, read back.
#[test]
fn rotate_a_local_key_with_rewrap_and_verify() {
    let names = ["db-one", "db-two", "db-three"];
    let mut coffer = Coffer::start(&[]);
    create_secrets(&coffer, &names);

    let (ok, _, err) = tool(&coffer, &["verify"]);
    assert!(!ok, "the store is locked while serve runs");
    assert!(err.contains("locked by a running `coffer serve`"), "{err}");
    assert!(err.contains("stop the server"), "{err}");
    coffer.stop();

    let (ok, out, err) = tool(&coffer, &["verify", "--require-encrypted"]);
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "values:"), 3, "{out}");
    assert_eq!(count(&out, "stale:"), 0, "{out}");
    assert_eq!(count(&out, "plaintext:"), 0, "{out}");
    assert_eq!(count(&out, "failed:"), 0, "{out}");
    assert!(out.contains("3  secretbox key key1"), "{out}");

    // Step 4 of the procedure: a new key goes first.
    let config = std::fs::read_to_string(config_path(&coffer)).expect("config");
    let rotated = config.replacen(
        "            - name: key1\n",
        &format!(
            "            - name: key2\n              secret: {KEY2}\n            - name: key1\n"
        ),
        1,
    );
    assert_ne!(
        rotated, config,
        "the generated config has the expected layout:\n{config}"
    );
    std::fs::write(config_path(&coffer), &rotated).expect("write config");

    let (ok, out, err) = tool(&coffer, &["verify"]);
    assert!(ok, "stale values are not a failure: {out}{err}");
    assert_eq!(count(&out, "stale:"), 3, "{out}");

    let (ok, out, err) = tool(&coffer, &["rewrap", "--dry-run"]);
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "would rewrap:"), 3, "{out}");
    let (_, out, _) = tool(&coffer, &["verify"]);
    assert_eq!(count(&out, "stale:"), 3, "a dry run writes nothing: {out}");

    let config_flag = config_path(&coffer).to_str().expect("utf8").to_owned();
    let (ok, out, err) = tool(
        &coffer,
        &["rewrap", "--encryption-provider-config", &config_flag],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "rewrapped:"), 3, "{out}");
    assert_eq!(count(&out, "skipped:"), 0, "{out}");

    let (ok, out, err) = tool(&coffer, &["verify", "--require-encrypted"]);
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "stale:"), 0, "{out}");
    assert!(out.contains("3  secretbox key key2"), "{out}");
    let (ok, out, _) = tool(&coffer, &["rewrap"]);
    assert!(ok);
    assert_eq!(
        count(&out, "rewrapped:"),
        0,
        "a second run has nothing to do: {out}"
    );

    coffer.restart(&["--encryption-provider-config", &config_flag]);
    assert_read_back(&coffer, &names);

    // Step 6: remove the old key; everything is readable with key2 alone.
    coffer.stop();
    let without_old: String = {
        let mut lines: Vec<&str> = rotated.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.trim() == "- name: key1")
            .expect("key1 entry");
        lines.drain(i..i + 2);
        lines.join("\n") + "\n"
    };
    std::fs::write(config_path(&coffer), without_old).expect("write config");
    let (ok, out, err) = tool(&coffer, &["verify", "--require-encrypted"]);
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "failed:"), 0, "{out}");
    coffer.restart(&["--encryption-provider-config", &config_flag]);
    assert_read_back(&coffer, &names);
}

/// Plaintext values are counted and refused by `--require-encrypted`; a value no configured
/// key opens is named (never printed) and fails verify; enabling encryption with rewrap
/// (kube-apiserver's documented procedure) leaves nothing in plaintext.
#[test]
fn plaintext_unreadable_and_enabling_encryption() {
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let conf = conf_dir.path().join("enc.yaml");
    let write_conf = |providers: &str| {
        std::fs::write(
            &conf,
            format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
            ),
        )
        .expect("write config");
    };
    let secretbox = |name: &str, key: &str| {
        format!("  - secretbox:\n      keys:\n      - name: {name}\n        secret: {key}\n")
    };
    write_conf(&format!("  - identity: {{}}\n{}", secretbox("key2", KEY2)));
    let conf_flag = conf.to_str().expect("utf8").to_owned();
    let mut coffer = Coffer::start(&["--encryption-provider-config", &conf_flag]);
    create_secrets(&coffer, &["plain-one", "plain-two"]);
    coffer.stop();

    let (ok, out, err) = tool(
        &coffer,
        &["verify", "--encryption-provider-config", &conf_flag],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "plaintext:"), 2, "{out}");
    assert_eq!(count(&out, "stale:"), 0, "identity is first: {out}");
    let (ok, out, err) = tool(
        &coffer,
        &[
            "verify",
            "--encryption-provider-config",
            &conf_flag,
            "--require-encrypted",
        ],
    );
    assert!(!ok, "--require-encrypted fails on plaintext: {out}");
    assert!(err.contains("stored in plaintext"), "{err}");

    // A config that cannot read plaintext and holds another key: every value fails.
    write_conf(&secretbox("other", OTHER_KEY));
    let (ok, out, err) = tool(
        &coffer,
        &["verify", "--encryption-provider-config", &conf_flag],
    );
    assert!(!ok, "unreadable values fail verify: {out}");
    assert_eq!(count(&out, "failed:"), 2, "{out}");
    assert!(err.contains("/registry/secrets/default/plain-one"), "{err}");
    let (ok, _, _) = tool(
        &coffer,
        &["rewrap", "--encryption-provider-config", &conf_flag],
    );
    assert!(!ok, "rewrap reports unreadable values");

    // Enable encryption: secretbox first, identity kept last to read the old values.
    write_conf(&format!("{}  - identity: {{}}\n", secretbox("key2", KEY2)));
    let (ok, out, err) = tool(
        &coffer,
        &["rewrap", "--encryption-provider-config", &conf_flag],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "rewrapped:"), 2, "{out}");
    let (ok, out, err) = tool(
        &coffer,
        &[
            "verify",
            "--encryption-provider-config",
            &conf_flag,
            "--require-encrypted",
        ],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "plaintext:"), 0, "{out}");
    coffer.restart(&["--encryption-provider-config", &conf_flag]);
    let got = coffer.ok(
        KUBECTL,
        &[
            "get",
            "secret",
            "plain-two",
            "-o",
            "jsonpath={.data.username}",
        ],
    );
    assert_eq!(got, "YWRtaW4=");
}

/// The running plugin, killed on drop.
struct Plugin(Child);

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_plugin(socket: &Path, key_file: &Path) -> Plugin {
    let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("kms-plugin")
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--key-file")
        .arg(key_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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

/// Switching to KMS v2 and rotating the plugin's key: after each step `verify` counts every
/// value stale, and after `rewrap` none, under the plugin's current key_id.
#[test]
fn kms_plugin_rotation_then_rewrap() {
    let names = ["kms-one", "kms-two"];
    let mut coffer = Coffer::start(&[]);
    create_secrets(&coffer, &names);
    coffer.stop();

    let socket = coffer.data_dir().join("kms.sock");
    let key_file = coffer.data_dir().join("kek.json");
    let _plugin = start_plugin(&socket, &key_file);
    let key_flag = key_file.to_str().expect("utf8").to_owned();
    let key_id = |coffer: &Coffer| {
        let out = coffer.coffer(&["kms-plugin", "key-id", "--key-file", &key_flag]);
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    };

    // Switch to KMS: kms first, the generated secretbox key kept second.
    let config = std::fs::read_to_string(config_path(&coffer)).expect("config");
    let kms = format!(
        "    providers:\n      - kms:\n          apiVersion: v2\n          name: coffer-kms\n          endpoint: unix://{}\n",
        socket.display()
    );
    let switched = config.replacen("    providers:\n", &kms, 1);
    assert_ne!(switched, config, "{config}");
    std::fs::write(config_path(&coffer), switched).expect("write config");

    for round in 0..2 {
        if round == 1 {
            let out = coffer.coffer(&["kms-plugin", "rotate", "--key-file", &key_flag]);
            assert!(out.status.success());
        }
        let current = key_id(&coffer);
        let (ok, out, err) = tool(&coffer, &["verify"]);
        assert!(ok, "{out}{err}");
        assert_eq!(count(&out, "stale:"), 2, "round {round}: {out}");
        let (ok, out, err) = tool(&coffer, &["rewrap"]);
        assert!(ok, "{out}{err}");
        assert_eq!(count(&out, "rewrapped:"), 2, "round {round}: {out}");
        let (ok, out, err) = tool(&coffer, &["verify", "--require-encrypted"]);
        assert!(ok, "{out}{err}");
        assert_eq!(count(&out, "stale:"), 0, "round {round}: {out}");
        assert!(
            out.contains(&format!("2  kms v2 coffer-kms key_id {current}")),
            "round {round}: {out}"
        );
    }
}

/// A single real etcd member on free loopback ports, killed on drop.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port()
        };
        let (client, peer) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let bin = std::env::var_os("COFFER_ETCD_BIN").unwrap_or_else(|| "etcd".into());
        let child = Command::new(bin)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd (Debian etcd-server, or set COFFER_ETCD_BIN)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(Instant::now() < deadline, "etcd never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Etcd {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On etcd the tools run while the server serves: the full rotation procedure (new key
/// second, restart; new key first, restart; online rewrap; verify), then kubectl reads.
#[test]
fn online_rewrap_on_etcd() {
    let etcd = Etcd::start();
    let names = ["etcd-one", "etcd-two", "etcd-three"];
    let store = [
        "--etcd-servers",
        etcd.url.as_str(),
        "--etcd-prefix",
        "/kube",
    ];
    let mut coffer = Coffer::start(&store);
    create_secrets(&coffer, &names);
    let config_flag = config_path(&coffer).to_str().expect("utf8").to_owned();
    let with_flags = |coffer: &Coffer, tool_name: &str, extra: &[&str]| {
        let mut args = vec![tool_name];
        args.extend_from_slice(&store);
        args.extend_from_slice(&["--encryption-provider-config", &config_flag]);
        args.extend_from_slice(extra);
        tool(coffer, &args)
    };

    // Steps 1-2: the new key second; every server restarts and can read it.
    let config = std::fs::read_to_string(config_path(&coffer)).expect("config");
    let key2 = format!("            - name: key2\n              secret: {KEY2}\n");
    let second = config.replacen(
        "      - identity: {}\n",
        &format!("{key2}      - identity: {{}}\n"),
        1,
    );
    assert_ne!(second, config, "{config}");
    std::fs::write(config_path(&coffer), &second).expect("write config");
    coffer.restart(&store);
    // Steps 4-5: the new key first, restart, rewrap while serving.
    let first = config.replacen(
        "            - name: key1\n",
        &format!("{key2}            - name: key1\n"),
        1,
    );
    std::fs::write(config_path(&coffer), &first).expect("write config");
    coffer.restart(&store);

    let (ok, out, err) = with_flags(&coffer, "verify", &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "values:"), 3, "{out}");
    assert_eq!(count(&out, "stale:"), 3, "{out}");
    assert!(out.contains("/kube/secrets/"), "{out}");
    let (ok, out, err) = with_flags(&coffer, "rewrap", &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "rewrapped:"), 3, "{out}");
    let (ok, out, err) = with_flags(&coffer, "verify", &["--require-encrypted"]);
    assert!(ok, "{out}{err}");
    assert_eq!(count(&out, "stale:"), 0, "{out}");
    assert!(out.contains("3  secretbox key key2"), "{out}");
    assert_read_back(&coffer, &names);
}

/// On etcd, LIST pages read the first page's snapshot (etcd's range at a revision) while
/// Secrets change in between, and `coffer storage compact` run while serving expires the
/// continue token with kube's 410 (`reference/k8s-api.md` §12.2).
#[test]
fn paginated_list_on_etcd_is_one_snapshot() {
    let etcd = Etcd::start();
    let store = [
        "--etcd-servers",
        etcd.url.as_str(),
        "--etcd-prefix",
        "/kube",
    ];
    let coffer = Coffer::start(&store);
    create_secrets(&coffer, &["page-a", "page-b", "page-c"]);
    let raw = |query: &str| -> serde_json::Value {
        let path = format!("/api/v1/namespaces/default/secrets?{query}");
        serde_json::from_str(&coffer.ok(KUBECTL, &["get", "--raw", &path])).expect("a list")
    };
    let names = |list: &serde_json::Value| -> Vec<String> {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["metadata"]["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let first = raw("limit=2");
    assert_eq!(names(&first), ["page-a", "page-b"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 1, "{first}");
    let token = first["metadata"]["continue"].as_str().expect("token");
    coffer.ok(KUBECTL, &["delete", "secret", "page-c"]);
    create_secrets(&coffer, &["page-bb"]);
    let second = raw(&format!("limit=2&continue={token}"));
    assert_eq!(names(&second), ["page-c"], "the first page's snapshot");
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );

    let (ok, out, err) = tool(
        &coffer,
        &[
            "compact",
            "--etcd-servers",
            &etcd.url,
            "--etcd-prefix",
            "/kube",
        ],
    );
    assert!(ok, "{out}{err}");
    let path = format!("/api/v1/namespaces/default/secrets?limit=2&continue={token}");
    let out = coffer.kubectl(KUBECTL, &["get", "--raw", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "The provided continue parameter is too old to display a consistent list result."
        ),
        "{stderr}"
    );
}
