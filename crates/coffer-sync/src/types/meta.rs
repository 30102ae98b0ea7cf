//! Shapes shared by every kind: references to Secrets and ServiceAccounts, conditions, and the
//! `external-secrets.io` group constants.
//!
//! Field names follow ESO's `apis/meta/v1/types.go` and `apis/externalsecrets/v1/*.go`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

/// The API group of every kind in this module.
pub const GROUP: &str = "external-secrets.io";
/// The versions served, newest first. `v1beta1` objects have the same shape for the fields
/// Coffer reads.
pub const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// Label ESO puts on every Secret it manages (`LabelManaged`).
pub const LABEL_MANAGED: &str = "reconcile.external-secrets.io/managed";
/// Label naming the ExternalSecret that created a Secret (`LabelOwner`; ESO writes a hash
/// of the name when it is longer than 63 characters).
pub const LABEL_CREATED_BY: &str = "reconcile.external-secrets.io/created-by";
/// Annotation with the hash of the Secret's data (`AnnotationDataHash`).
pub const ANNOTATION_DATA_HASH: &str = "reconcile.external-secrets.io/data-hash";
/// Annotation whose change forces a refresh (`AnnotationForceSync`).
pub const ANNOTATION_FORCE_SYNC: &str = "external-secrets.io/force-sync";

/// A key in a Secret (`esmeta.SecretKeySelector`). `namespace` is honoured only for
/// ClusterSecretStores, as in ESO.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// The Secret's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The Secret's namespace (ClusterSecretStore only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The key inside the Secret's data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// A ServiceAccount whose token is used to log in (`esmeta.ServiceAccountSelector`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    /// The ServiceAccount's name.
    pub name: String,
    /// Its namespace (ClusterSecretStore only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Audiences asked for in the TokenRequest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

/// One status condition (`ExternalSecretStatusCondition` / `SecretStoreStatusCondition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Deleted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, such as `SecretSynced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human message (never a secret value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Condition reasons ESO uses on ExternalSecrets (`apis/externalsecrets/v1/externalsecret_types.go`).
pub mod reason {
    /// The Secret holds the provider's data.
    pub const SECRET_SYNCED: &str = "SecretSynced";
    /// Fetching or writing failed; the Secret was left as it was.
    pub const SECRET_SYNCED_ERROR: &str = "SecretSyncedError";
    /// The Secret was deleted because `deletionPolicy: Delete` and the data is gone.
    pub const SECRET_DELETED: &str = "SecretDeleted";
    /// `creationPolicy: Merge` and the target Secret does not exist yet.
    pub const SECRET_MISSING: &str = "SecretMissing";
    /// SecretStore: the store's configuration is usable.
    pub const STORE_VALID: &str = "Valid";
    /// SecretStore: the store's configuration is not usable.
    pub const INVALID_PROVIDER_CONFIG: &str = "InvalidProviderConfig";
}

/// Condition messages ESO writes (`pkg/controllers/externalsecret/externalsecret_controller.go`).
pub mod message {
    /// With `SecretSynced`.
    pub const SYNCED: &str = "secret synced";
    /// With `SecretSynced` when the data is gone and `deletionPolicy: Retain`.
    pub const SYNCED_RETAIN: &str = "secret retained due to DeletionPolicy=Retain";
    /// With `SecretDeleted`.
    pub const DELETED: &str = "secret deleted due to DeletionPolicy=Delete";
    /// With `SecretMissing`.
    pub const MISSING: &str = "secret will not be created due to CreationPolicy=Merge";
    /// With `SecretSyncedError` when the provider failed.
    pub const ERROR_GET_DATA: &str = "could not get secret data from provider";
    /// With `SecretSyncedError` when writing the Secret failed.
    pub const ERROR_UPDATE: &str = "could not update secret";
    /// With `SecretSyncedError` when the Secret belongs to another ExternalSecret.
    pub const ERROR_IS_OWNED: &str = "target is owned by another ExternalSecret";
}
