//! `EncryptionConfiguration`: loading, validation, and building the transformers
//! (`reference/encryption.md` §1; upstream `server/options/encryptionconfig/config.go`).
//!
//! [`EncryptionConfig::load`] reads and validates a file exactly as kube-apiserver's
//! `--encryption-provider-config` does; [`EncryptionConfig::build`] turns it into
//! [`ResourceTransformers`], which pick the transformer list for a resource. This module owns
//! the `k8s:enc:<provider>:v1:<key>:` prefixes; the providers never see them.

mod resource;
mod schema;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use resource::GroupResource;
pub use validate::LoadMode;

use crate::aescbc::AesCbc;
use crate::aesgcm::AesGcm;
use crate::error::{ConfigError, NoMatch};
use crate::identity::Identity;
use crate::kms_v1::{KmsV1Reader, KmsV1Service};
use crate::kms_v2::{KmsV2, KmsV2Service};
use crate::secret::KeyMaterial;
use crate::secretbox::Secretbox;
use crate::transformer::{PrefixTransformers, Slot, Transformer};

/// A validated `EncryptionConfiguration`. Holds key material; its `Debug` shows key names only.
pub struct EncryptionConfig {
    entries: Vec<ResourceEntry>,
    hash: String,
}

/// One `resources[i]` entry: which resources, and their ordered providers.
#[derive(Debug)]
pub struct ResourceEntry {
    /// The resources, parsed.
    pub resources: Vec<GroupResource>,
    /// The providers in order; the first writes.
    pub providers: Vec<ProviderConfig>,
}

/// One provider of an entry.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProviderConfig {
    /// `aesgcm` with its keys in order.
    AesGcm(Vec<NamedKey>),
    /// `aescbc` with its keys in order.
    AesCbc(Vec<NamedKey>),
    /// `secretbox` with its keys in order.
    Secretbox(Vec<NamedKey>),
    /// `identity`: no encryption.
    Identity,
    /// `kms` (v1 or v2).
    Kms(KmsProvider),
}

/// A named local key. `Debug` shows the name and a redaction.
#[derive(Debug)]
pub struct NamedKey {
    /// The key name, part of the stored prefix.
    pub name: String,
    /// The decoded key.
    pub secret: KeyMaterial,
}

/// A `kms` provider after defaults and validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsProvider {
    /// The provider name, part of the stored prefix.
    pub name: String,
    /// v1 (deprecated, read-only in Coffer) or v2.
    pub api_version: KmsApiVersion,
    /// KMS v1 DEK cache size: positive is the size, negative disables it; `None` for v2.
    pub cache_size: Option<i32>,
    /// Where the plugin listens.
    pub endpoint: KmsEndpoint,
    /// Deadline of each plugin call.
    pub timeout: Duration,
}

/// The KMS API version of a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KmsApiVersion {
    /// `v1` (deprecated).
    V1,
    /// `v2`.
    V2,
}

/// A KMS plugin's unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KmsEndpoint {
    /// A socket file (from `unix:///path`). May be empty for an opaque URL, which fails to dial.
    Path(PathBuf),
    /// A Linux abstract socket name (from `unix:///@name`), without the leading NUL.
    Abstract(String),
}

/// Makes the clients for KMS providers. The gRPC client implements this; [`NoKms`] refuses.
pub trait KmsConnector {
    /// A client for a v2 provider.
    fn v2(&self, provider: &KmsProvider) -> Result<Arc<dyn KmsV2Service>, ConfigError>;
    /// A client for a v1 provider.
    fn v1(&self, provider: &KmsProvider) -> Result<Arc<dyn KmsV1Service>, ConfigError>;
}

/// A [`KmsConnector`] for configurations without KMS providers: any KMS provider is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKms;

impl KmsConnector for NoKms {
    fn v2(&self, p: &KmsProvider) -> Result<Arc<dyn KmsV2Service>, ConfigError> {
        Err(ConfigError::NoKmsClient {
            name: p.name.clone(),
            api_version: "v2",
        })
    }
    fn v1(&self, p: &KmsProvider) -> Result<Arc<dyn KmsV1Service>, ConfigError> {
        Err(ConfigError::NoKmsClient {
            name: p.name.clone(),
            api_version: "v1",
        })
    }
}

impl EncryptionConfig {
    /// Reads and validates the file named by `--encryption-provider-config`.
    pub fn load(path: &Path, mode: LoadMode) -> Result<Self, ConfigError> {
        let bytes =
            zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?);
        Self::parse(&bytes, path, mode)
    }

    /// Validates the bytes of a file; `path` is used in messages only.
    pub fn parse(bytes: &[u8], path: &Path, mode: LoadMode) -> Result<Self, ConfigError> {
        if bytes.is_empty() {
            return Err(ConfigError::Empty { path: path.into() });
        }
        let raw = schema::decode(bytes).map_err(|reason| ConfigError::Decode {
            path: path.into(),
            reason,
        })?;
        let entries = validate::validate(&raw, mode).map_err(ConfigError::Invalid)?;
        check_masking(&entries)?;
        Ok(Self {
            entries,
            hash: file_hash(bytes),
        })
    }

    /// `sha256:<hex>` of the raw file, as upstream keeps it so the file need not stay in memory.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[ResourceEntry] {
        &self.entries
    }

    /// Advice that does not stop loading: AES keys shorter than 32 bytes, and key names
    /// containing `:` (which can make one key's prefix match another's).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            for (j, p) in e.providers.iter().enumerate() {
                let (kind, keys) = match p {
                    ProviderConfig::AesGcm(k) => ("aesgcm", k),
                    ProviderConfig::AesCbc(k) => ("aescbc", k),
                    ProviderConfig::Secretbox(k) => ("secretbox", k),
                    _ => continue,
                };
                for (k, key) in keys.iter().enumerate() {
                    let path = format!("resources[{i}].providers[{j}].{kind}.keys[{k}]");
                    if key.secret.len() < 32 {
                        out.push(format!(
                            "{path}.secret: a {}-byte key is weaker than the recommended 32 bytes",
                            key.secret.len()
                        ));
                    }
                    if key.name.contains(':') {
                        out.push(format!("{path}.name: key name {:?} contains ':', so its prefix may match another key's", key.name));
                    }
                }
            }
        }
        out
    }

    /// Builds the transformers. KMS providers get their clients from `kms`.
    pub fn build(&self, kms: &dyn KmsConnector) -> Result<ResourceTransformers, ConfigError> {
        let mut lists: HashMap<GroupResource, Vec<(Vec<u8>, Slot)>> = HashMap::new();
        let mut handles = Handles::default();
        for entry in &self.entries {
            let mut slots = Vec::new();
            for p in &entry.providers {
                slots.push(build_provider(p, kms, &mut handles)?);
            }
            for gr in &entry.resources {
                lists
                    .entry(gr.clone())
                    .or_default()
                    .extend(slots.iter().cloned());
            }
        }
        let overrides = lists
            .into_iter()
            .map(|(gr, slots)| {
                (
                    gr,
                    Arc::new(PrefixTransformers::new(slots, NoMatch::Prefix)),
                )
            })
            .collect();
        Ok(ResourceTransformers {
            overrides,
            default: Arc::new(PrefixTransformers::new(
                vec![(Vec::new(), Slot::ReadWrite(Arc::new(Identity)))],
                NoMatch::Prefix,
            )),
            kms_v2: handles.kms_v2,
            aesgcm: handles.aesgcm,
        })
    }
}

/// Providers the caller needs to reach after building: KMS v2 for probes, aesgcm for counts.
#[derive(Default)]
struct Handles {
    kms_v2: Vec<(String, Arc<KmsV2>)>,
    aesgcm: Vec<(String, Arc<AesGcm>)>,
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field("entries", &self.entries)
            .field("hash", &self.hash)
            .finish()
    }
}

/// The transformer list of every configured resource, looked up as upstream's
/// `transformerFromOverrides` does.
pub struct ResourceTransformers {
    overrides: HashMap<GroupResource, Arc<PrefixTransformers>>,
    default: Arc<PrefixTransformers>,
    kms_v2: Vec<(String, Arc<KmsV2>)>,
    aesgcm: Vec<(String, Arc<AesGcm>)>,
}

impl ResourceTransformers {
    /// The list for (group, resource): exact match, then `*.<group>`, then `*.*`, else identity
    /// (which refuses `k8s:enc:` data). Secrets are `("", "secrets")`.
    ///
    /// Called on every request: compares borrowed names against the few configured
    /// resources instead of building lookup keys.
    pub fn for_resource(&self, group: &str, resource: &str) -> Arc<PrefixTransformers> {
        let find = |g: &str, r: &str| {
            self.overrides
                .iter()
                .find(|(gr, _)| gr.group == g && gr.resource == r)
                .map(|(_, t)| t)
        };
        find(group, resource)
            .or_else(|| find(group, "*"))
            .or_else(|| find("*", "*"))
            .unwrap_or(&self.default)
            .clone()
    }

    /// The KMS v2 providers by name, so a caller can run their health probes.
    pub fn kms_v2(&self) -> &[(String, Arc<KmsV2>)] {
        &self.kms_v2
    }

    /// Every `aesgcm` key by name, so a caller can watch [`AesGcm::writes`] against the
    /// rotation budget.
    pub fn aesgcm_keys(&self) -> &[(String, Arc<AesGcm>)] {
        &self.aesgcm
    }
}

impl fmt::Debug for ResourceTransformers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self.overrides.keys().map(ToString::to_string).collect();
        names.sort();
        f.debug_struct("ResourceTransformers")
            .field("resources", &names)
            .finish_non_exhaustive()
    }
}

fn build_provider(
    p: &ProviderConfig,
    kms: &dyn KmsConnector,
    handles: &mut Handles,
) -> Result<(Vec<u8>, Slot), ConfigError> {
    fn keyed(
        prefix: &str,
        keys: &[NamedKey],
        no_match: NoMatch,
        mut make: impl FnMut(&NamedKey) -> Option<Arc<dyn Transformer>>,
    ) -> (Vec<u8>, Slot) {
        let inner = keys
            .iter()
            .map(|k| {
                let t = make(k).expect("BUG: validation admitted only valid key lengths");
                (format!("{}:", k.name).into_bytes(), Slot::ReadWrite(t))
            })
            .collect();
        (
            prefix.as_bytes().to_vec(),
            Slot::ReadWrite(Arc::new(PrefixTransformers::new(inner, no_match))),
        )
    }
    Ok(match p {
        ProviderConfig::AesGcm(keys) => keyed(PREFIX_AESGCM, keys, NoMatch::AesKey, |k| {
            let t = Arc::new(AesGcm::new(&k.secret)?);
            handles.aesgcm.push((k.name.clone(), Arc::clone(&t)));
            Some(t)
        }),
        ProviderConfig::AesCbc(keys) => keyed(PREFIX_AESCBC, keys, NoMatch::AesKey, |k| {
            Some(Arc::new(AesCbc::new(k.secret.clone())?))
        }),
        ProviderConfig::Secretbox(keys) => {
            keyed(PREFIX_SECRETBOX, keys, NoMatch::SecretboxKey, |k| {
                Some(Arc::new(Secretbox::new(&k.secret)?))
            })
        }
        ProviderConfig::Identity => (Vec::new(), Slot::ReadWrite(Arc::new(Identity))),
        ProviderConfig::Kms(k) => match k.api_version {
            KmsApiVersion::V2 => {
                let t = Arc::new(KmsV2::new(kms.v2(k)?));
                handles.kms_v2.push((k.name.clone(), Arc::clone(&t)));
                (
                    format!("{PREFIX_KMS_V2}{}:", k.name).into_bytes(),
                    Slot::ReadWrite(t),
                )
            }
            KmsApiVersion::V1 => {
                let cache = k.cache_size.and_then(|n| usize::try_from(n).ok());
                let t = Arc::new(KmsV1Reader::new(kms.v1(k)?, cache));
                (
                    format!("{PREFIX_KMS_V1}{}:", k.name).into_bytes(),
                    Slot::ReadOnly(t),
                )
            }
        },
    })
}

/// Prefix of `aescbc` values; the key name and `:` follow.
pub const PREFIX_AESCBC: &str = "k8s:enc:aescbc:v1:";
/// Prefix of `aesgcm` values; the key name and `:` follow.
pub const PREFIX_AESGCM: &str = "k8s:enc:aesgcm:v1:";
/// Prefix of `secretbox` values; the key name and `:` follow.
pub const PREFIX_SECRETBOX: &str = "k8s:enc:secretbox:v1:";
/// Prefix of KMS v1 values; the provider name and `:` follow.
pub const PREFIX_KMS_V1: &str = "k8s:enc:kms:v1:";
/// Prefix of KMS v2 values; the provider name and `:` follow.
pub const PREFIX_KMS_V2: &str = "k8s:enc:kms:v2:";

/// A later entry may not name a resource that an earlier `*.<group>` or `*.*` already covers.
fn check_masking(entries: &[ResourceEntry]) -> Result<(), ConfigError> {
    let mut seen: Vec<&GroupResource> = Vec::new();
    for entry in entries {
        for gr in &entry.resources {
            for wildcard in [
                GroupResource::new(&gr.group, "*"),
                GroupResource::new("*", "*"),
            ] {
                if seen.contains(&&wildcard) {
                    return Err(ConfigError::Masked {
                        resource: gr.to_string(),
                        rule: wildcard.to_string(),
                    });
                }
            }
        }
        seen.extend(entry.resources.iter());
    }
    Ok(())
}

/// `sha256:<hex>` of a file's bytes (upstream's `GetEncryptionConfigHash`).
pub(crate) fn file_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests;
