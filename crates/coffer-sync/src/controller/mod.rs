//! The controller: watcher → reflector store → reconciler (STYLE rule 11), built from
//! `kube::runtime` against any API server — `coffer serve` or a real cluster.
//!
//! ```text
//! SecretStore / ClusterSecretStore watch ─► reflector store ─► StoreLookup ──┐
//!        └─(changed: ExternalSecrets that use it)──────────────────────────┐ │
//! ExternalSecret watch ─► store ─► spec/labels/annotations changed ────────┼─┼─► sync_one ─► Secret + status
//! managed Secret watch ─(deleted, or data edited by hand)─► its owner ──────┘ │
//! Namespace watch ─► store (labels for namespaceSelector) ────────────────────┘
//! ClusterExternalSecret watch + Namespace changes ─► fanout ─► ExternalSecrets
//! ```
//!
//! Every object is a `DynamicObject` read through `external-secrets.io/v1` paths, so
//! manifests applied as `v1beta1` work too (the server converts). The reconcile decision is
//! the pure [`crate::sync::plan`], reached through [`crate::sync::sync_one`]; this module
//! only wires streams to it, counts consecutive failures per ExternalSecret (for backoff)
//! and requeues after the plan's `requeue_after`. Status-only updates (the controller's
//! own) do not trigger a reconcile; a Secret the controller wrote triggers nothing unless
//! it is deleted or its data no longer matches the `data-hash` annotation.
//!
//! With [`ControllerOptions::namespace`] only that namespace's SecretStores and
//! ExternalSecrets are watched; ClusterSecretStores and ClusterExternalSecrets (cluster
//! scoped, and needing cluster-wide rights) are then not used.

mod access;
mod fanout;
mod lookup;
mod metrics_http;
mod table;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::hash::{Hash as _, Hasher as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};

pub use access::{KubeApi, TOKEN_EXPIRATION_SECONDS};
pub use fanout::{DEFAULT_REFRESH, desired_external_secret, target_namespaces};
pub use lookup::ReflectedStores;
pub use metrics_http::{bind_metrics, serve_metrics};
pub use table::{StatusRow, render_table};

use crate::sync::{KubeAccess, Metrics, SyncContext, data_hash, sync_one};
use crate::types::{
    ANNOTATION_DATA_HASH, Condition, ExternalSecret, ExternalSecretStatus, GROUP, LABEL_MANAGED,
    StoreKind, reason,
};

/// The version every kind is read and written through.
pub const API_VERSION: &str = "external-secrets.io/v1";

/// How long the first syncs wait for the store lists before going ahead.
const STORES_READY_WAIT: Duration = Duration::from_secs(10);

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Watch only this namespace (no cluster-scoped kinds); `None`: every namespace.
    pub namespace: Option<String>,
    /// Counters, shared with whoever serves `/metrics`.
    pub metrics: Arc<Metrics>,
    /// ExternalSecrets reconciled at once (distinct objects; one object is never
    /// reconciled twice at the same time).
    pub concurrency: u16,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            metrics: Arc::new(Metrics::new()),
            concurrency: 16,
        }
    }
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// The kubeconfig could not be read or names no usable context.
    #[error(
        "loading the kubeconfig: {0}; pass --kubeconfig FILE (and --context) or set KUBECONFIG"
    )]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// The client could not be built from the kubeconfig.
    #[error("building a client from the kubeconfig: {0}")]
    Client(#[source] kube::Error),
    /// The server does not serve `external-secrets.io/v1` (no ESO CRDs installed).
    #[error(
        "the API server does not serve {0} in external-secrets.io/v1; install External Secrets Operator's CRDs (or use coffer serve, which serves them)"
    )]
    NotServed(&'static str),
    /// A first request failed (unreachable server, no rights).
    #[error(
        "{what}: {source}; check that the server is reachable and the user may list and watch it"
    )]
    Request {
        /// What was asked.
        what: String,
        /// The client's error (server `Status` or transport).
        #[source]
        source: kube::Error,
    },
}

/// A client from a kubeconfig file (`None`: `$KUBECONFIG`, then `~/.kube/config`, then the
/// in-cluster ServiceAccount, as kubectl and kube-rs find it) and an optional context.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, ControllerError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(ControllerError::Kubeconfig)?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(ControllerError::Kubeconfig)?
        }
        None => match kube::Config::from_kubeconfig(&options).await {
            Ok(c) => c,
            Err(e) => kube::Config::incluster().map_err(|_| ControllerError::Kubeconfig(e))?,
        },
    };
    kube::Client::try_from(config).map_err(ControllerError::Client)
}

/// The `external-secrets.io/v1` resource of `kind` (plural: lowercase kind + `s`, as ESO's
/// CRDs name them).
pub(crate) fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", kind),
        &format!("{}s", kind.to_ascii_lowercase()),
    )
}

fn api(client: &kube::Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Runs the controller until `shutdown` completes, then lets running reconciles finish.
/// Fails only when it cannot start: the kinds are not served or the first list fails.
pub async fn run(
    client: kube::Client,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let ns = options.namespace.as_deref();
    let es_ar = resource("ExternalSecret");
    let es_api = api(&client, &es_ar, ns);
    match es_api.list(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(ControllerError::NotServed("ExternalSecret"));
        }
        Err(source) => {
            return Err(ControllerError::Request {
                what: "listing ExternalSecrets".into(),
                source,
            });
        }
    }
    let shutdown = shutdown.boxed().shared();
    let cluster_wide = ns.is_none();

    // Stores: one watch per kind fills a reflector store and triggers the ExternalSecrets
    // that use a store when it changes.
    let (ss_reader, ss_events) = reflected(&client, "SecretStore", ns);
    let (css, css_events) = if cluster_wide {
        let (reader, events) = reflected(&client, "ClusterSecretStore", None);
        (Some(reader), Some(events))
    } else {
        (None, None)
    };
    let (namespaces, ns_events) = if cluster_wide {
        let (reader, writer) = reflector::store::<Namespace>();
        let events = watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .touched_objects();
        (Some(reader), Some(events))
    } else {
        (None, None)
    };
    let stores = ReflectedStores {
        secret_stores: ss_reader,
        cluster_secret_stores: css.clone(),
        namespaces: namespaces.clone(),
    };

    // ExternalSecrets: reconciled when their spec, labels or annotations change (not on
    // status updates), plus the triggers above and below.
    let (es_reader, es_writer) = writer_pair(es_ar.clone());
    let es_events = watcher(es_api, watcher::Config::default())
        .default_backoff()
        .reflect(es_writer)
        .applied_objects()
        .predicate_filter(sync_relevant, Default::default());
    let secrets: Api<Secret> = match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    let secret_events = secret_triggers(
        watcher(
            secrets,
            watcher::Config::default().labels(&format!("{LABEL_MANAGED}=true")),
        )
        .default_backoff(),
    );

    let kube_api = Arc::new(KubeApi::new(client.clone(), es_ar.clone()));
    let sync = Arc::new(SyncContext::new(
        Arc::new(stores.clone()),
        kube_api.clone(),
        options.metrics.clone(),
    ));
    let ctx = Arc::new(Shared {
        sync: sync.clone(),
        kube: kube_api,
        stores,
        failures: Mutex::new(HashMap::new()),
    });

    let by_store = {
        let es = es_reader.clone();
        move |kind: StoreKind| {
            let es = es.clone();
            move |store: DynamicObject| {
                users_of_store(
                    &es,
                    kind,
                    store.metadata.namespace.as_deref().unwrap_or_default(),
                    store.metadata.name.as_deref().unwrap_or_default(),
                )
            }
        }
    };
    let owner_ar = es_ar.clone();
    let mut es_controller = Controller::for_stream_with(es_events, es_reader, es_ar.clone())
        .with_config(ControllerConfig::default().concurrency(options.concurrency))
        .watches_stream_with(
            ss_events,
            by_store(StoreKind::SecretStore),
            resource("SecretStore"),
        )
        .watches_stream(secret_events, move |s: Secret| owners(&s, &owner_ar))
        .graceful_shutdown_on(shutdown.clone());
    if let Some(events) = css_events {
        es_controller = es_controller.watches_stream_with(
            events,
            by_store(StoreKind::ClusterSecretStore),
            resource("ClusterSecretStore"),
        );
    }
    let es_loop = es_controller
        .run(
            |obj, ctx: Arc<Shared>| async move { Ok::<_, Infallible>(ctx.reconcile(&obj).await) },
            |_, _: &Infallible, _| Action::requeue(Duration::from_secs(5)),
            ctx,
        )
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "ExternalSecret controller");
            }
            std::future::ready(())
        });

    // ClusterExternalSecrets: fanned out into ExternalSecrets; re-checked when a Namespace
    // changes and every refreshTime.
    let ces_loop = match (namespaces, ns_events) {
        (Some(namespaces), Some(ns_events)) => {
            let ces_ar = resource("ClusterExternalSecret");
            let ces_controller = Controller::new_with(
                api(&client, &ces_ar, None),
                watcher::Config::default(),
                ces_ar.clone(),
            );
            let ces_store = ces_controller.store();
            let all_ces = move |_: Namespace| {
                ces_store
                    .state()
                    .iter()
                    .map(|c| {
                        ObjectRef::from_obj_with(c.as_ref(), resource("ClusterExternalSecret"))
                    })
                    .collect::<Vec<_>>()
            };
            let fan_ctx = Arc::new((client.clone(), namespaces));
            ces_controller
                .watches_stream(ns_events, all_ces)
                .graceful_shutdown_on(shutdown.clone())
                .run(
                    |obj, ctx: Arc<(kube::Client, Store<Namespace>)>| async move {
                        let _ = ctx.1.wait_until_ready().await;
                        Ok::<_, Infallible>(fanout::reconcile(&ctx.0, &obj, &ctx.1).await)
                    },
                    |_, _: &Infallible, _| Action::requeue(Duration::from_secs(5)),
                    fan_ctx,
                )
                .for_each(|result| {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "ClusterExternalSecret controller");
                    }
                    std::future::ready(())
                })
                .boxed()
        }
        _ => futures::future::ready(()).boxed(),
    };

    // The fetch cache keeps one entry per remote secret per window; old windows are dropped.
    let prune = {
        let shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tokio::select! {
                    () = shutdown.clone() => return,
                    _ = tick.tick() => sync.cache.prune(Duration::from_secs(24 * 3600)),
                }
            }
        }
    };
    tracing::info!(namespace = ns.unwrap_or("(all)"), "sync controller started");
    futures::join!(es_loop, ces_loop, prune);
    tracing::info!("sync controller stopped");
    Ok(())
}

fn writer_pair(
    ar: ApiResource,
) -> (
    Store<DynamicObject>,
    reflector::store::Writer<DynamicObject>,
) {
    let writer = reflector::store::Writer::new(ar);
    (writer.as_reader(), writer)
}

/// A watch of `kind` (in `namespace`, or all) that fills a reflector store; its stream
/// yields every object touched (applied or deleted).
fn reflected(
    client: &kube::Client,
    kind: &str,
    namespace: Option<&str>,
) -> (
    Store<DynamicObject>,
    impl futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static,
) {
    let ar = resource(kind);
    let (reader, writer) = writer_pair(ar.clone());
    let events = watcher(api(client, &ar, namespace), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (reader, events)
}

/// What the ExternalSecret reconciler shares.
struct Shared {
    sync: Arc<SyncContext>,
    kube: Arc<dyn KubeAccess>,
    stores: ReflectedStores,
    /// Consecutive failures per (namespace, name), for backoff. Held only to read or write
    /// one entry, never across an await.
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl Shared {
    async fn reconcile(&self, obj: &DynamicObject) -> Action {
        self.stores.wait_until_ready(STORES_READY_WAIT).await;
        let es: ExternalSecret = match lookup::typed(obj, API_VERSION, "ExternalSecret") {
            Ok(es) => es,
            Err(e) => return self.refuse(obj, &e).await,
        };
        reconcile_parsed(&es, &self.sync, self.kube.as_ref(), &self.failures).await
    }

    /// An ExternalSecret whose spec does not parse: say so in its status, wait for a change.
    async fn refuse(&self, obj: &DynamicObject, e: &serde_json::Error) -> Action {
        let es = ExternalSecret {
            metadata: obj.metadata.clone(),
            ..ExternalSecret::default()
        };
        let status = ExternalSecretStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: Some(reason::SECRET_SYNCED_ERROR.into()),
                message: Some(format!("spec does not parse: {e}; fix the manifest")),
                last_transition_time: None,
            }],
            ..ExternalSecretStatus::default()
        };
        if let Err(err) = self.kube.update_status(&es, &status).await {
            tracing::warn!(error = %err, "could not report an ExternalSecret that does not parse");
        }
        Action::await_change()
    }
}

/// One sync of a parsed ExternalSecret with failure counting: the counter is read before
/// and reset (success) or bumped (failure) after, and the plan's `requeue_after` becomes
/// the Action.
async fn reconcile_parsed(
    es: &ExternalSecret,
    sync: &SyncContext,
    kube: &dyn KubeAccess,
    failures: &Mutex<HashMap<(String, String), u32>>,
) -> Action {
    let key = (es.namespace().to_owned(), es.name().to_owned());
    let before = failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .copied()
        .unwrap_or(0);
    let report = sync_one(es, sync, kube, before).await;
    {
        let mut map = failures.lock().unwrap_or_else(|p| p.into_inner());
        if report.ok {
            map.remove(&key);
        } else {
            map.insert(key, before.saturating_add(1));
        }
    }
    if !report.ok {
        tracing::warn!(namespace = es.namespace(), name = es.name(), failures = before + 1, message = %report.message, "ExternalSecret sync failed; the Secret is left as it was");
    } else if report.wrote {
        tracing::info!(
            namespace = es.namespace(),
            name = es.name(),
            secret = es.target_name(),
            "Secret written"
        );
    }
    report
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue)
}

/// The predicate for ExternalSecret events: what a sync depends on (spec, labels,
/// annotations), so the controller's own status writes do not trigger a reconcile.
fn sync_relevant(obj: &DynamicObject) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.data
        .get("spec")
        .map(ToString::to_string)
        .unwrap_or_default()
        .hash(&mut h);
    obj.metadata.labels.hash(&mut h);
    obj.metadata.annotations.hash(&mut h);
    Some(h.finish())
}

/// The ExternalSecrets (in the store) that read the store `kind`/`namespace`/`name`, through
/// `secretStoreRef` or any `sourceRef.storeRef`.
fn users_of_store(
    es: &Store<DynamicObject>,
    kind: StoreKind,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<DynamicObject>> {
    es.state()
        .iter()
        .filter(|e| {
            kind == StoreKind::ClusterSecretStore
                || e.metadata.namespace.as_deref() == Some(namespace)
        })
        .filter(|e| store_refs(&e.data).contains(&(kind, name.to_owned())))
        .map(|e| ObjectRef::from_obj_with(e.as_ref(), resource("ExternalSecret")))
        .collect()
}

/// Every store an ExternalSecret's JSON names.
fn store_refs(es: &serde_json::Value) -> BTreeSet<(StoreKind, String)> {
    let spec = &es["spec"];
    let one = |r: &serde_json::Value| {
        let name = r["name"].as_str()?.to_owned();
        let kind = match r["kind"].as_str() {
            Some("ClusterSecretStore") => StoreKind::ClusterSecretStore,
            _ => StoreKind::SecretStore,
        };
        Some((kind, name))
    };
    let mut out: BTreeSet<_> = one(&spec["secretStoreRef"]).into_iter().collect();
    for list in ["data", "dataFrom"] {
        for entry in spec[list].as_array().into_iter().flatten() {
            out.extend(one(&entry["sourceRef"]["storeRef"]));
        }
    }
    out
}

/// The Secret events that need a sync: deleted, or data that no longer matches the
/// `data-hash` annotation (edited by hand). The controller's own writes match and pass
/// nothing on. Watch errors pass through (the controller logs them).
pub(crate) fn secret_triggers(
    events: impl futures::Stream<Item = Result<watcher::Event<Secret>, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<Secret, watcher::Error>> + Send + 'static {
    events
        .map(|event| match event {
            Ok(watcher::Event::Delete(s)) => vec![Ok(s)],
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) if edited(&s) => {
                vec![Ok(s)]
            }
            Ok(_) => Vec::new(),
            Err(e) => vec![Err(e)],
        })
        .flat_map(futures::stream::iter)
}

/// Whether a managed Secret's data differs from what its `data-hash` annotation records.
fn edited(s: &Secret) -> bool {
    let recorded = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_DATA_HASH));
    recorded.is_none_or(|h| *h != data_hash(&s.data.clone().unwrap_or_default()))
}

/// The ExternalSecret that controls a Secret (any `external-secrets.io` version).
fn owners(s: &Secret, es_ar: &ApiResource) -> Vec<ObjectRef<DynamicObject>> {
    let ns = s.metadata.namespace.as_deref().unwrap_or_default();
    s.metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind == "ExternalSecret" && o.api_version.starts_with(GROUP))
        .map(|o| ObjectRef::new_with(&o.name, es_ar.clone()).within(ns))
        .collect()
}

#[cfg(test)]
mod tests;
