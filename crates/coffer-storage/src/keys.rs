//! kube-apiserver's key-space layout: `{prefix}/{resource}/{namespace}/{name}` for namespaced
//! kinds and `{prefix}/{resource}/{name}` for cluster-scoped ones, with prefix `/registry` by
//! default (`--etcd-prefix`). See `reference/encryption.md` §4.1. The full key is also the
//! additional authenticated data of the encryption providers, so it must match byte for byte.

use bytes::Bytes;

/// kube-apiserver's default `--etcd-prefix`.
pub const DEFAULT_PREFIX: &str = "/registry";

/// Builds storage keys for one `--etcd-prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLayout {
    /// Normalised: starts with `/`, no trailing `/`.
    prefix: String,
}

impl Default for KeyLayout {
    fn default() -> Self {
        KeyLayout {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl KeyLayout {
    /// A layout under `prefix`, normalised as kube-apiserver does (`path.Join("/", prefix)`):
    /// a leading `/` is added and trailing ones are dropped.
    pub fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        KeyLayout { prefix }
    }

    /// The normalised prefix, e.g. `/registry`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of one object, e.g. `/registry/secrets/default/db-secret`.
    /// `resource` is the storage resource path (`secrets`, or `group/resource` for kinds
    /// outside the core group, as kube-apiserver stores custom resources).
    pub fn object_key(&self, resource: &str, namespace: Option<&str>, name: &str) -> Bytes {
        let mut key = self.collection_prefix(resource, namespace, name.len());
        key.push_str(name);
        Bytes::from(key)
    }

    /// The prefix shared by every object of `resource` (in `namespace`, when given), ending
    /// in `/` so that `secrets/a` never matches `secrets/ab`.
    pub fn collection_key(&self, resource: &str, namespace: Option<&str>) -> Bytes {
        Bytes::from(self.collection_prefix(resource, namespace, 0))
    }

    /// Built in one allocation of the exact size, with room for `extra` bytes of object name
    /// (keys are built on every request).
    fn collection_prefix(&self, resource: &str, namespace: Option<&str>, extra: usize) -> String {
        let ns = namespace.map_or(0, |ns| ns.len() + 1);
        let mut key = String::with_capacity(self.prefix.len() + resource.len() + ns + 2 + extra);
        key.push_str(&self.prefix);
        key.push('/');
        key.push_str(resource);
        key.push('/');
        if let Some(ns) = namespace {
            key.push_str(ns);
            key.push('/');
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_apiserver_layout() {
        let l = KeyLayout::default();
        assert_eq!(
            &l.object_key("secrets", Some("default"), "db-secret")[..],
            b"/registry/secrets/default/db-secret"
        );
        assert_eq!(
            &l.object_key("namespaces", None, "kube-system")[..],
            b"/registry/namespaces/kube-system"
        );
        assert_eq!(
            &l.collection_key("secrets", Some("default"))[..],
            b"/registry/secrets/default/"
        );
        assert_eq!(
            &l.collection_key("secrets", None)[..],
            b"/registry/secrets/"
        );
    }

    #[test]
    fn prefix_is_normalised() {
        assert_eq!(KeyLayout::new("registry/").prefix(), "/registry");
        assert_eq!(KeyLayout::new("/a/b//").prefix(), "/a/b");
        assert_eq!(KeyLayout::new("/").prefix(), "");
        assert_eq!(
            &KeyLayout::new("/").object_key("secrets", Some("n"), "s")[..],
            b"/secrets/n/s"
        );
    }
}
