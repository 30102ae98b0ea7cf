//! The kinds Coffer serves and what is special about each: defaults, validation, table
//! columns and selectable fields. Everything else is shared (`registry.rs`, `resources.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use coffer_api::CodecError;
use coffer_api::k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, NamespaceSpec, NamespaceStatus, Secret, ServiceAccount,
};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use coffer_api::k8s_openapi::{ByteString, Metadata, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::authn::UserInfo;
use crate::discovery::{ResourceInfo, find_resource};
use crate::state::AppState;
use crate::status::{ApiResult, Cause, GroupResource};

/// The causes of a 422 for these field errors.
pub(crate) fn causes(errors: Vec<coffer_api::FieldError>) -> Vec<Cause> {
    errors
        .iter()
        .map(|e| Cause {
            reason: e.cause_reason().to_owned(),
            message: e.message(),
            field: e.field.clone(),
        })
        .collect()
}

/// A kind served through the generic REST handlers.
pub trait ApiKind:
    Serialize + DeserializeOwned + Clone + Send + Sync + 'static + Metadata<Ty = ObjectMeta>
{
    /// The plural resource name.
    const RESOURCE: &'static str;

    /// The API group, empty for the core group.
    const API_GROUP: &'static str = "";

    /// The (group, resource) whose EncryptionConfiguration entry encrypts this kind: itself,
    /// except for Coffer's Secret history, which holds Secret data and is encrypted as
    /// `secrets`.
    const ENCRYPTED_AS: (&'static str, &'static str) = (Self::API_GROUP, Self::RESOURCE);

    /// The kind, e.g. `Secret`.
    fn kind() -> &'static str {
        <Self as Resource>::KIND
    }

    /// The apiVersion objects are stored and answered in, e.g. `v1`.
    fn api_version() -> &'static str {
        <Self as Resource>::API_VERSION
    }

    /// The apiVersion of this request's answers (a custom kind read through another served
    /// version answers in that version).
    /// Borrowed for every kind but a custom one read through another version, so a GET
    /// allocates nothing for it.
    fn served_api_version() -> Cow<'static, str> {
        Cow::Borrowed(Self::api_version())
    }

    /// Whether a body may carry this `apiVersion` (other served versions of the group).
    fn accepts_api_version(version: &str) -> bool {
        version == Self::api_version()
    }

    /// The stored bytes (before encryption): kube-apiserver's protobuf for built-in kinds,
    /// JSON for Coffer's and other custom kinds.
    fn encode(&self) -> Vec<u8>;

    /// Back from [`ApiKind::encode`]'s bytes (or kube-apiserver's).
    fn decode(bytes: &[u8]) -> Result<Self, CodecError>;

    /// Discovery information.
    fn info() -> &'static ResourceInfo {
        find_resource(Self::API_GROUP, Self::RESOURCE)
            .expect("BUG: every ApiKind is in the discovery table")
    }

    /// `{group, resource}` for messages.
    fn group_resource() -> GroupResource<'static> {
        GroupResource {
            group: Self::API_GROUP,
            resource: Self::RESOURCE,
        }
    }

    /// Applies defaults and write-only fields before validation. `old` is the stored object on
    /// update.
    fn normalise(&mut self, _old: Option<&Self>) {}

    /// Field problems of this object (create when `old` is `None`, else update).
    fn validate(&self, old: Option<&Self>) -> Vec<Cause>;

    /// Table columns after `Name`, as `(name, type, description)`.
    fn columns() -> &'static [(&'static str, &'static str, &'static str)];

    /// Cells for [`ApiKind::columns`] (the `Name` and `Age` cells are added by the caller).
    fn cells(&self) -> Vec<Value>;

    /// Whether the table ends with an `Age` column (the last of [`ApiKind::columns`]).
    const AGE_COLUMN: bool = true;

    /// Checks that need the caller's identity: RBAC's escalation and bind checks (§15.4).
    /// They run before validation, as kube-apiserver's RBAC storage checks escalation before
    /// the generic store validates (so re-pointing a binding's immutable `roleRef` at a bigger
    /// role is 403, not 422). `old` is the stored object on update.
    fn admit(&self, _old: Option<&Self>, _ctx: &Admission<'_>) -> ApiResult<()> {
        Ok(())
    }

    /// Empties every value the caller may not read (keys stay) and marks the object so;
    /// true when something was withheld. Only Secrets have values to withhold.
    fn withhold_values(&mut self) -> bool {
        false
    }

    /// Whether the kind has a `status` subresource served through [`ApiKind::status`].
    const STATUS_SUBRESOURCE: bool = false;

    /// The `status` of a kind with a status subresource.
    fn status(&self) -> Option<serde_json::Value> {
        None
    }

    /// Replaces the `status` (status subresource writes).
    fn set_status(&mut self, _status: Option<serde_json::Value>) {}

    /// Fields a field selector may name, besides `metadata.name` and `metadata.namespace`.
    fn selectable_fields() -> &'static [&'static str] {
        &[]
    }

    /// The value of a selectable field.
    fn field(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Who is writing, for [`ApiKind::admit`].
pub struct Admission<'a> {
    /// The server state (the RBAC snapshot).
    pub state: &'a AppState,
    /// The caller.
    pub user: &'a UserInfo,
    /// The namespace of the object, `""` for cluster-scoped kinds.
    pub namespace: &'a str,
    /// `create` or `update`.
    pub verb: &'static str,
}

/// The annotation on a listed Secret whose values were withheld (`--secret-list-policy`).
pub const WITHHELD_ANNOTATION: &str = "coffer.dev/values-withheld";

/// [`ApiKind::encode`] and [`ApiKind::decode`] for a kind kube-apiserver stores as protobuf.
macro_rules! protobuf_storage {
    () => {
        fn encode(&self) -> Vec<u8> {
            coffer_api::encode_for_storage(self)
        }

        fn decode(bytes: &[u8]) -> Result<Self, coffer_api::CodecError> {
            coffer_api::decode_from_storage(bytes)
        }
    };
}

/// The current time (to the second, as kube-apiserver writes timestamps).
pub fn now() -> coffer_api::k8s_openapi::jiff::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    coffer_api::k8s_openapi::jiff::Timestamp::from_second(secs)
        .expect("BUG: the system clock is within jiff's range")
}

const AGE: (&str, &str, &str) = (
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

impl ApiKind for Secret {
    const RESOURCE: &'static str = "secrets";

    protobuf_storage!();

    /// `stringData` is merged into `data` (its values win) and never stored; `type` defaults
    /// to `Opaque` on create and keeps the stored value when empty on update (§8.1).
    fn normalise(&mut self, old: Option<&Self>) {
        if let Some(string_data) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in string_data {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
        if self.type_.as_deref().unwrap_or("").is_empty() {
            self.type_ = Some(match old {
                Some(o) => o.type_.clone().unwrap_or_else(|| "Opaque".to_owned()),
                None => "Opaque".to_owned(),
            });
        }
    }

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(match old {
            None => coffer_api::validate_secret_create(self),
            Some(o) => coffer_api::validate_secret_update(self, o),
        })
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            (
                "Type",
                "string",
                "Used to facilitate programmatic handling of secret data.",
            ),
            ("Data", "string", "Data contains the secret data."),
            AGE,
        ]
    }

    fn cells(&self) -> Vec<Value> {
        vec![
            json!(self.type_.clone().unwrap_or_default()),
            json!(self.data.as_ref().map_or(0, BTreeMap::len)),
        ]
    }

    fn selectable_fields() -> &'static [&'static str] {
        &["type"]
    }

    fn withhold_values(&mut self) -> bool {
        let Some(data) = self.data.as_mut() else {
            return false;
        };
        for value in data.values_mut() {
            value.0.clear();
        }
        self.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                WITHHELD_ANNOTATION.to_owned(),
                "listing does not grant get: values withheld".to_owned(),
            );
        true
    }

    fn field(&self, name: &str) -> Option<String> {
        (name == "type").then(|| self.type_.clone().unwrap_or_default())
    }
}

impl ApiKind for ConfigMap {
    const RESOURCE: &'static str = "configmaps";

    protobuf_storage!();

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(match old {
            None => coffer_api::validate_configmap_create(self),
            Some(o) => coffer_api::validate_configmap_update(self, o),
        })
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            ("Data", "string", "Data contains the configuration data."),
            AGE,
        ]
    }

    fn cells(&self) -> Vec<Value> {
        let n = self.data.as_ref().map_or(0, BTreeMap::len)
            + self.binary_data.as_ref().map_or(0, BTreeMap::len);
        vec![json!(n)]
    }
}

impl ApiKind for Namespace {
    const RESOURCE: &'static str = "namespaces";

    protobuf_storage!();

    /// Namespaces get the `kubernetes` finalizer, phase `Active` and the
    /// `kubernetes.io/metadata.name` label (§9.1).
    fn normalise(&mut self, old: Option<&Self>) {
        let name = self.metadata.name.clone().unwrap_or_default();
        self.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".to_owned(), name);
        match old {
            None => {
                self.spec = Some(NamespaceSpec {
                    finalizers: Some(vec!["kubernetes".to_owned()]),
                });
                self.status = Some(NamespaceStatus {
                    phase: Some("Active".to_owned()),
                    conditions: None,
                });
            }
            Some(o) => {
                self.spec.clone_from(&o.spec);
                self.status.clone_from(&o.status);
            }
        }
    }

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(match old {
            None => coffer_api::validate_namespace_create(self),
            Some(o) => coffer_api::validate_namespace_update(self, o),
        })
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        &[("Status", "string", "The status of the namespace"), AGE]
    }

    fn cells(&self) -> Vec<Value> {
        vec![json!(
            self.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        )]
    }

    fn selectable_fields() -> &'static [&'static str] {
        &["status.phase"]
    }

    fn field(&self, name: &str) -> Option<String> {
        (name == "status.phase").then(|| {
            self.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        })
    }
}

impl ApiKind for ServiceAccount {
    const RESOURCE: &'static str = "serviceaccounts";

    protobuf_storage!();

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(match old {
            None => coffer_api::validate_service_account_create(self),
            Some(o) => coffer_api::validate_service_account_update(self, o),
        })
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            (
                "Secrets",
                "string",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ]
    }

    fn cells(&self) -> Vec<Value> {
        vec![json!(self.secrets.as_ref().map_or(0, Vec::len))]
    }
}

mod custom;
mod rbac;

pub use custom::{
    COFFER_GROUP, ClusterExternalSecret, ClusterSecretStore, ESO_GROUP, ExternalSecret,
    SecretRotation, SecretStore, current_served_version, served_version,
};
pub use rbac::RBAC_GROUP;
