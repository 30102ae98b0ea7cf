//! `SecretStore` and `ClusterSecretStore`: where and how to reach a provider. Shapes follow
//! ESO's `secretstore_types.go`, `secretstore_aws_types.go`, `secretstore_vault_types.go`
//! and `secretstore_azurekv_types.go`. Providers Coffer does not implement are kept as raw
//! JSON so such stores still parse and get a clear "unsupported provider" condition.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::meta::{Condition, SecretKeySelector, ServiceAccountSelector};

/// A `SecretStore` (namespaced) or `ClusterSecretStore` (cluster-wide); same shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStore {
    /// `external-secrets.io/v1` or `v1beta1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `SecretStore` or `ClusterSecretStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The provider configuration.
    #[serde(default)]
    pub spec: SecretStoreSpec,
    /// Validation result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SecretStoreStatus>,
}

/// `spec` of a store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// Controller class; stores with another class are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// Exactly one provider.
    #[serde(default)]
    pub provider: SecretStoreProvider,
    /// Retries for provider calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<RetrySettings>,
    /// Seconds between store re-validations (an int or string in ESO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<serde_json::Value>,
    /// ClusterSecretStore only: which namespaces may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterSecretStoreCondition>,
}

/// `spec.retrySettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    /// How many times to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Pause between retries (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
}

/// `spec.conditions[]` of a ClusterSecretStore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    /// Namespaces whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces by regular expression.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_regexes: Vec<String>,
}

/// `spec.provider`: one of these is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreProvider {
    /// AWS Secrets Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsProvider>,
    /// HashiCorp Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultProvider>,
    /// Azure Key Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azurekv: Option<AzureKvProvider>,
    /// Every other provider ESO knows, kept as JSON.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `provider.aws` (`AWSProvider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    /// `SecretsManager` (the only service Coffer implements) or `ParameterStore`.
    #[serde(default = "default_aws_service")]
    pub service: String,
    /// The region, e.g. `eu-central-1`.
    #[serde(default)]
    pub region: String,
    /// Credentials; absent means the SDK's default chain.
    #[serde(default)]
    pub auth: AwsAuth,
    /// An IAM role to assume (not supported by Coffer yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A prefix put before every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

fn default_aws_service() -> String {
    "SecretsManager".to_owned()
}

/// `provider.aws.auth`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// Static keys from Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AwsAuthSecretRef>,
    /// IRSA via a ServiceAccount (not supported by Coffer yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<serde_json::Value>,
}

/// `auth.secretRef` (`AWSAuthSecretRef`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuthSecretRef {
    /// The access key id.
    #[serde(rename = "accessKeyIDSecretRef")]
    pub access_key_id: SecretKeySelector,
    /// The secret access key.
    pub secret_access_key_secret_ref: SecretKeySelector,
    /// An optional session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_secret_ref: Option<SecretKeySelector>,
}

/// `provider.vault` (`VaultProvider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultProvider {
    /// The server's URL, e.g. `https://vault.example:8200`.
    pub server: String,
    /// The KV mount, e.g. `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `v1` or `v2` (default).
    #[serde(default)]
    pub version: VaultKvVersion,
    /// Enterprise namespace (`X-Vault-Namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM CA certificates (base64 in JSON, as a `[]byte` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// A Secret or ConfigMap holding the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,
    /// How to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<VaultAuth>,
    /// Extra headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// `vault.version`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VaultKvVersion {
    /// KV version 1 (no versions).
    #[serde(rename = "v1")]
    V1,
    /// KV version 2.
    #[default]
    #[serde(rename = "v2")]
    V2,
}

/// `caProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaProvider {
    /// `Secret` or `ConfigMap`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The object's name.
    pub name: String,
    /// The key holding the PEM.
    #[serde(default)]
    pub key: String,
    /// Its namespace (ClusterSecretStore only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `vault.auth`: exactly one method.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultAuth {
    /// Namespace used for the login only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A static token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,
    /// Kubernetes login with a ServiceAccount token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,
    /// Other methods ESO knows (ldap, jwt, cert, iam, userPass, gcp), refused by Coffer.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `auth.appRole`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultAppRole {
    /// The auth mount (default `approle`).
    #[serde(default = "default_approle_path")]
    pub path: String,
    /// The role id, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// The role id, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<SecretKeySelector>,
    /// The secret id.
    pub secret_ref: SecretKeySelector,
}

fn default_approle_path() -> String {
    "approle".to_owned()
}

/// `auth.kubernetes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// The auth mount (default `kubernetes`).
    #[serde(default = "default_kubernetes_path")]
    pub mount_path: String,
    /// The Vault role.
    pub role: String,
    /// A ServiceAccount whose token is requested (TokenRequest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// A Secret holding a ServiceAccount token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

fn default_kubernetes_path() -> String {
    "kubernetes".to_owned()
}

/// `provider.azurekv` (`AzureKVProvider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureKvProvider {
    /// `https://<name>.vault.azure.net`.
    pub vault_url: String,
    /// The Entra ID tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// `ServicePrincipal` (default); `ManagedIdentity` and `WorkloadIdentity` are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    /// Client id and secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<AzureKvAuth>,
    /// `PublicCloud` (default), `USGovernmentCloud`, `ChinaCloud`, `GermanCloud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_type: Option<String>,
}

/// `azurekv.authSecretRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureKvAuth {
    /// The application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<SecretKeySelector>,
    /// The client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretKeySelector>,
    /// The tenant, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<SecretKeySelector>,
}

/// `status` of a store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// The `Ready` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `ReadOnly` for every store Coffer reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<String>,
}

impl SecretStore {
    /// The store's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The name of the provider configured, such as `aws`, or `None` when none is set.
    pub fn provider_name(&self) -> Option<&str> {
        let p = &self.spec.provider;
        if p.aws.is_some() {
            Some("aws")
        } else if p.vault.is_some() {
            Some("vault")
        } else if p.azurekv.is_some() {
            Some("azurekv")
        } else {
            p.other.keys().next().map(String::as_str)
        }
    }
}
