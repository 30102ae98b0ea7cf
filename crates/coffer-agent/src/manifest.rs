//! Reading the Pod spec out of a manifest: a Pod, or the pod template of a Deployment,
//! StatefulSet, DaemonSet, ReplicaSet, Job or CronJob, as `kubectl apply -f` would read it.
//! No I/O: the caller passes the text.

use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_yaml::Value;

/// Why a manifest gave no usable Pod spec.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML or JSON.
    #[error("the manifest is not valid YAML: {0}")]
    Yaml(#[source] serde_yaml::Error),
    /// No document has a kind that carries a pod spec.
    #[error(
        "the manifest has no Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob"
    )]
    NoPod,
    /// The pod spec does not have the shape of a Kubernetes `PodSpec`.
    #[error("{kind} {name:?}: the pod spec at {path} is not a valid PodSpec: {source}")]
    InvalidSpec {
        /// The document's kind.
        kind: String,
        /// The document's name.
        name: String,
        /// Where the pod spec was looked for, like `spec.template.spec`.
        path: String,
        /// The decoder's complaint.
        #[source]
        source: serde_yaml::Error,
    },
    /// `--container` names no container of the pod.
    #[error("container {wanted:?} not found in {kind} {name:?}; its containers are: {known}")]
    NoSuchContainer {
        /// The name asked for.
        wanted: String,
        /// The document's kind.
        kind: String,
        /// The document's name.
        name: String,
        /// The containers it has, comma separated.
        known: String,
    },
    /// The pod spec has no containers.
    #[error("{kind} {name:?} has no containers")]
    NoContainers {
        /// The document's kind.
        kind: String,
        /// The document's name.
        name: String,
    },
}

/// The pod spec found in a manifest, with the object's identity.
#[derive(Clone, Debug)]
pub struct PodTemplate {
    /// `kind` of the document (`Pod`, `Deployment`, ...).
    pub kind: String,
    /// `metadata.name` of the document (empty if absent).
    pub name: String,
    /// `metadata.namespace` of the document, if written.
    pub namespace: Option<String>,
    /// The pod's metadata: the Pod's own, or the template's (`spec.template.metadata`) for
    /// a workload. Read for the downward API.
    pub metadata: ObjectMeta,
    /// The pod spec.
    pub spec: PodSpec,
    /// `status` of a Pod, if written (its `podIP` and `hostIP` feed the downward API).
    pub status: Option<PodStatus>,
}

impl PodTemplate {
    /// The container named `name`, or the first container when `name` is `None` (as
    /// `kubectl exec` and `kubectl logs` pick a default).
    pub fn container(&self, name: Option<&str>) -> Result<&Container, ManifestError> {
        let containers = &self.spec.containers;
        match name {
            None => containers
                .first()
                .ok_or_else(|| ManifestError::NoContainers {
                    kind: self.kind.clone(),
                    name: self.name.clone(),
                }),
            Some(wanted) => containers.iter().find(|c| c.name == wanted).ok_or_else(|| {
                ManifestError::NoSuchContainer {
                    wanted: wanted.to_owned(),
                    kind: self.kind.clone(),
                    name: self.name.clone(),
                    known: containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            }),
        }
    }
}

/// Parses the first document of `text` (YAML or JSON, `---`-separated) whose kind carries a
/// pod spec, and returns that spec.
pub fn parse_manifest(text: &str) -> Result<PodTemplate, ManifestError> {
    use serde::Deserialize as _;
    for document in serde_yaml::Deserializer::from_str(text) {
        let mut value = Value::deserialize(document).map_err(ManifestError::Yaml)?;
        yaml11_octal_modes(&mut value);
        let Some(kind) = value.get("kind").and_then(Value::as_str) else {
            continue;
        };
        let path: &'static [&'static str] = match kind {
            "Pod" => &["spec"],
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "Job"
            | "ReplicationController"
            | "PodTemplate" => &["spec", "template", "spec"],
            "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => continue,
        };
        // A `PodTemplate` object keeps its spec under `template.spec`.
        let path: &'static [&'static str] = if kind == "PodTemplate" {
            &["template", "spec"]
        } else {
            path
        };
        let metadata = value.get("metadata");
        let field = |f: &str| {
            metadata
                .and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let name = field("name").unwrap_or_default();
        let namespace = field("namespace");
        let spec = path
            .iter()
            .try_fold(&value, |v, key| v.get(*key))
            .cloned()
            .unwrap_or(Value::Null);
        let spec: PodSpec =
            serde_yaml::from_value(spec).map_err(|source| ManifestError::InvalidSpec {
                kind: kind.to_owned(),
                name: name.clone(),
                path: path.join("."),
                source,
            })?;
        // The pod's own metadata sits beside its spec; a bad one is ignored (it only feeds
        // the downward API), as is a bad status.
        let parent = path[..path.len() - 1]
            .iter()
            .try_fold(&value, |v, key| v.get(*key));
        let metadata = parent
            .and_then(|p| p.get("metadata"))
            .cloned()
            .and_then(|m| serde_yaml::from_value::<ObjectMeta>(m).ok())
            .unwrap_or_default();
        let status = (kind == "Pod")
            .then(|| value.get("status").cloned())
            .flatten()
            .and_then(|s| serde_yaml::from_value::<PodStatus>(s).ok());
        return Ok(PodTemplate {
            kind: kind.to_owned(),
            name,
            namespace,
            metadata,
            spec,
            status,
        });
    }
    Err(ManifestError::NoPod)
}

/// Reads `mode: 0400` as kubectl does. Kubernetes parses YAML 1.1, where a leading zero
/// makes an octal integer (0400 = 256); serde_yaml follows YAML 1.2, where `0400` is a
/// string. So a string of octal digits with a leading zero under a `mode` or `defaultMode`
/// key (the only integer fields of a pod spec written in octal) becomes that integer.
fn yaml11_octal_modes(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            for (key, v) in map.iter_mut() {
                let is_mode = matches!(key.as_str(), Some("mode" | "defaultMode"));
                if is_mode
                    && let Value::String(s) = v
                    && s.len() > 1
                    && s.starts_with('0')
                    && s.bytes().all(|b| matches!(b, b'0'..=b'7'))
                    && let Ok(n) = i64::from_str_radix(&s[1..], 8)
                {
                    *v = Value::Number(n.into());
                } else {
                    yaml11_octal_modes(v);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(yaml11_octal_modes),
        Value::Tagged(tagged) => yaml11_octal_modes(&mut tagged.value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide's step 3 Pod, verbatim.
    pub(crate) const GUIDE_ENV_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: app-pod
spec:
  containers:
  - name: app
    image: nginx
    env:
    - name: DB_USERNAME
      valueFrom:
        secretKeyRef:
          name: db-secret
          key: username
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef:
          name: db-secret
          key: password
"#;

    #[test]
    fn parses_the_guide_pod() {
        let pod = parse_manifest(GUIDE_ENV_POD).expect("parse");
        assert_eq!(pod.kind, "Pod");
        assert_eq!(pod.name, "app-pod");
        assert_eq!(pod.namespace, None);
        let c = pod.container(None).expect("container");
        assert_eq!(c.name, "app");
        assert_eq!(c.env.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn parses_a_deployment_template_after_other_documents() {
        let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {a: b}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: sidecar
        image: busybox
      - name: web
        image: nginx
        command: ["/bin/web"]
        args: ["--port", "80"]
"#;
        let pod = parse_manifest(text).expect("parse");
        assert_eq!(pod.kind, "Deployment");
        assert_eq!(pod.namespace.as_deref(), Some("shop"));
        let web = pod.container(Some("web")).expect("web");
        assert_eq!(web.command.as_deref(), Some(&["/bin/web".to_owned()][..]));
        let err = pod.container(Some("db")).expect_err("no db");
        assert_eq!(
            err.to_string(),
            r#"container "db" not found in Deployment "web"; its containers are: sidecar, web"#
        );
    }

    #[test]
    fn parses_a_cronjob_template() {
        let text = r#"{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},
            "spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":
            {"restartPolicy":"Never","containers":[{"name":"job","image":"x"}]}}}}}}"#;
        let pod = parse_manifest(text).expect("parse");
        assert_eq!(pod.container(None).expect("c").name, "job");
    }

    #[test]
    fn octal_modes_are_read_as_kubectl_reads_them() {
        let text = "kind: Pod\nspec:\n  containers: [{name: a}]\n  volumes:\n  - name: v\n    \
                    secret: {secretName: s, defaultMode: 0400, items: [{key: k, path: p, mode: 0o600}]}\n";
        let pod = parse_manifest(text).expect("parse");
        let secret = pod.spec.volumes.expect("volumes")[0]
            .secret
            .clone()
            .expect("secret");
        assert_eq!(secret.default_mode, Some(0o400));
        assert_eq!(secret.items.expect("items")[0].mode, Some(0o600));
    }

    #[test]
    fn rejects_manifests_without_pods() {
        let err = parse_manifest("kind: Service\nmetadata: {name: x}\n").expect_err("no pod");
        assert!(matches!(err, ManifestError::NoPod));
        let err = parse_manifest("kind: Pod\nspec:\n  containers: 3\n").expect_err("bad");
        assert!(err.to_string().contains("not a valid PodSpec"), "{err}");
    }
}
