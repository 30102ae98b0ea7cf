//! Secret volumes: which files a container's mounts hold, by the kubelet's rules
//! (`pkg/volume/secret/secret.go` `MakePayload`, `pkg/volume/projected/projected.go`).
//!
//! - `secret` volumes: every key becomes a file, or only the `items` (key → relative `path`,
//!   optional per-item `mode`); `defaultMode` defaults to 0644. A missing Secret is an error
//!   unless `optional` (then the volume is empty); a missing item key is an error unless
//!   `optional` (then the item is skipped).
//! - `projected` volumes: the same for each `secret` source; other sources
//!   (`configMap`, `downwardAPI`, `serviceAccountToken`, ...) are skipped with a warning.
//!
//! No I/O: the result is a [`Payload`] per volume for [`crate::AtomicWriter`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, KeyToPath, PodSpec, Volume};

use crate::data::{References, SecretValue, Sources};

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

/// The container's mounts of secret and projected volumes, and warnings for other mounts.
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
        if volume.secret.is_none() && volume.projected.is_none() {
            warnings.push(format!(
                "container {:?}: volume {:?} at {} is not a secret or projected volume; coffer \
                 run does not provide it",
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

/// The files of volume `name` of `spec` from `sources`, and warnings for unsupported sources.
pub fn volume_payload(
    spec: &PodSpec,
    name: &str,
    container: &str,
    namespace: &str,
    sources: &Sources,
) -> Result<(Payload, Vec<String>), VolumeError> {
    let mut payload = Payload::new();
    let mut warnings = Vec::new();
    let Some(volume) = find_volume(spec, name) else {
        return Err(VolumeError::NoSuchVolume {
            container: container.to_owned(),
            mount: name.to_owned(),
        });
    };
    let project = |payload: &mut Payload,
                   secret: &str,
                   items: Option<&Vec<KeyToPath>>,
                   optional: bool,
                   default_mode: i32|
     -> Result<(), VolumeError> {
        let Some(data) = sources.secret(secret) else {
            if optional {
                return Ok(());
            }
            return Err(VolumeError::SecretNotFound {
                container: container.to_owned(),
                volume: name.to_owned(),
                namespace: namespace.to_owned(),
                name: secret.to_owned(),
            });
        };
        match items.filter(|i| !i.is_empty()) {
            None => {
                for (key, value) in data.iter() {
                    payload.insert(key.clone(), file(value, default_mode));
                }
            }
            Some(items) => {
                for item in items {
                    match data.get(&item.key) {
                        Some(value) => {
                            payload.insert(
                                item.path.clone(),
                                file(value, item.mode.unwrap_or(default_mode)),
                            );
                        }
                        None if optional => {}
                        None => {
                            return Err(VolumeError::KeyNotFound {
                                container: container.to_owned(),
                                volume: name.to_owned(),
                                namespace: namespace.to_owned(),
                                name: secret.to_owned(),
                                key: item.key.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    };
    if let Some(s) = &volume.secret {
        let secret = s.secret_name.as_deref().unwrap_or("");
        project(
            &mut payload,
            secret,
            s.items.as_ref(),
            s.optional == Some(true),
            s.default_mode.unwrap_or(DEFAULT_MODE),
        )?;
    } else if let Some(p) = &volume.projected {
        let default_mode = p.default_mode.unwrap_or(DEFAULT_MODE);
        for source in p.sources.iter().flatten() {
            if let Some(s) = &source.secret {
                project(
                    &mut payload,
                    &s.name,
                    s.items.as_ref(),
                    s.optional == Some(true),
                    default_mode,
                )?;
            } else {
                warnings.push(format!(
                    "container {container:?}: projected volume {name:?} has a source other than \
                     a secret; coffer run leaves it out"
                ));
            }
        }
    }
    Ok((payload, warnings))
}

/// The Secrets the volumes of `plans` read.
pub fn volume_references(spec: &PodSpec, plans: &[MountPlan]) -> References {
    let mut refs = References::default();
    for plan in plans {
        let Some(volume) = find_volume(spec, &plan.volume) else {
            continue;
        };
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(name);
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(s) = &source.secret {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    refs
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
        let (payload, _) =
            volume_payload(&spec, "secret-volume", "app", "default", &sources()).expect("p");
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
      - serviceAccountToken: {path: token}
"#;
        let spec = spec(yaml);
        let s = sources();
        let payload = |name| volume_payload(&spec, name, "app", "default", &s);
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
        assert_eq!(warnings.len(), 1);
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
