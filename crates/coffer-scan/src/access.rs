//! Reverse RBAC: who can read each Secret.
//!
//! Given the RBAC objects and Secrets of a cluster (as listed from an API server, or from
//! manifests), [`secret_readers`] answers, for every Secret, which subjects can `get`, `list` or
//! `watch` it and through which binding. This is the question CIS 5.1.2 asks
//! (`kubectl auth can-i get,list,watch secrets`), answered for every subject at once.
//!
//! Model (RBAC as kube-apiserver evaluates it): a RoleBinding grants its role's rules in its own
//! namespace, a ClusterRoleBinding in every namespace. A rule covers secrets when `apiGroups`
//! holds `""` or `*` and `resources` holds `secrets` or `*`; it reads when `verbs` holds `get`,
//! `list`, `watch` or `*`. `resourceNames` limits the rule to those Secrets. The built-in
//! ClusterRoles `cluster-admin`, `admin` and `edit` read every Secret when the input does not
//! define them. Not modelled: aggregated ClusterRoles (their rules are filled in by the
//! controller, so a listed object already carries them), and non-RBAC authorizers.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::kube::str_at;
use crate::report::Format;

/// A subject that can read a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Reader {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// The subject's name.
    pub name: String,
    /// The ServiceAccount's namespace ("" for users and groups).
    pub namespace: String,
    /// The read verbs granted (`get`, `list`, `watch`; `*` as given).
    pub verbs: Vec<String>,
    /// The binding and role that grant it, e.g. `ClusterRoleBinding/ops -> ClusterRole/admin`.
    pub via: String,
}

/// The readers of one Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SecretAccess {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// Everyone who can read it, in binding order.
    pub readers: Vec<Reader>,
}

/// One rule of a role that reads secrets.
struct Grant {
    verbs: Vec<String>,
    names: Vec<String>,
}

/// For every Secret among `objects`, the subjects that can read it. Lists (`kind: *List`) are
/// not expanded here; pass their items.
pub fn secret_readers(objects: &[Value]) -> Vec<SecretAccess> {
    let kind = |o: &Value| {
        o.get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let meta = |o: &Value, f: &str| str_at(o, &["metadata", f]).unwrap_or("").to_string();
    let mut roles: HashMap<(String, String, String), Vec<Grant>> = HashMap::new();
    for o in objects {
        let k = kind(o);
        if k == "Role" || k == "ClusterRole" {
            let ns = if k == "Role" {
                meta(o, "namespace")
            } else {
                String::new()
            };
            roles.insert((k, ns, meta(o, "name")), grants(o));
        }
    }
    // (namespace the grant applies in, or None for all; resourceNames; the reader)
    let mut bound = Vec::new();
    for o in objects {
        let k = kind(o);
        if k != "RoleBinding" && k != "ClusterRoleBinding" {
            continue;
        }
        let ns = meta(o, "namespace");
        let role_kind = str_at(o, &["roleRef", "kind"]).unwrap_or("").to_string();
        let role_name = str_at(o, &["roleRef", "name"]).unwrap_or("").to_string();
        let role_ns = if role_kind == "Role" {
            ns.clone()
        } else {
            String::new()
        };
        let builtin;
        let rules = match roles.get(&(role_kind.clone(), role_ns, role_name.clone())) {
            Some(r) => r,
            None if role_kind == "ClusterRole"
                && matches!(role_name.as_str(), "cluster-admin" | "admin" | "edit") =>
            {
                builtin = vec![Grant {
                    verbs: vec!["get".into(), "list".into(), "watch".into()],
                    names: Vec::new(),
                }];
                &builtin
            }
            None => continue,
        };
        let scope = (k == "RoleBinding").then(|| ns.clone());
        let via = format!("{k}/{} -> {role_kind}/{role_name}", meta(o, "name"));
        for s in o
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let f = |key| s.get(key).and_then(Value::as_str).unwrap_or("").to_string();
            for g in rules {
                bound.push((
                    scope.clone(),
                    g.names.clone(),
                    Reader {
                        kind: f("kind"),
                        name: f("name"),
                        namespace: f("namespace"),
                        verbs: g.verbs.clone(),
                        via: via.clone(),
                    },
                ));
            }
        }
    }
    objects
        .iter()
        .filter(|o| kind(o) == "Secret")
        .map(|o| {
            let (ns, name) = (meta(o, "namespace"), meta(o, "name"));
            let readers = bound
                .iter()
                .filter(|(scope, names, _)| {
                    scope.as_ref().is_none_or(|s| *s == ns)
                        && (names.is_empty() || names.contains(&name))
                })
                .map(|(_, _, r)| r.clone())
                .collect();
            SecretAccess {
                namespace: ns,
                name,
                readers,
            }
        })
        .collect()
}

/// Parses objects listed from a cluster: JSON or YAML, one object, a `List`, or several YAML
/// documents (e.g. the output of `kubectl get ... -A -o json` or `-o yaml`). `List` kinds are
/// expanded.
pub fn parse_objects(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| Error::Objects {
            reason: e.to_string(),
        })?;
        flatten(value, &mut out);
    }
    Ok(out)
}

fn flatten(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(mut m) if m.get("items").is_some_and(Value::is_array) => {
            if let Some(Value::Array(items)) = m.remove("items") {
                for item in items {
                    flatten(item, out);
                }
            }
        }
        Value::Object(_) => out.push(v),
        _ => {}
    }
}

/// Renders the readers of each Secret: a table in [`Format::Text`], an array otherwise
/// (SARIF has no place for it, so it gets the JSON array too).
pub fn render_readers(access: &[SecretAccess], format: Format) -> String {
    if format != Format::Text {
        return serde_json::to_string(access).unwrap_or_else(|_| "[]".into());
    }
    let mut out = String::new();
    for a in access {
        let _ = writeln!(
            out,
            "Secret {}/{}: {} reader(s)",
            a.namespace,
            a.name,
            a.readers.len()
        );
        for r in &a.readers {
            let who = if r.namespace.is_empty() {
                format!("{} {}", r.kind, r.name)
            } else {
                format!("{} {}/{}", r.kind, r.namespace, r.name)
            };
            let _ = writeln!(out, "  {who}  [{}]  via {}", r.verbs.join(","), r.via);
        }
    }
    out
}

fn grants(role: &Value) -> Vec<Grant> {
    let strings = |r: &Value, f: &str| -> Vec<String> {
        r.get(f)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for rule in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let groups = strings(rule, "apiGroups");
        let resources = strings(rule, "resources");
        let verbs: Vec<String> = strings(rule, "verbs")
            .into_iter()
            .filter(|v| matches!(v.as_str(), "get" | "list" | "watch" | "*"))
            .collect();
        let core = groups.iter().any(|g| g.is_empty() || g == "*");
        let secrets = resources.iter().any(|r| r == "secrets" || r == "*");
        if core && secrets && !verbs.is_empty() {
            out.push(Grant {
                verbs,
                names: strings(rule, "resourceNames"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(yaml: &str) -> Vec<Value> {
        yaml.split("\n---\n")
            .map(|d| serde_yaml::from_str(d).expect("valid yaml"))
            .collect()
    }

    fn who(access: &[SecretAccess], ns: &str, name: &str) -> Vec<String> {
        access
            .iter()
            .find(|a| a.namespace == ns && a.name == name)
            .expect("secret listed")
            .readers
            .iter()
            .map(|r| format!("{}:{}", r.kind, r.name))
            .collect()
    }

    const CLUSTER: &str = "kind: Secret\nmetadata: {name: db, namespace: prod}
---
kind: Secret\nmetadata: {name: api, namespace: prod}
---
kind: Secret\nmetadata: {name: db, namespace: dev}
---
kind: Role\nmetadata: {name: db-reader, namespace: prod}\nrules:\n- apiGroups: ['']\n  resources: [secrets]\n  resourceNames: [db]\n  verbs: [get]
---
kind: RoleBinding\nmetadata: {name: web-db, namespace: prod}\nroleRef: {kind: Role, name: db-reader}\nsubjects:\n- {kind: ServiceAccount, name: web, namespace: prod}
---
kind: ClusterRoleBinding\nmetadata: {name: ops}\nroleRef: {kind: ClusterRole, name: cluster-admin}\nsubjects:\n- {kind: Group, name: ops}
---
kind: ClusterRole\nmetadata: {name: pods-only}\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: ['*']
---
kind: RoleBinding\nmetadata: {name: dev-pods, namespace: dev}\nroleRef: {kind: ClusterRole, name: pods-only}\nsubjects:\n- {kind: User, name: alice}
---
kind: RoleBinding\nmetadata: {name: dev-edit, namespace: dev}\nroleRef: {kind: ClusterRole, name: edit}\nsubjects:\n- {kind: User, name: bob}";

    #[test]
    fn readers_follow_scope_and_resource_names() {
        let access = secret_readers(&objects(CLUSTER));
        assert_eq!(access.len(), 3);
        assert_eq!(
            who(&access, "prod", "db"),
            vec!["ServiceAccount:web", "Group:ops"]
        );
        assert_eq!(who(&access, "prod", "api"), vec!["Group:ops"]);
        assert_eq!(who(&access, "dev", "db"), vec!["Group:ops", "User:bob"]);
    }

    #[test]
    fn parses_lists_and_documents_and_renders() {
        let text = "kind: List\nitems:\n- kind: Secret\n  metadata: {name: a, namespace: x}\n---\n{\"kind\": \"Secret\", \"metadata\": {\"name\": \"b\", \"namespace\": \"x\"}}\n";
        let objects = parse_objects(text).expect("parses");
        assert_eq!(objects.len(), 2);
        let mut all = objects;
        all.extend(super::tests::objects(CLUSTER));
        let access = secret_readers(&all);
        let text = render_readers(&access, Format::Text);
        assert!(text.starts_with("Secret x/a: 1 reader(s)\n  Group ops  [get,list,watch]  via ClusterRoleBinding/ops -> ClusterRole/cluster-admin\n"), "{text}");
        let json: Value =
            serde_json::from_str(&render_readers(&access, Format::Json)).expect("json");
        assert_eq!(json[0]["readers"][0]["kind"], "Group");
        assert!(parse_objects("a: [").is_err());
    }

    #[test]
    fn reader_says_how() {
        let access = secret_readers(&objects(CLUSTER));
        let web = &access[0].readers[0];
        assert_eq!(web.via, "RoleBinding/web-db -> Role/db-reader");
        assert_eq!(web.verbs, vec!["get"]);
        assert_eq!(web.namespace, "prod");
    }
}
