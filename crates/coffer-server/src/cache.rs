//! Encoded objects by storage key and revision: the JSON a GET answers (and a LIST item
//! repeats), kept so that reading an unchanged object skips decryption, decoding and
//! encoding (`docs/benchmarks.md`, API server).
//!
//! Correctness: an entry is served only for the exact `mod_revision` storage returns for the
//! key in the same request, so a write (here or on another server sharing etcd) is never
//! hidden: a revision's stored bytes never change, and neither does the JSON made from them.
//! An entry also names the transformer generation that decrypted it: after an encryption
//! config reload every entry misses, so a value whose key was removed from the config fails
//! to decrypt exactly as it would without the cache. Authorization runs before any lookup,
//! and only bodies that depend on nothing but the object are cached (plain JSON in one
//! apiVersion; never Tables, whose `Age` moves, nor lists with withheld values).
//!
//! Threat model: the cache holds decrypted Secret values in memory for longer than one
//! request, as kube-apiserver's watch cache does with every decoded object. Limits: bodies
//! live in buffers that are zeroized when the last reference (cache or response in flight)
//! drops; the cache is bounded in bytes with least-recently-used eviction; our own writes
//! and deletes drop their key at once; [`ObjectCache::clear`] empties it; size 0
//! (`--object-cache-size=0`) turns it off, so nothing outlives its request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use coffer_encryption::PrefixTransformers;
use zeroize::Zeroize;

/// The default bound, in bytes of cached bodies (about 40,000 Secrets of 1 KiB).
pub const DEFAULT_OBJECT_CACHE_BYTES: usize = 64 << 20;

/// Encoded objects by storage key, each valid for one revision. Lock order: the one mutex,
/// held only for map updates (never across an await or an encode).
pub struct ObjectCache {
    limit: usize,
    inner: Mutex<Lru>,
}

/// What makes two encodings of one stored revision the same bytes.
#[derive(Clone)]
pub struct Variant {
    /// The revision the body was made from.
    pub revision: u64,
    /// The apiVersion it is answered in (custom kinds answer in the requested version).
    pub api_version: String,
    /// The transformer generation that decrypted it.
    pub transformers: Weak<PrefixTransformers>,
}

impl Variant {
    /// A variant for `revision`, decrypted by `transformers`.
    pub fn new(revision: u64, api_version: String, transformers: &Arc<PrefixTransformers>) -> Self {
        Variant {
            revision,
            api_version,
            transformers: Arc::downgrade(transformers),
        }
    }

    fn matches(&self, other: &Variant) -> bool {
        self.revision == other.revision
            && self.made_by(&other.api_version, other.transformers.as_ptr())
    }

    /// Whether the body is in `api_version` and was decrypted by `transformers` (at any
    /// revision).
    fn made_by(&self, api_version: &str, transformers: *const PrefixTransformers) -> bool {
        self.api_version == api_version && std::ptr::eq(self.transformers.as_ptr(), transformers)
    }
}

#[derive(Default)]
struct Lru {
    entries: HashMap<Bytes, Entry>,
    /// Last use → key; the first is the next to evict.
    order: BTreeMap<u64, Bytes>,
    tick: u64,
    bytes: usize,
}

impl Lru {
    /// Marks `key` used. An entry already among the most recently used half keeps its place
    /// (approximate LRU, in the spirit of CLOCK), so a hot key costs no reordering.
    fn touch(&mut self, key: &[u8]) {
        let half = (self.entries.len() as u64 / 2).max(1);
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        if self.tick.saturating_sub(entry.used) < half {
            return;
        }
        self.tick += 1;
        self.order.remove(&entry.used);
        entry.used = self.tick;
        self.order.insert(entry.used, entry.key.clone());
    }
}

struct Entry {
    key: Bytes,
    variant: Variant,
    body: Bytes,
    used: u64,
}

impl ObjectCache {
    /// A cache of at most `limit` bytes of bodies (0: caches nothing).
    pub fn new(limit: usize) -> Self {
        ObjectCache {
            limit,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// Whether the cache keeps anything.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// The body stored for `key` made from exactly `variant`.
    pub fn get(&self, key: &[u8], variant: &Variant) -> Option<Bytes> {
        self.find(key, |held| held.matches(variant))
            .map(|(_, body)| body)
    }

    /// The revision and body held for `key` in `api_version`, decrypted by `transformers`:
    /// the caller must confirm with storage that the key still has that revision before
    /// serving the body (`Store::get_unless`), which then needs no value read at all.
    pub fn known(
        &self,
        key: &[u8],
        api_version: &str,
        transformers: &Arc<PrefixTransformers>,
    ) -> Option<(u64, Bytes)> {
        self.find(key, |held| {
            held.made_by(api_version, Arc::as_ptr(transformers))
        })
    }

    /// The revision and body held for `key` when `accept` takes its variant, marking it used.
    fn find(&self, key: &[u8], accept: impl FnOnce(&Variant) -> bool) -> Option<(u64, Bytes)> {
        if !self.enabled() {
            return None;
        }
        let mut lru = self.lock();
        let entry = lru.entries.get(key)?;
        if !accept(&entry.variant) {
            return None;
        }
        let found = (entry.variant.revision, entry.body.clone());
        lru.touch(key);
        Some(found)
    }

    /// Keeps `body` (plaintext JSON) for `key` at `variant`, replacing what the key held and
    /// evicting the least recently used entries beyond the bound. The returned [`Bytes`] is
    /// the body to send; its buffer is zeroized when the last copy drops.
    pub fn insert(&self, key: &Bytes, variant: Variant, body: Vec<u8>) -> Bytes {
        let body = Bytes::from_owner(ZeroizingBody(body));
        if !self.enabled() || body.len() > self.limit {
            return body;
        }
        let mut lru = self.lock();
        let lru = &mut *lru;
        if let Some(old) = lru.entries.remove(key.as_ref()) {
            if old.variant.revision > variant.revision {
                // A slower reader of an older revision must not replace a newer entry.
                lru.entries.insert(key.clone(), old);
                return body;
            }
            lru.order.remove(&old.used);
            lru.bytes -= old.body.len();
        }
        lru.tick += 1;
        lru.bytes += body.len();
        lru.order.insert(lru.tick, key.clone());
        lru.entries.insert(
            key.clone(),
            Entry {
                key: key.clone(),
                variant,
                body: body.clone(),
                used: lru.tick,
            },
        );
        while lru.bytes > self.limit {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            if let Some(e) = lru.entries.remove(&oldest) {
                lru.bytes -= e.body.len();
            }
        }
        body
    }

    /// Drops what is kept for `key` (after a write or delete of it).
    pub fn forget(&self, key: &[u8]) {
        if !self.enabled() {
            return;
        }
        let mut lru = self.lock();
        if let Some(old) = lru.entries.remove(key) {
            lru.order.remove(&old.used);
            lru.bytes -= old.body.len();
        }
    }

    /// Drops everything (bodies are zeroized once no response in flight holds them).
    pub fn clear(&self) {
        let mut lru = self.lock();
        *lru = Lru::default();
    }

    /// Entries and bytes held.
    pub fn usage(&self) -> (usize, usize) {
        let lru = self.lock();
        (lru.entries.len(), lru.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.usage();
        f.debug_struct("ObjectCache")
            .field("limit", &self.limit)
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish()
    }
}

/// A body buffer that is zeroized when dropped (it may hold Secret values).
struct ZeroizingBody(Vec<u8>);

impl AsRef<[u8]> for ZeroizingBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for ZeroizingBody {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use coffer_encryption::NoMatch;

    use super::*;

    fn generation() -> Arc<PrefixTransformers> {
        Arc::new(PrefixTransformers::new(Vec::new(), NoMatch::Prefix))
    }

    fn at(revision: u64, transformers: &Arc<PrefixTransformers>) -> Variant {
        Variant::new(revision, "v1".to_owned(), transformers)
    }

    fn key(name: &str) -> Bytes {
        Bytes::from(format!("/registry/secrets/default/{name}"))
    }

    #[test]
    fn an_entry_serves_only_its_own_revision() {
        let cache = ObjectCache::new(1 << 20);
        let t = generation();
        let k = key("a");
        cache.insert(&k, at(5, &t), b"five".to_vec());
        assert_eq!(cache.get(&k, &at(5, &t)).as_deref(), Some(&b"five"[..]));
        assert_eq!(cache.get(&k, &at(6, &t)), None, "a newer revision misses");
        assert_eq!(cache.get(&k, &at(4, &t)), None, "an older revision misses");
        cache.insert(&k, at(6, &t), b"six".to_vec());
        assert_eq!(cache.get(&k, &at(6, &t)).as_deref(), Some(&b"six"[..]));
        assert_eq!(
            cache.get(&k, &at(5, &t)),
            None,
            "the new revision replaced the old"
        );
        assert_eq!(cache.usage(), (1, 3));
    }

    #[test]
    fn an_older_revision_never_replaces_a_newer_one() {
        let cache = ObjectCache::new(1 << 20);
        let t = generation();
        let k = key("a");
        cache.insert(&k, at(7, &t), b"seven".to_vec());
        let late = cache.insert(&k, at(6, &t), b"six".to_vec());
        assert_eq!(
            &late[..],
            b"six",
            "the late reader still answers what it read"
        );
        assert_eq!(cache.get(&k, &at(7, &t)).as_deref(), Some(&b"seven"[..]));
    }

    #[test]
    fn api_version_and_transformer_generation_are_part_of_the_key() {
        let cache = ObjectCache::new(1 << 20);
        let (old, new) = (generation(), generation());
        let k = key("a");
        cache.insert(&k, at(5, &old), b"x".to_vec());
        assert_eq!(
            cache.get(&k, &at(5, &new)),
            None,
            "a reloaded config misses"
        );
        let v1beta1 = Variant::new(5, "v1beta1".to_owned(), &old);
        assert_eq!(
            cache.get(&k, &v1beta1),
            None,
            "another served version misses"
        );
    }

    #[test]
    fn least_recently_used_entries_go_first_within_the_bound() {
        let cache = ObjectCache::new(10);
        let t = generation();
        let (a, b, c) = (key("a"), key("b"), key("c"));
        cache.insert(&a, at(1, &t), vec![1; 4]);
        cache.insert(&b, at(2, &t), vec![2; 4]);
        assert!(
            cache.get(&a, &at(1, &t)).is_some(),
            "a is now the most recent"
        );
        cache.insert(&c, at(3, &t), vec![3; 4]);
        assert!(
            cache.get(&b, &at(2, &t)).is_none(),
            "b was least recently used"
        );
        assert!(cache.get(&a, &at(1, &t)).is_some());
        assert!(cache.get(&c, &at(3, &t)).is_some());
        assert_eq!(cache.usage(), (2, 8));
        let big = cache.insert(&key("big"), at(4, &t), vec![0; 11]);
        assert_eq!(
            big.len(),
            11,
            "a body over the bound is answered but not kept"
        );
        assert_eq!(cache.usage(), (2, 8));
    }

    #[test]
    fn a_recently_used_entry_is_not_reordered_but_an_old_one_is() {
        let cache = ObjectCache::new(1 << 20);
        let t = generation();
        let keys: Vec<Bytes> = (0..4).map(|i| key(&format!("k{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            cache.insert(k, at(i as u64 + 1, &t), vec![0; 4]);
        }
        let tick = cache.lock().tick;
        for _ in 0..100 {
            assert!(cache.get(&keys[3], &at(4, &t)).is_some());
        }
        assert_eq!(cache.lock().tick, tick, "the newest entry keeps its place");
        assert!(cache.get(&keys[0], &at(1, &t)).is_some());
        let lru = cache.lock();
        assert_eq!(lru.tick, tick + 1, "the oldest entry moved to the front");
        assert_eq!(
            lru.order.values().next(),
            Some(&keys[1]),
            "k1 is next to go"
        );
    }

    #[test]
    fn forget_clear_and_size_zero() {
        let cache = ObjectCache::new(1 << 20);
        let t = generation();
        let (a, b) = (key("a"), key("b"));
        cache.insert(&a, at(1, &t), b"a".to_vec());
        cache.insert(&b, at(2, &t), b"b".to_vec());
        cache.forget(&a);
        assert!(cache.get(&a, &at(1, &t)).is_none());
        assert_eq!(cache.usage(), (1, 1));
        cache.clear();
        assert_eq!(cache.usage(), (0, 0));

        let off = ObjectCache::new(0);
        let body = off.insert(&a, at(1, &t), b"a".to_vec());
        assert_eq!(&body[..], b"a");
        assert!(off.get(&a, &at(1, &t)).is_none());
        assert_eq!(off.usage(), (0, 0));
    }

    #[test]
    fn debug_shows_sizes_not_bodies() {
        let cache = ObjectCache::new(1 << 20);
        let t = generation();
        cache.insert(&key("a"), at(1, &t), b"canary-value".to_vec());
        let text = format!("{cache:?}");
        assert!(!text.contains("canary"), "{text}");
        assert!(text.contains("entries: 1"), "{text}");
    }
}
