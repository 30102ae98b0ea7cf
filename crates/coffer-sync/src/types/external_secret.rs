//! `ExternalSecret` (`external-secrets.io/v1`, also read as `v1beta1`): which remote values
//! go into which Secret. Field names, enums and defaults follow ESO's
//! `apis/externalsecrets/v1/externalsecret_types.go`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use super::meta::Condition;
use crate::duration::GoDuration;

/// An `ExternalSecret` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecret {
    /// `external-secrets.io/v1` or `external-secrets.io/v1beta1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `ExternalSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to sync.
    #[serde(default)]
    pub spec: ExternalSecretSpec,
    /// What the controller last did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExternalSecretStatus>,
}

/// `spec` of an ExternalSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// The store to read from (may be omitted when every entry has a `sourceRef`).
    #[serde(default)]
    pub secret_store_ref: SecretStoreRef,
    /// The Secret to write.
    #[serde(default)]
    pub target: ExternalSecretTarget,
    /// When to refresh: `Periodic` (default), `OnChange` or `CreatedOnce`.
    #[serde(default)]
    pub refresh_policy: RefreshPolicy,
    /// How often to refresh; default `1h`, `0` means once.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: GoDuration,
    /// Single values: one remote reference per Secret key.
    #[serde(default)]
    pub data: Vec<ExternalSecretData>,
    /// Whole remote secrets, each expanded into many keys.
    #[serde(default)]
    pub data_from: Vec<ExternalSecretDataFrom>,
}

/// ESO's default `refreshInterval` (`+kubebuilder:default="1h0m0s"`).
pub fn default_refresh_interval() -> GoDuration {
    GoDuration(std::time::Duration::from_secs(3600))
}

/// `secretStoreRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// The store's name.
    #[serde(default)]
    pub name: String,
    /// `SecretStore` (default) or `ClusterSecretStore`.
    #[serde(default)]
    pub kind: StoreKind,
}

/// Which kind of store a reference names.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum StoreKind {
    /// A namespaced `SecretStore` in the ExternalSecret's namespace.
    #[default]
    SecretStore,
    /// A cluster-wide `ClusterSecretStore`.
    ClusterSecretStore,
}

/// `refreshPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefreshPolicy {
    /// Refresh every `refreshInterval`.
    #[default]
    Periodic,
    /// Refresh only when the ExternalSecret's spec changes.
    OnChange,
    /// Fetch once when the Secret is created, never again.
    CreatedOnce,
}

/// `target`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTarget {
    /// The Secret's name; defaults to the ExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who owns the Secret: `Owner` (default), `Orphan`, `Merge` or `None`.
    #[serde(default)]
    pub creation_policy: CreationPolicy,
    /// What happens when the remote data is gone: `Retain` (default), `Delete` or `Merge`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// How the Secret is built from the fetched values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,
    /// Make the Secret immutable.
    #[serde(default)]
    pub immutable: bool,
}

/// `target.creationPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreationPolicy {
    /// Create the Secret with an ownerReference to the ExternalSecret.
    #[default]
    Owner,
    /// Create or update the Secret without an ownerReference.
    Orphan,
    /// Merge into an existing Secret; never create one.
    Merge,
    /// Create or update, keeping keys the ExternalSecret does not manage.
    CreateOrMerge,
    /// Do not write a Secret.
    None,
}

/// `target.deletionPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionPolicy {
    /// Keep the Secret as it was.
    #[default]
    Retain,
    /// Delete the Secret when every remote value is gone.
    Delete,
    /// Remove only the keys this ExternalSecret wrote.
    Merge,
}

/// `target.template`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplate {
    /// The Secret's `type` (default `Opaque`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Only `v2` (the default) is supported.
    #[serde(default = "default_engine_version")]
    pub engine_version: String,
    /// Labels and annotations for the Secret (values are templates).
    #[serde(default)]
    pub metadata: TemplateMetadata,
    /// `Replace` (default): only templated keys; `Merge`: templated keys over fetched ones.
    #[serde(default)]
    pub merge_policy: MergePolicy,
    /// Secret key → Go template.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Templates from ConfigMaps/Secrets/literals (read for compatibility; `literal` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template_from: Vec<TemplateFrom>,
}

fn default_engine_version() -> String {
    "v2".to_owned()
}

/// `target.template.metadata`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Annotations to set.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Labels to set.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `target.template.mergePolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MergePolicy {
    /// The Secret holds only the templated keys.
    #[default]
    Replace,
    /// Templated keys are merged over the fetched keys.
    Merge,
}

/// One `templateFrom` entry. Coffer renders `literal` (a template producing YAML key/values);
/// ConfigMap and Secret sources are refused with an error naming them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    /// A template whose output is a YAML map of keys to values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// `Data` (default), `Annotations` or `Labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A ConfigMap holding templates (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<serde_json::Value>,
    /// A Secret holding templates (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<serde_json::Value>,
}

/// One `data[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// The key in the Secret.
    pub secret_key: String,
    /// Where the value comes from.
    pub remote_ref: RemoteRef,
    /// Another store or a generator (only `storeRef` is supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
}

/// `remoteRef` (`ExternalSecretDataRemoteRef`), also the shape of `dataFrom[].extract`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRef {
    /// The remote secret's name or path.
    pub key: String,
    /// A JSON property inside it (gjson-style dotted path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// A version: AWS stage (`AWSCURRENT`) or `uuid/<id>`, Vault KV v2 number, Azure id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `None` (default) or `Fetch` (read metadata/tags instead of the value).
    #[serde(default)]
    pub metadata_policy: MetadataPolicy,
    /// `Default` or `Unicode` key conversion.
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,
    /// How to decode the value: `None` (default), `Base64`, `Base64URL` or `Auto`.
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,
}

/// `metadataPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetadataPolicy {
    /// Read the value.
    #[default]
    None,
    /// Read the metadata (not supported by Coffer yet).
    Fetch,
}

/// `conversionStrategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConversionStrategy {
    /// Keys are used as they are.
    #[default]
    Default,
    /// Characters not allowed in Secret keys become `_U<hex>_`.
    Unicode,
}

/// `decodingStrategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecodingStrategy {
    /// The value is taken as it is.
    #[default]
    None,
    /// Standard base64.
    Base64,
    /// URL-safe base64.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// Base64 or base64url if it decodes, else the value as it is.
    Auto,
}

/// `sourceRef` of a `data[]` or `dataFrom[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Another store for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<SecretStoreRef>,
    /// A generator (not supported by Coffer yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<serde_json::Value>,
}

/// One `dataFrom[]` entry: exactly one of `extract` or `find`, then `rewrite` rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataFrom {
    /// One remote secret whose JSON object becomes many keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<RemoteRef>,
    /// Every remote secret matching a name, tags or path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<FindSpec>,
    /// Key rewrites applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<Rewrite>,
    /// Another store or a generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
}

/// `dataFrom[].find` (`ExternalSecretFind`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindSpec {
    /// A path prefix to search under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A name pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FindName>,
    /// Tags every match must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Key conversion.
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,
    /// Value decoding.
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,
}

/// `find.name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FindName {
    /// A regular expression over the remote secret's name.
    #[serde(default)]
    pub regexp: String,
}

/// One `rewrite[]` rule; Coffer supports `regexp` and `transform`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// Replace `source` matches in every key by `target` (`$1` groups allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<RewriteRegexp>,
    /// Render every key through a template where `.value` is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<RewriteTransform>,
    /// Merge rules (not supported by Coffer yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<serde_json::Value>,
}

/// `rewrite[].regexp`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteRegexp {
    /// The pattern.
    pub source: String,
    /// The replacement.
    pub target: String,
}

/// `rewrite[].transform`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteTransform {
    /// A template over `.value` (the key).
    pub template: String,
}

/// `status` of an ExternalSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// When the provider was last read successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<Time>,
    /// The ExternalSecret's `metadata.resourceVersion` (ESO: generation) last synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// `Ready` (and `Deleted`) conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Secret written (servicebinding.io).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
}

/// `status.binding`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The Secret's name.
    #[serde(default)]
    pub name: String,
}

impl ExternalSecret {
    /// The target Secret's name: `target.name`, else the ExternalSecret's own name.
    pub fn target_name(&self) -> &str {
        self.spec
            .target
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The ExternalSecret's namespace (`default` when unset, as kubectl assumes).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The ExternalSecret's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The `Ready` condition, if any.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
    }
}
