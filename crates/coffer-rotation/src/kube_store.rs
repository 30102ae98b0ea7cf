//! [`KubeStore`]: the [`RotationStore`] over the Kubernetes API (`coffer serve` or a real
//! cluster), one namespace per store.
//!
//! - A rotation's status is the `status` subresource of the `SecretRotation` (group
//!   `coffer.dev`, v1) of the same name. Writes are `PUT .../status` carrying the
//!   resourceVersion read, so the API server does the compare-and-swap (409 = lost race).
//!   The revision is the object's resourceVersion; a status that is absent (or `{}`) counts as
//!   "not saved yet". The object itself must exist: the store never creates it.
//! - A [`StagedSecret`] is two Secrets. The target Secret holds what consumers read (the
//!   `current` stage, as plain Secret data). A companion Secret `<name>.coffer-stages` (type
//!   `coffer.dev/rotation-stages`, label `coffer.dev/stages-of: <name>`) holds the whole staged
//!   state as JSON under the key `stages.json`: current, pending and previous with their
//!   versions, the Secret's type, and the resourceVersion of the target Secret it was written
//!   over (`baseResourceVersion`). Consumers never need the companion: a Role that lets a
//!   service read its Secret by name does not reach it.
//!
//! Two objects cannot be written atomically, so the companion is the commit point:
//! `write_secret` writes the companion first (compare-and-swap on its resourceVersion), then
//! the target Secret (retried on a conflict: the companion already decided). On read:
//!
//! - the target Secret's data equals the companion's `current`: consistent;
//! - it differs and the Secret is still at `baseResourceVersion` (or absent): a crash fell
//!   between the two writes; the Secret is repaired from the companion;
//! - it differs and the Secret changed after the companion was written: someone changed it on
//!   purpose (`coffer secret rollback`, `kubectl edit`); its data is taken as `current`
//!   (versions and the other stages are kept) and the next write records it in the companion.
//!
//! Revisions: the companion's resourceVersion when the companion exists. Without a companion
//! (a Secret never written by a rotation) the revision is the target Secret's own
//! resourceVersion. Both come from the API server's one revision counter, so the two kinds
//! never collide, and a companion created by someone else in between makes the revision
//! change (a conflict, never a silent overwrite).

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::secret::{SecretData, SecretValue};
use crate::state::RotationStatus;
use crate::store::{Revision, RotationStore, StagedSecret, StagedValue, Versioned, check_revision};

/// The API group of `SecretRotation`.
pub const GROUP: &str = "coffer.dev";
/// The version `SecretRotation` is read and written through.
pub const VERSION: &str = "v1";
/// The kind.
pub const KIND: &str = "SecretRotation";
/// Its plural (the URL segment).
pub const PLURAL: &str = "secretrotations";
/// The suffix of the companion Secret's name: `<secret>.coffer-stages`.
pub const COMPANION_SUFFIX: &str = ".coffer-stages";
/// The companion Secret's type.
pub const COMPANION_TYPE: &str = "coffer.dev/rotation-stages";
/// The label on a companion naming the Secret it belongs to.
pub const COMPANION_LABEL: &str = "coffer.dev/stages-of";
/// The key of the companion's data that holds the stages.
const COMPANION_KEY: &str = "stages.json";
/// How often the target Secret write is retried after a conflict (the companion is already
/// written; the Secret must follow it).
const SECRET_WRITE_ATTEMPTS: usize = 5;

/// The `SecretRotation` resource (`coffer.dev/v1`, plural `secretrotations`).
pub fn rotation_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// The name of the companion Secret of Secret `name`.
pub fn companion_name(name: &str) -> String {
    format!("{name}{COMPANION_SUFFIX}")
}

/// A [`RotationStore`] over the Kubernetes API in one namespace (see the module docs).
#[derive(Clone)]
pub struct KubeStore {
    namespace: String,
    rotations: Api<DynamicObject>,
    secrets: Api<Secret>,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The companion's JSON (values base64-encoded; the companion is a Secret, encrypted at rest).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stages {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    secret_type: Option<String>,
    current_version: u64,
    current: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Stage>,
    /// The target Secret's resourceVersion when this was written (`None`: it did not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_resource_version: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Stage {
    version: u64,
    data: BTreeMap<String, String>,
}

impl Drop for Stages {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for stage in [Some(&mut self.current)]
            .into_iter()
            .chain([self.pending.as_mut().map(|s| &mut s.data)])
            .chain([self.previous.as_mut().map(|s| &mut s.data)])
            .flatten()
        {
            stage.values_mut().for_each(|v| v.zeroize());
        }
    }
}

fn encode(data: &SecretData) -> BTreeMap<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    data.iter()
        .map(|(k, v)| (k.to_owned(), b64.encode(v.expose_secret())))
        .collect()
}

fn decode(what: &str, data: &BTreeMap<String, String>) -> Result<SecretData, StoreError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    data.iter()
        .map(|(k, v)| {
            b64.decode(v)
                .map(|bytes| (k.clone(), SecretValue::new(bytes)))
                .map_err(|_| {
                    StoreError::Backend(format!(
                        "{what}: key {k:?} is not base64; delete the companion Secret to start over from the target Secret"
                    ))
                })
        })
        .collect()
}

fn secret_data(secret: &Secret) -> SecretData {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), SecretValue::new(v.0.clone())))
        .collect()
}

fn parse_revision(what: &str, rv: Option<&str>) -> Result<Revision, StoreError> {
    rv.and_then(|rv| rv.parse().ok())
        .filter(|rv| *rv > 0)
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "{what} has resourceVersion {rv:?}, not a positive number; use an API server with numeric resourceVersions (coffer serve, Kubernetes)"
            ))
        })
}

impl KubeStore {
    /// A store for rotations and Secrets of `namespace`, through `client`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            rotations: Api::namespaced_with(client.clone(), namespace, &rotation_resource()),
            secrets: Api::namespaced(client, namespace),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api_error(&self, what: &str, e: kube::Error) -> StoreError {
        let ns = &self.namespace;
        match &e {
            kube::Error::Api(s) if s.is_forbidden() => StoreError::Backend(format!(
                "{what} in namespace {ns}: forbidden ({}); grant the controller's user get/create/update on secrets and secretrotations/status",
                s.message
            )),
            kube::Error::Api(s) => StoreError::Backend(format!(
                "{what} in namespace {ns}: the API server refused it ({}, {}); fix the object it names",
                s.code, s.message
            )),
            _ => StoreError::Backend(format!(
                "{what} in namespace {ns}: {e}; check that the API server is reachable"
            )),
        }
    }

    fn is_conflict(e: &kube::Error) -> bool {
        matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
    }

    async fn get_rotation(&self, name: &str) -> Result<Option<DynamicObject>, StoreError> {
        self.rotations
            .get_opt(name)
            .await
            .map_err(|e| self.api_error(&format!("reading SecretRotation {name:?}"), e))
    }

    async fn get_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        self.secrets
            .get_opt(name)
            .await
            .map_err(|e| self.api_error(&format!("reading Secret {name:?}"), e))
    }

    /// The companion's stages, or an error naming the broken companion.
    fn stages_of(&self, companion: &Secret) -> Result<Stages, StoreError> {
        let name = companion.metadata.name.as_deref().unwrap_or_default();
        let raw = companion
            .data
            .as_ref()
            .and_then(|d| d.get(COMPANION_KEY))
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "companion Secret {}/{name} has no {COMPANION_KEY}; delete it to start over from the target Secret",
                    self.namespace
                ))
            })?;
        serde_json::from_slice(&raw.0).map_err(|e| {
            StoreError::Backend(format!(
                "companion Secret {}/{name}: {COMPANION_KEY} is not valid ({}); delete it to start over from the target Secret",
                self.namespace,
                e.classify() as u8
            ))
        })
    }

    /// Writes the target Secret's data to `current` (creating it with `secret_type` when
    /// absent). The companion already holds the decision, so a conflict re-reads and retries.
    async fn put_target(
        &self,
        name: &str,
        mut existing: Option<Secret>,
        current: &SecretData,
        secret_type: Option<&str>,
    ) -> Result<(), StoreError> {
        let data: BTreeMap<String, ByteString> = current
            .iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.expose_secret().to_vec())))
            .collect();
        for _ in 0..SECRET_WRITE_ATTEMPTS {
            let result = match existing.take() {
                Some(mut secret) => {
                    secret.data = Some(data.clone());
                    secret.string_data = None;
                    self.secrets
                        .replace(name, &PostParams::default(), &secret)
                        .await
                }
                None => {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(name.to_owned()),
                            namespace: Some(self.namespace.clone()),
                            ..ObjectMeta::default()
                        },
                        type_: secret_type.map(str::to_owned),
                        data: Some(data.clone()),
                        ..Secret::default()
                    };
                    self.secrets.create(&PostParams::default(), &secret).await
                }
            };
            match result {
                Ok(_) => return Ok(()),
                Err(e) if Self::is_conflict(&e) => {
                    existing = self.get_secret(name).await?;
                }
                Err(e) => return Err(self.api_error(&format!("writing Secret {name:?}"), e)),
            }
        }
        Err(StoreError::Backend(format!(
            "Secret {}/{name} kept changing while the rotation wrote it; its companion holds the value, the next read repairs it",
            self.namespace
        )))
    }
}

#[async_trait]
impl RotationStore for KubeStore {
    async fn load_status(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<RotationStatus>>, StoreError> {
        let Some(object) = self.get_rotation(name).await? else {
            return Ok(None);
        };
        let status = match object.data.get("status") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::Object(m)) if m.is_empty() => return Ok(None),
            Some(s) => s,
        };
        let value: RotationStatus = serde_json::from_value(status.clone()).map_err(|e| {
            StoreError::Backend(format!(
                "status of SecretRotation {}/{name} is not a rotation status ({e}); clear it with kubectl patch --subresource=status",
                self.namespace
            ))
        })?;
        let revision = parse_revision(
            &format!("SecretRotation {name:?}"),
            object.metadata.resource_version.as_deref(),
        )?;
        Ok(Some(Versioned { value, revision }))
    }

    async fn save_status(
        &self,
        name: &str,
        status: &RotationStatus,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let object_name = || format!("rotation {}/{name}", self.namespace);
        let Some(mut object) = self.get_rotation(name).await? else {
            return Err(StoreError::Backend(format!(
                "SecretRotation {}/{name} does not exist; create it before rotating",
                self.namespace
            )));
        };
        let rv = parse_revision(
            &format!("SecretRotation {name:?}"),
            object.metadata.resource_version.as_deref(),
        )?;
        let has_status = match object.data.get("status") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Object(m)) => !m.is_empty(),
            Some(_) => true,
        };
        check_revision(object_name, has_status.then_some(rv), expected)?;
        let value = serde_json::to_value(status)
            .map_err(|e| StoreError::Backend(format!("encoding the status: {e}")))?;
        object.data["status"] = value;
        match self
            .rotations
            .replace_status(name, &PostParams::default(), &object)
            .await
        {
            Ok(written) => parse_revision(
                &format!("SecretRotation {name:?}"),
                written.metadata.resource_version.as_deref(),
            ),
            Err(e) if Self::is_conflict(&e) => Err(StoreError::Conflict {
                object: object_name(),
                expected,
                found: None,
            }),
            Err(e) => {
                Err(self.api_error(&format!("writing the status of SecretRotation {name:?}"), e))
            }
        }
    }

    async fn read_secret(&self, name: &str) -> Result<Option<Versioned<StagedSecret>>, StoreError> {
        let companion_name = companion_name(name);
        let target = self.get_secret(name).await?;
        let companion = self.get_secret(&companion_name).await?;
        let Some(companion) = companion else {
            return match target {
                None => Ok(None),
                Some(secret) => Ok(Some(Versioned {
                    revision: parse_revision(
                        &format!("Secret {name:?}"),
                        secret.metadata.resource_version.as_deref(),
                    )?,
                    value: StagedSecret {
                        secret_type: secret.type_.clone(),
                        ..StagedSecret::plain(secret_data(&secret))
                    },
                })),
            };
        };
        let revision = parse_revision(
            &format!("Secret {companion_name:?}"),
            companion.metadata.resource_version.as_deref(),
        )?;
        let stages = self.stages_of(&companion)?;
        let what = format!("companion Secret {}/{companion_name}", self.namespace);
        let stage = |s: &Option<Stage>| -> Result<Option<StagedValue>, StoreError> {
            s.as_ref()
                .map(|s| {
                    Ok(StagedValue {
                        version: s.version,
                        data: decode(&what, &s.data)?,
                    })
                })
                .transpose()
        };
        let mut staged = StagedSecret {
            secret_type: stages.secret_type.clone(),
            current: decode(&what, &stages.current)?,
            current_version: stages.current_version,
            pending: stage(&stages.pending)?,
            previous: stage(&stages.previous)?,
        };
        let target_rv = target
            .as_ref()
            .and_then(|s| s.metadata.resource_version.clone());
        let target_data = target.as_ref().map(secret_data);
        if target_data.as_ref() != Some(&staged.current) {
            if target.is_none() || target_rv == stages.base_resource_version {
                tracing::warn!(namespace = %self.namespace, secret = %name, "repairing the Secret from its companion (a write was interrupted)");
                self.put_target(name, target, &staged.current, staged.secret_type.as_deref())
                    .await?;
            } else if let Some(data) = target_data {
                tracing::info!(namespace = %self.namespace, secret = %name, "the Secret was changed outside the rotation (rollback or edit); taking its data as current");
                staged.current = data;
            }
        }
        Ok(Some(Versioned {
            value: staged,
            revision,
        }))
    }

    async fn write_secret(
        &self,
        name: &str,
        secret: &StagedSecret,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let companion_name = companion_name(name);
        let object_name = || format!("secret {}/{name}", self.namespace);
        let target = self.get_secret(name).await?;
        let companion = self.get_secret(&companion_name).await?;
        let found = match (&companion, &target) {
            (Some(c), _) => Some(parse_revision(
                &format!("Secret {companion_name:?}"),
                c.metadata.resource_version.as_deref(),
            )?),
            (None, Some(t)) => Some(parse_revision(
                &format!("Secret {name:?}"),
                t.metadata.resource_version.as_deref(),
            )?),
            (None, None) => None,
        };
        check_revision(object_name, found, expected)?;
        let stage = |s: &Option<StagedValue>| {
            s.as_ref().map(|s| Stage {
                version: s.version,
                data: encode(&s.data),
            })
        };
        let stages = Stages {
            secret_type: secret.secret_type.clone(),
            current_version: secret.current_version,
            current: encode(&secret.current),
            pending: stage(&secret.pending),
            previous: stage(&secret.previous),
            base_resource_version: target
                .as_ref()
                .and_then(|t| t.metadata.resource_version.clone()),
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&stages)
                .map_err(|e| StoreError::Backend(format!("encoding the stages: {e}")))?,
        );
        let mut labels = BTreeMap::new();
        labels.insert(COMPANION_LABEL.to_owned(), name.to_owned());
        let body = Secret {
            metadata: ObjectMeta {
                name: Some(companion_name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                resource_version: companion
                    .as_ref()
                    .and_then(|c| c.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            type_: Some(COMPANION_TYPE.to_owned()),
            data: Some(
                [(COMPANION_KEY.to_owned(), ByteString(json.to_vec()))]
                    .into_iter()
                    .collect(),
            ),
            ..Secret::default()
        };
        let written = match companion {
            Some(_) => {
                self.secrets
                    .replace(&companion_name, &PostParams::default(), &body)
                    .await
            }
            None => self.secrets.create(&PostParams::default(), &body).await,
        };
        let written = match written {
            Ok(w) => w,
            Err(e) if Self::is_conflict(&e) => {
                return Err(StoreError::Conflict {
                    object: object_name(),
                    expected,
                    found: None,
                });
            }
            Err(e) => {
                return Err(self.api_error(&format!("writing Secret {companion_name:?}"), e));
            }
        };
        let revision = parse_revision(
            &format!("Secret {companion_name:?}"),
            written.metadata.resource_version.as_deref(),
        )?;
        self.put_target(name, target, &secret.current, secret.secret_type.as_deref())
            .await?;
        Ok(revision)
    }
}
