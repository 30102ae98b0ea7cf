//! End to end: the real `coffer serve` driven by real kubectl 1.27, 1.32 and 1.33 through the
//! guide's steps 1 and 2 and the everyday commands around them, asserting on what kubectl
//! prints (`reference/k8s-api.md` §5).

mod support;

use support::Coffer;

const VERSIONS: [&str; 3] = ["1.27", "1.32", "1.33"];

/// Guide step 1 and 2 verbatim, with each kubectl version (1.32+ send protobuf bodies).
#[test]
fn guide_steps_create_get_describe() {
    let coffer = Coffer::start(&[]);
    for v in VERSIONS {
        let name = format!("db-secret-{}", v.replace('.', "-"));
        let out = coffer.ok(
            v,
            &[
                "create",
                "secret",
                "generic",
                &name,
                "--from-literal=username=admin",
                "--from-literal=password=MyStrongPassword",
            ],
        );
        assert_eq!(out.trim(), format!("secret/{name} created"));

        let table = coffer.ok(v, &["get", "secrets"]);
        let header = table.lines().next().expect("header");
        assert!(
            header
                .split_whitespace()
                .eq(["NAME", "TYPE", "DATA", "AGE"]),
            "{table}"
        );
        let row = table.lines().find(|l| l.starts_with(&name)).expect("row");
        let cells: Vec<_> = row.split_whitespace().collect();
        assert_eq!(&cells[..3], [name.as_str(), "Opaque", "2"], "{table}");

        let described = coffer.ok(v, &["describe", "secret", &name]);
        assert!(
            described.contains(&format!("Name:         {name}")),
            "{described}"
        );
        assert!(described.contains("Namespace:    default"), "{described}");
        assert!(described.contains("Type:  Opaque"), "{described}");
        assert!(described.contains("password:  16 bytes"), "{described}");
        assert!(described.contains("username:  5 bytes"), "{described}");
        assert!(
            !described.contains("MyStrongPassword"),
            "describe never prints values"
        );

        let password = coffer.ok(
            v,
            &["get", "secret", &name, "-o", "jsonpath={.data.password}"],
        );
        assert_eq!(password, "TXlTdHJvbmdQYXNzd29yZA==");
    }
}

#[test]
fn typed_secrets_output_formats_and_selectors() {
    let coffer = Coffer::start(&[]);
    let pki = coffer.data_dir().join("pki");
    let (cert, key) = (pki.join("serving.crt"), pki.join("serving.key"));
    let v = "1.33";
    coffer.ok(
        v,
        &[
            "create",
            "secret",
            "tls",
            "web-tls",
            "--cert",
            cert.to_str().expect("utf8"),
            "--key",
            key.to_str().expect("utf8"),
        ],
    );
    coffer.ok(
        "1.27",
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server=reg.example.com",
            "--docker-username=u",
            "--docker-password=p",
            "--docker-email=e@example.com",
        ],
    );
    coffer.ok(v, &["create", "namespace", "team-a"]);
    coffer.ok(
        v,
        &[
            "create",
            "secret",
            "generic",
            "s-team",
            "-n",
            "team-a",
            "--from-literal=k=v",
        ],
    );
    coffer.ok(v, &["label", "secret", "regcred", "env=dev"]);
    coffer.ok(v, &["annotate", "secret", "regcred", "note=hello"]);

    let yaml = coffer.ok(v, &["get", "secret", "web-tls", "-o", "yaml"]);
    assert!(
        yaml.contains("type: kubernetes.io/tls") && yaml.contains("tls.crt:"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&coffer.ok(v, &["get", "secret", "regcred", "-o", "json"]))
            .expect("json");
    assert_eq!(json["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(json["metadata"]["labels"]["env"], "dev");
    assert_eq!(json["metadata"]["annotations"]["note"], "hello");

    let wide = coffer.ok(v, &["get", "secrets", "-o", "wide"]);
    assert!(
        wide.contains("web-tls") && wide.contains("kubernetes.io/tls"),
        "{wide}"
    );
    let by_label = coffer.ok(v, &["get", "secrets", "-l", "env=dev", "-o", "name"]);
    assert_eq!(by_label.trim(), "secret/regcred");
    let by_type = coffer.ok(
        v,
        &[
            "get",
            "secrets",
            "--field-selector",
            "type=kubernetes.io/tls",
            "-o",
            "name",
        ],
    );
    assert_eq!(by_type.trim(), "secret/web-tls");
    let all = coffer.ok(v, &["get", "secrets", "-A"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with("team-a") && l.contains("s-team")),
        "{all}"
    );
    let chunked = coffer.ok(v, &["get", "secrets", "-A", "--chunk-size=1", "-o", "name"]);
    assert_eq!(chunked.lines().count(), 3, "{chunked}");
    let labels = coffer.ok(v, &["get", "secrets", "--show-labels"]);
    assert!(labels.contains("env=dev"), "{labels}");

    let missing = coffer.fails(v, &["get", "secret", "nonexist"]);
    assert!(
        missing.contains("Error from server (NotFound): secrets \"nonexist\" not found"),
        "{missing}"
    );
    let dup = coffer.fails(
        v,
        &[
            "create",
            "secret",
            "generic",
            "regcred",
            "--from-literal=a=b",
        ],
    );
    assert!(dup.contains("secrets \"regcred\" already exists"), "{dup}");
    let bad = coffer.fails(
        "1.27",
        &[
            "create",
            "secret",
            "generic",
            "BadName",
            "--from-literal=a=b",
        ],
    );
    assert!(
        bad.contains("metadata.name: Invalid value: \"BadName\""),
        "{bad}"
    );
    let no_ns = coffer.fails(
        v,
        &[
            "create",
            "secret",
            "generic",
            "x",
            "-n",
            "nope",
            "--from-literal=a=b",
        ],
    );
    assert!(no_ns.contains("namespaces \"nope\" not found"), "{no_ns}");
}

#[test]
fn apply_patch_replace_edit_delete() {
    let coffer = Coffer::start(&[]);
    let manifest = coffer.data_dir().join("s.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  labels: {app: web}\nstringData:\n  token: abc\n",
    )
    .expect("write");
    let path = manifest.to_str().expect("utf8");
    for v in ["1.27", "1.33"] {
        let out = coffer.ok(v, &["apply", "-f", path]);
        assert!(out.contains("secret/app"), "{out}");
    }
    assert_eq!(
        coffer.ok(
            "1.33",
            &["get", "secret", "app", "-o", "jsonpath={.data.token}"]
        ),
        "YWJj"
    );
    assert_eq!(
        coffer.ok(
            "1.33",
            &["get", "secret", "app", "-o", "jsonpath={.stringData}"]
        ),
        "",
        "stringData is never returned"
    );

    coffer.ok(
        "1.33",
        &[
            "patch",
            "secret",
            "app",
            "-p",
            r#"{"metadata":{"labels":{"tier":"db"}}}"#,
        ],
    );
    coffer.ok(
        "1.33",
        &[
            "patch",
            "secret",
            "app",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"extra":"eHg="}}"#,
        ],
    );
    coffer.ok(
        "1.33",
        &[
            "patch",
            "secret",
            "app",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/data/extra"}]"#,
        ],
    );
    let obj: serde_json::Value =
        serde_json::from_str(&coffer.ok("1.33", &["get", "secret", "app", "-o", "json"]))
            .expect("json");
    assert_eq!(obj["metadata"]["labels"]["tier"], "db");
    assert!(obj["data"].get("extra").is_none());

    let mut replaced = obj.clone();
    replaced["data"]["token"] = serde_json::json!("bmV3");
    let replaced_path = coffer.data_dir().join("r.json");
    std::fs::write(&replaced_path, replaced.to_string()).expect("write");
    coffer.ok(
        "1.33",
        &["replace", "-f", replaced_path.to_str().expect("utf8")],
    );
    assert_eq!(
        coffer.ok(
            "1.27",
            &["get", "secret", "app", "-o", "jsonpath={.data.token}"]
        ),
        "bmV3"
    );
    // The old resourceVersion is now stale: replace is refused with a conflict.
    let stale = coffer.fails(
        "1.33",
        &["replace", "-f", replaced_path.to_str().expect("utf8")],
    );
    assert!(stale.contains("the object has been modified"), "{stale}");

    let editor = coffer.data_dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/tier: db/tier: edited/' \"$1\"\n",
    )
    .expect("write");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .expect("chmod");
    let out = std::process::Command::new(support::kubectl_binary("1.33"))
        .env("KUBE_EDITOR", &editor)
        .arg("--kubeconfig")
        .arg(&coffer.kubeconfig)
        .args(["edit", "secret", "app"])
        .output()
        .expect("edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        coffer.ok(
            "1.33",
            &[
                "get",
                "secret",
                "app",
                "-o",
                "jsonpath={.metadata.labels.tier}"
            ]
        ),
        "edited"
    );

    let deleted = coffer.ok("1.33", &["delete", "secret", "app"]);
    assert_eq!(deleted.trim(), "secret \"app\" deleted");
    coffer.fails("1.33", &["get", "secret", "app"]);
}

#[test]
fn explain_and_watch() {
    let coffer = Coffer::start(&[]);
    for v in ["1.27", "1.33"] {
        let explained = coffer.ok(v, &["explain", "secret.type"]);
        assert!(
            explained.contains("KIND:") && explained.contains("Secret"),
            "{explained}"
        );
    }
    let mut watch = std::process::Command::new(support::kubectl_binary("1.33"))
        .arg("--kubeconfig")
        .arg(&coffer.kubeconfig)
        .args(["get", "secrets", "-w", "--request-timeout=20s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    std::thread::sleep(std::time::Duration::from_secs(2));
    coffer.ok(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "watched",
            "--from-literal=a=b",
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("output");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("watched") && l.contains("Opaque")),
        "{printed}"
    );
}

#[test]
fn authentication_and_encryption_at_rest() {
    let mut coffer = Coffer::start(&[]);
    let canary = "canary-7f3a9c-never-on-disk";
    coffer.ok(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "canary",
            &format!("--from-literal=value={canary}"),
        ],
    );

    // A wrong token is refused, and so is no token at all.
    let config = std::fs::read_to_string(&coffer.kubeconfig).expect("kubeconfig");
    let bad = coffer.data_dir().join("bad.kubeconfig");
    let token_line = config
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .expect("token line");
    std::fs::write(
        &bad,
        config.replace(token_line, "    token: not-a-valid-token"),
    )
    .expect("write");
    let out = std::process::Command::new(support::kubectl_binary("1.33"))
        .arg("--kubeconfig")
        .arg(&bad)
        .args(["get", "secrets"])
        .output()
        .expect("kubectl");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("You must be logged in to the server"));

    // Nothing on disk holds the value in the clear.
    let status = coffer.stop();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
    let stored = std::fs::read(coffer.store_file()).expect("store file");
    assert!(
        !stored.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "plaintext in the store file"
    );
    assert!(
        stored.windows(24).any(|w| w == b"k8s:enc:secretbox:v1:key"),
        "secrets are stored with the secretbox envelope"
    );
}

/// Finalizers hold a deleted Secret (§8.9): DELETE marks it with a deletionTimestamp and
/// keeps it; removing the last finalizer removes it, and `kubectl delete` (which waits with a
/// watch) returns once it is gone.
#[test]
fn finalizers_hold_a_deleted_secret() {
    let coffer = Coffer::start(&[]);
    let manifest = coffer.data_dir().join("held.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\nstringData:\n  k: v\n",
    )
    .expect("write");
    coffer.ok("1.33", &["apply", "-f", manifest.to_str().expect("utf8")]);
    let out = coffer.ok("1.33", &["delete", "secret", "held", "--wait=false"]);
    assert!(out.contains("secret \"held\" deleted"), "{out}");
    let marked = coffer.ok(
        "1.33",
        &[
            "get",
            "secret",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ],
    );
    assert!(!marked.is_empty(), "still there, marked for deletion");
    // Adding a finalizer to an object being deleted is refused.
    let refused = coffer.fails(
        "1.33",
        &[
            "patch",
            "secret",
            "held",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
        ],
    );
    assert!(
        refused.contains("no new finalizers can be added"),
        "{refused}"
    );

    let mut waiter = std::process::Command::new(support::kubectl_binary("1.33"))
        .arg("--kubeconfig")
        .arg(&coffer.kubeconfig)
        .args(["delete", "secret", "held", "--timeout=30s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl delete");
    std::thread::sleep(std::time::Duration::from_secs(1));
    coffer.ok(
        "1.33",
        &[
            "patch",
            "secret",
            "held",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    );
    let status = waiter.wait().expect("wait");
    assert!(
        status.success(),
        "kubectl delete returned once the Secret was gone"
    );
    let gone = coffer.fails("1.33", &["get", "secret", "held"]);
    assert!(gone.contains("NotFound"), "{gone}");
}
