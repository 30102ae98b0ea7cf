//! End to end: RBAC in the real `coffer serve` (issue 5), driven by real kubectl 1.27 and 1.33
//! and by real HTTPS requests with per-user bearer tokens from a `--token-auth-file`.
//!
//! - the guide's step 7 (a `secret-reader` Role bound to `bob`), `kubectl auth can-i`,
//!   `kubectl auth whoami`, impersonation (`reference/k8s-api.md` §5.18–§5.23, §14);
//! - the RBAC decision matrix `coffer-access/tests/rbac_matrix.yaml`, every case through a
//!   SubjectAccessReview and (unless `sar_only`) through the real request (§15);
//! - escalation and bind checks (§15.4, §18.4), ClusterRole aggregation (§9.3);
//! - list without reveal (`--secret-list-policy`), default deny and anonymous (§13.5).
//!
//! Expected answers come from Kubernetes' documented semantics and kube-apiserver's wording,
//! never from what Coffer answered before.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use support::Coffer;
use support::https::{Https, Reply, Tokens, collection_of};

const KUBECTLS: [&str; 2] = ["1.27", "1.33"];
const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

/// A blocking front to [`Https`] for tests that interleave kubectl and HTTP.
struct Api {
    rt: tokio::runtime::Runtime,
    https: Https,
}

impl Api {
    fn new(coffer: &Coffer) -> Api {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let https = rt.block_on(async { coffer.https() });
        Api { rt, https }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.rt.block_on(self.https.get(path, token))
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.rt.block_on(self.https.post(path, token, body))
    }

    fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.rt.block_on(self.https.put(path, token, body))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        self.rt.block_on(self.https.send(method, path, token, body))
    }

    /// Creates `object` as `token`, asserting 201.
    fn create(&self, token: &str, object: &Value) -> Reply {
        self.rt
            .block_on(self.https.create(&collection_of(object), token, object))
    }
}

/// Runs kubectl `version` with `kubeconfig` (a user's) and the server's cache directory.
fn kubectl_as(coffer: &Coffer, version: &str, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(support::kubectl_binary(version))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(coffer.data_dir().join(format!("kube-cache-{version}")))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// kubectl as `kubeconfig` must succeed; returns stdout.
fn ok_as(coffer: &Coffer, version: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl_as(coffer, version, kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {version} {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// kubectl as `kubeconfig` must fail and print exactly `expected` on stderr.
fn refused_as(coffer: &Coffer, version: &str, kubeconfig: &Path, args: &[&str], expected: &str) {
    let out = kubectl_as(coffer, version, kubeconfig, args);
    assert!(
        !out.status.success(),
        "kubectl {version} {args:?} unexpectedly succeeded: {}",
        stdout(&out)
    );
    assert_eq!(
        stderr(&out).trim(),
        expected,
        "kubectl {version} {args:?} stderr"
    );
}

/// Whitespace-split rows of kubectl's table output.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// An RBAC object of `kind` named `name` (in `namespace` when given).
fn rbac_object(kind: &str, name: &str, namespace: Option<&str>) -> Value {
    let mut meta = json!({"name": name});
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta})
}

/// A RoleBinding or ClusterRoleBinding of `role` to one user.
fn user_binding(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    role_kind: &str,
    role: &str,
    user: &str,
) -> Value {
    let mut binding = rbac_object(kind, name, namespace);
    binding["roleRef"] =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role});
    binding["subjects"] =
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]);
    binding
}

/// A Role or ClusterRole with `rules`.
fn role(kind: &str, name: &str, namespace: Option<&str>, rules: Value) -> Value {
    let mut role = rbac_object(kind, name, namespace);
    role["rules"] = rules;
    role
}

fn secret(name: &str, namespace: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[path = "e2e_rbac/aggregation.rs"]
mod aggregation;
#[path = "e2e_rbac/default_deny.rs"]
mod default_deny;
#[path = "e2e_rbac/escalation.rs"]
mod escalation;
#[path = "e2e_rbac/kubectl.rs"]
mod kubectl;
#[path = "e2e_rbac/matrix.rs"]
mod matrix;
#[path = "e2e_rbac/withhold.rs"]
mod withhold;
