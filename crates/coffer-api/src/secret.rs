//! Secret values in newtypes that cannot leak (STYLE rule 7): zeroized on drop, no `Display`
//! or `Serialize`, and a `Debug` that prints only a redaction and the length (or, for
//! [`SecretData`], the key names).
//!
//! Shared by the crates that hold Secret data in memory (`coffer-agent`, `coffer-rotation`,
//! `coffer-sync`).

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

/// One secret value (a password, a PEM key, a DSN, a Secret key's bytes). Zeroized on drop;
/// `Debug` shows only its length; read it with [`SecretValue::expose_secret`], which grep can
/// find. The default is the empty value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of `bytes` (they are zeroized when the value is dropped).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The value's bytes. Every call site is a place where the secret leaves its wrapper;
    /// callers must not log them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8, or `None` when it is not text.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The value as UTF-8 text, with invalid sequences replaced (`U+FFFD`), in a copy that is
    /// zeroized on drop.
    pub fn expose_str_lossy(&self) -> Zeroizing<String> {
        Zeroizing::new(String::from_utf8_lossy(&self.0).into_owned())
    }

    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretValue {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }
}

impl From<Zeroizing<String>> for SecretValue {
    fn from(text: Zeroizing<String>) -> Self {
        Self::new(text.as_bytes().to_vec())
    }
}

impl From<&str> for SecretValue {
    fn from(text: &str) -> Self {
        Self::new(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted {} bytes>)", self.0.len())
    }
}

/// The data of a Secret (or of one of its rotation stages): key → value. `Debug` lists the
/// keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(BTreeMap<String, SecretValue>);

impl SecretData {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing what was there.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<SecretValue>) {
        self.0.insert(key.into(), value.into());
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&SecretValue> {
        self.0.get(key)
    }

    /// The value of `key` as UTF-8 text, or `None` when absent or not text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(SecretValue::expose_str)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<SecretValue> {
        self.0.remove(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every key and value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Copies every entry of `other` over this map (keys of `self` not in `other` stay).
    pub fn merge(&mut self, other: &SecretData) {
        for (k, v) in other.iter() {
            self.0.insert(k.to_owned(), v.clone());
        }
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let v = SecretValue::from("hunter2-very-secret");
        let shown = format!("{v:?} {:#?}", v);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("19 bytes"), "{shown}");
        let data: SecretData = [("password", "hunter2-very-secret")].into_iter().collect();
        let shown = format!("{data:?} {:?}", data.get("password"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password"), "{shown}");
    }

    #[test]
    fn merge_overwrites_and_keeps() {
        let mut a: SecretData = [("username", "app"), ("password", "old")]
            .into_iter()
            .collect();
        let b: SecretData = [("password", "new")].into_iter().collect();
        a.merge(&b);
        assert_eq!(a.get_str("password"), Some("new"));
        assert_eq!(a.get_str("username"), Some("app"));
    }

    #[test]
    fn text_views() {
        let bad = SecretValue::new(vec![b'a', 0xff]);
        assert_eq!(bad.expose_str(), None);
        assert_eq!(&*bad.expose_str_lossy(), "a\u{fffd}");
        assert_eq!(SecretValue::from("ok").expose_str(), Some("ok"));
        assert!(SecretValue::default().is_empty());
    }
}
