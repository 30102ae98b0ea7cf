//! Providers: the remote managers values come from, behind one small trait.
//!
//! A [`Provider`] fetches one remote secret by key and version ([`Provider::get_secret`]) or
//! lists many ([`Provider::get_all`]); it returns raw bytes in a [`SecretValue`] plus the
//! provider's version id. Property extraction ([`extract_property`]) and decoding
//! ([`decode`]) are the same for every provider, as ESO does them (gjson paths, literal
//! dotted keys first).
//!
//! Credentials a store references (`auth.secretRef`, `tokenSecretRef`, ServiceAccount
//! tokens) come through [`CredentialSource`], which the controller implements over the API
//! and tests implement in memory.

mod aws;
mod azure;
mod http;
mod property;
mod vault;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::types::{
    DecodingStrategy, FindSpec, SecretKeySelector, SecretStore, ServiceAccountSelector, StoreKind,
};

pub use aws::AwsSecretsManager;
pub use azure::AzureKeyVault;
/// Secret bytes: `coffer-api`'s shared type (zeroized on drop, `Debug` shows only the length).
pub use coffer_api::SecretValue;
pub use http::HttpClient;
pub use property::extract_property;
pub use vault::Vault;

/// One fetched remote secret.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The raw value (a JSON object for Vault; string or binary for AWS; text for Azure).
    pub value: SecretValue,
    /// The provider's version id (AWS VersionId, Vault version number, Azure version).
    pub version: Option<String>,
}

/// Why a provider call failed. Never carries a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The remote secret (or version) does not exist.
    #[error(
        "{provider}: secret {key:?} not found; check the key and version in the ExternalSecret"
    )]
    NotFound {
        /// Provider name.
        provider: &'static str,
        /// The remote key.
        key: String,
    },
    /// The credentials were refused (401/403).
    #[error(
        "{provider}: access denied for {key:?} ({detail}); check the store's credentials and policy"
    )]
    Denied {
        /// Provider name.
        provider: &'static str,
        /// The remote key or login path.
        key: String,
        /// The server's reason, without values.
        detail: String,
    },
    /// The provider asked to slow down and retries ran out.
    #[error(
        "{provider}: throttled (HTTP 429) after retries; raise refreshInterval or the provider's quota"
    )]
    Throttled {
        /// Provider name.
        provider: &'static str,
    },
    /// The provider could not be reached or answered with a server error.
    #[error(
        "{provider}: unavailable: {detail}; the last synced Secret is kept and the sync retried"
    )]
    Unavailable {
        /// Provider name.
        provider: &'static str,
        /// What happened (transport or status).
        detail: String,
    },
    /// The store's configuration cannot work (missing field, unsupported option).
    #[error("store configuration: {0}")]
    Config(String),
    /// A referenced Kubernetes Secret or key is missing.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The answer was not understood.
    #[error("{provider}: unexpected response: {detail}")]
    Protocol {
        /// Provider name.
        provider: &'static str,
        /// What was wrong (never the value).
        detail: String,
    },
    /// A `property` was not found in the value.
    #[error("key {property:?} does not exist in secret {key:?}")]
    PropertyMissing {
        /// The property path.
        property: String,
        /// The remote key.
        key: String,
    },
    /// A value could not be decoded with the requested strategy.
    #[error("value of {key:?} is not {strategy}; fix decodingStrategy")]
    Decode {
        /// The remote key.
        key: String,
        /// `base64` or `base64url`.
        strategy: &'static str,
    },
}

impl ProviderError {
    /// The short reason shown in `coffer sync status` and used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::NotFound { .. } => "NotFound",
            ProviderError::Denied { .. } => "Denied",
            ProviderError::Throttled { .. } => "Throttled",
            ProviderError::Unavailable { .. } => "Unavailable",
            ProviderError::Config(_) => "InvalidProviderConfig",
            ProviderError::Credentials(_) => "MissingProviderSecret",
            ProviderError::Protocol { .. } => "Protocol",
            ProviderError::PropertyMissing { .. } => "PropertyMissing",
            ProviderError::Decode { .. } => "Decode",
        }
    }
}

/// A remote manager.
#[async_trait]
pub trait Provider: Send + Sync {
    /// `aws`, `vault` or `azurekv`.
    fn name(&self) -> &'static str;

    /// One remote secret by key and optional version (provider syntax: AWS stage or
    /// `uuid/<id>`, Vault version number, Azure version id).
    async fn get_secret(&self, key: &str, version: Option<&str>) -> Result<Fetched, ProviderError>;

    /// Every remote secret matching `find`, by name.
    async fn get_all(
        &self,
        find: &FindSpec,
    ) -> Result<BTreeMap<String, SecretValue>, ProviderError>;
}

/// Where store credentials come from: Secrets and ServiceAccount tokens.
#[async_trait]
pub trait CredentialSource: Send + Sync {
    /// The value of `selector` (a key of a Secret) in `namespace`.
    async fn secret_key(
        &self,
        namespace: &str,
        selector: &SecretKeySelector,
    ) -> Result<SecretValue, ProviderError>;

    /// A token for `sa` in `namespace` (TokenRequest).
    async fn service_account_token(
        &self,
        namespace: &str,
        sa: &ServiceAccountSelector,
    ) -> Result<SecretValue, ProviderError>;
}

/// Where a store's credential references resolve: the ExternalSecret's namespace for a
/// SecretStore; the selector's own namespace (required) for a ClusterSecretStore.
#[derive(Clone, Copy, Debug)]
pub struct CredentialScope<'a> {
    /// The kind of store.
    pub kind: StoreKind,
    /// The namespace of the SecretStore (or the ExternalSecret, for cluster stores).
    pub namespace: &'a str,
}

impl CredentialScope<'_> {
    /// The namespace a selector resolves in.
    pub fn namespace_for<'s>(&'s self, explicit: Option<&'s str>) -> &'s str {
        match (self.kind, explicit) {
            (StoreKind::ClusterSecretStore, Some(ns)) => ns,
            _ => self.namespace,
        }
    }
}

/// Builds the provider a store configures. Credentials are read now; Vault logs in lazily.
pub async fn build_provider(
    store: &SecretStore,
    scope: CredentialScope<'_>,
    creds: &dyn CredentialSource,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let p = &store.spec.provider;
    if let Some(aws) = &p.aws {
        return Ok(Arc::new(AwsSecretsManager::new(aws, scope, creds).await?));
    }
    if let Some(vault) = &p.vault {
        return Ok(Arc::new(Vault::new(vault, scope, creds).await?));
    }
    if let Some(az) = &p.azurekv {
        return Ok(Arc::new(AzureKeyVault::new(az, scope, creds).await?));
    }
    Err(ProviderError::Config(match store.provider_name() {
        Some(other) => {
            format!("provider {other:?} is not supported by coffer sync; use aws, vault or azurekv")
        }
        None => "spec.provider names no provider; set aws, vault or azurekv".to_owned(),
    }))
}

/// Applies `decodingStrategy` to a value (ESO's `runtime/decoding`).
pub fn decode(
    value: SecretValue,
    strategy: DecodingStrategy,
    key: &str,
) -> Result<SecretValue, ProviderError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let raw = value.expose_secret();
    let err = |strategy| ProviderError::Decode {
        key: key.to_owned(),
        strategy,
    };
    Ok(match strategy {
        DecodingStrategy::None => value,
        DecodingStrategy::Base64 => {
            SecretValue::new(STANDARD.decode(raw).map_err(|_| err("base64"))?)
        }
        DecodingStrategy::Base64Url => {
            SecretValue::new(URL_SAFE.decode(raw).map_err(|_| err("base64url"))?)
        }
        DecodingStrategy::Auto => match STANDARD.decode(raw).or_else(|_| URL_SAFE.decode(raw)) {
            Ok(bytes) => SecretValue::new(bytes),
            Err(_) => value,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_debug_hides_the_value() {
        let v = SecretValue::from("hunter2-very-secret");
        let shown = format!(
            "{:?}",
            Fetched {
                value: v,
                version: Some("7".into())
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("19 bytes"), "{shown}");
    }

    #[test]
    fn decoding_strategies() {
        let v = |s: &str| SecretValue::from(s);
        let d = |s, st| decode(v(s), st, "k").map(|x| x.expose_secret().to_vec());
        assert_eq!(d("aGk=", DecodingStrategy::Base64).expect("b64"), b"hi");
        assert_eq!(d("-_8=", DecodingStrategy::Auto).expect("auto").len(), 2);
        assert_eq!(
            d("not base64!", DecodingStrategy::Auto).expect("auto"),
            b"not base64!"
        );
        let e = d("supersecret!", DecodingStrategy::Base64).expect_err("bad");
        assert!(!e.to_string().contains("supersecret"), "{e}");
    }
}
