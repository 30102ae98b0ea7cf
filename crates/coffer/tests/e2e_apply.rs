//! End to end: server-side apply and `managedFields` (`reference/k8s-api.md` §5.14, §11.4)
//! with real kubectl 1.27 and 1.33: `apply --server-side` creates, updates and prunes Secrets,
//! ConfigMaps and External Secrets Operator kinds; fields another manager changed conflict with
//! kube's text until `--force-conflicts`; client-side apply keeps working.

mod support;

use serde_json::Value;
use support::Coffer;
use support::https::Tokens;

const VERSIONS: [&str; 2] = ["1.27", "1.33"];

fn write(c: &Coffer, file: &str, text: &str) -> String {
    let path = c.data_dir().join(file);
    std::fs::write(&path, text).expect("write manifest");
    path.to_str().expect("utf8").to_owned()
}

fn json(c: &Coffer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&c.ok("1.33", &all)).expect("json")
}

/// The managedFields entry of `manager` with `operation`.
fn entry(obj: &Value, manager: &str, operation: &str) -> Option<Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .cloned()
}

fn secret_manifest(name: &str, data: &[(&str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  labels:\n    app: ssa\ntype: Opaque\ndata:\n"
    );
    for (k, v) in data {
        text.push_str(&format!("  {k}: {v}\n"));
    }
    text
}

#[test]
fn server_side_apply_creates_updates_and_prunes() {
    let c = Coffer::start(&[]);
    for v in VERSIONS {
        let tag = v.replace('.', "-");
        let (secret, cm) = (format!("ssa-{tag}"), format!("cm-{tag}"));
        let both = |keep_b: bool| {
            let mut data = vec![("a", "YQ==")];
            if keep_b {
                data.push(("b", "Yg=="));
            }
            let mut text = secret_manifest(&secret, &data);
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {cm}\ndata:\n  k1: one\n"
            ));
            if keep_b {
                text.push_str("  k2: two\n");
            }
            text
        };
        let file = write(&c, &format!("ssa-{tag}.yaml"), &both(true));
        let out = c.ok(v, &["apply", "--server-side", "-f", &file]);
        assert_eq!(
            out.trim(),
            format!("secret/{secret} serverside-applied\nconfigmap/{cm} serverside-applied"),
            "{v}"
        );
        let s = json(&c, &["get", "secret", &secret]);
        assert_eq!(s["data"], serde_json::json!({"a": "YQ==", "b": "Yg=="}));
        let applied = entry(&s, "kubectl", "Apply").expect("kubectl Apply entry");
        assert_eq!(applied["apiVersion"], "v1");
        assert_eq!(applied["fieldsType"], "FieldsV1");
        assert_eq!(
            applied["fieldsV1"],
            serde_json::json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}, "f:type": {}})
        );

        // Re-applied without `b` / `k2`: they go; unchanged re-apply is a no-op.
        let file = write(&c, &format!("ssa-{tag}.yaml"), &both(false));
        let out = c.ok(v, &["apply", "--server-side", "-f", &file]);
        assert!(
            out.contains(&format!("secret/{secret} serverside-applied")),
            "{out}"
        );
        let s = json(&c, &["get", "secret", &secret]);
        assert_eq!(s["data"], serde_json::json!({"a": "YQ=="}));
        let m = json(&c, &["get", "configmap", &cm]);
        assert_eq!(m["data"], serde_json::json!({"k1": "one"}));
        let rv = s["metadata"]["resourceVersion"].clone();
        c.ok(v, &["apply", "--server-side", "-f", &file]);
        let again = json(&c, &["get", "secret", &secret]);
        assert_eq!(
            again["metadata"]["resourceVersion"], rv,
            "no-op apply wrote"
        );

        // kubectl hides managedFields unless asked.
        let plain = c.ok(v, &["get", "secret", &secret, "-o", "yaml"]);
        assert!(!plain.contains("managedFields"), "{plain}");
        let shown = c.ok(
            v,
            &[
                "get",
                "secret",
                &secret,
                "-o",
                "yaml",
                "--show-managed-fields",
            ],
        );
        for want in [
            "managedFields:",
            "manager: kubectl",
            "operation: Apply",
            "fieldsType: FieldsV1",
            "f:a: {}",
        ] {
            assert!(shown.contains(want), "{want} missing:\n{shown}");
        }
        assert!(!shown.contains("f:b:"), "{shown}");
    }
}

#[test]
fn other_managers_fields_conflict_until_forced() {
    let c = Coffer::start(&[]);
    for v in VERSIONS {
        let name = format!("conf-{}", v.replace('.', "-"));
        c.ok(
            v,
            &[
                "create",
                "secret",
                "generic",
                &name,
                "--from-literal=password=first-value",
            ],
        );
        let created = json(&c, &["get", "secret", &name]);
        let creator = entry(&created, "kubectl-create", "Update").expect("kubectl-create entry");
        assert_eq!(
            creator["fieldsV1"],
            serde_json::json!({"f:data": {".": {}, "f:password": {}}, "f:type": {}})
        );

        // `kubectl patch` takes the field from kubectl-create.
        c.ok(
            v,
            &[
                "patch",
                "secret",
                &name,
                "-p",
                r#"{"data":{"password":"cGF0Y2hlZA=="}}"#,
            ],
        );
        let patched = json(&c, &["get", "secret", &name]);
        assert!(entry(&patched, "kubectl-patch", "Update").is_some());

        // "aGlkZGVu" is base64 of "hidden": it must not appear in the error.
        let file = write(
            &c,
            &format!("{name}.yaml"),
            &secret_manifest(&name, &[("password", "aGlkZGVu")]),
        );
        let err = c.fails(v, &["apply", "--server-side", "-f", &file]);
        assert!(
            err.contains(
                "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.password"
            ),
            "{v}: {err}"
        );
        assert!(err.contains("--force-conflicts"), "{err}");
        assert!(
            !err.contains("aGlkZGVu") && !err.contains("hidden") && !err.contains("cGF0Y2hlZA"),
            "{err}"
        );
        assert_eq!(
            c.ok(
                v,
                &["get", "secret", &name, "-o", "jsonpath={.data.password}"]
            ),
            "cGF0Y2hlZA=="
        );

        let out = c.ok(
            v,
            &["apply", "--server-side", "--force-conflicts", "-f", &file],
        );
        assert!(out.contains("serverside-applied"), "{out}");
        let forced = json(&c, &["get", "secret", &name]);
        assert_eq!(forced["data"]["password"], "aGlkZGVu");
        assert_eq!(
            entry(&forced, "kubectl", "Apply").expect("applier")["fieldsV1"]["f:data"],
            serde_json::json!({"f:password": {}})
        );
        assert!(
            entry(&forced, "kubectl-patch", "Update").is_none(),
            "kubectl-patch lost its only field"
        );
    }
}

#[test]
fn edit_then_apply_by_another_manager_conflicts() {
    let c = Coffer::start(&[]);
    let v = "1.33";
    let file = write(
        &c,
        "edited.yaml",
        &secret_manifest("edited", &[("token", "b25l")]),
    );
    c.ok(
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=deployer",
            "-f",
            &file,
        ],
    );
    c.edit(
        v,
        "sed -i 's/token: b25l/token: dHdv/' \"$1\"",
        &["secret", "edited"],
    );
    let edited = json(&c, &["get", "secret", "edited"]);
    assert_eq!(edited["data"]["token"], "dHdv");
    assert!(entry(&edited, "kubectl-edit", "Update").is_some());
    assert!(
        entry(&edited, "deployer", "Apply").expect("deployer")["fieldsV1"]["f:data"]
            .get("f:token")
            .is_none()
    );

    let err = c.fails(
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=deployer",
            "-f",
            &file,
        ],
    );
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.token"
        ),
        "{err}"
    );
    c.ok(
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=deployer",
            "--force-conflicts",
            "-f",
            &file,
        ],
    );
    assert_eq!(
        c.ok(
            v,
            &["get", "secret", "edited", "-o", "jsonpath={.data.token}"]
        ),
        "b25l"
    );
}

#[test]
fn client_side_apply_still_works_and_hands_over() {
    let c = Coffer::start(&[]);
    for v in VERSIONS {
        let name = format!("csa-{}", v.replace('.', "-"));
        let file = write(
            &c,
            &format!("{name}.yaml"),
            &secret_manifest(&name, &[("a", "YQ==")]),
        );
        assert_eq!(
            c.ok(v, &["apply", "-f", &file]).trim(),
            format!("secret/{name} created")
        );
        let s = json(&c, &["get", "secret", &name]);
        let csa = entry(&s, "kubectl-client-side-apply", "Update").expect("csa entry");
        assert!(
            csa["fieldsV1"]["f:metadata"]["f:annotations"]
                .get("f:kubectl.kubernetes.io/last-applied-configuration")
                .is_some(),
            "{csa}"
        );
        let file = write(
            &c,
            &format!("{name}.yaml"),
            &secret_manifest(&name, &[("a", "YQ=="), ("b", "Yg==")]),
        );
        assert_eq!(
            c.ok(v, &["apply", "-f", &file]).trim(),
            format!("secret/{name} configured")
        );
        assert_eq!(
            c.ok(v, &["apply", "-f", &file]).trim(),
            format!("secret/{name} unchanged")
        );
        // The same manifest applied server-side: same values, so no conflict.
        let out = c.ok(v, &["apply", "--server-side", "-f", &file]);
        assert_eq!(out.trim(), format!("secret/{name} serverside-applied"));
        let s = json(&c, &["get", "secret", &name]);
        assert!(entry(&s, "kubectl", "Apply").is_some());
        let last = s["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("annotation kept");
        let last: Value = serde_json::from_str(last).expect("json");
        assert_eq!(last["data"]["b"], "Yg==");
    }
}

#[test]
fn external_secrets_apply_server_side() {
    let c = Coffer::start(&[]);
    let manifest = |refresh: Option<&str>| {
        let mut text = String::from(
            "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata:\n  name: vault\nspec:\n  provider:\n    vault:\n      server: https://vault.example:8200\n      path: secret\n      version: v2\n      auth:\n        tokenSecretRef:\n          name: vault-token\n          key: token\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: db\nspec:\n",
        );
        if let Some(r) = refresh {
            text.push_str(&format!("  refreshInterval: {r}\n"));
        }
        text.push_str("  secretStoreRef:\n    name: vault\n    kind: SecretStore\n  target:\n    name: db-credentials\n  data:\n  - secretKey: password\n    remoteRef:\n      key: db\n      property: password\n");
        text
    };
    for v in VERSIONS {
        let file = write(&c, "eso.yaml", &manifest(Some("1h")));
        let out = c.ok(v, &["apply", "--server-side", "-f", &file]);
        assert!(
            out.contains("externalsecret.external-secrets.io/db serverside-applied"),
            "{v}: {out}"
        );
        let es = json(&c, &["get", "externalsecret", "db"]);
        assert_eq!(es["spec"]["refreshInterval"], "1h");
        let fields = &entry(&es, "kubectl", "Apply").expect("entry")["fieldsV1"];
        assert_eq!(fields["f:spec"]["f:data"], serde_json::json!({}));
        assert_eq!(
            fields["f:spec"]["f:secretStoreRef"],
            serde_json::json!({"f:kind": {}, "f:name": {}})
        );
        // Dropped from the manifest: removed.
        let file = write(&c, "eso.yaml", &manifest(None));
        c.ok(v, &["apply", "--server-side", "-f", &file]);
        let es = json(&c, &["get", "externalsecret", "db"]);
        assert!(es["spec"].get("refreshInterval").is_none(), "{es}");
        assert_eq!(es["spec"]["target"]["name"], "db-credentials");
    }
}

/// What the API answers to apply requests kubectl never sends wrong.
#[test]
fn apply_options_and_conflict_status_over_https() {
    let tokens = Tokens::new([]);
    let c = Coffer::start_with_tokens(&tokens, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let https = rt.block_on(async { c.https() });
    let admin = tokens.token(Tokens::ADMIN).to_owned();
    let path = "/api/v1/namespaces/default/secrets/raw";
    let body =
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"raw"},"stringData":{"k":"v"}}"#;
    let send = |method: &str, pq: String, ct: &str, body: &[u8]| {
        rt.block_on(https.send(method, &pq, Some(&admin), Some((ct, body.to_vec()))))
    };
    let apply = "application/apply-patch+yaml";

    let r = send("PATCH", path.to_owned(), apply, body);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.message(),
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let r = send(
        "PATCH",
        format!("{path}?fieldManager=raw&force=true"),
        "application/merge-patch+json",
        b"{}",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.message(),
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );

    // Create through apply (201), YAML body, then an update (200).
    let r = send("PATCH", format!("{path}?fieldManager=one"), apply, body);
    assert_eq!(r.status, 201, "{}", r.text());
    let yaml =
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: raw\nstringData:\n  k: v\n  j: w\n";
    let r = send("PATCH", format!("{path}?fieldManager=one"), apply, yaml);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["j"], "dw==");

    // Another manager changing one's field: 409 with a FieldManagerConflict cause.
    let r = send(
        "PATCH",
        format!("{path}?fieldManager=two"),
        apply,
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"raw"},"stringData":{"k":"secret-value"}}"#,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let status = r.json();
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"one\": .stringData.k"
    );
    assert_eq!(
        status["details"]["causes"],
        serde_json::json!([{"reason": "FieldManagerConflict", "message": "conflict with \"one\"", "field": ".stringData.k"}])
    );
    assert!(!r.text().contains("secret-value"));

    // Wrong kind, name mismatch, unknown field.
    let r = send(
        "PATCH",
        format!("{path}?fieldManager=one"),
        apply,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw"}}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.message(), "invalid object type: /v1, Kind=ConfigMap");
    let r = send(
        "PATCH",
        format!("{path}?fieldManager=one"),
        apply,
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"other"}}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send(
        "PATCH",
        format!("{path}?fieldManager=one"),
        apply,
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"raw"},"spec":{}}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.message(),
        "failed to create typed patch object (default/raw; /v1, Kind=Secret): .spec: field not declared in schema"
    );
}
