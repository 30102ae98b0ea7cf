//! Volumes: which files a container's mounts hold, by the kubelet's rules
//! (`pkg/volume/secret/secret.go` `MakePayload`, `pkg/volume/projected/projected.go`).
//!
//! - `secret` volumes: every key becomes a file, or only the `items` (key → relative `path`,
//!   optional per-item `mode`); `defaultMode` defaults to 0644. A missing Secret is an error
//!   unless `optional` (then the volume is empty); a missing item key is an error unless
//!   `optional` (then the item is skipped).
//! - `configMap` volumes (`configmap.MakePayload`): the same rules, with the keys of `data`
//!   and `binaryData`.
//! - `downwardAPI` volumes: one file per item, from `fieldRef` or `resourceFieldRef`
//!   ([`crate::PodInfo`]); `metadata.labels`/`annotations` in the kubelet's `key="value"`
//!   format.
//! - `projected` volumes: each `secret`, `configMap`, `downwardAPI` and
//!   `serviceAccountToken` source, with the volume's `defaultMode`.
//!
//! No I/O: the result is a [`Payload`] per volume for [`crate::AtomicWriter`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, PodSpec, ServiceAccountTokenProjection, Volume,
};

use crate::data::{References, SecretValue, Sources};
use crate::downward::{DownwardError, PodInfo};
use crate::service_account::token_spec;

/// The kubelet's default mode for secret and projected volume files.
pub const DEFAULT_MODE: i32 = 0o644;

/// Why a volume's files could not be made.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A non-optional Secret does not exist.
    #[error(
        "container {container:?}: MountVolume.SetUp failed for volume {volume:?}: secret \"{namespace}/{name}\" not found"
    )]
    SecretNotFound {
        /// The container.
        container: String,
        /// The volume.
        volume: String,
        /// The Pod's namespace.
        namespace: String,
        /// The Secret.
        name: String,
    },
    /// An `items` entry names a key the Secret does not have, and the volume is not optional.
    #[error(
        "container {container:?}: MountVolume.SetUp failed for volume {volume:?}: secret \"{namespace}/{name}\" references non-existent secret key: {key}"
    )]
    KeyNotFound {
        /// The container.
        container: String,
        /// The volume.
        volume: String,
        /// The Pod's namespace.
        namespace: String,
        /// The Secret.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A non-optional ConfigMap does not exist.
    #[error(
        "container {container:?}: MountVolume.SetUp failed for volume {volume:?}: configmap \"{namespace}/{name}\" not found"
    )]
    ConfigMapNotFound {
        /// The container.
        container: String,
        /// The volume.
        volume: String,
        /// The Pod's namespace.
        namespace: String,
        /// The ConfigMap.
        name: String,
    },
    /// An `items` entry names a key the ConfigMap does not have, and it is not optional.
    #[error(
        "container {container:?}: MountVolume.SetUp failed for volume {volume:?}: configmap \"{namespace}/{name}\" references non-existent config key: {key}"
    )]
    ConfigMapKeyNotFound {
        /// The container.
        container: String,
        /// The volume.
        volume: String,
        /// The Pod's namespace.
        namespace: String,
        /// The ConfigMap.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A downward API item has no value.
    #[error(
        "container {container:?}: MountVolume.SetUp failed for volume {volume:?}: item {path:?}: {source}"
    )]
    Downward {
        /// The container.
        container: String,
        /// The volume.
        volume: String,
        /// The item's path.
        path: String,
        /// Why.
        #[source]
        source: DownwardError,
    },
    /// A projected ServiceAccount token could not be provided.
    #[error(
        "container {container:?}: MountVolume.SetUp failed for volume {volume:?}: serviceAccountToken {path:?}: {reason}"
    )]
    Token {
        /// The container.
        container: String,
        /// The volume.
        volume: String,
        /// The token's path in the volume.
        path: String,
        /// Why (never the token).
        reason: String,
    },
    /// A `volumeMounts` entry names no volume of the pod.
    #[error("container {container:?}: volumeMount {mount:?} refers to no volume of the pod")]
    NoSuchVolume {
        /// The container.
        container: String,
        /// The volume name in the mount.
        mount: String,
    },
}

/// One file of a volume: its bytes (never printed) and its permission bits.
#[derive(Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// The content.
    pub data: SecretValue,
    /// Permission bits, like 0o644.
    pub mode: u32,
}

impl fmt::Debug for FileProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileProjection(mode {:o}, {:?})", self.mode, self.data)
    }
}

/// A volume's files: relative path (may contain `/`) → file.
pub type Payload = BTreeMap<String, FileProjection>;

/// One `volumeMounts` entry of the container whose volume Coffer can provide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPlan {
    /// The volume's name.
    pub volume: String,
    /// `mountPath` as written.
    pub mount_path: String,
    /// `readOnly`.
    pub read_only: bool,
    /// `subPath`, if set (a snapshot: not updated later, as in Kubernetes).
    pub sub_path: Option<String>,
}

/// The container's mounts of secret, configMap, downwardAPI and projected volumes, and
/// warnings for other mounts.
pub fn mount_plans(
    spec: &PodSpec,
    container: &Container,
) -> Result<(Vec<MountPlan>, Vec<String>), VolumeError> {
    let mut plans = Vec::new();
    let mut warnings = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = find_volume(spec, &mount.name).ok_or_else(|| VolumeError::NoSuchVolume {
            container: container.name.clone(),
            mount: mount.name.clone(),
        })?;
        if volume.secret.is_none()
            && volume.projected.is_none()
            && volume.config_map.is_none()
            && volume.downward_api.is_none()
        {
            warnings.push(format!(
                "container {:?}: volume {:?} at {} is not a secret, configMap, downwardAPI or \
                 projected volume; coffer run does not provide it",
                container.name, volume.name, mount.mount_path
            ));
            continue;
        }
        if mount.sub_path_expr.is_some() {
            warnings.push(format!(
                "container {:?}: subPathExpr of volume {:?} is not supported; the whole volume \
                 is mounted",
                container.name, volume.name
            ));
        }
        plans.push(MountPlan {
            volume: volume.name.clone(),
            mount_path: mount.mount_path.clone(),
            read_only: mount.read_only == Some(true),
            sub_path: mount.sub_path.clone().filter(|s| !s.is_empty()),
        });
    }
    Ok((plans, warnings))
}

/// The files of volume `name` of `spec` for `container` of `pod`, from `sources`, and
/// warnings for sources Coffer does not provide.
pub fn volume_payload(
    spec: &PodSpec,
    name: &str,
    container: &str,
    pod: &PodInfo,
    sources: &Sources,
) -> Result<(Payload, Vec<String>), VolumeError> {
    let Some(volume) = find_volume(spec, name) else {
        return Err(VolumeError::NoSuchVolume {
            container: container.to_owned(),
            mount: name.to_owned(),
        });
    };
    let mut b = Builder {
        payload: Payload::new(),
        warnings: Vec::new(),
        container,
        volume: name,
        pod,
        sources,
    };
    if let Some(s) = &volume.secret {
        let secret = s.secret_name.as_deref().unwrap_or("");
        b.secret(
            secret,
            s.items.as_ref(),
            s.optional == Some(true),
            s.default_mode.unwrap_or(DEFAULT_MODE),
        )?;
    } else if let Some(c) = &volume.config_map {
        b.config_map(
            &c.name,
            c.items.as_ref(),
            c.optional == Some(true),
            c.default_mode.unwrap_or(DEFAULT_MODE),
        )?;
    } else if let Some(d) = &volume.downward_api {
        b.downward(d.items.as_ref(), d.default_mode.unwrap_or(DEFAULT_MODE))?;
    } else if let Some(p) = &volume.projected {
        let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
        for source in p.sources.iter().flatten() {
            if let Some(s) = &source.secret {
                b.secret(&s.name, s.items.as_ref(), s.optional == Some(true), mode)?;
            } else if let Some(c) = &source.config_map {
                b.config_map(&c.name, c.items.as_ref(), c.optional == Some(true), mode)?;
            } else if let Some(d) = &source.downward_api {
                b.downward(d.items.as_ref(), mode)?;
            } else if let Some(t) = &source.service_account_token {
                b.token(t, mode)?;
            } else {
                b.warnings.push(format!(
                    "container {container:?}: projected volume {name:?} has a source coffer run \
                     does not provide (clusterTrustBundle or podCertificate); it is left out"
                ));
            }
        }
    }
    Ok((b.payload, b.warnings))
}

/// What the volumes of `plans` read from the API: Secrets, ConfigMaps and tokens.
pub fn volume_references(spec: &PodSpec, plans: &[MountPlan]) -> References {
    let mut refs = References::default();
    for plan in plans {
        let Some(volume) = find_volume(spec, &plan.volume) else {
            continue;
        };
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(name);
        }
        if let Some(c) = &volume.config_map {
            refs.config_maps.insert(c.name.clone());
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(s) = &source.secret {
                refs.secrets.insert(s.name.clone());
            }
            if let Some(c) = &source.config_map {
                refs.config_maps.insert(c.name.clone());
            }
            if let Some(t) = &source.service_account_token
                && let Ok(spec) = token_spec(t)
            {
                refs.tokens.insert(spec);
            }
        }
    }
    refs
}

/// Collects one volume's files.
struct Builder<'a> {
    payload: Payload,
    warnings: Vec<String>,
    container: &'a str,
    volume: &'a str,
    pod: &'a PodInfo,
    sources: &'a Sources,
}

impl Builder<'_> {
    /// A `secret` volume or projected source (kubelet `secret.MakePayload`).
    fn secret(
        &mut self,
        secret: &str,
        items: Option<&Vec<KeyToPath>>,
        optional: bool,
        default_mode: i32,
    ) -> Result<(), VolumeError> {
        let Some(data) = self.sources.secret(secret) else {
            if optional {
                return Ok(());
            }
            return Err(VolumeError::SecretNotFound {
                container: self.container.to_owned(),
                volume: self.volume.to_owned(),
                namespace: self.pod.namespace.clone(),
                name: secret.to_owned(),
            });
        };
        let all: Vec<(&str, &SecretValue)> = data.iter().collect();
        self.keys(&all, items, optional, default_mode, |key| {
            VolumeError::KeyNotFound {
                container: self.container.to_owned(),
                volume: self.volume.to_owned(),
                namespace: self.pod.namespace.clone(),
                name: secret.to_owned(),
                key,
            }
        })
    }

    /// A `configMap` volume or projected source (kubelet `configmap.MakePayload`): `data`
    /// and `binaryData` keys both become files.
    fn config_map(
        &mut self,
        name: &str,
        items: Option<&Vec<KeyToPath>>,
        optional: bool,
        default_mode: i32,
    ) -> Result<(), VolumeError> {
        let Some(map) = self.sources.config_map(name) else {
            if optional {
                return Ok(());
            }
            return Err(VolumeError::ConfigMapNotFound {
                container: self.container.to_owned(),
                volume: self.volume.to_owned(),
                namespace: self.pod.namespace.clone(),
                name: name.to_owned(),
            });
        };
        let values: Vec<(String, SecretValue)> = map
            .data
            .iter()
            .map(|(k, v)| (k.clone(), SecretValue::from(v.as_str())))
            .chain(
                map.binary_data
                    .iter()
                    .map(|(k, v)| (k.clone(), SecretValue::new(v.clone()))),
            )
            .collect();
        let all: Vec<(&str, &SecretValue)> = values.iter().map(|(k, v)| (k.as_str(), v)).collect();
        self.keys(&all, items, optional, default_mode, |key| {
            VolumeError::ConfigMapKeyNotFound {
                container: self.container.to_owned(),
                volume: self.volume.to_owned(),
                namespace: self.pod.namespace.clone(),
                name: name.to_owned(),
                key,
            }
        })
    }

    /// Every key, or the `items`, of one object.
    fn keys(
        &mut self,
        all: &[(&str, &SecretValue)],
        items: Option<&Vec<KeyToPath>>,
        optional: bool,
        default_mode: i32,
        missing: impl Fn(String) -> VolumeError,
    ) -> Result<(), VolumeError> {
        match items.filter(|i| !i.is_empty()) {
            None => {
                for (key, value) in all {
                    self.payload
                        .insert((*key).to_owned(), file(value, default_mode));
                }
            }
            Some(items) => {
                for item in items {
                    match all.iter().find(|(k, _)| **k == item.key) {
                        Some((_, value)) => {
                            self.payload.insert(
                                item.path.clone(),
                                file(value, item.mode.unwrap_or(default_mode)),
                            );
                        }
                        None if optional => {}
                        None => return Err(missing(item.key.clone())),
                    }
                }
            }
        }
        Ok(())
    }

    /// A `downwardAPI` volume or projected source.
    fn downward(
        &mut self,
        items: Option<&Vec<DownwardAPIVolumeFile>>,
        default_mode: i32,
    ) -> Result<(), VolumeError> {
        for item in items.into_iter().flatten() {
            let value = if let Some(f) = &item.field_ref {
                self.pod.field(f, true)
            } else if let Some(r) = &item.resource_field_ref {
                self.pod.resource(r, self.container)
            } else {
                continue;
            };
            let value = value.map_err(|source| VolumeError::Downward {
                container: self.container.to_owned(),
                volume: self.volume.to_owned(),
                path: item.path.clone(),
                source,
            })?;
            let mode = item.mode.unwrap_or(default_mode);
            self.payload.insert(
                item.path.clone(),
                file(&SecretValue::from(value.as_str()), mode),
            );
        }
        Ok(())
    }

    /// A projected `serviceAccountToken` source: the current token, mode `defaultMode`.
    fn token(
        &mut self,
        projection: &ServiceAccountTokenProjection,
        default_mode: i32,
    ) -> Result<(), VolumeError> {
        let unavailable = |reason: String| VolumeError::Token {
            container: self.container.to_owned(),
            volume: self.volume.to_owned(),
            path: projection.path.clone(),
            reason,
        };
        let spec = token_spec(projection).map_err(unavailable)?;
        let token = self
            .sources
            .token(&spec)
            .ok_or_else(|| unavailable("no token was issued".to_owned()))?;
        self.payload
            .insert(projection.path.clone(), file(token, default_mode));
        Ok(())
    }
}

fn find_volume<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Volume> {
    spec.volumes.iter().flatten().find(|v| v.name == name)
}

fn file(value: &SecretValue, mode: i32) -> FileProjection {
    FileProjection {
        data: value.clone(),
        mode: u32::try_from(mode & 0o7777).unwrap_or(0o644),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SecretData;

    /// The guide's step 4 Pod, verbatim.
    const GUIDE_VOLUME_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: app-pod
spec:
  containers:
  - name: app
    image: nginx
    volumeMounts:
    - name: secret-volume
      mountPath: "/etc/secrets"
      readOnly: true
  volumes:
  - name: secret-volume
    secret:
      secretName: db-secret
"#;

    fn sources() -> Sources {
        let mut s = Sources::new();
        let db: SecretData = [("username", "admin"), ("password", "MyStrongPassword")]
            .into_iter()
            .collect();
        s.set_secret("db-secret", Some(db));
        s.set_secret(
            "tls",
            Some([("tls.crt", "C"), ("tls.key", "K")].into_iter().collect()),
        );
        s
    }

    fn spec(yaml: &str) -> PodSpec {
        crate::manifest::parse_manifest(yaml)
            .expect("manifest")
            .spec
    }

    fn info(yaml: &str) -> PodInfo {
        let t = crate::manifest::parse_manifest(yaml).expect("manifest");
        PodInfo::new(&t, "default", crate::downward::LocalFacts::for_tests())
    }

    fn contents(p: &Payload) -> Vec<(String, String, u32)> {
        p.iter()
            .map(|(k, f)| {
                let v = String::from_utf8_lossy(f.data.expose_secret()).into_owned();
                (k.clone(), v, f.mode)
            })
            .collect()
    }

    #[test]
    fn guide_volume_has_every_key_with_mode_0644() {
        let spec = spec(GUIDE_VOLUME_POD);
        let (plans, warnings) = mount_plans(&spec, &spec.containers[0]).expect("plans");
        assert!(warnings.is_empty());
        assert_eq!(
            plans,
            [MountPlan {
                volume: "secret-volume".into(),
                mount_path: "/etc/secrets".into(),
                read_only: true,
                sub_path: None
            }]
        );
        let refs = volume_references(&spec, &plans);
        assert_eq!(refs.secrets.iter().collect::<Vec<_>>(), ["db-secret"]);
        let (payload, _) = volume_payload(
            &spec,
            "secret-volume",
            "app",
            &info(GUIDE_VOLUME_POD),
            &sources(),
        )
        .expect("p");
        assert_eq!(
            contents(&payload),
            [
                ("password".into(), "MyStrongPassword".into(), 0o644),
                ("username".into(), "admin".into(), 0o644)
            ]
        );
        assert!(!format!("{payload:?}").contains("MyStrongPassword"));
    }

    #[test]
    fn items_modes_and_optional() {
        let yaml = r#"
kind: Pod
spec:
  containers: [{name: app}]
  volumes:
  - name: v
    secret:
      secretName: db-secret
      defaultMode: 0400
      items:
      - {key: username, path: user/name.txt}
      - {key: password, path: pw, mode: 0600}
  - name: opt
    secret: {secretName: gone, optional: true}
  - name: optkey
    secret:
      secretName: db-secret
      optional: true
      items: [{key: nokey, path: x}, {key: username, path: u}]
  - name: badkey
    secret:
      secretName: db-secret
      items: [{key: nokey, path: x}]
  - name: missing
    secret: {secretName: gone}
  - name: proj
    projected:
      defaultMode: 0440
      sources:
      - secret: {name: db-secret, items: [{key: username, path: u}]}
      - secret: {name: tls}
"#;
        let spec = spec(yaml);
        let s = sources();
        let info = info(yaml);
        let payload = |name| volume_payload(&spec, name, "app", &info, &s);
        assert_eq!(
            contents(&payload("v").expect("v").0),
            [
                ("pw".into(), "MyStrongPassword".into(), 0o600),
                ("user/name.txt".into(), "admin".into(), 0o400)
            ]
        );
        assert!(payload("opt").expect("opt").0.is_empty());
        assert_eq!(payload("optkey").expect("optkey").0.len(), 1);
        assert_eq!(
            payload("badkey").expect_err("badkey").to_string(),
            "container \"app\": MountVolume.SetUp failed for volume \"badkey\": secret \
             \"default/db-secret\" references non-existent secret key: nokey"
        );
        assert_eq!(
            payload("missing").expect_err("missing").to_string(),
            "container \"app\": MountVolume.SetUp failed for volume \"missing\": secret \
             \"default/gone\" not found"
        );
        let (proj, warnings) = payload("proj").expect("proj");
        assert_eq!(
            contents(&proj),
            [
                ("tls.crt".into(), "C".into(), 0o440),
                ("tls.key".into(), "K".into(), 0o440),
                ("u".into(), "admin".into(), 0o440)
            ]
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn config_maps_downward_api_and_tokens() {
        let yaml = r#"
kind: Pod
metadata: {name: web, labels: {b: "2", a: "1"}}
spec:
  containers:
  - name: app
    resources: {limits: {memory: 64Mi}}
  volumes:
  - name: cm
    configMap: {name: settings, defaultMode: 0600}
  - name: cmitems
    configMap: {name: settings, items: [{key: logo, path: img/logo.bin}, {key: nokey, path: x}]}
  - name: cmopt
    configMap: {name: gone, optional: true}
  - name: cmgone
    configMap: {name: gone}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}, mode: 0400}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
  - name: proj
    projected:
      sources:
      - configMap: {name: settings, items: [{key: level, path: level}]}
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
      - serviceAccountToken: {path: token, audience: vault}
"#;
        let spec = spec(yaml);
        let info = info(yaml);
        let mut s = sources();
        let mut cm = crate::data::ConfigMapData::from_data(
            [("level".to_owned(), "debug".to_owned())].into(),
        );
        cm.binary_data.insert("logo".into(), vec![0, 159, 146, 150]);
        assert!(s.set_config_map("settings", Some(cm.clone())));
        assert!(!s.set_config_map("settings", Some(cm)));
        let payload = |name, s: &Sources| volume_payload(&spec, name, "app", &info, s);
        let cm = payload("cm", &s).expect("cm").0;
        assert_eq!(cm.keys().collect::<Vec<_>>(), ["level", "logo"]);
        assert_eq!(cm["logo"].data.expose_secret(), [0, 159, 146, 150]);
        assert_eq!(cm["level"].mode, 0o600);
        assert_eq!(
            payload("cmitems", &s).expect_err("nokey").to_string(),
            "container \"app\": MountVolume.SetUp failed for volume \"cmitems\": configmap \
             \"default/settings\" references non-existent config key: nokey"
        );
        assert!(payload("cmopt", &s).expect("opt").0.is_empty());
        assert_eq!(
            payload("cmgone", &s).expect_err("gone").to_string(),
            "container \"app\": MountVolume.SetUp failed for volume \"cmgone\": configmap \
             \"default/gone\" not found"
        );
        assert_eq!(
            contents(&payload("info", &s).expect("info").0),
            [
                ("labels".into(), "a=\"1\"\nb=\"2\"".into(), 0o644),
                ("mem".into(), "64".into(), 0o644),
                ("name".into(), "web".into(), 0o400),
            ]
        );
        let err = payload("proj", &s).expect_err("no token yet").to_string();
        assert!(err.contains("serviceAccountToken \"token\""), "{err}");
        let token = crate::data::TokenSpec {
            audience: Some("vault".into()),
            expiration_seconds: 3600,
        };
        assert_eq!(
            volume_references(
                &spec,
                &mount_plans(&spec, &spec.containers[0]).expect("p").0
            )
            .tokens
            .len(),
            0,
            "no mounts, no references"
        );
        s.set_token(token, "eyJ.token".into());
        let proj = payload("proj", &s).expect("proj").0;
        assert_eq!(
            contents(&proj),
            [
                ("level".into(), "debug".into(), 0o644),
                ("ns".into(), "default".into(), 0o644),
                ("token".into(), "eyJ.token".into(), 0o644),
            ]
        );
        assert!(!format!("{proj:?}").contains("eyJ"));
    }

    #[test]
    fn mounts_of_other_volumes_warn_and_unknown_volumes_fail() {
        let yaml = r#"
kind: Pod
spec:
  containers:
  - name: app
    volumeMounts:
    - {name: scratch, mountPath: /tmp/x}
    - {name: s, mountPath: /etc/app/config.yaml, subPath: config.yaml}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: s, secret: {secretName: cfg}}
"#;
        let spec = spec(yaml);
        let (plans, warnings) = mount_plans(&spec, &spec.containers[0]).expect("plans");
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].sub_path.as_deref(), Some("config.yaml"));
        assert_eq!(warnings.len(), 1);
        let yaml = "kind: Pod\nspec:\n  containers: [{name: a, volumeMounts: [{name: x, mountPath: /x}]}]\n";
        let spec = self::spec(yaml);
        assert!(mount_plans(&spec, &spec.containers[0]).is_err());
    }
}
