//! The RBAC snapshot the authorizer reads on every request, kept current from storage (the
//! informer kube-apiserver's RBAC authorizer reads from, in miniature).
//!
//! One task lists Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, then watches the
//! four prefixes; after each batch of events it builds a new immutable
//! [`coffer_access::Policy`] and swaps it in, so a request never waits on a lock. The same
//! task runs the ClusterRole aggregation controller (§9.3): when an aggregated ClusterRole's
//! rules differ from the union of the roles its selectors match, it writes the union.
//!
//! A write to an RBAC object waits (up to [`READ_YOUR_WRITES`]) until the snapshot has applied
//! it, so the next request of the same client sees its own change. On a lagged or compacted
//! watch the task lists again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use coffer_access::rbac::Policy;
use coffer_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use coffer_storage::{EventKind, Revision, WatchEvent};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::decisions::Decisions;
use crate::kinds::ApiKind;
use crate::registry::ListRequest;
use crate::state::AppState;
use crate::status::{ApiError, ApiResult};

/// How long an RBAC write waits for the snapshot to include it.
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(2);

/// The current policy and how far it has caught up with storage.
pub struct RbacCache {
    policy: ArcSwap<Policy>,
    /// The newest revision applied, per kind (index: [`kind_index`]).
    applied: [watch::Sender<u64>; 4],
    /// Allow decisions made under the current snapshot (`decisions.rs`).
    pub decisions: Decisions,
}

impl Default for RbacCache {
    fn default() -> Self {
        RbacCache {
            policy: ArcSwap::from_pointee(Policy::new(
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            )),
            applied: std::array::from_fn(|_| watch::channel(0).0),
            decisions: Decisions::default(),
        }
    }
}

impl RbacCache {
    /// The current snapshot.
    pub fn policy(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// Waits until the snapshot includes the write of a `K` at `revision` (bounded by
    /// [`READ_YOUR_WRITES`]; after that the write is still stored and will apply shortly).
    pub async fn wait_for<K: ApiKind>(&self, revision: u64) {
        let Some(i) = kind_index(K::API_GROUP, K::RESOURCE) else {
            return;
        };
        let mut rx = self.applied[i].subscribe();
        let _ = tokio::time::timeout(
            READ_YOUR_WRITES,
            rx.wait_for(|applied| *applied >= revision),
        )
        .await;
    }
}

fn kind_index(group: &str, resource: &str) -> Option<usize> {
    if group != coffer_access::rbac::RBAC_GROUP {
        return None;
    }
    [
        "roles",
        "clusterroles",
        "rolebindings",
        "clusterrolebindings",
    ]
    .iter()
    .position(|r| *r == resource)
}

/// Objects by storage key.
#[derive(Default)]
struct Objects {
    roles: BTreeMap<Bytes, Role>,
    cluster_roles: BTreeMap<Bytes, ClusterRole>,
    role_bindings: BTreeMap<Bytes, RoleBinding>,
    cluster_role_bindings: BTreeMap<Bytes, ClusterRoleBinding>,
}

/// Creates the default ClusterRoles and ClusterRoleBindings that are missing (§15.5), then
/// loads the snapshot and keeps it current in the background.
pub async fn start(state: &AppState) -> ApiResult<()> {
    for role in coffer_access::rbac::bootstrap_cluster_roles() {
        ensure(state, role).await?;
    }
    for binding in coffer_access::rbac::bootstrap_cluster_role_bindings() {
        ensure(state, binding).await?;
    }
    let (objects, starts) = load(state).await?;
    publish(state, &objects, starts.map(Revision::get)).await;
    let state = state.clone();
    tokio::spawn(async move {
        let mut next = Some((objects, starts));
        loop {
            let (objects, starts) = match next.take() {
                Some(loaded) => loaded,
                None => match load(&state).await {
                    Ok((objects, starts)) => {
                        publish(&state, &objects, starts.map(Revision::get)).await;
                        (objects, starts)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.status()["message"], "RBAC cache: cannot list; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            if let Err(e) = follow(&state, objects, starts).await {
                tracing::warn!(error = %e.status()["message"], "RBAC cache: watch ended; listing again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    Ok(())
}

async fn ensure<K: ApiKind>(state: &AppState, mut obj: K) -> ApiResult<()> {
    let name = obj.metadata().name.clone().unwrap_or_default();
    if state.try_get::<K>(None, &name).await?.is_some() {
        return Ok(());
    }
    crate::resources::set_system_fields(obj.metadata_mut());
    match state.create(None, obj, false).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn list_all<K: ApiKind>(state: &AppState) -> ApiResult<(BTreeMap<Bytes, K>, Revision)> {
    let page = state
        .list::<K>(
            None,
            &ListRequest {
                limit: 0,
                start_after: None,
                filter: &|_| true,
            },
        )
        .await?;
    let map = page
        .items
        .into_iter()
        .map(|o| {
            let meta = o.metadata();
            let key = state.key_of::<K>(
                meta.namespace.as_deref(),
                meta.name.as_deref().unwrap_or(""),
            );
            (key, o)
        })
        .collect();
    Ok((map, page.revision))
}

async fn load(state: &AppState) -> ApiResult<(Objects, [Revision; 4])> {
    let (roles, r0) = list_all::<Role>(state).await?;
    let (cluster_roles, r1) = list_all::<ClusterRole>(state).await?;
    let (role_bindings, r2) = list_all::<RoleBinding>(state).await?;
    let (cluster_role_bindings, r3) = list_all::<ClusterRoleBinding>(state).await?;
    Ok((
        Objects {
            roles,
            cluster_roles,
            role_bindings,
            cluster_role_bindings,
        },
        [r0, r1, r2, r3],
    ))
}

/// Applies watch events until a watch fails.
async fn follow(state: &AppState, mut objects: Objects, starts: [Revision; 4]) -> ApiResult<()> {
    let prefixes = [
        state.prefix_of::<Role>(None),
        state.prefix_of::<ClusterRole>(None),
        state.prefix_of::<RoleBinding>(None),
        state.prefix_of::<ClusterRoleBinding>(None),
    ];
    let mut streams = Vec::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        let stream = state.store.watch(prefix, starts[i].next()).await?;
        streams.push(stream.map(move |e| (i, e)));
    }
    let mut merged = futures::stream::select_all(streams);
    while let Some((i, event)) = merged.next().await {
        let mut applied = [0u64; 4];
        let event = event?;
        applied[i] = event.revision().get();
        apply(state, &mut objects, i, &event).await?;
        // Take everything already waiting, then rebuild once.
        while let Some(Some((j, more))) = merged.next().now_or_never() {
            let more = more?;
            applied[j] = applied[j].max(more.revision().get());
            apply(state, &mut objects, j, &more).await?;
        }
        publish(state, &objects, applied).await;
    }
    Ok(())
}

async fn apply(
    state: &AppState,
    objects: &mut Objects,
    i: usize,
    event: &WatchEvent,
) -> ApiResult<()> {
    match i {
        0 => apply_to(state, &mut objects.roles, event).await,
        1 => apply_to(state, &mut objects.cluster_roles, event).await,
        2 => apply_to(state, &mut objects.role_bindings, event).await,
        _ => apply_to(state, &mut objects.cluster_role_bindings, event).await,
    }
}

async fn apply_to<K: ApiKind>(
    state: &AppState,
    map: &mut BTreeMap<Bytes, K>,
    event: &WatchEvent,
) -> ApiResult<()> {
    match event.kind {
        EventKind::Delete => {
            map.remove(&event.kv.key);
        }
        EventKind::Put => {
            let obj: K = state.decode(&event.kv).await?;
            map.insert(event.kv.key.clone(), obj);
        }
    }
    Ok(())
}

/// Swaps in a snapshot of `objects`, records how far it reaches, and aggregates.
async fn publish(state: &AppState, objects: &Objects, applied: [u64; 4]) {
    let policy = Policy::new(
        objects.roles.values().cloned().collect(),
        objects.cluster_roles.values().cloned().collect(),
        objects.role_bindings.values().cloned().collect(),
        objects.cluster_role_bindings.values().cloned().collect(),
    );
    state.rbac.policy.store(Arc::new(policy));
    for (sender, revision) in state.rbac.applied.iter().zip(applied) {
        sender.send_if_modified(|current| {
            let newer = revision > *current;
            if newer {
                *current = revision;
            }
            newer
        });
    }
    let cluster_roles: Vec<ClusterRole> = objects.cluster_roles.values().cloned().collect();
    for (name, rules) in coffer_access::rbac::aggregate(&cluster_roles) {
        let written = state
            .update::<ClusterRole, _>(None, &name, false, |mut role| {
                role.rules = (!rules.is_empty()).then(|| rules.clone());
                Ok(role)
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(clusterrole = %name, error = %e.status()["message"], "cannot aggregate ClusterRole");
        }
    }
}
