//! Objects in storage: the codec, the value transformer and the storage contract joined
//! (kube-apiserver's `storage/etcd3/store.go` in miniature).
//!
//! Every write encodes the object as kube-apiserver does (`coffer_api::encode_for_storage`),
//! encrypts it with the transformer the encryption config assigns to the resource, with the
//! full storage key as additional authenticated data, and stores it with a compare-and-swap on
//! the revision. The plaintext lives only in zeroizing buffers. `resourceVersion` is the
//! storage revision.

use std::sync::Arc;

use bytes::Bytes;
use coffer_api::prepare_for_storage;
use coffer_encryption::{PrefixTransformers, ReadTransformer, Transformer};
use coffer_storage::{KeyValue, Lookup, Revision, Txn, TxnOutcome};
use zeroize::Zeroizing;

use crate::cache::Variant;
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
    /// How many stored objects follow `next` at `revision`, before any filter (kube's
    /// `remainingItemCount`, meaningful only for an unfiltered list); 0 without `next`.
    pub remaining: u64,
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

    fn transformer<K: ApiKind>(&self) -> Arc<PrefixTransformers> {
        let (group, resource) = K::ENCRYPTED_AS;
        self.transformers.for_resource(group, resource)
    }

    /// Decrypts and decodes a stored value, setting `resourceVersion`.
    pub async fn decode<K: ApiKind>(&self, kv: &KeyValue) -> ApiResult<K> {
        decode_with(&self.transformer::<K>(), kv).await
    }

    /// The JSON a GET of this stored value answers (plain JSON in the request's apiVersion),
    /// from the object cache when it holds this revision (`cache.rs`).
    pub async fn encoded<K: ApiKind>(&self, kv: &KeyValue) -> ApiResult<Bytes> {
        self.encoded_as::<K>(kv, &K::served_api_version(), &self.transformer::<K>())
            .await
    }

    /// [`AppState::encoded`] in `api_version`, decrypted by `transformer`.
    async fn encoded_as<K: ApiKind>(
        &self,
        kv: &KeyValue,
        api_version: &str,
        transformer: &Arc<PrefixTransformers>,
    ) -> ApiResult<Bytes> {
        let variant = Variant::new(kv.mod_revision.get(), api_version.to_owned(), transformer);
        if let Some(body) = self.objects.get(&kv.key, &variant) {
            return Ok(body);
        }
        let obj: K = decode_with(transformer, kv).await?;
        // Sized so that serialising rarely reallocates (a reallocation leaves a copy behind).
        let mut json = Vec::with_capacity(kv.value.len() * 2 + 256);
        serde_json::to_writer(&mut json, &obj).map_err(ApiError::internal)?;
        Ok(self.objects.insert(&kv.key, variant, json))
    }

    /// Reads one object as [`AppState::encoded`] JSON; 404 when missing.
    pub async fn get_encoded<K: ApiKind>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Bytes> {
        let key = self.key_of::<K>(namespace, name);
        let (api_version, transformer) = (K::served_api_version(), self.transformer::<K>());
        // With the body of a known revision cached, storage only confirms the revision.
        let got = match self.objects.known(&key, &api_version, &transformer) {
            Some((revision, body)) => {
                match self.store.get_unless(&key, Revision::new(revision)).await? {
                    Lookup::Unchanged => return Ok(body),
                    Lookup::Current(got) => got,
                }
            }
            None => self.store.get(&key).await?,
        };
        match got.kv {
            // Boxed: decryption (KMS may be remote) makes this future large, and a cached
            // revision never needs it; every GET's future would carry it otherwise.
            Some(kv) => Box::pin(self.encoded_as::<K>(&kv, &api_version, &transformer)).await,
            None => Err(ApiError::NotFound {
                resource: K::group_resource(),
                name: name.to_owned(),
            }),
        }
    }

    /// One page of a collection as [`AppState::encoded`] JSON items, for lists that keep
    /// every object as stored (no selector, nothing withheld), at `revision` (`None`: the
    /// latest). Items are decoded in parallel chunks; cached revisions are not decoded at all.
    pub async fn list_encoded<K: ApiKind>(
        &self,
        namespace: Option<&str>,
        limit: usize,
        start_after: Option<Bytes>,
        revision: Option<Revision>,
    ) -> ApiResult<ListPage<Bytes>> {
        let prefix = self.prefix_of::<K>(namespace);
        let range = self
            .store
            .range_at(&prefix, start_after.as_deref(), limit, revision)
            .await?;
        let next = if range.more {
            range.kvs.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        let items = in_parallel(self, range.kvs, |state, kv| async move {
            state.encoded::<K>(&kv).await
        })
        .await?
        .into_iter()
        .collect::<ApiResult<Vec<Bytes>>>()?;
        Ok(ListPage {
            items,
            revision: range.revision,
            next,
            remaining: range.remaining,
        })
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
        self.list_at(namespace, req, None).await
    }

    /// [`AppState::list`] at `revision` (`None`: the latest). Every storage page after the
    /// first reads at the first one's revision, so the answer is one snapshot.
    pub async fn list_at<K: ApiKind>(
        &self,
        namespace: Option<&str>,
        req: &ListRequest<'_, K>,
        revision: Option<Revision>,
    ) -> ApiResult<ListPage<K>> {
        let prefix = self.prefix_of::<K>(namespace);
        let batch = if req.limit == 0 {
            0
        } else {
            req.limit.max(100)
        };
        let mut after = req.start_after.clone();
        let mut items = Vec::new();
        let mut revision = revision;
        loop {
            let range = self
                .store
                .range_at(&prefix, after.as_deref(), batch, revision)
                .await?;
            revision.get_or_insert(range.revision);
            let count = range.kvs.len();
            let keys: Vec<Bytes> = range.kvs.iter().map(|kv| kv.key.clone()).collect();
            let last = keys.last().cloned();
            // Decoded in parallel; a failure counts only once the loop reaches its item.
            let decoded = in_parallel(self, range.kvs, |state, kv| async move {
                state.decode::<K>(&kv).await
            })
            .await?;
            for (i, (obj, key)) in decoded.into_iter().zip(keys).enumerate() {
                let obj: K = obj?;
                if !(req.filter)(&obj) {
                    continue;
                }
                items.push(obj);
                if req.limit != 0 && items.len() == req.limit {
                    let remaining = (count - i - 1) as u64 + range.remaining;
                    return Ok(ListPage {
                        items,
                        revision: revision.expect("BUG: set above"),
                        next: (remaining > 0).then_some(key),
                        remaining,
                    });
                }
            }
            if !range.more {
                return Ok(ListPage {
                    items,
                    revision: revision.expect("BUG: set above"),
                    next: None,
                    remaining: 0,
                });
            }
            after = last;
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
        match self.store.txn(Txn::create(key.clone(), value)).await? {
            TxnOutcome::Committed { revision, .. } => {
                self.objects.forget(&key);
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
                        self.objects.forget(&key);
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
                    self.objects.forget(&key);
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
                TxnOutcome::Committed { .. } => {
                    self.objects.forget(&key);
                    return Ok(current);
                }
                TxnOutcome::Failed { .. } => continue,
            }
        }
    }
}

/// Decrypts (with `transformer`) and decodes a stored value, setting `resourceVersion`.
async fn decode_with<K: ApiKind>(transformer: &PrefixTransformers, kv: &KeyValue) -> ApiResult<K> {
    let key = String::from_utf8_lossy(&kv.key);
    let (plain, _freshness) = transformer
        .from_storage(&kv.value, &kv.key)
        .await
        .map_err(|e| ApiError::internal(format!("cannot decrypt {key}: {e}")))?;
    let mut obj = K::decode(plain.expose_secret())
        .map_err(|e| ApiError::internal(format!("cannot decode {key}: {e}")))?;
    obj.metadata_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(obj)
}

/// Fewer items than this are handled inline: a task costs more than it saves.
const PARALLEL_MIN: usize = 64;

/// `f` over every item, in order, spread over the runtime's worker threads in contiguous
/// chunks (decryption and decoding are CPU work; a LIST of 10,000 Secrets is ~100 ms of it
/// on one core). Each chunk runs in the request's served version (`kinds::served_version`).
async fn in_parallel<C, T, R, F, Fut>(state: &C, items: Vec<T>, f: F) -> ApiResult<Vec<R>>
where
    C: Clone + Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(C, T) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = R> + Send,
{
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if items.len() < PARALLEL_MIN || workers == 1 {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(f(state.clone(), item).await);
        }
        return Ok(out);
    }
    let chunk = items.len().div_ceil(workers * 2).max(PARALLEL_MIN / 2);
    let version = crate::kinds::current_served_version().unwrap_or_default();
    let mut tasks = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let part: Vec<T> = items.by_ref().take(chunk).collect();
        let (state, f) = (state.clone(), f.clone());
        tasks.push(tokio::spawn(crate::kinds::served_version(
            version.clone(),
            async move {
                let mut out = Vec::with_capacity(part.len());
                for item in part {
                    out.push(f(state.clone(), item).await);
                }
                out
            },
        )));
    }
    let mut out = Vec::new();
    for task in tasks {
        match task.await {
            Ok(part) => out.extend(part),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(ApiError::internal(format!("list task: {e}"))),
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_parallel_keeps_order_and_the_served_version() {
        let items: Vec<u32> = (0..1000).collect();
        let out = crate::kinds::served_version("v1beta1".to_owned(), async {
            in_parallel(&7u32, items, |base, i| async move {
                (base + i, crate::kinds::current_served_version())
            })
            .await
        })
        .await
        .expect("no task fails");
        assert_eq!(out.len(), 1000);
        for (i, (n, version)) in out.into_iter().enumerate() {
            assert_eq!(n, 7 + u32::try_from(i).expect("BUG: < 1000"));
            assert_eq!(version.as_deref(), Some("v1beta1"));
        }
        let few = in_parallel(&(), vec![1, 2, 3], |(), i| async move { i * 2 })
            .await
            .expect("inline");
        assert_eq!(few, [2, 4, 6]);
    }
}
