//! Kubernetes awareness: split manifests into documents, find secret values in Secrets,
//! ConfigMaps and Pod templates, and mark encrypted or reference-only documents as safe.
//!
//! Safe documents (their lines are exempt from the text rules, because their values are
//! ciphertext or references): `SealedSecret` (bitnami), `ExternalSecret`, `ClusterExternalSecret`,
//! `PushSecret` (External Secrets Operator), `SopsSecret`, and any file or document that carries
//! SOPS metadata (a top-level `sops` mapping with a `mac`).

use std::ops::RangeInclusive;

use base64::Engine as _;
use serde_json::Value;

use crate::detect::Candidate;
use crate::heuristics::{is_placeholder, is_sensitive_name, shannon_entropy};

/// One parsed manifest object and where it is.
pub(crate) struct Object {
    pub value: Value,
    /// The text of the document the object came from.
    pub doc: String,
    /// 1-based line where that document starts in the file.
    pub first_line: usize,
}

impl Object {
    /// The object's `kind`, or "".
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// `metadata.name`, or "".
    pub fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"]).unwrap_or("")
    }

    /// `metadata.namespace`, or "".
    pub fn namespace(&self) -> &str {
        str_at(&self.value, &["metadata", "namespace"]).unwrap_or("")
    }

    /// The line of the first occurrence of `needle` in the document, else the line of `kind:`,
    /// else the document's first line.
    pub fn line_of(&self, needle: &str) -> usize {
        let find = |n: &str| {
            if n.is_empty() {
                return None;
            }
            self.doc
                .find(n)
                .map(|i| self.doc[..i].matches('\n').count())
        };
        self.first_line + find(needle).or_else(|| find("kind")).unwrap_or(0)
    }

    /// The line of map key `key` (JSON `"key"` or YAML `key:`).
    pub fn key_line(&self, key: &str) -> usize {
        let json = format!("\"{key}\"");
        if self.doc.contains(&json) {
            self.line_of(&json)
        } else {
            self.line_of(&format!("{key}:"))
        }
    }
}

/// What the manifest pass found in one file.
#[derive(Default)]
pub(crate) struct Manifests {
    pub candidates: Vec<Candidate>,
    /// Line ranges (1-based, inclusive) whose text-rule matches are ignored.
    pub safe_lines: Vec<RangeInclusive<usize>>,
    pub objects: Vec<Object>,
}

/// Parses `text` as YAML (multi-document) or JSON when `path` looks like a manifest and
/// extracts secret candidates. Documents that fail to parse (Helm templates, ...) are skipped;
/// the text rules still see them.
pub(crate) fn scan_manifests(path: &str, text: &str) -> Manifests {
    let mut out = Manifests::default();
    let lower = path.to_ascii_lowercase();
    if !(lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")) {
        return out;
    }
    // Cheap precheck: every object this pass looks at has a `kind`, every SOPS file `sops`
    // (keeps large package-lock.json files and the like out of the YAML parser).
    if !text.contains("kind") && !text.contains("sops") {
        return out;
    }
    for (first_line, doc) in split_documents(text) {
        let Ok(value) = serde_yaml::from_str::<Value>(doc) else {
            continue;
        };
        let last_line = first_line + doc.trim_end_matches('\n').matches('\n').count();
        if is_sops(&value) {
            out.safe_lines.push(first_line..=last_line);
            continue;
        }
        let mut objects = Vec::new();
        flatten(value, &mut objects);
        for value in objects {
            let obj = Object {
                value,
                doc: doc.to_string(),
                first_line,
            };
            if SAFE_KINDS.contains(&obj.kind()) {
                out.safe_lines.push(first_line..=last_line);
                continue;
            }
            secret_values(&obj, &mut out.candidates);
            out.objects.push(obj);
        }
    }
    out
}

const SAFE_KINDS: &[&str] = &[
    "SealedSecret",
    "ExternalSecret",
    "ClusterExternalSecret",
    "PushSecret",
    "SopsSecret",
];

/// Keys of Secret data that are identifiers or public material, not secrets.
const PUBLIC_KEYS: &[&str] = &[
    "username",
    "user",
    "host",
    "hostname",
    "port",
    "database",
    "dbname",
    "db",
    "namespace",
    "region",
    "email",
    "ca.crt",
    "tls.crt",
    "url",
    "endpoint",
];

/// Objects listed from a live API server (or any JSON source), `List` kinds expanded. They have
/// no text, so every location is line 1.
pub(crate) fn live_objects(values: Vec<Value>) -> Vec<Object> {
    let mut flat = Vec::new();
    for v in values {
        flatten(v, &mut flat);
    }
    flat.into_iter()
        .map(|value| Object {
            value,
            doc: String::new(),
            first_line: 1,
        })
        .collect()
}

/// Secret candidates of a live object: ConfigMap values and Pod env literals. Secrets are
/// skipped (holding values is their job) and so is everything already safe.
pub(crate) fn live_candidates(obj: &Object) -> Vec<Candidate> {
    let mut out = Vec::new();
    if !matches!(obj.kind(), "Secret" | "EncryptionConfiguration")
        && !SAFE_KINDS.contains(&obj.kind())
    {
        secret_values(obj, &mut out);
    }
    out
}

/// Splits YAML on `---` document markers; returns (first line, text) per document.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            if offset > start {
                docs.push((start_line, &text[start..offset]));
            }
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    if start < text.len() {
        docs.push((start_line, &text[start..]));
    }
    docs
}

fn is_sops(v: &Value) -> bool {
    v.get("sops")
        .is_some_and(|s| s.get("mac").is_some() || s.get("lastmodified").is_some())
}

/// Flattens `List` kinds (`kind: List` or any `*List` with `items`).
fn flatten(v: Value, out: &mut Vec<Value>) {
    let is_list = v
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    match (is_list, v) {
        (true, Value::Object(mut m)) => {
            if let Some(Value::Array(items)) = m.remove("items") {
                for item in items {
                    flatten(item, out);
                }
            }
        }
        (_, v @ Value::Object(_)) => out.push(v),
        _ => {}
    }
}

pub(crate) fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn secret_values(obj: &Object, out: &mut Vec<Candidate>) {
    match obj.kind() {
        "Secret" => secret_manifest(obj, out),
        "ConfigMap" => configmap(obj, out),
        "EncryptionConfiguration" => encryption_keys(obj, out),
        _ => {
            for (container, spec) in containers(&obj.value) {
                env_literals(obj, container, spec, out);
            }
        }
    }
}

fn secret_manifest(obj: &Object, out: &mut Vec<Candidate>) {
    let name = obj.name();
    if let Some(Value::Object(data)) = obj.value.get("data") {
        for (key, v) in data {
            let Some(encoded) = v.as_str() else { continue };
            if PUBLIC_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
                continue;
            }
            let compact: String = encoded.split_whitespace().collect();
            let value = match base64::engine::general_purpose::STANDARD.decode(&compact) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(s) => s,
                    Err(_) => compact.clone(),
                },
                Err(_) => compact.clone(),
            };
            if is_placeholder(&value) || is_public_pem(&value) {
                continue;
            }
            let needle = compact.get(..compact.len().min(24)).unwrap_or("");
            out.push(Candidate {
                rule: "k8s-secret-data",
                line: obj.line_of(needle),
                value,
                span: None,
                detail: Some(format!("Secret/{name} key `{key}`")),
            });
        }
    }
    if let Some(Value::Object(data)) = obj.value.get("stringData") {
        for (key, v) in data {
            let Some(value) = v.as_str() else { continue };
            if PUBLIC_KEYS.contains(&key.to_ascii_lowercase().as_str())
                || is_placeholder(value)
                || is_public_pem(value)
            {
                continue;
            }
            out.push(Candidate {
                rule: "k8s-secret-stringdata",
                line: obj.key_line(key),
                value: value.to_string(),
                span: None,
                detail: Some(format!("Secret/{name} key `{key}`")),
            });
        }
    }
}

fn is_public_pem(v: &str) -> bool {
    v.contains("-----BEGIN CERTIFICATE") && !v.contains("PRIVATE KEY")
}

/// A literal looks like a secret when its name is sensitive and the value is a non-placeholder
/// of 6+ characters with at least 2.5 bits/char of entropy.
fn looks_secret(name: &str, value: &str) -> bool {
    is_sensitive_name(name)
        && value.chars().count() >= 6
        && !is_placeholder(value)
        && shannon_entropy(value) >= 2.5
}

fn configmap(obj: &Object, out: &mut Vec<Candidate>) {
    let Some(Value::Object(data)) = obj.value.get("data") else {
        return;
    };
    for (key, v) in data {
        let Some(value) = v.as_str() else { continue };
        if value.contains('\n') || !looks_secret(key, value) {
            continue;
        }
        out.push(Candidate {
            rule: "k8s-configmap-secret",
            line: obj.key_line(key),
            value: value.to_string(),
            span: None,
            detail: Some(format!("ConfigMap/{} key `{key}`", obj.name())),
        });
    }
}

fn encryption_keys(obj: &Object, out: &mut Vec<Candidate>) {
    for (provider, key_name, secret) in encryption_key_material(&obj.value) {
        if is_placeholder(secret) {
            continue;
        }
        let needle = secret.get(..secret.len().min(24)).unwrap_or("");
        out.push(Candidate {
            rule: "k8s-encryption-key",
            line: obj.line_of(needle),
            value: secret.to_string(),
            span: None,
            detail: Some(format!("provider `{provider}` key `{key_name}`")),
        });
    }
}

/// (provider, key name, base64 secret) for every aescbc/aesgcm/secretbox key.
pub(crate) fn encryption_key_material(v: &Value) -> Vec<(&str, &str, &str)> {
    let mut keys = Vec::new();
    for res in v
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for prov in res
            .get("providers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(map) = prov.as_object() else {
                continue;
            };
            for (pname, cfg) in map {
                for k in cfg
                    .get("keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(secret) = k.get("secret").and_then(Value::as_str) {
                        let kname = k.get("name").and_then(Value::as_str).unwrap_or("");
                        keys.push((pname.as_str(), kname, secret));
                    }
                }
            }
        }
    }
    keys
}

/// The Pod spec inside a workload object: Pod, Deployment-like (`spec.template.spec`),
/// CronJob (`spec.jobTemplate.spec.template.spec`).
pub(crate) fn pod_spec(v: &Value) -> Option<&Value> {
    let kind = v.get("kind").and_then(Value::as_str)?;
    let spec = v.get("spec")?;
    match kind {
        "Pod" => Some(spec),
        "CronJob" => spec
            .get("jobTemplate")?
            .get("spec")?
            .get("template")?
            .get("spec"),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController"
        | "PodTemplate" => spec.get("template")?.get("spec"),
        _ => None,
    }
}

/// (container name, container) for containers, initContainers and ephemeralContainers.
pub(crate) fn containers(v: &Value) -> Vec<(&str, &Value)> {
    let Some(spec) = pod_spec(v) else {
        return Vec::new();
    };
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|f| spec.get(f).and_then(Value::as_array))
        .flatten()
        .map(|c| (c.get("name").and_then(Value::as_str).unwrap_or(""), c))
        .collect()
}

fn env_literals(obj: &Object, container: &str, spec: &Value, out: &mut Vec<Candidate>) {
    for env in spec
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(name), Some(value)) = (
            env.get("name").and_then(Value::as_str),
            env.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        if !looks_secret(name, value) {
            continue;
        }
        out.push(Candidate {
            rule: "k8s-env-literal-secret",
            line: obj.line_of(name),
            value: value.to_string(),
            span: None,
            detail: Some(format!(
                "{}/{} container `{container}` env `{name}`",
                obj.kind(),
                obj.name()
            )),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(m: &Manifests) -> Vec<(&'static str, usize)> {
        m.candidates.iter().map(|c| (c.rule, c.line)).collect()
    }

    #[test]
    fn splits_documents_with_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- # c\nc: 3\n");
        assert_eq!(docs, vec![(1, "a: 1\n"), (3, "b: 2\n"), (5, "c: 3\n")]);
    }

    #[test]
    fn secret_data_is_decoded_and_public_keys_skipped() {
        // password = MyStrongPassword, username = admin, other = changeme
        let y = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  username: YWRtaW4=\n  password: TXlTdHJvbmdQYXNzd29yZA==\n  other: Y2hhbmdlbWU=\n";
        let m = scan_manifests("s.yaml", y);
        assert_eq!(rules(&m), vec![("k8s-secret-data", 7)]);
        assert_eq!(m.candidates[0].value, "MyStrongPassword");
    }

    #[test]
    fn json_list_and_string_data() {
        let j = r#"{"kind":"List","apiVersion":"v1","items":[
 {"kind":"Secret","apiVersion":"v1","metadata":{"name":"a"},
  "stringData":{"token":"Zq8Xk2m9Qp4Lr7"}}]}"#;
        let m = scan_manifests("l.json", j);
        assert_eq!(rules(&m), vec![("k8s-secret-stringdata", 3)]);
    }

    #[test]
    fn safe_kinds_and_sops_are_exempt() {
        let y = "kind: SealedSecret\nspec:\n  encryptedData:\n    password: AgBy3i4OJSWK+PiTySYZZA==\n---\npassword: ENC[AES256_GCM,data:x]\nsops:\n  mac: ENC[x]\n";
        let m = scan_manifests("s.yaml", y);
        assert!(m.candidates.is_empty());
        assert_eq!(m.safe_lines, vec![1..=4, 6..=8]);
    }

    #[test]
    fn env_literals_in_workloads_and_configmaps() {
        let y = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        env:\n        - name: DB_PASSWORD\n          value: Kx9pL2mQ7r\n        - name: LOG_LEVEL\n          value: debug\n---\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  api_key: Zq8Xk2m9Qp4Lr7\n  mode: fast\n";
        let m = scan_manifests("d.yml", y);
        assert_eq!(
            rules(&m),
            vec![("k8s-env-literal-secret", 10), ("k8s-configmap-secret", 19)]
        );
    }

    #[test]
    fn json_sops_file_and_dockerconfig_secret() {
        let sops = r#"{"password": "ENC[AES256_GCM,data:x]", "sops": {"mac": "ENC[x]", "version": "3.9.0"}}"#;
        let m = scan_manifests("s.json", sops);
        assert!(m.candidates.is_empty());
        assert_eq!(m.safe_lines, vec![1..=1]);
        // {"auths":{"r":{"auth":"dXNlcjpLeDlwTDJtUTdy"}}}
        let docker = "kind: Secret
metadata:
  name: pull
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: eyJhdXRocyI6eyJyIjp7ImF1dGgiOiJkWE5sY2pwTGVEbHdUREp0VVRkeSJ9fX0=
";
        assert_eq!(
            rules(&scan_manifests("p.yaml", docker)),
            vec![("k8s-secret-data", 6)]
        );
    }

    #[test]
    fn non_manifest_files_are_ignored() {
        assert!(scan_manifests("a.py", "kind: Secret").objects.is_empty());
        assert!(
            scan_manifests("t.yaml", "{{ if .x }}: [")
                .objects
                .is_empty()
        );
    }
}
