//! Posture checks of manifests: EncryptionConfiguration, RBAC and Pod specs.
//!
//! Per-object checks run as objects arrive ([`Posture::check`]); binding checks need every
//! Role and ClusterRole of the tree and run at the end ([`Posture::finish`]).
//!
//! Sources: the Kubernetes docs on encryption at rest (identity first = plaintext; aescbc is no
//! longer recommended because of padding-oracle attacks), the CIS Kubernetes Benchmark 5.1.2/5.1.3
//! (minimize access to secrets, no wildcards) and 5.4.1 (prefer secrets as files), and
//! `reference/anchors.md` §7.3.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use serde_json::Value;

use crate::finding::{Finding, Location, Severity};
use crate::kube::{Object, containers, encryption_key_material, pod_spec, str_at};
use crate::rules::info;

/// Built-in ClusterRoles that can read secrets.
const BUILTIN_SECRET_READERS: &[&str] = &["cluster-admin", "admin", "edit"];

/// Groups and users that stand for "everyone" or "every ServiceAccount".
fn is_broad_subject(kind: &str, name: &str) -> bool {
    match kind {
        "Group" => {
            matches!(
                name,
                "system:authenticated" | "system:unauthenticated" | "system:serviceaccounts"
            ) || name.starts_with("system:serviceaccounts:")
        }
        "User" => name == "system:anonymous",
        _ => false,
    }
}

struct Binding {
    location: Location,
    kind: String,
    name: String,
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<(String, String)>,
}

/// Collects posture findings over a tree.
#[derive(Default)]
pub(crate) struct Posture {
    /// (kind, namespace, name) of roles that can read secrets ("" namespace for ClusterRoles).
    secret_readers: HashSet<(String, String, String)>,
    bindings: Vec<Binding>,
}

impl Posture {
    /// Checks one object; `at` builds the location for a line.
    pub fn check(&mut self, obj: &Object, at: &dyn Fn(usize) -> Location) -> Vec<Finding> {
        let mut out = Vec::new();
        match obj.kind() {
            "EncryptionConfiguration" => encryption(obj, at, &mut out),
            "Role" | "ClusterRole" => {
                if role(obj, at, &mut out) {
                    let ns = if obj.kind() == "Role" {
                        obj.namespace()
                    } else {
                        ""
                    };
                    self.secret_readers
                        .insert((obj.kind().into(), ns.into(), obj.name().into()));
                }
            }
            "RoleBinding" | "ClusterRoleBinding" => self.bindings.push(binding(obj, at)),
            _ => pods(obj, at, &mut out),
        }
        out
    }

    /// Checks bindings against the roles seen.
    pub fn finish(self) -> Vec<Finding> {
        let mut out = Vec::new();
        for b in &self.bindings {
            let ns = if b.role_kind == "Role" {
                b.namespace.as_str()
            } else {
                ""
            };
            let reads = self.secret_readers.contains(&(
                b.role_kind.clone(),
                ns.to_string(),
                b.role_name.clone(),
            )) || (b.role_kind == "ClusterRole"
                && BUILTIN_SECRET_READERS.contains(&b.role_name.as_str()));
            if !reads {
                continue;
            }
            let id = format!("{}/{}/{}", b.kind, b.namespace, b.name);
            if b.kind == "ClusterRoleBinding" {
                out.push(posture(
                    "rbac-cluster-wide-secret-binding",
                    format!(
                        "ClusterRoleBinding/{} grants {}/{} (reads secrets) in every namespace",
                        b.name, b.role_kind, b.role_name
                    ),
                    &id,
                    b.location.clone(),
                ));
            }
            for (kind, name) in &b.subjects {
                if is_broad_subject(kind, name) {
                    out.push(posture(
                        "rbac-broad-subject-secrets",
                        format!(
                            "{}/{} gives {kind} {name} secret access through {}/{}",
                            b.kind, b.name, b.role_kind, b.role_name
                        ),
                        &format!("{id}/{kind}/{name}"),
                        b.location.clone(),
                    ));
                }
            }
        }
        out
    }
}

fn posture(rule: &str, message: String, identity: &str, location: Location) -> Finding {
    let i = info(rule);
    Finding::posture(rule, i.severity, message, i.fix, identity, location)
}

fn posture_sev(
    rule: &str,
    severity: Severity,
    message: String,
    identity: &str,
    location: Location,
) -> Finding {
    Finding::posture(rule, severity, message, info(rule).fix, identity, location)
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn encryption(obj: &Object, at: &dyn Fn(usize) -> Location, out: &mut Vec<Finding>) {
    let entries: Vec<&Value> = obj
        .value
        .get("resources")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // The first entry that matches secrets wins, as in kube-apiserver.
    let secrets_entry = entries.iter().find(|e| {
        strings(e.get("resources"))
            .iter()
            .any(|r| matches!(*r, "secrets" | "*.*" | "*."))
    });
    let name = "EncryptionConfiguration";
    match secrets_entry {
        None => out.push(posture(
            "encryption-secrets-not-covered",
            "EncryptionConfiguration has no entry for `secrets`: they are stored in plaintext"
                .into(),
            name,
            at(obj.line_of("resources")),
        )),
        Some(entry) => {
            let first = entry
                .get("providers")
                .and_then(Value::as_array)
                .and_then(|p| p.first())
                .and_then(Value::as_object)
                .and_then(|m| m.keys().next().cloned())
                .unwrap_or_else(|| "identity".into());
            if first == "identity" {
                out.push(posture(
                    "encryption-identity-first",
                    "The first provider for secrets is `identity`: new secrets are written unencrypted".into(),
                    name,
                    at(obj.line_of("identity")),
                ));
            } else if first == "aescbc" {
                out.push(posture(
                    "encryption-aescbc-first",
                    "The first provider for secrets is `aescbc`".into(),
                    name,
                    at(obj.line_of("aescbc")),
                ));
            }
        }
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (provider, key_name, secret) in encryption_key_material(&obj.value) {
        let id = format!("{name}/{provider}/{key_name}");
        let line = at(obj.line_of(&format!("name: {key_name}")));
        match base64::engine::general_purpose::STANDARD.decode(secret.trim()) {
            Ok(bytes) if bytes.len() >= 32 => {}
            Ok(bytes) => {
                let valid = matches!((provider, bytes.len()), ("aescbc" | "aesgcm", 16 | 24));
                let sev = if valid {
                    Severity::Medium
                } else {
                    Severity::High
                };
                out.push(posture_sev(
                    "encryption-weak-key",
                    sev,
                    format!("Key `{key_name}` of `{provider}` is {} bytes", bytes.len()),
                    &id,
                    line.clone(),
                ));
            }
            Err(_) => out.push(posture_sev(
                "encryption-weak-key",
                Severity::High,
                format!("Key `{key_name}` of `{provider}` is not valid base64"),
                &id,
                line.clone(),
            )),
        }
        if let Some(prev) = seen.insert(secret, key_name) {
            out.push(posture(
                "encryption-key-reused",
                format!("Key `{key_name}` of `{provider}` has the same value as key `{prev}`"),
                &id,
                line,
            ));
        }
    }
}

/// Checks a Role/ClusterRole; returns whether it can read secrets.
fn role(obj: &Object, at: &dyn Fn(usize) -> Location, out: &mut Vec<Finding>) -> bool {
    let mut reads = false;
    let rules = obj.value.get("rules").and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let groups = strings(rule.get("apiGroups"));
        let resources = strings(rule.get("resources"));
        let verbs = strings(rule.get("verbs"));
        let core = groups.iter().any(|g| g.is_empty() || *g == "*");
        let covers = resources.iter().any(|r| matches!(*r, "secrets" | "*"));
        if !core || !covers {
            continue;
        }
        let id = format!("{}/{}/{}/rule{i}", obj.kind(), obj.namespace(), obj.name());
        let who = format!("{}/{}", obj.kind(), obj.name());
        let needle = if obj.doc.contains("secrets") {
            "secrets"
        } else {
            "rules"
        };
        let line = at(obj.line_of(needle));
        let wildcard = verbs.contains(&"*") || resources.contains(&"*");
        // With resourceNames, list and watch reach only the named Secrets (through a
        // `metadata.name` field selector), which is what `kubectl get secret X -w` and agents
        // watching one Secret need: not a broad grant.
        let named = !strings(rule.get("resourceNames")).is_empty();
        let list_watch = !named && verbs.iter().any(|v| matches!(*v, "list" | "watch"));
        if wildcard {
            out.push(posture(
                "rbac-wildcard-secrets",
                format!("{who} rule {i} grants `*` on secrets (verbs {verbs:?}, resources {resources:?})"),
                &id,
                line,
            ));
        } else if list_watch {
            out.push(posture(
                "rbac-list-watch-secrets",
                format!("{who} rule {i} grants {verbs:?} on secrets"),
                &id,
                line,
            ));
        }
        reads |= wildcard || list_watch || verbs.contains(&"get");
    }
    reads
}

fn binding(obj: &Object, at: &dyn Fn(usize) -> Location) -> Binding {
    let subjects = obj
        .value
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            let f = |k| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (f("kind"), f("name"))
        })
        .collect();
    Binding {
        location: at(obj.line_of("roleRef")),
        kind: obj.kind().into(),
        name: obj.name().into(),
        namespace: obj.namespace().into(),
        role_kind: str_at(&obj.value, &["roleRef", "kind"])
            .unwrap_or("")
            .into(),
        role_name: str_at(&obj.value, &["roleRef", "name"])
            .unwrap_or("")
            .into(),
        subjects,
    }
}

fn pods(obj: &Object, at: &dyn Fn(usize) -> Location, out: &mut Vec<Finding>) {
    let Some(spec) = pod_spec(&obj.value) else {
        return;
    };
    let who = format!("{}/{}", obj.kind(), obj.name());
    for (cname, c) in containers(&obj.value) {
        for env in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            if env.pointer("/valueFrom/secretKeyRef").is_some() {
                let name = env.get("name").and_then(Value::as_str).unwrap_or("");
                out.push(posture(
                    "pod-secret-env",
                    format!("{who} container `{cname}` reads a Secret into env `{name}`"),
                    &format!("{who}/{cname}/env/{name}"),
                    at(obj.line_of(&format!("name: {name}"))),
                ));
            }
        }
        for from in c
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(secret) = from.pointer("/secretRef/name").and_then(Value::as_str) {
                out.push(posture(
                    "pod-secret-env",
                    format!(
                        "{who} container `{cname}` loads Secret `{secret}` as env vars (envFrom)"
                    ),
                    &format!("{who}/{cname}/envFrom/{secret}"),
                    at(obj.line_of("secretRef")),
                ));
            }
        }
    }
    if spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        != Some(false)
    {
        out.push(posture(
            "pod-automount-token",
            format!("{who} does not set automountServiceAccountToken: false"),
            &format!("{who}/automount"),
            at(obj.line_of("spec")),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::scan_manifests;

    fn run(yaml: &str) -> Vec<(String, Severity, usize)> {
        let m = scan_manifests("m.yaml", yaml);
        let mut p = Posture::default();
        let at = |line| Location {
            path: "m.yaml".into(),
            line,
            commit: None,
        };
        let mut out: Vec<Finding> = m.objects.iter().flat_map(|o| p.check(o, &at)).collect();
        out.extend(p.finish());
        out.into_iter()
            .map(|f| (f.rule, f.severity, f.location.line))
            .collect()
    }

    const KEY32: &str = "c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/IDMyYnk="; // 32 bytes

    #[test]
    fn encryption_identity_first_and_reused_key() {
        let y = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {{}}\n  - aesgcm:\n      keys:\n      - name: k1\n        secret: {KEY32}\n      - name: k2\n        secret: {KEY32}\n"
        );
        let got = run(&y);
        assert_eq!(
            got[0],
            ("encryption-identity-first".into(), Severity::High, 6)
        );
        assert_eq!(
            got[1],
            ("encryption-key-reused".into(), Severity::Medium, 11)
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn encryption_not_covering_secrets_and_aescbc_short_key() {
        let y = "kind: EncryptionConfiguration\nresources:\n- resources: [configmaps]\n  providers:\n  - aescbc:\n      keys:\n      - name: k1\n        secret: c2hvcnQ=\n";
        let rules: Vec<_> = run(y).into_iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(
            rules,
            vec![
                ("encryption-secrets-not-covered".into(), Severity::High),
                ("encryption-weak-key".into(), Severity::High),
            ]
        );
        let y2 = format!(
            "kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: k1\n        secret: {KEY32}\n"
        );
        assert_eq!(
            run(&y2),
            vec![("encryption-aescbc-first".into(), Severity::Medium, 5)]
        );
    }

    #[test]
    fn list_and_watch_limited_by_resource_names_are_not_broad() {
        let named = "kind: Role\nmetadata:\n  name: one\n  namespace: app\nrules:\n- apiGroups: [\"\"]\n  resources: [secrets]\n  resourceNames: [db]\n  verbs: [get, list, watch]\n";
        assert!(run(named).is_empty(), "{:?}", run(named));
        let broad = named.replace("  resourceNames: [db]\n", "");
        let got: Vec<_> = run(&broad).into_iter().map(|r| r.0).collect();
        assert_eq!(got, vec!["rbac-list-watch-secrets"]);
    }

    #[test]
    fn rbac_wildcards_list_and_broad_bindings() {
        let y = "kind: ClusterRole\nmetadata:\n  name: reader\nrules:\n- apiGroups: [\"\"]\n  resources: [secrets]\n  verbs: [get, list]\n---\nkind: ClusterRoleBinding\nmetadata:\n  name: all-read\nroleRef:\n  kind: ClusterRole\n  name: reader\nsubjects:\n- kind: Group\n  name: system:authenticated\n---\nkind: Role\nmetadata:\n  name: god\n  namespace: app\nrules:\n- apiGroups: [\"*\"]\n  resources: [\"*\"]\n  verbs: [\"*\"]\n";
        let got: Vec<_> = run(y).into_iter().map(|r| r.0).collect();
        assert_eq!(
            got,
            vec![
                "rbac-list-watch-secrets",
                "rbac-wildcard-secrets",
                "rbac-cluster-wide-secret-binding",
                "rbac-broad-subject-secrets",
            ]
        );
    }

    #[test]
    fn narrow_rbac_is_clean() {
        let y = "kind: Role\nmetadata:\n  name: one\n  namespace: app\nrules:\n- apiGroups: [\"\"]\n  resources: [secrets]\n  resourceNames: [db]\n  verbs: [get]\n---\nkind: RoleBinding\nmetadata:\n  name: one\n  namespace: app\nroleRef:\n  kind: Role\n  name: one\nsubjects:\n- kind: ServiceAccount\n  name: web\n  namespace: app\n";
        assert!(run(y).is_empty());
    }

    #[test]
    fn pods_with_secret_env_and_automount() {
        let y = "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: app\n    env:\n    - name: DB_PASSWORD\n      valueFrom:\n        secretKeyRef:\n          name: db\n          key: password\n    envFrom:\n    - secretRef:\n        name: all\n";
        let got: Vec<_> = run(y).into_iter().map(|r| (r.0, r.2)).collect();
        assert_eq!(
            got,
            vec![
                ("pod-secret-env".into(), 8),
                ("pod-secret-env".into(), 14),
                ("pod-automount-token".into(), 4),
            ]
        );
        let quiet = "kind: Pod\nmetadata:\n  name: p\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - name: app\n    volumeMounts:\n    - name: s\n      mountPath: /s\n";
        assert!(run(quiet).is_empty());
    }
}
