//! The fetch cache: one provider call per (store, remote key, version) per refresh window,
//! shared by every ExternalSecret that asks for it, including while the call is in flight.
//!
//! An entry started at or after the caller's `not_before` is reused (the controller aligns
//! refreshes to interval boundaries, so everything refreshing in a window shares a fetch).
//! A failed fetch is shared only while it runs and for one second after, so a retry with
//! backoff reaches the provider again. The last good value per key is kept for inspection
//! ([`FetchCache::last_good`]); the Secret itself is what keeps serving consumers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

use crate::provider::{Fetched, ProviderError};

/// What a fetch is: the store's identity and the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FetchKey {
    /// The provider's identity (store kind, namespace, name, resourceVersion).
    pub store: String,
    /// The remote key (or a `find:` request).
    pub key: String,
    /// The version asked for.
    pub version: Option<String>,
}

type Outcome = Result<Arc<Fetched>, ProviderError>;

struct Slot {
    started: Instant,
    fut: Shared<BoxFuture<'static, Outcome>>,
}

/// How long a failure is shared with callers that arrive after it finished.
const ERROR_TTL: Duration = Duration::from_secs(1);

/// The cache. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct FetchCache {
    /// Guards the slot map; held only to look up or insert, never across an await.
    slots: Mutex<HashMap<FetchKey, Slot>>,
    last_good: Mutex<HashMap<FetchKey, Arc<Fetched>>>,
}

impl std::fmt::Debug for FetchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("FetchCache").field("entries", &n).finish()
    }
}

impl FetchCache {
    /// A fresh cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value for `key`: a shared fetch started at or after `not_before`, else a new one
    /// made by `fetch`.
    pub async fn get<F>(&self, key: FetchKey, not_before: Instant, fetch: F) -> Outcome
    where
        F: FnOnce() -> BoxFuture<'static, Result<Fetched, ProviderError>>,
    {
        let fut = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let reusable = slots.get(&key).filter(|s| {
                s.started >= not_before
                    && match s.fut.peek() {
                        None | Some(Ok(_)) => true,
                        Some(Err(_)) => s.started.elapsed() < ERROR_TTL,
                    }
            });
            match reusable {
                Some(s) => s.fut.clone(),
                None => {
                    let fut = fetch().map(|r| r.map(Arc::new)).boxed().shared();
                    slots.insert(
                        key.clone(),
                        Slot {
                            started: Instant::now(),
                            fut: fut.clone(),
                        },
                    );
                    fut
                }
            }
        };
        let out = fut.await;
        if let Ok(v) = &out {
            self.last_good
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, v.clone());
        }
        out
    }

    /// The last value fetched successfully for `key`, however old.
    pub fn last_good(&self, key: &FetchKey) -> Option<Arc<Fetched>> {
        self.last_good
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Drops entries older than `max_age` (call now and then to bound memory).
    pub fn prune(&self, max_age: Duration) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|_, s| s.started.elapsed() < max_age || s.fut.peek().is_none());
    }
}
