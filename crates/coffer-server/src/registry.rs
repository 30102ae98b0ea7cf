//! Objects in storage: the codec, the value transformer and the storage contract joined
//! (kube-apiserver's `storage/etcd3/store.go` in miniature).
//!
//! Every write encodes the object as kube-apiserver does (`coffer_api::encode_for_storage`),
//! encrypts it with the transformer the encryption config assigns to the resource, with the
//! full storage key as additional authenticated data, and stores it with a compare-and-swap on
//! the revision. The plaintext lives only in zeroizing buffers. `resourceVersion` is the
//! storage revision.

use bytes::Bytes;
use coffer_api::prepare_for_storage;
use coffer_encryption::{ReadTransformer, Transformer};
use coffer_storage::{KeyValue, Revision, Txn, TxnOutcome};
use zeroize::Zeroizing;

use crate::kinds::ApiKind;
use crate::state::AppState;
use crate::status::{ApiError, ApiResult, MODIFIED};

/// How a list is cut and filtered.
pub struct ListRequest<'a, K> {
    /// Most items to return (0 = all).
    pub limit: usize,
    /// Resume after this storage key (from a continue token).
    pub start_after: Option<Bytes>,
    /// Keeps only matching objects.
    pub filter: &'a (dyn Fn(&K) -> bool + Sync),
}

/// One page of a list.
pub struct ListPage<K> {
    /// The objects, each with its resourceVersion.
    pub items: Vec<K>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// The last key returned, when more matching objects may follow.
    pub next: Option<Bytes>,
}

impl AppState {
    /// The storage key of an object.
    pub fn key_of<K: ApiKind>(&self, namespace: Option<&str>, name: &str) -> Bytes {
        self.layout.object_key(K::RESOURCE, namespace, name)
    }

    /// The key prefix of a collection (one namespace, or all).
    pub fn prefix_of<K: ApiKind>(&self, namespace: Option<&str>) -> Bytes {
        self.layout.collection_key(K::RESOURCE, namespace)
    }

    fn transformer<K: ApiKind>(&self) -> std::sync::Arc<coffer_encryption::PrefixTransformers> {
        let (group, resource) = K::ENCRYPTED_AS;
        self.transformers.for_resource(group, resource)
    }

    /// Decrypts and decodes a stored value, setting `resourceVersion`.
    pub async fn decode<K: ApiKind>(&self, kv: &KeyValue) -> ApiResult<K> {
        let key = String::from_utf8_lossy(&kv.key);
        let (plain, _freshness) = self
            .transformer::<K>()
            .from_storage(&kv.value, &kv.key)
            .await
            .map_err(|e| ApiError::internal(format!("cannot decrypt {key}: {e}")))?;
        let mut obj = K::decode(plain.expose_secret())
            .map_err(|e| ApiError::internal(format!("cannot decode {key}: {e}")))?;
        obj.metadata_mut().resource_version = Some(kv.mod_revision.to_string());
        Ok(obj)
    }

    /// The bytes stored for `plain` (an object's [`plaintext`]): encrypted with `key` as AAD.
    async fn seal<K: ApiKind>(&self, key: &[u8], plain: &[u8]) -> ApiResult<Bytes> {
        let stored = self
            .transformer::<K>()
            .to_storage(plain, key)
            .await
            .map_err(|e| {
                ApiError::internal(format!(
                    "cannot encrypt {}: {e}",
                    String::from_utf8_lossy(key)
                ))
            })?;
        Ok(Bytes::from(stored))
    }

    /// Reads one object, if it exists.
    pub async fn try_get<K: ApiKind>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<K>> {
        let got = self.store.get(&self.key_of::<K>(namespace, name)).await?;
        match got.kv {
            Some(kv) => Ok(Some(self.decode(&kv).await?)),
            None => Ok(None),
        }
    }

    /// Reads one object; 404 when missing.
    pub async fn get<K: ApiKind>(&self, namespace: Option<&str>, name: &str) -> ApiResult<K> {
        self.try_get(namespace, name)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                resource: K::group_resource(),
                name: name.to_owned(),
            })
    }

    /// Lists a collection page by page from storage until `limit` objects pass the filter.
    pub async fn list<K: ApiKind>(
        &self,
        namespace: Option<&str>,
        req: &ListRequest<'_, K>,
    ) -> ApiResult<ListPage<K>> {
        let prefix = self.prefix_of::<K>(namespace);
        let batch = if req.limit == 0 {
            0
        } else {
            req.limit.max(100)
        };
        let mut after = req.start_after.clone();
        let mut items = Vec::new();
        let mut revision = None;
        loop {
            let range = self.store.range(&prefix, after.as_deref(), batch).await?;
            revision.get_or_insert(range.revision);
            let count = range.kvs.len();
            for (i, kv) in range.kvs.iter().enumerate() {
                let obj: K = self.decode(kv).await?;
                if !(req.filter)(&obj) {
                    continue;
                }
                items.push(obj);
                if req.limit != 0 && items.len() == req.limit {
                    let more = range.more || i + 1 < count;
                    return Ok(ListPage {
                        items,
                        revision: revision.expect("BUG: set above"),
                        next: more.then(|| kv.key.clone()),
                    });
                }
            }
            if !range.more {
                return Ok(ListPage {
                    items,
                    revision: revision.expect("BUG: set above"),
                    next: None,
                });
            }
            after = range.kvs.last().map(|kv| kv.key.clone());
        }
    }

    /// Stores a new object (already defaulted and validated). 409 when the name is taken.
    pub async fn create<K: ApiKind>(
        &self,
        namespace: Option<&str>,
        mut obj: K,
        dry_run: bool,
    ) -> ApiResult<K> {
        let name = obj.metadata().name.clone().unwrap_or_default();
        let key = self.key_of::<K>(namespace, &name);
        let value = self.seal::<K>(&key, &plaintext(&obj)).await?;
        if dry_run {
            if self.store.get(&key).await?.kv.is_some() {
                return Err(ApiError::AlreadyExists {
                    resource: K::group_resource(),
                    name,
                });
            }
            return Ok(obj);
        }
        match self.store.txn(Txn::create(key, value)).await? {
            TxnOutcome::Committed { revision, .. } => {
                obj.metadata_mut().resource_version = Some(revision.to_string());
                Ok(obj)
            }
            TxnOutcome::Failed { .. } => Err(ApiError::AlreadyExists {
                resource: K::group_resource(),
                name,
            }),
        }
    }

    /// Replaces an object through `change`, kube-apiserver's GuaranteedUpdate: read, change,
    /// write with a compare on the revision, and retry when someone else wrote in between —
    /// unless the new object names a `resourceVersion`, which makes a mismatch a 409.
    /// An update that changes nothing writes nothing. Returns the object and whether it changed.
    pub async fn update<K, F>(
        &self,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        mut change: F,
    ) -> ApiResult<(K, bool)>
    where
        K: ApiKind,
        F: FnMut(K) -> ApiResult<K> + Send,
    {
        let key = self.key_of::<K>(namespace, name);
        loop {
            let got = self.store.get(&key).await?;
            let Some(kv) = got.kv else {
                return Err(ApiError::NotFound {
                    resource: K::group_resource(),
                    name: name.to_owned(),
                });
            };
            let current: K = self.decode(&kv).await?;
            let new = change(current.clone())?;
            let wanted = new
                .metadata()
                .resource_version
                .clone()
                .filter(|rv| !rv.is_empty());
            if let Some(rv) = &wanted
                && *rv != kv.mod_revision.to_string()
            {
                return Err(conflict::<K>(name));
            }
            let plain = plaintext(&new);
            if *plain == *plaintext(&current) {
                return Ok((current, false));
            }
            if finalized(&new) {
                // The last finalizer of an object being deleted is gone: this update removes
                // it, as kube-apiserver's store does (§8.9).
                if dry_run {
                    return Ok((new, true));
                }
                match self
                    .store
                    .txn(Txn::delete(key.clone(), Some(kv.mod_revision)))
                    .await?
                {
                    TxnOutcome::Committed { revision, .. } => {
                        let mut new = new;
                        new.metadata_mut().resource_version = Some(revision.to_string());
                        return Ok((new, true));
                    }
                    TxnOutcome::Failed { .. } if wanted.is_some() => {
                        return Err(conflict::<K>(name));
                    }
                    TxnOutcome::Failed { .. } => continue,
                }
            }
            let value = self.seal::<K>(&key, &plain).await?;
            if dry_run {
                return Ok((new, true));
            }
            match self
                .store
                .txn(Txn::update(key.clone(), kv.mod_revision, value))
                .await?
            {
                TxnOutcome::Committed { revision, .. } => {
                    let mut new = new;
                    new.metadata_mut().resource_version = Some(revision.to_string());
                    return Ok((new, true));
                }
                TxnOutcome::Failed { .. } if wanted.is_some() => return Err(conflict::<K>(name)),
                TxnOutcome::Failed { .. } => continue,
            }
        }
    }

    /// Deletes an object, checking the optional uid / resourceVersion preconditions. Returns
    /// the object as it was last stored.
    pub async fn delete<K: ApiKind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        precondition_uid: Option<&str>,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<K> {
        let key = self.key_of::<K>(namespace, name);
        loop {
            let Some(kv) = self.store.get(&key).await?.kv else {
                return Err(ApiError::NotFound {
                    resource: K::group_resource(),
                    name: name.to_owned(),
                });
            };
            let current: K = self.decode(&kv).await?;
            if let Some(uid) = precondition_uid
                && current.metadata().uid.as_deref() != Some(uid)
            {
                return Err(ApiError::Conflict {
                    resource: K::group_resource(),
                    name: name.to_owned(),
                    why: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        current.metadata().uid.clone().unwrap_or_default()
                    ),
                });
            }
            if let Some(rv) = precondition_rv
                && rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::Conflict {
                    resource: K::group_resource(),
                    name: name.to_owned(),
                    why: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                });
            }
            if dry_run {
                return Ok(current);
            }
            match self
                .store
                .txn(Txn::delete(key.clone(), Some(kv.mod_revision)))
                .await?
            {
                TxnOutcome::Committed { .. } => return Ok(current),
                TxnOutcome::Failed { .. } => continue,
            }
        }
    }
}

/// The object's storage encoding with server-owned volatile fields cleared, in a buffer that
/// is zeroized on drop.
fn plaintext<K: ApiKind>(obj: &K) -> Zeroizing<Vec<u8>> {
    let mut copy = obj.clone();
    prepare_for_storage(copy.metadata_mut());
    Zeroizing::new(copy.encode())
}

/// True for an object marked for deletion whose finalizers are all gone.
fn finalized<K: ApiKind>(obj: &K) -> bool {
    let meta = obj.metadata();
    meta.deletion_timestamp.is_some() && meta.finalizers.as_ref().is_none_or(Vec::is_empty)
}

fn conflict<K: ApiKind>(name: &str) -> ApiError {
    ApiError::Conflict {
        resource: K::group_resource(),
        name: name.to_owned(),
        why: MODIFIED.to_owned(),
    }
}
