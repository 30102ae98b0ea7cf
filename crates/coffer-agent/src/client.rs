//! The API side: finding the server as kubectl does, fetching the Secrets and ConfigMaps a
//! container names, watching them, and requesting and refreshing ServiceAccount tokens.
//!
//! The kubeconfig is `--kubeconfig`, else `$KUBECONFIG` (a list of files, merged), else
//! `~/.kube/config`; `--context` picks the context. Each Secret and ConfigMap is watched on
//! its own with `fieldSelector=metadata.name=<name>` (as the kubelet watches the objects of
//! its pods):
//! list to learn the current state and revision, then watch from it; a watch that ends is
//! resumed from the last revision seen, and any error (server unreachable, 410 Gone) goes
//! back to a fresh list after a backoff of 0.5 s doubling to 30 s. The last good state is
//! kept meanwhile.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::data::{ConfigMapData, References, SecretData, SecretValue, Sources, TokenSpec};
use crate::service_account::refresh_delay;

/// Why the API could not be reached or answered with an error.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("loading the kubeconfig: {0}")]
    Kubeconfig(#[source] KubeconfigError),
    /// The client could not be built from the kubeconfig.
    #[error("building the client from the kubeconfig: {0}")]
    Client(#[source] kube::Error),
    /// A request failed.
    #[error("{what}: {source}")]
    Request {
        /// What was asked, like `get secret default/db-secret`.
        what: String,
        /// The client's error (server `Status` or transport).
        #[source]
        source: kube::Error,
    },
    /// TokenRequest answered without a token.
    #[error("the API server issued no token for serviceaccount {service_account}")]
    NoToken {
        /// `namespace/name`.
        service_account: String,
    },
}

/// How to find the API server, as kubectl's flags say.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
}

/// A new state of something the container reads from the API. `Debug` never shows values.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceUpdate {
    /// A watched Secret changed: its data, or `None` when it was deleted.
    Secret {
        /// The Secret's name.
        name: String,
        /// Its data now.
        data: Option<SecretData>,
    },
    /// A watched ConfigMap changed: its contents, or `None` when it was deleted.
    ConfigMap {
        /// The ConfigMap's name.
        name: String,
        /// Its contents now.
        data: Option<ConfigMapData>,
    },
    /// A ServiceAccount token was refreshed.
    Token {
        /// What kind of token.
        spec: TokenSpec,
        /// The new token.
        token: SecretValue,
    },
}

/// A token from TokenRequest and when to replace it.
#[derive(Debug)]
pub struct IssuedToken {
    /// The JWT (never printed).
    pub token: SecretValue,
    /// When to request the next one (the kubelet's rule: [`refresh_delay`]).
    pub refresh_at: tokio::time::Instant,
}

/// A connection to an API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    default_namespace: String,
    root_ca_pem: Option<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("default_namespace", &self.default_namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Loads the kubeconfig and builds a client (no request is made yet).
    pub async fn connect(options: &ClientOptions) -> Result<Self, ClientError> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &options.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(ClientError::Kubeconfig)?;
                kube::Config::from_custom_kubeconfig(file, &kube_options).await
            }
            None => kube::Config::from_kubeconfig(&kube_options).await,
        }
        .map_err(ClientError::Kubeconfig)?;
        let default_namespace = config.default_namespace.clone();
        let root_ca_pem = config.root_cert.as_ref().map(|certs| {
            certs
                .iter()
                .map(|der| pem("CERTIFICATE", der))
                .collect::<String>()
        });
        let client = kube::Client::try_from(config).map_err(ClientError::Client)?;
        Ok(Self {
            client,
            default_namespace,
            root_ca_pem,
        })
    }

    /// The kubeconfig's certificate authority (PEM), if it names one: the `ca.crt` of the
    /// ServiceAccount volume when the server has no `kube-root-ca.crt` ConfigMap.
    pub fn root_ca_pem(&self) -> Option<&str> {
        self.root_ca_pem.as_deref()
    }

    /// Requests a token of `spec` for ServiceAccount `namespace/name` (TokenRequest, not
    /// bound to an object). The token is moved out of the response without a copy; it is
    /// never logged.
    /// `max_age` caps the refresh delay (the kubelet's 24 h).
    pub async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        spec: &TokenSpec,
        max_age: Duration,
    ) -> Result<IssuedToken, ClientError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: spec.audience.iter().cloned().collect(),
                expiration_seconds: Some(spec.expiration_seconds),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let requested = tokio::time::Instant::now();
        let mut answer = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|source| ClientError::Request {
                what: format!("request a token for serviceaccount {namespace}/{name}"),
                source,
            })?;
        let Some(status) = answer.status.as_mut().filter(|s| !s.token.is_empty()) else {
            return Err(ClientError::NoToken {
                service_account: format!("{namespace}/{name}"),
            });
        };
        let token = SecretValue::new(std::mem::take(&mut status.token).into_bytes());
        // The lifetime the server granted (it may cap the request), by our clock.
        let seconds = status.expiration_timestamp.0.as_second()
            - k8s_openapi::jiff::Timestamp::now().as_second();
        let lifetime = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        Ok(IssuedToken {
            token,
            refresh_at: requested + refresh_delay(lifetime, max_age),
        })
    }

    /// The underlying kube client, for requests this type has no method for (`coffer secret`).
    pub fn kube_client(&self) -> &kube::Client {
        &self.client
    }

    /// Lists every object of one kind in all namespaces as JSON (for `coffer scan`'s live
    /// audit), or `None` when the server does not serve the kind (404). A Secret's `data` and
    /// `stringData` are dropped as soon as they arrive: an audit needs names, not values.
    pub async fn list_all(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
    ) -> Result<Option<Vec<serde_json::Value>>, ClientError> {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(source) => {
                return Err(ClientError::Request {
                    what: format!("list {plural}"),
                    source,
                });
            }
        };
        let mut out = Vec::with_capacity(list.items.len());
        for mut object in list.items {
            if kind == "Secret"
                && let Some(fields) = object.data.as_object_mut()
            {
                fields.remove("data");
                fields.remove("stringData");
            }
            let mut value = serde_json::to_value(&object).unwrap_or(serde_json::Value::Null);
            value["apiVersion"] = serde_json::Value::from(resource.api_version.clone());
            value["kind"] = serde_json::Value::from(kind);
            out.push(value);
        }
        Ok(Some(out))
    }

    /// The namespace of the kubeconfig's context (`default` if it names none).
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// Gets every object of `refs` in `namespace`; one that does not exist is left out.
    pub async fn fetch(&self, namespace: &str, refs: &References) -> Result<Sources, ClientError> {
        let mut sources = Sources::new();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        for name in &refs.secrets {
            let secret = secrets
                .get_opt(name)
                .await
                .map_err(|source| ClientError::Request {
                    what: format!("get secret {namespace}/{name}"),
                    source,
                })?;
            sources.set_secret(name, secret.map(secret_data));
        }
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        for name in &refs.config_maps {
            let map = maps
                .get_opt(name)
                .await
                .map_err(|source| ClientError::Request {
                    what: format!("get configmap {namespace}/{name}"),
                    source,
                })?;
            sources.set_config_map(name, map.map(config_map_data));
        }
        Ok(sources)
    }

    /// Watches Secret `namespace/name` until `updates` is closed, sending each new state.
    /// Errors are logged (without values) and retried with backoff; they never end the task.
    pub async fn watch_secret(
        self,
        namespace: String,
        name: String,
        updates: mpsc::Sender<SourceUpdate>,
    ) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        watch_object(api, "secret", namespace, name, updates, |name, s| {
            SourceUpdate::Secret {
                name: name.to_owned(),
                data: s.map(secret_data),
            }
        })
        .await;
    }

    /// Watches ConfigMap `namespace/name` as [`Cluster::watch_secret`] watches a Secret.
    pub async fn watch_config_map(
        self,
        namespace: String,
        name: String,
        updates: mpsc::Sender<SourceUpdate>,
    ) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
        watch_object(api, "configmap", namespace, name, updates, |name, m| {
            SourceUpdate::ConfigMap {
                name: name.to_owned(),
                data: m.map(config_map_data),
            }
        })
        .await;
    }

    /// Replaces the token of `spec` for ServiceAccount `namespace/name` whenever it is due
    /// (first at `first_refresh`), until `updates` is closed. A failed request is logged
    /// (never the token) and retried with backoff (0.5 s doubling to 30 s); the last token
    /// stays in place meanwhile.
    pub async fn refresh_token(
        self,
        namespace: String,
        name: String,
        spec: TokenSpec,
        first_refresh: tokio::time::Instant,
        max_age: Duration,
        updates: mpsc::Sender<SourceUpdate>,
    ) {
        let mut due = first_refresh;
        let mut backoff = Duration::from_millis(500);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = updates.closed() => return,
            }
            match self.request_token(&namespace, &name, &spec, max_age).await {
                Ok(issued) => {
                    backoff = Duration::from_millis(500);
                    due = issued.refresh_at;
                    tracing::debug!(serviceaccount = %format!("{namespace}/{name}"), "token refreshed");
                    let update = SourceUpdate::Token {
                        spec: spec.clone(),
                        token: issued.token,
                    };
                    if updates.send(update).await.is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        retry_in = ?backoff,
                        "refreshing a serviceaccount token failed; keeping the current one"
                    );
                    due = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Watches one object by name until `updates` is closed, sending each new state; errors are
/// logged and retried with backoff.
async fn watch_object<K>(
    api: Api<K>,
    kind: &'static str,
    namespace: String,
    name: String,
    updates: mpsc::Sender<SourceUpdate>,
    to_update: fn(&str, Option<K>) -> SourceUpdate,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let selector = format!("metadata.name={name}");
    let mut backoff = Duration::from_millis(500);
    loop {
        match watch_once(&api, &selector, &name, &updates, &mut backoff, to_update).await {
            Ok(()) => return, // the receiver is gone
            Err(err) => {
                tracing::warn!(
                    object = %format!("{kind} {namespace}/{name}"),
                    error = %err,
                    retry_in = ?backoff,
                    "watching failed; keeping the last good files"
                );
            }
        }
        if updates.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// List, then watch from the list's revision until an error. `Ok` only when the receiver is
/// gone.
async fn watch_once<K>(
    api: &Api<K>,
    selector: &str,
    name: &str,
    updates: &mpsc::Sender<SourceUpdate>,
    backoff: &mut Duration,
    to_update: fn(&str, Option<K>) -> SourceUpdate,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let list = api.list(&ListParams::default().fields(selector)).await?;
    let mut revision = list.metadata.resource_version.clone().unwrap_or_default();
    let current = list
        .items
        .into_iter()
        .find(|o| o.meta().name.as_deref() == Some(name));
    if updates.send(to_update(name, current)).await.is_err() {
        return Ok(());
    }
    loop {
        let params = WatchParams::default().fields(selector).timeout(290);
        let mut stream = api.watch(&params, &revision).await?.boxed();
        while let Some(event) = stream.try_next().await? {
            *backoff = Duration::from_millis(500);
            let (rv, object) = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    (o.meta().resource_version.clone(), Some(o))
                }
                WatchEvent::Deleted(o) => (o.meta().resource_version.clone(), None),
                WatchEvent::Bookmark(b) => {
                    revision = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(status) => {
                    return Err(kube::Error::Api(status));
                }
            };
            if let Some(rv) = rv {
                revision = rv;
            }
            if updates.send(to_update(name, object)).await.is_err() {
                return Ok(());
            }
        }
    }
}

fn secret_data(secret: Secret) -> SecretData {
    let mut data = SecretData::new();
    for (key, value) in secret.data.into_iter().flatten() {
        data.insert(key, SecretValue::new(value.0));
    }
    data
}

fn config_map_data(map: ConfigMap) -> ConfigMapData {
    ConfigMapData {
        data: map.data.unwrap_or_default(),
        binary_data: map
            .binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
    }
}

/// PEM text of one DER block.
fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
