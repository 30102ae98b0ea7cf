//! The objects a container refers to, as fetched from the API: Secret and ConfigMap data.
//!
//! Secret values live in [`SecretValue`], which zeroizes its bytes on drop and whose `Debug`
//! prints only a redaction and the length (STYLE rule 7). [`Sources`] is the cache the
//! environment and volume builders read from; a name that is absent was not found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use zeroize::Zeroizing;

/// The bytes of one Secret key. Never printed; read through [`SecretValue::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Wraps bytes taken from a Secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The value's bytes. Callers must not log them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted {} bytes>)", self.0.len())
    }
}

impl From<&str> for SecretValue {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

/// The `data` of one Secret: key → value. `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(BTreeMap<String, SecretValue>);

impl SecretData {
    /// An empty Secret.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: SecretValue) {
        self.0.insert(key.into(), value);
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&SecretValue> {
        self.0.get(key)
    }

    /// All keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &SecretValue)> {
        self.0.iter()
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("keys", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K: Into<String>, V: Into<SecretValue>> FromIterator<(K, V)> for SecretData {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

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
    fn debug_never_shows_values() {
        let data: SecretData = [("password", "MyStrongPassword")].into_iter().collect();
        let shown = format!("{data:?} {:?}", data.get("password"));
        assert!(shown.contains("password"), "{shown}");
        assert!(!shown.contains("MyStrongPassword"), "{shown}");
        let sources = {
            let mut s = Sources::new();
            s.set_secret("db", Some(data));
            s
        };
        assert!(!format!("{sources:?}").contains("MyStrongPassword"));
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
