//! End to end: External Secrets Operator's kinds and Coffer's SecretRotation are served like
//! CustomResourceDefinitions: kubectl applies ESO's documented manifests (v1 and v1beta1),
//! objects answer in the version they are read through, and only the `status` subresource
//! changes `status`.

mod support;

use serde_json::Value;
use support::Coffer;

const MANIFESTS: &str = r#"apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: secretstore-sample
spec:
  provider:
    aws:
      service: SecretsManager
      region: us-east-1
      auth:
        secretRef:
          accessKeyIDSecretRef:
            name: awssm-secret
            key: access-key
          secretAccessKeySecretRef:
            name: awssm-secret
            key: secret-access-key
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: example
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: secretstore-sample
    kind: SecretStore
  target:
    name: secret-to-be-created
    creationPolicy: Owner
  data:
  - secretKey: secret-key-to-be-managed
    remoteRef:
      key: provider-key
      version: provider-key-version
      property: provider-key-property
  dataFrom:
  - extract:
      key: remote-key-in-the-provider
---
apiVersion: coffer.dev/v1
kind: SecretRotation
metadata:
  name: db
spec:
  secretName: db-credentials
  schedule:
    interval: 24h
"#;

fn json(c: &Coffer, args: &[&str]) -> Value {
    serde_json::from_str(&c.ok("1.33", args)).expect("json")
}

#[test]
fn eso_manifests_apply_and_status_is_a_subresource() {
    let c = Coffer::start(&[]);
    let file = c.data_dir().join("eso.yaml");
    std::fs::write(&file, MANIFESTS).expect("write");
    let file = file.to_str().expect("utf8");
    for version in ["1.27", "1.33"] {
        c.ok(version, &["apply", "-f", file]);
    }
    let again = c.ok("1.33", &["apply", "-f", file]);
    assert!(
        again.contains("externalsecret.external-secrets.io/example unchanged"),
        "{again}"
    );
    let listed = c.ok(
        "1.33",
        &["get", "externalsecrets,secretstores,secretrotations"],
    );
    for name in ["example", "secretstore-sample", "db"] {
        assert!(listed.contains(name), "{listed}");
    }

    // Read through each served version: the answer is in that version.
    let v1: Value = json(
        &c,
        &[
            "get",
            "secretstores.v1.external-secrets.io",
            "secretstore-sample",
            "-o",
            "json",
        ],
    );
    assert_eq!(v1["apiVersion"], "external-secrets.io/v1");
    let beta: Value = json(
        &c,
        &[
            "get",
            "secretstores.v1beta1.external-secrets.io",
            "secretstore-sample",
            "-o",
            "json",
        ],
    );
    assert_eq!(beta["apiVersion"], "external-secrets.io/v1beta1");
    assert_eq!(beta["spec"], v1["spec"]);

    // Status: only through the subresource; writes to the object keep it.
    let status = r#"{"status":{"refreshTime":"2026-11-29T00:00:00Z","conditions":[{"type":"Ready","status":"True","reason":"SecretSynced"}]}}"#;
    c.ok(
        "1.33",
        &[
            "patch",
            "externalsecret",
            "example",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
    );
    c.ok(
        "1.33",
        &[
            "patch",
            "externalsecret",
            "example",
            "--type=merge",
            "-p",
            r#"{"status":null,"spec":{"refreshInterval":"15m"}}"#,
        ],
    );
    let es = json(&c, &["get", "externalsecret", "example", "-o", "json"]);
    assert_eq!(es["spec"]["refreshInterval"], "15m");
    assert_eq!(
        es["status"]["conditions"][0]["reason"], "SecretSynced",
        "{es}"
    );
    let sub = json(
        &c,
        &[
            "get",
            "externalsecret",
            "example",
            "--subresource=status",
            "-o",
            "json",
        ],
    );
    assert_eq!(sub["status"]["refreshTime"], "2026-11-29T00:00:00Z");

    // Bad input: a spec that is not an object is refused with the field named.
    let bad = c.data_dir().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: bad\nspec: 3\n",
    )
    .expect("write");
    let refused = c.fails("1.33", &["create", "-f", bad.to_str().expect("utf8")]);
    assert!(refused.contains("spec"), "{refused}");

    // `kubectl explain` reads the served OpenAPI documents.
    for version in ["1.27", "1.33"] {
        let explained = c.ok(version, &["explain", "externalsecret.spec.target"]);
        assert!(explained.contains("creationPolicy"), "{explained}");
    }
    let explained = c.ok("1.33", &["explain", "secretrotation.spec.schedule"]);
    assert!(explained.contains("cron"), "{explained}");

    c.ok("1.33", &["delete", "-f", file]);
    let gone = c.ok("1.33", &["get", "externalsecrets", "-o", "name"]);
    assert!(gone.trim().is_empty(), "{gone}");
}
