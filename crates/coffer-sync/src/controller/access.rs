//! The Kubernetes side of a sync over the `kube` client: [`KubeAccess`] (the target Secret
//! and the ExternalSecret's status) and [`CredentialSource`] (keys of Secrets a store
//! references, and ServiceAccount tokens through TokenRequest).
//!
//! Errors carry the verb, the object and the server's `Status` message, never a body: a
//! Secret's data is only ever in the request, not in what is returned or logged.

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};

use crate::provider::{CredentialSource, ProviderError, SecretValue};
use crate::sync::KubeAccess;
use crate::types::{
    ExternalSecret, ExternalSecretStatus, SecretKeySelector, ServiceAccountSelector,
};

/// Lifetime asked for ServiceAccount tokens (TokenRequest `expirationSeconds`). Providers
/// are rebuilt after [`crate::sync::PROVIDER_TTL`], well before a token runs out.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// [`KubeAccess`] and [`CredentialSource`] over a kube client.
#[derive(Clone)]
pub struct KubeApi {
    client: kube::Client,
    external_secrets: ApiResource,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi").finish_non_exhaustive()
    }
}

impl KubeApi {
    /// Requests go through `client`; ExternalSecret statuses through `external_secrets`
    /// (the `external-secrets.io/v1` resource).
    pub fn new(client: kube::Client, external_secrets: ApiResource) -> Self {
        Self {
            client,
            external_secrets,
        }
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// `<verb> Secret ns/name: <server message>`, and what to do for the common cases.
fn describe(verb: &str, what: &str, err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) if s.code == 409 => format!(
            "{verb} {what}: conflict ({}); it changed since it was read and is synced again on the next reconcile",
            s.message
        ),
        kube::Error::Api(s) if s.code == 403 => format!(
            "{verb} {what}: forbidden ({}); grant the controller's user this verb",
            s.message
        ),
        kube::Error::Api(s) => format!("{verb} {what}: {} ({})", s.message, s.code),
        other => format!("{verb} {what}: {other}"),
    }
}

fn secret_ref(s: &Secret) -> (String, String) {
    (
        s.metadata.namespace.clone().unwrap_or_default(),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

#[async_trait]
impl KubeAccess for KubeApi {
    async fn get_secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        self.secrets(namespace)
            .get_opt(name)
            .await
            .map_err(|e| describe("get", &format!("Secret {namespace}/{name}"), &e))
    }

    async fn create_secret(&self, secret: &Secret) -> Result<(), String> {
        let (ns, name) = secret_ref(secret);
        self.secrets(&ns)
            .create(&PostParams::default(), secret)
            .await
            .map(drop)
            .map_err(|e| describe("create", &format!("Secret {ns}/{name}"), &e))
    }

    async fn update_secret(&self, secret: &Secret) -> Result<(), String> {
        // `secret` carries the resourceVersion it was read at: the server refuses the
        // write with 409 if the Secret changed since (compare-and-swap).
        let (ns, name) = secret_ref(secret);
        self.secrets(&ns)
            .replace(&name, &PostParams::default(), secret)
            .await
            .map(drop)
            .map_err(|e| describe("update", &format!("Secret {ns}/{name}"), &e))
    }

    async fn delete_secret(&self, namespace: &str, name: &str) -> Result<(), String> {
        match self
            .secrets(namespace)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(describe(
                "delete",
                &format!("Secret {namespace}/{name}"),
                &e,
            )),
        }
    }

    async fn update_status(
        &self,
        es: &ExternalSecret,
        status: &ExternalSecretStatus,
    ) -> Result<(), String> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), es.namespace(), &self.external_secrets);
        // A merge patch of the whole status through the status subresource: every field
        // the reconciler sets is present, and `conditions` (a list) is replaced as a whole.
        let patch = serde_json::json!({ "status": status });
        api.patch_status(es.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| {
                describe(
                    "update status of",
                    &format!("ExternalSecret {}/{}", es.namespace(), es.name()),
                    &e,
                )
            })
    }
}

#[async_trait]
impl CredentialSource for KubeApi {
    async fn secret_key(
        &self,
        namespace: &str,
        selector: &SecretKeySelector,
    ) -> Result<SecretValue, ProviderError> {
        let what = format!("Secret {namespace}/{}", selector.name);
        let secret = self
            .secrets(namespace)
            .get_opt(&selector.name)
            .await
            .map_err(|e| ProviderError::Credentials(describe("get", &what, &e)))?
            .ok_or_else(|| {
                ProviderError::Credentials(format!(
                    "{what} not found; create it or fix the store's secret reference"
                ))
            })?;
        let mut data = secret.data.unwrap_or_default();
        data.remove(&selector.key)
            .map(|v| SecretValue::new(v.0))
            .ok_or_else(|| {
                ProviderError::Credentials(format!(
                    "{what} has no key {:?}; add it or fix the store's secret reference",
                    selector.key
                ))
            })
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        sa: &ServiceAccountSelector,
    ) -> Result<SecretValue, ProviderError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: sa.audiences.clone(),
                expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let what = format!("a token for ServiceAccount {namespace}/{}", sa.name);
        let answer = api
            .create_token_request(&sa.name, &PostParams::default(), &request)
            .await
            .map_err(|e| ProviderError::Credentials(describe("request", &what, &e)))?;
        let token = answer
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ProviderError::Credentials(format!("{what}: the server returned no token"))
            })?;
        Ok(SecretValue::new(token.into_bytes()))
    }
}
