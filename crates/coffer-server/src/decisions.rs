//! Allow decisions remembered per RBAC snapshot, so a client repeating a request (the common
//! case: a controller or a service reading its Secret) is authorized by one map lookup instead
//! of building the request's attributes and walking the rules again.
//!
//! Correctness: RBAC's answer depends only on the policy snapshot, the user's name and groups,
//! and the request's attributes, which are a function of its method, path and query
//! (`coffer_access::request_attributes`). The key holds all of those bytes exactly (no hash
//! stands in for them, so two different requests never share an entry), and every entry
//! belongs to one snapshot: when the snapshot changes (any RBAC write, aggregation) the first
//! request to see the new one empties the map, so a revoked permission is never served from
//! here. Denials are not kept: they are rare, and their 403 text needs the attributes anyway.
//! Bounded: when full, the map is emptied and refills with what is asked next.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use coffer_access::UserInfo;
use coffer_access::rbac::Policy;

/// Most decisions kept per snapshot.
const MAX_ENTRIES: usize = 8192;

/// The allow decisions of one RBAC snapshot.
#[derive(Default)]
pub struct Decisions {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The snapshot the entries were decided under (held, so its address is never reused
    /// by a later snapshot while entries refer to it).
    policy: Option<Arc<Policy>>,
    /// Request key → the allowing rule's description (for the audit annotation).
    allowed: HashMap<Box<[u8]>, Arc<str>>,
}

/// The exact bytes a decision depends on: user name, groups, method, path and query, each
/// length-prefixed so that no two different requests encode alike.
pub fn key(user: &UserInfo, method: &str, path: &str, query: Option<&str>) -> Box<[u8]> {
    // An absent query and an empty one are the same request.
    let fields = [user.name.as_str(), method, path, query.unwrap_or("")];
    let size = fields.iter().map(|f| f.len() + 8).sum::<usize>()
        + user.groups.iter().map(|g| g.len() + 8).sum::<usize>()
        + 1;
    let mut out = Vec::with_capacity(size);
    let mut put = |field: &str| {
        out.extend_from_slice(&(field.len() as u64).to_le_bytes());
        out.extend_from_slice(field.as_bytes());
    };
    for field in fields {
        put(field);
    }
    for group in &user.groups {
        put(group);
    }
    out.into_boxed_slice()
}

impl Decisions {
    /// The reason of an allow decision made for `key` under `policy`, if one was kept.
    pub fn allowed(&self, policy: &Arc<Policy>, key: &[u8]) -> Option<Arc<str>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        match &inner.policy {
            Some(p) if Arc::ptr_eq(p, policy) => inner.allowed.get(key).cloned(),
            _ => None,
        }
    }

    /// Keeps an allow decision made under `policy`; a different snapshot than the kept one
    /// replaces every entry.
    pub fn remember(&self, policy: &Arc<Policy>, key: Box<[u8]>, reason: &str) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let current = inner
            .policy
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, policy));
        if !current {
            inner.allowed.clear();
            inner.policy = Some(Arc::clone(policy));
        } else if inner.allowed.len() >= MAX_ENTRIES {
            inner.allowed.clear();
        }
        inner.allowed.insert(key, Arc::from(reason));
    }

    /// How many decisions are kept (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .allowed
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..UserInfo::anonymous()
        }
    }

    fn policy() -> Arc<Policy> {
        Arc::new(Policy::new(Vec::new(), Vec::new(), Vec::new(), Vec::new()))
    }

    #[test]
    fn keys_differ_for_every_input_that_decides() {
        let base = key(&user("bob", &["g1"]), "GET", "/api/v1/secrets", None);
        let others = [
            key(&user("bob2", &["g1"]), "GET", "/api/v1/secrets", None),
            key(&user("bob", &["g2"]), "GET", "/api/v1/secrets", None),
            key(&user("bob", &["g1", "g2"]), "GET", "/api/v1/secrets", None),
            key(&user("bob", &[]), "GET", "/api/v1/secrets", None),
            key(&user("bob", &["g1"]), "POST", "/api/v1/secrets", None),
            key(&user("bob", &["g1"]), "GET", "/api/v1/secrets/x", None),
            key(
                &user("bob", &["g1"]),
                "GET",
                "/api/v1/secrets",
                Some("watch=true"),
            ),
            // Moving bytes between fields must not collide.
            key(&user("bobg", &["1"]), "GET", "/api/v1/secrets", None),
            key(&user("bo", &["bg1"]), "GET", "/api/v1/secrets", None),
        ];
        for other in &others {
            assert_ne!(&base, other);
        }
        assert_eq!(
            base,
            key(&user("bob", &["g1"]), "GET", "/api/v1/secrets", Some(""))
        );
    }

    #[test]
    fn a_decision_serves_only_its_snapshot() {
        let decisions = Decisions::default();
        let (p1, p2) = (policy(), policy());
        let k = key(
            &user("bob", &[]),
            "GET",
            "/api/v1/namespaces/a/secrets/s",
            None,
        );
        assert_eq!(decisions.allowed(&p1, &k), None);
        decisions.remember(&p1, k.clone(), "rule");
        assert_eq!(decisions.allowed(&p1, &k).as_deref(), Some("rule"));
        assert_eq!(decisions.allowed(&p2, &k), None, "a new snapshot misses");
        let other = key(
            &user("eve", &[]),
            "GET",
            "/api/v1/namespaces/a/secrets/s",
            None,
        );
        decisions.remember(&p2, other.clone(), "rule2");
        assert_eq!(decisions.len(), 1, "the new snapshot emptied the map");
        assert_eq!(decisions.allowed(&p1, &k), None);
        assert_eq!(decisions.allowed(&p2, &other).as_deref(), Some("rule2"));
    }

    #[test]
    fn the_map_is_bounded() {
        let decisions = Decisions::default();
        let p = policy();
        for i in 0..(MAX_ENTRIES + 10) {
            let k = key(&user("bob", &[]), "GET", &format!("/api/v1/x/{i}"), None);
            decisions.remember(&p, k, "r");
        }
        assert!(decisions.len() <= MAX_ENTRIES);
    }
}
