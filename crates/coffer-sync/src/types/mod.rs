//! The `external-secrets.io` kinds as serde types, read from ESO manifests unchanged
//! (`v1` and `v1beta1`). Unknown fields are ignored, as a Kubernetes client ignores fields of a
//! newer server; fields Coffer does not act on are kept so the reconciler can refuse them by
//! name instead of silently doing something else.

mod cluster_external_secret;
mod external_secret;
pub(crate) mod meta;
mod secret_store;

pub use cluster_external_secret::{
    ClusterExternalSecret, ClusterExternalSecretSpec, ClusterExternalSecretStatus,
    ExternalSecretMetadata,
};
pub use external_secret::{
    Binding, ConversionStrategy, CreationPolicy, DecodingStrategy, DeletionPolicy, ExternalSecret,
    ExternalSecretData, ExternalSecretDataFrom, ExternalSecretSpec, ExternalSecretStatus,
    ExternalSecretTarget, ExternalSecretTemplate, FindName, FindSpec, MergePolicy, MetadataPolicy,
    RefreshPolicy, RemoteRef, Rewrite, RewriteRegexp, RewriteTransform, SecretStoreRef, SourceRef,
    StoreKind, TemplateFrom, TemplateMetadata, default_refresh_interval,
};
pub use meta::{
    ANNOTATION_DATA_HASH, ANNOTATION_FORCE_SYNC, Condition, GROUP, LABEL_CREATED_BY, LABEL_MANAGED,
    SecretKeySelector, ServiceAccountSelector, VERSIONS, message, reason,
};
pub use secret_store::{
    AwsAuth, AwsAuthSecretRef, AwsProvider, AzureKvAuth, AzureKvProvider, CaProvider,
    ClusterSecretStoreCondition, RetrySettings, SecretStore, SecretStoreProvider, SecretStoreSpec,
    SecretStoreStatus, VaultAppRole, VaultAuth, VaultKubernetesAuth, VaultKvVersion, VaultProvider,
};

/// Any object of the group, as a manifest file holds them.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Manifest {
    /// A namespaced store.
    SecretStore(SecretStore),
    /// A cluster-wide store.
    ClusterSecretStore(SecretStore),
    /// An ExternalSecret.
    ExternalSecret(ExternalSecret),
    /// A ClusterExternalSecret.
    ClusterExternalSecret(ClusterExternalSecret),
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not YAML/JSON, or a field has the wrong shape (the message names the field).
    #[error("{0}; fix the manifest (field names are External Secrets Operator's)")]
    Syntax(String),
    /// The `apiVersion` is not `external-secrets.io/v1` or `/v1beta1`.
    #[error(
        "apiVersion {0:?} is not served; use external-secrets.io/v1 or external-secrets.io/v1beta1"
    )]
    ApiVersion(String),
    /// The `kind` is not one of the four kinds.
    #[error(
        "kind {0:?} is not synced; use SecretStore, ClusterSecretStore, ExternalSecret or ClusterExternalSecret"
    )]
    Kind(String),
}

impl Manifest {
    /// Reads every document of a YAML (or JSON) text.
    pub fn parse_all(text: &str) -> Result<Vec<Manifest>, ManifestError> {
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value = serde_json::Value::deserialize(doc)
                .map_err(|e| ManifestError::Syntax(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            out.push(Self::from_value(value)?);
        }
        Ok(out)
    }

    /// Reads one object given as JSON.
    pub fn from_value(value: serde_json::Value) -> Result<Manifest, ManifestError> {
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let served = api_version
            .strip_prefix(GROUP)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|v| VERSIONS.contains(&v));
        if !served {
            return Err(ManifestError::ApiVersion(api_version));
        }
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let syntax = |e: serde_json::Error| ManifestError::Syntax(format!("{kind}: {e}"));
        Ok(match kind.as_str() {
            "SecretStore" => Manifest::SecretStore(serde_json::from_value(value).map_err(syntax)?),
            "ClusterSecretStore" => {
                Manifest::ClusterSecretStore(serde_json::from_value(value).map_err(syntax)?)
            }
            "ExternalSecret" => {
                Manifest::ExternalSecret(serde_json::from_value(value).map_err(syntax)?)
            }
            "ClusterExternalSecret" => {
                Manifest::ClusterExternalSecret(serde_json::from_value(value).map_err(syntax)?)
            }
            _ => return Err(ManifestError::Kind(kind)),
        })
    }
}

use serde::Deserialize as _;
