//! The persistence contract of the engine, and an in-memory implementation.
//!
//! Two kinds of object, each written with a compare-and-swap on its revision:
//!
//! - the rotation's [`RotationStatus`] (the future `SecretRotation.status`), which carries
//!   the in-flight step; it never holds a secret value;
//! - the target Secret as a [`StagedSecret`]: its data (what consumers read: the `current`
//!   stage) plus the `pending` and `previous` stages, AWS Secrets Manager's `AWSPENDING` and
//!   `AWSPREVIOUS`. The three stages of one Secret are written in ONE atomic step: finishing a
//!   rotation moves pending → current → previous at once, and a crash never shows a mix.
//!
//! The server will implement this over the Kubernetes API (Secret versions, issue 9 item 1);
//! [`MemoryStore`] and [`crate::FileStore`] serve tests and single-process use.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::secret::SecretData;
use crate::state::RotationStatus;

/// A store-assigned revision (`resourceVersion`); greater than 0 for a stored object.
pub type Revision = u64;

/// A value and the revision it was read at.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its revision: pass it as `expected` to write it back.
    pub revision: Revision,
}

/// One staged value of a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedValue {
    /// Its version number.
    pub version: u64,
    /// Its data (the whole Secret data of that version, not only the generated keys).
    pub data: SecretData,
}

/// A Secret with its rotation stages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StagedSecret {
    /// The Secret's `type` (`None` = `Opaque`).
    pub secret_type: Option<String>,
    /// The Secret's data: what consumers read.
    pub current: SecretData,
    /// The version of `current` (0 for a Secret never rotated).
    pub current_version: u64,
    /// The value being rotated in.
    pub pending: Option<StagedValue>,
    /// The value rotated out by the last rotation.
    pub previous: Option<StagedValue>,
}

impl StagedSecret {
    /// A Secret with `data` as its current value (version 0) and no stages.
    pub fn plain(data: SecretData) -> Self {
        Self {
            current: data,
            ..Self::default()
        }
    }
}

/// Where the engine keeps rotation statuses and Secrets.
///
/// Every write is a compare-and-swap: `expected = None` means "must not exist", `Some(r)` means
/// "must still be at revision `r`"; a lost race is [`StoreError::Conflict`] and changes nothing.
/// A write that returned `Ok` is durable (it survives a crash of this process). A write that
/// changes nothing may keep the revision it was made at (the Kubernetes API server does).
#[async_trait]
pub trait RotationStore: Send + Sync {
    /// The status of rotation `name`, or `None` when none was saved yet.
    async fn load_status(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<RotationStatus>>, StoreError>;

    /// Saves the status of rotation `name` if it is still at `expected`; returns the new
    /// revision.
    async fn save_status(
        &self,
        name: &str,
        status: &RotationStatus,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError>;

    /// Secret `name` with its stages, or `None` when it does not exist.
    async fn read_secret(&self, name: &str) -> Result<Option<Versioned<StagedSecret>>, StoreError>;

    /// Writes Secret `name` (all stages at once) if it is still at `expected`; returns the new
    /// revision.
    async fn write_secret(
        &self,
        name: &str,
        secret: &StagedSecret,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError>;
}

/// A [`RotationStore`] in memory: for tests and for the engine's own state-machine tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    // Guards both maps and the revision counter; held only for the duration of one call.
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    revision: Revision,
    statuses: HashMap<String, Versioned<RotationStatus>>,
    secrets: HashMap<String, Versioned<StagedSecret>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock leaves consistent maps (every mutation is one insert).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The compare half of a compare-and-swap, shared by the stores.
pub(crate) fn check_revision(
    object: impl FnOnce() -> String,
    found: Option<Revision>,
    expected: Option<Revision>,
) -> Result<(), StoreError> {
    if found == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            object: object(),
            expected,
            found,
        })
    }
}

/// Compare-and-swap of one map entry, bumping the store's revision.
fn cas_insert<T: Clone>(
    revision: &mut Revision,
    map: &mut HashMap<String, Versioned<T>>,
    object: impl FnOnce() -> String,
    name: &str,
    value: &T,
    expected: Option<Revision>,
) -> Result<Revision, StoreError> {
    check_revision(object, map.get(name).map(|v| v.revision), expected)?;
    *revision += 1;
    let value = value.clone();
    map.insert(
        name.to_owned(),
        Versioned {
            value,
            revision: *revision,
        },
    );
    Ok(*revision)
}

#[async_trait]
impl RotationStore for MemoryStore {
    async fn load_status(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<RotationStatus>>, StoreError> {
        Ok(self.lock().statuses.get(name).cloned())
    }

    async fn save_status(
        &self,
        name: &str,
        status: &RotationStatus,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let inner = &mut *self.lock();
        let object = || format!("rotation {name:?}");
        cas_insert(
            &mut inner.revision,
            &mut inner.statuses,
            object,
            name,
            status,
            expected,
        )
    }

    async fn read_secret(&self, name: &str) -> Result<Option<Versioned<StagedSecret>>, StoreError> {
        Ok(self.lock().secrets.get(name).cloned())
    }

    async fn write_secret(
        &self,
        name: &str,
        secret: &StagedSecret,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let inner = &mut *self.lock();
        let object = || format!("secret {name:?}");
        cas_insert(
            &mut inner.revision,
            &mut inner.secrets,
            object,
            name,
            secret,
            expected,
        )
    }
}

/// A conformance check every [`RotationStore`] passes: compare-and-swap on both object kinds.
/// Used by this crate's tests for both stores; the server's store can call it too.
pub async fn check_store_conformance(store: &dyn RotationStore) -> Result<(), String> {
    let fail = |what: &str| Err(format!("store conformance: {what}"));
    if store
        .load_status("r")
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return fail("a new store has a status");
    }
    let status = RotationStatus {
        current_version: 7,
        ..RotationStatus::default()
    };
    let r1 = store
        .save_status("r", &status, None)
        .await
        .map_err(|e| e.to_string())?;
    if !matches!(
        store.save_status("r", &status, None).await,
        Err(StoreError::Conflict { .. })
    ) {
        return fail("create over an existing status did not conflict");
    }
    // A changed value: a store over Kubernetes keeps the revision of a write that changes
    // nothing (as the API server does), so the second write must differ.
    let status = RotationStatus {
        current_version: 8,
        ..RotationStatus::default()
    };
    let r2 = store
        .save_status("r", &status, Some(r1))
        .await
        .map_err(|e| e.to_string())?;
    if r2 <= r1 {
        return fail("revision did not grow");
    }
    if !matches!(
        store.save_status("r", &status, Some(r1)).await,
        Err(StoreError::Conflict { .. })
    ) {
        return fail("a stale revision did not conflict");
    }
    let loaded = store.load_status("r").await.map_err(|e| e.to_string())?;
    match loaded {
        Some(v) if v.revision == r2 && v.value == status => {}
        _ => return fail("load did not return what was saved"),
    }
    let secret = StagedSecret {
        secret_type: Some("coffer.dev/conformance".into()),
        current: [("k", "v")].into_iter().collect(),
        current_version: 2,
        pending: Some(StagedValue {
            version: 3,
            data: [("k", "p")].into_iter().collect(),
        }),
        previous: None,
    };
    let s1 = store
        .write_secret("s", &secret, None)
        .await
        .map_err(|e| e.to_string())?;
    if !matches!(
        store.write_secret("s", &secret, Some(s1 + 100)).await,
        Err(StoreError::Conflict { .. })
    ) {
        return fail("a wrong secret revision did not conflict");
    }
    match store.read_secret("s").await.map_err(|e| e.to_string())? {
        Some(v) if v.revision == s1 && v.value == secret => Ok(()),
        _ => fail("read_secret did not return what was written"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        check_store_conformance(&MemoryStore::new())
            .await
            .expect("conforms");
    }
}
