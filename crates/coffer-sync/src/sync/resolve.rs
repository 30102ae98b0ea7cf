//! From an ExternalSecret to the data its Secret should hold: find the store, fetch through
//! the shared [`FetchCache`], extract properties, decode, expand `dataFrom`, rewrite keys and
//! render the template. The only I/O is the provider calls (and reading store credentials).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::FutureExt as _;
use tokio::time::Instant;

use super::cache::{FetchCache, FetchKey};
use super::metrics::Metrics;
use crate::provider::{
    CredentialScope, CredentialSource, Fetched, Provider, ProviderError, SecretValue,
    build_provider, decode, extract_property,
};
use crate::template::{Template, TemplateError, data_value};
use crate::types::{
    ConversionStrategy, ExternalSecret, MergePolicy, MetadataPolicy, RemoteRef, SecretStore,
    SecretStoreRef, StoreKind,
};

/// Why an ExternalSecret's data could not be built. Never carries a value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The provider failed; the Secret is left as it is.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store named does not exist (yet).
    #[error("{kind:?} {name:?} not found; create it or fix secretStoreRef")]
    StoreNotFound {
        /// The kind asked for.
        kind: StoreKind,
        /// The name asked for.
        name: String,
    },
    /// A ClusterSecretStore's `conditions` exclude this namespace.
    #[error(
        "ClusterSecretStore {0:?} may not be used from this namespace (see its spec.conditions)"
    )]
    StoreForbidden(String),
    /// A template did not parse or run.
    #[error("template at key {key:?}: {source}")]
    Template {
        /// The template's key.
        key: String,
        /// Where and why.
        source: TemplateError,
    },
    /// A feature of the manifest Coffer does not implement.
    #[error("{0} is not supported by coffer sync")]
    Unsupported(String),
    /// A rewrite rule or key is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl SyncError {
    /// Whether the remote data is gone (every fetch said not found).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SyncError::Provider(ProviderError::NotFound { .. }))
    }
}

/// Finds stores by kind, namespace and name (the controller reads its reflector stores).
pub trait StoreLookup: Send + Sync {
    /// The store, if it exists.
    fn store(&self, kind: StoreKind, namespace: &str, name: &str) -> Option<SecretStore>;

    /// The labels of a Namespace, for ClusterSecretStore `conditions[].namespaceSelector`.
    /// `None` (the default: unknown) makes a selector condition deny, so an unknown
    /// namespace never gets a cluster store's credentials.
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let _ = namespace;
        None
    }
}

/// How long a built provider (and the credentials it read: keys from Secrets,
/// ServiceAccount tokens) is reused before it is built again, so rotated credentials and
/// short-lived tokens are picked up without a change to the store.
pub const PROVIDER_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// What the Secret should contain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// Key → value.
    pub data: BTreeMap<String, SecretValue>,
    /// The Secret's `type` from the template (else `Opaque`).
    pub type_: Option<String>,
    /// Labels from the template (`None`: copy the ExternalSecret's, as ESO does).
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations from the template (`None`: copy the ExternalSecret's).
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Everything a sync needs besides the ExternalSecret: stores, credentials, the shared
/// cache and providers, and metrics.
pub struct SyncContext {
    /// The stores.
    pub stores: Arc<dyn StoreLookup>,
    /// Store credentials.
    pub creds: Arc<dyn CredentialSource>,
    /// The shared fetch cache.
    pub cache: FetchCache,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Providers by store identity with when they were built (rebuilt when the store's
    /// resourceVersion changes or after [`PROVIDER_TTL`]).
    providers: Mutex<HashMap<String, BuiltProvider>>,
}

/// A provider and when it was built.
type BuiltProvider = (Instant, Arc<dyn Provider>);

impl std::fmt::Debug for SyncContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncContext")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl SyncContext {
    /// A context over these stores and credentials.
    pub fn new(
        stores: Arc<dyn StoreLookup>,
        creds: Arc<dyn CredentialSource>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            stores,
            creds,
            cache: FetchCache::new(),
            metrics,
            providers: Mutex::new(HashMap::new()),
        }
    }

    async fn provider(
        &self,
        r: &SecretStoreRef,
        es_ns: &str,
    ) -> Result<(String, Arc<dyn Provider>), SyncError> {
        let store_ns = match r.kind {
            StoreKind::SecretStore => es_ns,
            StoreKind::ClusterSecretStore => "",
        };
        let store = self
            .stores
            .store(r.kind, store_ns, &r.name)
            .ok_or_else(|| SyncError::StoreNotFound {
                kind: r.kind,
                name: r.name.clone(),
            })?;
        if r.kind == StoreKind::ClusterSecretStore
            && !cluster_store_allows(&store, es_ns, self.stores.as_ref())
        {
            return Err(SyncError::StoreForbidden(r.name.clone()));
        }
        let rv = store.metadata.resource_version.clone().unwrap_or_default();
        // Cluster stores resolve credentials per namespace only through explicit namespaces,
        // so one provider serves every namespace.
        let identity = format!("{:?}/{store_ns}/{}@{rv}", r.kind, r.name);
        if let Some((built, p)) = self
            .providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&identity)
            && built.elapsed() < PROVIDER_TTL
        {
            return Ok((identity, p.clone()));
        }
        let scope = CredentialScope {
            kind: r.kind,
            namespace: es_ns,
        };
        let p = build_provider(&store, scope, self.creds.as_ref()).await?;
        let mut map = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| !k.starts_with(&format!("{:?}/{store_ns}/{}@", r.kind, r.name)));
        map.insert(identity.clone(), (Instant::now(), p.clone()));
        Ok((identity, p))
    }

    async fn fetch(
        &self,
        identity: &str,
        provider: &Arc<dyn Provider>,
        r: &RemoteRef,
        not_before: Instant,
    ) -> Result<Arc<Fetched>, SyncError> {
        if r.metadata_policy == MetadataPolicy::Fetch {
            return Err(SyncError::Unsupported(
                "remoteRef.metadataPolicy: Fetch".into(),
            ));
        }
        let key = FetchKey {
            store: identity.to_owned(),
            key: r.key.clone(),
            version: r.version.clone(),
        };
        let (p, k, v, metrics) = (
            provider.clone(),
            r.key.clone(),
            r.version.clone(),
            self.metrics.clone(),
        );
        Ok(self
            .cache
            .get(key, not_before, move || {
                async move {
                    let out = p.get_secret(&k, v.as_deref()).await;
                    let status = match &out {
                        Ok(_) => "success",
                        Err(e) => e.kind(),
                    };
                    metrics.observe_provider_call(p.name(), "GetSecret", status);
                    out
                }
                .boxed()
            })
            .await?)
    }
}

/// Whether a ClusterSecretStore's `conditions` let `namespace` use it, as ESO's
/// `validateStoreNamespaceConditions`: no conditions allow every namespace; otherwise some
/// condition must match by name, by regex, or by `namespaceSelector` on the Namespace's
/// labels (unknown labels never match).
fn cluster_store_allows(store: &SecretStore, namespace: &str, lookup: &dyn StoreLookup) -> bool {
    let conds = &store.spec.conditions;
    conds.is_empty()
        || conds.iter().any(|c| {
            c.namespaces.iter().any(|n| n == namespace)
                || c.namespace_regexes
                    .iter()
                    .any(|r| regex::Regex::new(r).is_ok_and(|re| re.is_match(namespace)))
                || c.namespace_selector.as_ref().is_some_and(|sel| {
                    lookup
                        .namespace_labels(namespace)
                        .is_some_and(|labels| selector_matches(sel, &labels))
                })
        })
}

/// Whether a label selector (`matchLabels` and `matchExpressions`) matches `labels`; a
/// selector that does not parse matches nothing.
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    use kube::core::SelectorExt as _;
    kube::core::Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
}

/// Builds what `es`'s Secret should hold, fetching through the cache. `not_before` is the
/// start of the current refresh window (or now, for a forced refresh).
pub async fn resolve(
    es: &ExternalSecret,
    ctx: &SyncContext,
    not_before: Instant,
) -> Result<Desired, SyncError> {
    let ns = es.namespace();
    let mut fetched: BTreeMap<String, SecretValue> = BTreeMap::new();
    for d in &es.spec.data_from {
        let store_ref = source_store(d.source_ref.as_ref(), &es.spec.secret_store_ref)?;
        let (identity, provider) = ctx.provider(store_ref, ns).await?;
        let mut part = if let Some(r) = &d.extract {
            let f = ctx.fetch(&identity, &provider, r, not_before).await?;
            let value = match &r.property {
                Some(p) if !p.is_empty() => extract_property(&f.value, p, &r.key)?,
                _ => f.value.clone(),
            };
            let mut map = json_map(&value, &r.key)?;
            for v in map.values_mut() {
                *v = decode(std::mem::take(v), r.decoding_strategy, &r.key)?;
            }
            convert_keys(map, r.conversion_strategy)
        } else if let Some(find) = &d.find {
            let key = FetchKey {
                store: identity.clone(),
                key: format!("find:{}", serde_json::to_string(find).unwrap_or_default()),
                version: None,
            };
            let (p, f, metrics) = (provider.clone(), find.clone(), ctx.metrics.clone());
            let all = ctx
                .cache
                .get(key, not_before, move || {
                    async move {
                        let out = p.get_all(&f).await;
                        let status = match &out {
                            Ok(_) => "success",
                            Err(e) => e.kind(),
                        };
                        metrics.observe_provider_call(p.name(), "GetAllSecrets", status);
                        // Packed as one JSON object so the cache can hold it like any value.
                        out.map(|m| Fetched {
                            value: SecretValue::new(
                                serde_json::to_vec(
                                    &m.iter()
                                        .map(|(k, v)| (k.clone(), v.expose_str_lossy().to_string()))
                                        .collect::<BTreeMap<_, _>>(),
                                )
                                .unwrap_or_default(),
                            ),
                            version: None,
                        })
                    }
                    .boxed()
                })
                .await?;
            let mut map = json_map(&all.value, "find")?;
            for v in map.values_mut() {
                *v = decode(std::mem::take(v), find.decoding_strategy, "find")?;
            }
            convert_keys(map, find.conversion_strategy)
        } else if d
            .source_ref
            .as_ref()
            .is_some_and(|s| s.generator_ref.is_some())
        {
            return Err(SyncError::Unsupported(
                "dataFrom[].sourceRef.generatorRef".into(),
            ));
        } else {
            return Err(SyncError::Invalid(
                "dataFrom entry needs extract or find".into(),
            ));
        };
        for rw in &d.rewrite {
            part = super::rewrite::apply(rw, part)?;
        }
        fetched.extend(part);
    }
    for d in &es.spec.data {
        let store_ref = source_store(d.source_ref.as_ref(), &es.spec.secret_store_ref)?;
        let (identity, provider) = ctx.provider(store_ref, ns).await?;
        let r = &d.remote_ref;
        let f = ctx.fetch(&identity, &provider, r, not_before).await?;
        let value = match &r.property {
            Some(p) if !p.is_empty() => extract_property(&f.value, p, &r.key)?,
            _ => f.value.clone(),
        };
        fetched.insert(
            d.secret_key.clone(),
            decode(value, r.decoding_strategy, &r.key)?,
        );
    }
    render(es, fetched)
}

fn source_store<'a>(
    source: Option<&'a crate::types::SourceRef>,
    default: &'a SecretStoreRef,
) -> Result<&'a SecretStoreRef, SyncError> {
    match source {
        Some(s) if s.generator_ref.is_some() => {
            Err(SyncError::Unsupported("sourceRef.generatorRef".into()))
        }
        Some(s) => Ok(s.store_ref.as_ref().unwrap_or(default)),
        None if default.name.is_empty() => Err(SyncError::Invalid(
            "spec.secretStoreRef.name is empty".into(),
        )),
        None => Ok(default),
    }
}

/// ESO's `GetSecretMap`: a JSON object's string values as bytes, others as JSON text.
fn json_map(value: &SecretValue, key: &str) -> Result<BTreeMap<String, SecretValue>, SyncError> {
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(value.expose_secret()).map_err(|_| {
            SyncError::Invalid(format!(
                "secret {key:?} is not a JSON object; use data[] for a plain value"
            ))
        })?;
    Ok(obj
        .into_iter()
        .map(|(k, v)| {
            let bytes = match v {
                serde_json::Value::String(s) => s.into_bytes(),
                other => serde_json::to_vec(&other).unwrap_or_default(),
            };
            (k, SecretValue::new(bytes))
        })
        .collect())
}

/// `conversionStrategy: Unicode`: characters not allowed in a Secret key become `_U<hex>_`.
fn convert_keys(
    map: BTreeMap<String, SecretValue>,
    strategy: ConversionStrategy,
) -> BTreeMap<String, SecretValue> {
    match strategy {
        ConversionStrategy::Default => map,
        ConversionStrategy::Unicode => map
            .into_iter()
            .map(|(k, v)| {
                let key = k
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                            c.to_string()
                        } else {
                            format!("_U{:04x}_", c as u32)
                        }
                    })
                    .collect();
                (key, v)
            })
            .collect(),
    }
}

/// Applies `target.template` to the fetched data (ESO's `ApplyTemplate`).
fn render(
    es: &ExternalSecret,
    fetched: BTreeMap<String, SecretValue>,
) -> Result<Desired, SyncError> {
    let Some(t) = &es.spec.target.template else {
        return Ok(Desired {
            data: fetched,
            ..Desired::default()
        });
    };
    if t.engine_version != "v2" {
        return Err(SyncError::Unsupported(format!(
            "template engineVersion {:?} (use v2)",
            t.engine_version
        )));
    }
    let dot = data_value(fetched.iter().map(|(k, v)| (k.as_str(), v.expose_secret())));
    let run = |key: &str, src: &str| -> Result<String, SyncError> {
        Template::parse(src)
            .and_then(|tpl| tpl.render(&dot))
            .map_err(|source| SyncError::Template {
                key: key.to_owned(),
                source,
            })
    };
    let mut data = BTreeMap::new();
    let keep_fetched =
        (t.data.is_empty() && t.template_from.is_empty()) || t.merge_policy == MergePolicy::Merge;
    if keep_fetched {
        data.extend(fetched.clone());
    }
    for (k, src) in &t.data {
        data.insert(k.clone(), SecretValue::new(run(k, src)?.into_bytes()));
    }
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    for tf in &t.template_from {
        if tf.config_map.is_some() || tf.secret.is_some() {
            return Err(SyncError::Unsupported(
                "templateFrom configMap/secret (use literal or data)".into(),
            ));
        }
        let Some(lit) = &tf.literal else { continue };
        let rendered = run("templateFrom.literal", lit)?;
        let map: BTreeMap<String, serde_yaml::Value> =
            serde_yaml::from_str(&rendered).map_err(|_| {
                SyncError::Invalid("templateFrom.literal did not render to a YAML map".into())
            })?;
        for (k, v) in map {
            let text = match v {
                serde_yaml::Value::String(s) => s,
                other => serde_yaml::to_string(&other)
                    .unwrap_or_default()
                    .trim_end()
                    .to_owned(),
            };
            match tf
                .target
                .as_deref()
                .unwrap_or("Data")
                .to_ascii_lowercase()
                .as_str()
            {
                "annotations" => {
                    annotations.insert(k, text);
                }
                "labels" => {
                    labels.insert(k, text);
                }
                _ => {
                    data.insert(k, SecretValue::new(text.into_bytes()));
                }
            }
        }
    }
    for (k, src) in &t.metadata.labels {
        labels.insert(k.clone(), run(k, src)?);
    }
    for (k, src) in &t.metadata.annotations {
        annotations.insert(k.clone(), run(k, src)?);
    }
    Ok(Desired {
        data,
        type_: t.type_.clone(),
        labels: Some(labels),
        annotations: Some(annotations),
    })
}
