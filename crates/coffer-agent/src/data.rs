//! The objects a container refers to, as fetched from the API: Secret and ConfigMap data.
//!
//! Secret values live in [`SecretValue`] (`coffer-api`'s, shared with `coffer-rotation`),
//! which zeroizes its bytes on drop and whose `Debug` prints only a redaction and the length
//! (STYLE rule 7). [`Sources`] is the cache the environment and volume builders read from; a
//! name that is absent was not found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use coffer_api::{SecretData, SecretValue};

/// The contents of one ConfigMap. `Debug` shows the keys only (a ConfigMap is not meant for
/// secrets, but people put them there).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigMapData {
    /// `data`: UTF-8 values, used by env vars and volumes.
    pub data: BTreeMap<String, String>,
    /// `binaryData`: used by volumes only (as in the kubelet).
    pub binary_data: BTreeMap<String, Vec<u8>>,
}

impl ConfigMapData {
    /// A ConfigMap with `data` only.
    pub fn from_data(data: BTreeMap<String, String>) -> Self {
        Self {
            data,
            binary_data: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for ConfigMapData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigMapData")
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("binary_data", &self.binary_data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The Secrets, ConfigMaps and ServiceAccount tokens of one namespace that a container
/// refers to, as last fetched. A name that is absent was not found in the API.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    secrets: BTreeMap<String, SecretData>,
    config_maps: BTreeMap<String, ConfigMapData>,
    tokens: BTreeMap<TokenSpec, SecretValue>,
}

impl Sources {
    /// No objects.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records Secret `name` (`None`: it does not exist). Returns whether anything changed.
    pub fn set_secret(&mut self, name: &str, data: Option<SecretData>) -> bool {
        match data {
            Some(data) => self.secrets.insert(name.to_owned(), data.clone()) != Some(data),
            None => self.secrets.remove(name).is_some(),
        }
    }

    /// Records ConfigMap `name` (`None`: it does not exist). Returns whether anything
    /// changed.
    pub fn set_config_map(&mut self, name: &str, data: Option<ConfigMapData>) -> bool {
        match data {
            Some(data) => self.config_maps.insert(name.to_owned(), data.clone()) != Some(data),
            None => self.config_maps.remove(name).is_some(),
        }
    }

    /// Records the current token for `spec`. Returns whether it changed.
    pub fn set_token(&mut self, spec: TokenSpec, token: SecretValue) -> bool {
        self.tokens.insert(spec, token.clone()) != Some(token)
    }

    /// The current token for `spec`, if one was issued. Callers must not log it.
    pub fn token(&self, spec: &TokenSpec) -> Option<&SecretValue> {
        self.tokens.get(spec)
    }

    /// Secret `name`, if it exists.
    pub fn secret(&self, name: &str) -> Option<&SecretData> {
        self.secrets.get(name)
    }

    /// ConfigMap `name`, if it exists.
    pub fn config_map(&self, name: &str) -> Option<&ConfigMapData> {
        self.config_maps.get(name)
    }
}

/// What a container needs from the API, in its Pod's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Secrets named by env, envFrom and the secret or projected volumes it mounts.
    pub secrets: BTreeSet<String>,
    /// ConfigMaps named by env, envFrom and the configMap or projected volumes it mounts.
    pub config_maps: BTreeSet<String>,
    /// ServiceAccount tokens its projected volumes hold.
    pub tokens: BTreeSet<TokenSpec>,
}

impl References {
    /// Adds everything `other` names.
    pub fn extend(&mut self, other: References) {
        self.secrets.extend(other.secrets);
        self.config_maps.extend(other.config_maps);
        self.tokens.extend(other.tokens);
    }
}

/// One kind of ServiceAccount token a projected volume asks for: tokens are requested once
/// per distinct audience and lifetime, as the kubelet's token manager caches them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenSpec {
    /// `audience` (`None`: the API server's own audiences).
    pub audience: Option<String>,
    /// `expirationSeconds` (default 3600).
    pub expiration_seconds: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_debug_never_shows_values() {
        let data: SecretData = [("password", "MyStrongPassword")].into_iter().collect();
        let mut sources = Sources::new();
        sources.set_secret("db", Some(data));
        sources.set_token(
            TokenSpec {
                audience: None,
                expiration_seconds: 3600,
            },
            SecretValue::from("MyToken"),
        );
        let shown = format!("{sources:?}");
        assert!(shown.contains("password"), "{shown}");
        assert!(!shown.contains("MyStrongPassword"), "{shown}");
        assert!(!shown.contains("MyToken"), "{shown}");
    }

    #[test]
    fn set_secret_reports_changes() {
        let mut s = Sources::new();
        let a: SecretData = [("k", "1")].into_iter().collect();
        assert!(s.set_secret("x", Some(a.clone())));
        assert!(!s.set_secret("x", Some(a)));
        assert!(s.set_secret("x", None));
        assert!(!s.set_secret("x", None));
    }
}
