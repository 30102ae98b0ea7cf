//! A container's environment, built with the kubelet's rules
//! (`pkg/kubelet/kubelet_pods.go`, `makeEnvironmentVariables`):
//!
//! 1. `envFrom` entries in order: every key of the ConfigMap or Secret, with `prefix` in
//!    front, becomes a variable; keys that are not valid variable names are skipped and
//!    reported (the kubelet records an event; we return a warning). A later source overrides
//!    an earlier one.
//! 2. `env` entries in order, overriding `envFrom`: `value` with `$(VAR)` expanded against the
//!    variables defined so far (an undefined reference stays as written, `$$` is a literal
//!    `$`), or `valueFrom.secretKeyRef` / `configMapKeyRef` (never expanded). A missing object
//!    or key is an error unless the reference is `optional`, in which case the variable is
//!    left out.
//!
//! No I/O: objects come from a [`Sources`] cache. Values are bytes (a Secret may hold any).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, EnvVar};

use crate::data::{References, Sources};
use crate::downward::{DownwardError, PodInfo};

/// Why the environment could not be built: the kubelet's reasons, naming objects and keys,
/// never values.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A non-optional Secret does not exist.
    #[error("container {container:?}: secret \"{namespace}/{name}\" not found")]
    SecretNotFound {
        /// The container.
        container: String,
        /// The Pod's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A non-optional key is missing from a Secret.
    #[error(
        "container {container:?}: couldn't find key {key} in Secret {namespace}/{name} (env {var})"
    )]
    SecretKeyNotFound {
        /// The container.
        container: String,
        /// The Pod's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The missing key.
        key: String,
        /// The variable that wanted it.
        var: String,
    },
    /// A non-optional ConfigMap does not exist.
    #[error("container {container:?}: configmap \"{namespace}/{name}\" not found")]
    ConfigMapNotFound {
        /// The container.
        container: String,
        /// The Pod's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// A non-optional key is missing from a ConfigMap.
    #[error(
        "container {container:?}: couldn't find key {key} in ConfigMap {namespace}/{name} (env {var})"
    )]
    ConfigMapKeyNotFound {
        /// The container.
        container: String,
        /// The Pod's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The missing key.
        key: String,
        /// The variable that wanted it.
        var: String,
    },
    /// `fieldRef` or `resourceFieldRef` names something the downward API cannot give.
    #[error("container {container:?}: env {var}: {source}")]
    Downward {
        /// The container.
        container: String,
        /// The variable.
        var: String,
        /// Why.
        #[source]
        source: DownwardError,
    },
}

/// A set of environment variables. Values may come from Secrets, so `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment(BTreeMap<String, Vec<u8>>);

impl Environment {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of `name`. It may be a secret: callers must not log it.
    pub fn expose_value(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(Vec::as_slice)
    }

    /// The variable names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every variable with its value, sorted by name. Callers must not log the values.
    pub fn expose_all(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("names", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A built environment and what the kubelet would have reported as events.
#[derive(Debug, Default)]
pub struct EnvOutcome {
    /// The container's variables.
    pub env: Environment,
    /// Warnings: skipped invalid names, unsupported sources. Never contain values.
    pub warnings: Vec<String>,
}

/// Builds `container`'s environment from `sources` (objects of `pod`'s namespace) and the
/// downward API view of `pod`.
pub fn build_env(
    container: &Container,
    pod: &PodInfo,
    sources: &Sources,
) -> Result<EnvOutcome, EnvError> {
    let namespace = pod.namespace.as_str();
    let mut out = EnvOutcome::default();
    let cname = || container.name.clone();
    let ns = || namespace.to_owned();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let mut invalid = Vec::new();
        let mut add = |out: &mut EnvOutcome, key: &str, value: &[u8]| {
            let name = format!("{prefix}{key}");
            if is_env_var_name(&name) {
                out.env.set(name, value);
            } else {
                invalid.push(name);
            }
        };
        let described = if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name) {
                Some(map) => map
                    .data
                    .iter()
                    .for_each(|(k, v)| add(&mut out, k, v.as_bytes())),
                None if r.optional == Some(true) => {}
                None => {
                    return Err(EnvError::ConfigMapNotFound {
                        container: cname(),
                        namespace: ns(),
                        name: r.name.clone(),
                    });
                }
            }
            format!("ConfigMap {namespace}/{}", r.name)
        } else if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name) {
                Some(data) => data
                    .iter()
                    .for_each(|(k, v)| add(&mut out, k, v.expose_secret())),
                None if r.optional == Some(true) => {}
                None => {
                    return Err(EnvError::SecretNotFound {
                        container: cname(),
                        namespace: ns(),
                        name: r.name.clone(),
                    });
                }
            }
            format!("secret {namespace}/{}", r.name)
        } else {
            continue;
        };
        if !invalid.is_empty() {
            invalid.sort();
            out.warnings.push(format!(
                "container {:?}: keys [{}] from the EnvFrom {described} were skipped since they \
                 are considered invalid environment variable names",
                container.name,
                invalid.join(", ")
            ));
        }
    }

    for var in container.env.iter().flatten() {
        match value_of(var, container, pod, sources, &out.env)? {
            Resolved::Value(v) => out.env.set(var.name.clone(), v),
            Resolved::Skip => {}
            Resolved::Unsupported(what) => out.warnings.push(format!(
                "container {:?}: env {} uses {what}, which coffer run does not support; it is \
                 left out",
                container.name, var.name
            )),
        }
    }
    Ok(out)
}

enum Resolved {
    Value(Vec<u8>),
    Skip,
    Unsupported(&'static str),
}

fn value_of(
    var: &EnvVar,
    container: &Container,
    pod: &PodInfo,
    sources: &Sources,
    env: &Environment,
) -> Result<Resolved, EnvError> {
    let namespace = pod.namespace.as_str();
    let Some(from) = &var.value_from else {
        let raw = var.value.as_deref().unwrap_or("");
        return Ok(Resolved::Value(expand(raw, |n| env.expose_value(n))));
    };
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional == Some(true);
        return match sources.secret(&r.name) {
            None if optional => Ok(Resolved::Skip),
            None => Err(EnvError::SecretNotFound {
                container: container.name.clone(),
                namespace: namespace.to_owned(),
                name: r.name.clone(),
            }),
            Some(data) => match data.get(&r.key) {
                Some(v) => Ok(Resolved::Value(v.expose_secret().to_vec())),
                None if optional => Ok(Resolved::Skip),
                None => Err(EnvError::SecretKeyNotFound {
                    container: container.name.clone(),
                    namespace: namespace.to_owned(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                    var: var.name.clone(),
                }),
            },
        };
    }
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional == Some(true);
        return match sources.config_map(&r.name) {
            None if optional => Ok(Resolved::Skip),
            None => Err(EnvError::ConfigMapNotFound {
                container: container.name.clone(),
                namespace: namespace.to_owned(),
                name: r.name.clone(),
            }),
            Some(map) => match map.data.get(&r.key) {
                Some(v) => Ok(Resolved::Value(v.clone().into_bytes())),
                None if optional => Ok(Resolved::Skip),
                None => Err(EnvError::ConfigMapKeyNotFound {
                    container: container.name.clone(),
                    namespace: namespace.to_owned(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                    var: var.name.clone(),
                }),
            },
        };
    }
    let downward = |source| EnvError::Downward {
        container: container.name.clone(),
        var: var.name.clone(),
        source,
    };
    if let Some(f) = &from.field_ref {
        return pod
            .field(f, false)
            .map(|v| Resolved::Value(v.into_bytes()))
            .map_err(downward);
    }
    if let Some(r) = &from.resource_field_ref {
        return pod
            .resource(r, &container.name)
            .map(|v| Resolved::Value(v.into_bytes()))
            .map_err(downward);
    }
    Ok(Resolved::Unsupported("an unknown valueFrom source"))
}

/// The Secrets and ConfigMaps `container`'s `env` and `envFrom` name.
pub fn env_references(container: &Container) -> References {
    let mut refs = References::default();
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.secret_ref {
            refs.secrets.insert(r.name.clone());
        }
        if let Some(r) = &from.config_map_ref {
            refs.config_maps.insert(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(from) = &var.value_from {
            if let Some(r) = &from.secret_key_ref {
                refs.secrets.insert(r.name.clone());
            }
            if let Some(r) = &from.config_map_key_ref {
                refs.config_maps.insert(r.name.clone());
            }
        }
    }
    refs
}

/// Whether `name` is a valid environment variable name by Kubernetes' classic rule
/// (`IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'));
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Expands `$(VAR)` references in `input` as the kubelet does
/// (`third_party/forked/golang/expansion/expand.go`): a defined variable is replaced by its
/// value, an undefined one stays as written, `$$` becomes `$`, a `$` before anything else and
/// an unclosed `$(` are kept.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a [u8]>) -> Vec<u8> {
    let input = input.as_bytes();
    let mut out = Vec::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < input.len() {
        if input[cursor] == b'$' && cursor + 1 < input.len() {
            out.extend_from_slice(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&b| b == b')') {
                    Some(close) => {
                        let name = String::from_utf8_lossy(&rest[1..close]);
                        match lookup(&name) {
                            Some(value) => out.extend_from_slice(value),
                            None => out.extend_from_slice(&input[cursor..=cursor + 1 + close]),
                        }
                        close + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&input[checkpoint.min(input.len())..]);
    out
}

/// The container's `command` followed by its `args`, each with `$(VAR)` expanded against
/// `env` (the kubelet's `ExpandContainerCommandAndArgs`).
pub fn expand_command(container: &Container, env: &Environment) -> Vec<Vec<u8>> {
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|part| expand(part, |n| env.expose_value(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SecretData;

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).expect("container yaml")
    }

    fn sources() -> Sources {
        let mut s = Sources::new();
        let db: SecretData = [("username", "admin"), ("password", "MyStrongPassword")]
            .into_iter()
            .collect();
        s.set_secret("db-secret", Some(db));
        let odd: SecretData = [("GOOD", "1"), ("bad key", "2"), ("1starts", "3")]
            .into_iter()
            .collect();
        s.set_secret("odd", Some(odd));
        s.set_config_map(
            "cfg",
            Some(crate::data::ConfigMapData::from_data(
                [("MODE".to_owned(), "prod".to_owned())].into(),
            )),
        );
        s
    }

    fn pod(namespace: &str) -> PodInfo {
        let t = crate::manifest::parse_manifest(
            "kind: Pod\nmetadata: {name: web, labels: {app: shop}}\nspec:\n  containers:\n  \
             - {name: app, resources: {limits: {cpu: 250m}}}\n",
        )
        .expect("pod");
        PodInfo::new(&t, namespace, crate::downward::LocalFacts::for_tests())
    }

    fn get(out: &EnvOutcome, name: &str) -> Option<String> {
        out.env
            .expose_value(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn secret_key_refs_and_plain_values() {
        let c = container(
            r#"
name: app
env:
- {name: DB_USERNAME, valueFrom: {secretKeyRef: {name: db-secret, key: username}}}
- {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db-secret, key: password}}}
- {name: MODE, valueFrom: {configMapKeyRef: {name: cfg, key: MODE}}}
- {name: EMPTY}
"#,
        );
        let out = build_env(&c, &pod("default"), &sources()).expect("env");
        assert_eq!(get(&out, "DB_USERNAME").as_deref(), Some("admin"));
        assert_eq!(
            get(&out, "DB_PASSWORD").as_deref(),
            Some("MyStrongPassword")
        );
        assert_eq!(get(&out, "MODE").as_deref(), Some("prod"));
        assert_eq!(get(&out, "EMPTY").as_deref(), Some(""));
        assert!(out.warnings.is_empty());
        assert!(!format!("{out:?}").contains("MyStrongPassword"));
    }

    #[test]
    fn env_overrides_env_from_and_later_entries_win() {
        let c = container(
            r#"
name: app
envFrom:
- {secretRef: {name: db-secret}, prefix: DB_}
- {configMapRef: {name: cfg}}
- {secretRef: {name: db-secret}}
env:
- {name: username, value: from-env}
- {name: X, value: first}
- {name: X, value: second}
"#,
        );
        let out = build_env(&c, &pod("default"), &sources()).expect("env");
        assert_eq!(get(&out, "DB_username").as_deref(), Some("admin"));
        assert_eq!(
            get(&out, "DB_password").as_deref(),
            Some("MyStrongPassword")
        );
        assert_eq!(get(&out, "MODE").as_deref(), Some("prod"));
        assert_eq!(get(&out, "username").as_deref(), Some("from-env"));
        assert_eq!(get(&out, "password").as_deref(), Some("MyStrongPassword"));
        assert_eq!(get(&out, "X").as_deref(), Some("second"));
    }

    #[test]
    fn invalid_names_from_env_from_are_skipped_with_a_warning() {
        let c = container("name: app\nenvFrom:\n- secretRef: {name: odd}\n");
        let out = build_env(&c, &pod("ns1"), &sources()).expect("env");
        assert_eq!(out.env.names().collect::<Vec<_>>(), ["GOOD"]);
        assert_eq!(out.warnings.len(), 1);
        assert_eq!(
            out.warnings[0],
            "container \"app\": keys [1starts, bad key] from the EnvFrom secret ns1/odd were \
             skipped since they are considered invalid environment variable names"
        );
        // A prefix can make a key valid.
        let c = container("name: app\nenvFrom:\n- {secretRef: {name: odd}, prefix: P_}\n");
        let out = build_env(&c, &pod("ns1"), &sources()).expect("env");
        assert_eq!(get(&out, "P_1starts").as_deref(), Some("3"));
    }

    #[test]
    fn expansion_uses_earlier_variables_and_escapes() {
        let c = container(
            r#"
name: app
envFrom: [{configMapRef: {name: cfg}}]
env:
- {name: USER, valueFrom: {secretKeyRef: {name: db-secret, key: username}}}
- {name: URL, value: "postgres://$(USER)@db/$(MODE)?x=$(LATER)&y=$$(USER)&z=$$&w=$1"}
- {name: LATER, value: late}
- {name: OPEN, value: "a$(b"}
- {name: LITERAL, valueFrom: {configMapKeyRef: {name: cfg, key: MODE}}}
"#,
        );
        let out = build_env(&c, &pod("default"), &sources()).expect("env");
        assert_eq!(
            get(&out, "URL").as_deref(),
            Some("postgres://admin@db/prod?x=$(LATER)&y=$(USER)&z=$&w=$1")
        );
        assert_eq!(get(&out, "OPEN").as_deref(), Some("a$(b"));
    }

    #[test]
    fn expand_matches_the_kubelet_table() {
        let vars: BTreeMap<&str, &[u8]> = [("VAR_A", &b"A"[..]), ("VAR_EMPTY", b"")].into();
        let f = |n: &str| vars.get(n).copied();
        for (input, want) in [
            ("$(VAR_A)", "A"),
            ("___$(VAR_A)___", "___A___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_EMPTY)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$", "$"),
            ("foo$", "foo$"),
            ("$(", "$("),
            ("$()", "$()"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("$VAR_A", "$VAR_A"),
            ("", ""),
        ] {
            assert_eq!(String::from_utf8_lossy(&expand(input, f)), want, "{input}");
        }
    }

    #[test]
    fn optional_references_are_left_out() {
        let c = container(
            r#"
name: app
envFrom: [{secretRef: {name: nope, optional: true}}, {configMapRef: {name: nope, optional: true}}]
env:
- {name: A, valueFrom: {secretKeyRef: {name: nope, key: k, optional: true}}}
- {name: B, valueFrom: {secretKeyRef: {name: db-secret, key: nokey, optional: true}}}
- {name: C, valueFrom: {configMapKeyRef: {name: cfg, key: nokey, optional: true}}}
"#,
        );
        let out = build_env(&c, &pod("default"), &sources()).expect("env");
        assert_eq!(out.env.names().count(), 0);
    }

    #[test]
    fn missing_objects_and_keys_are_errors_naming_them() {
        let cases = [
            (
                "env: [{name: A, valueFrom: {secretKeyRef: {name: db-secret, key: pw}}}]",
                "container \"app\": couldn't find key pw in Secret default/db-secret (env A)",
            ),
            (
                "env: [{name: A, valueFrom: {secretKeyRef: {name: gone, key: pw}}}]",
                "container \"app\": secret \"default/gone\" not found",
            ),
            (
                "envFrom: [{secretRef: {name: gone}}]",
                "container \"app\": secret \"default/gone\" not found",
            ),
            (
                "env: [{name: A, valueFrom: {configMapKeyRef: {name: cfg, key: k}}}]",
                "container \"app\": couldn't find key k in ConfigMap default/cfg (env A)",
            ),
            (
                "envFrom: [{configMapRef: {name: gone}}]",
                "container \"app\": configmap \"default/gone\" not found",
            ),
        ];
        for (spec, want) in cases {
            let c = container(&format!("name: app\n{spec}\n"));
            let err = build_env(&c, &pod("default"), &sources()).expect_err(spec);
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn field_and_resource_refs() {
        let c = container(
            "name: app\nenv:\n- {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n\
             - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}\n\
             - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n\
             - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}\n\
             - {name: NOT, value: \"$(POD)\"}\n",
        );
        let out = build_env(&c, &pod("shop"), &sources()).expect("env");
        assert_eq!(get(&out, "POD").as_deref(), Some("web"));
        assert_eq!(get(&out, "NS").as_deref(), Some("shop"));
        assert_eq!(get(&out, "APP").as_deref(), Some("shop"));
        assert_eq!(get(&out, "CPU").as_deref(), Some("250"));
        assert_eq!(get(&out, "NOT").as_deref(), Some("web"));
        let bad = container(
            "name: app\nenv: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}]\n",
        );
        let err = build_env(&bad, &pod("shop"), &sources()).expect_err("whole map");
        assert!(
            err.to_string()
                .starts_with("container \"app\": env X: unsupported fieldRef fieldPath"),
            "{err}"
        );
    }

    #[test]
    fn command_and_args_are_expanded() {
        let c =
            container("name: app\ncommand: [sh, -c]\nargs: [\"echo $(MODE) $$(MODE) $(NONE)\"]\n");
        let mut env = Environment::new();
        env.set("MODE", "prod");
        let cmd: Vec<String> = expand_command(&c, &env)
            .into_iter()
            .map(|p| String::from_utf8(p).expect("utf8"))
            .collect();
        assert_eq!(cmd, ["sh", "-c", "echo prod $(MODE) $(NONE)"]);
    }

    #[test]
    fn env_var_names() {
        for ok in ["A", "_a", "a.b-c", "-x", ".x", "A1"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1A", "a b", "a=b", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }
}
