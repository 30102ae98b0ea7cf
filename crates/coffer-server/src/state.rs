//! The server's shared state: one cloneable handle passed to every handler.

use std::ops::Deref;
use std::sync::Arc;

use coffer_encryption::ReloadingTransformers;
use coffer_storage::{KeyLayout, Store};

use coffer_access::{TokenAuthenticator, TokenIssuer};

use crate::audit::Auditor;
use crate::authn::Authenticator;
use crate::cache::ObjectCache;
use crate::rbac_cache::RbacCache;

/// Everything a request may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// kube-apiserver's key layout under `--etcd-prefix`.
    pub layout: KeyLayout,
    /// The value transformers from the encryption config, per resource; swapped when the
    /// config file changes under `--encryption-provider-config-automatic-reload`.
    pub transformers: ReloadingTransformers,
    /// Who is calling.
    pub authn: Authenticator,
    /// The RBAC snapshot the authorizer reads.
    pub rbac: RbacCache,
    /// What a subject that may list Secrets but not get one sees of its values.
    pub secret_list_policy: SecretListPolicy,
    /// ServiceAccount token issuing and checking.
    pub service_accounts: ServiceAccounts,
    /// The audit log, when `--audit-log-path` is given.
    pub audit: Option<Auditor>,
    /// Encoded objects by key and revision (`--object-cache-size`; `cache.rs`).
    pub objects: ObjectCache,
}

/// ServiceAccount tokens (`--service-account-*`, `--api-audiences`).
pub struct ServiceAccounts {
    /// Signs TokenRequest tokens as the first `--service-account-issuer`.
    pub issuer: TokenIssuer,
    /// Verifies tokens (also used by TokenReview).
    pub authenticator: TokenAuthenticator,
    /// `--api-audiences` (default: the issuers).
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration`, in seconds.
    pub max_expiration_seconds: i64,
}

/// `--secret-list-policy`: whether listing or watching Secrets reveals the values of Secrets
/// the caller may not `get` (kubernetes/kubernetes#48128).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretListPolicy {
    /// Coffer's default: values of Secrets the caller may not `get` are withheld (keys kept).
    #[default]
    Withhold,
    /// Kubernetes' behaviour: `list` reveals every value.
    Kubernetes,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
