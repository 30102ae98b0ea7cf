//! The API side: finding the server as kubectl does, fetching the Secrets and ConfigMaps a
//! container names, and watching Secrets.
//!
//! The kubeconfig is `--kubeconfig`, else `$KUBECONFIG` (a list of files, merged), else
//! `~/.kube/config`; `--context` picks the context. Each Secret is watched on its own with
//! `fieldSelector=metadata.name=<name>` (as the kubelet watches the objects of its pods):
//! list to learn the current state and revision, then watch from it; a watch that ends is
//! resumed from the last revision seen, and any error (server unreachable, 410 Gone) goes
//! back to a fresh list after a backoff of 0.5 s doubling to 30 s. The last good state is
//! kept meanwhile.

use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use tokio::sync::mpsc;

use crate::data::{ConfigMapData, References, SecretData, SecretValue, Sources};

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
}

/// How to find the API server, as kubectl's flags say.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
}

/// A new state of a watched Secret: its data, or `None` when it was deleted.
#[derive(Debug)]
pub struct SecretUpdate {
    /// The Secret's name.
    pub name: String,
    /// Its data now.
    pub data: Option<SecretData>,
}

/// A connection to an API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    default_namespace: String,
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
        let client = kube::Client::try_from(config).map_err(ClientError::Client)?;
        Ok(Self {
            client,
            default_namespace,
        })
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
        updates: mpsc::Sender<SecretUpdate>,
    ) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let selector = format!("metadata.name={name}");
        let mut backoff = Duration::from_millis(500);
        loop {
            match watch_once(&api, &selector, &name, &updates, &mut backoff).await {
                Ok(()) => return, // the receiver is gone
                Err(err) => {
                    tracing::warn!(
                        secret = %format!("{namespace}/{name}"),
                        error = %err,
                        retry_in = ?backoff,
                        "watching the secret failed; keeping the last good files"
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
}

/// List, then watch from the list's revision until an error. `Ok` only when the receiver is
/// gone.
async fn watch_once(
    api: &Api<Secret>,
    selector: &str,
    name: &str,
    updates: &mpsc::Sender<SecretUpdate>,
    backoff: &mut Duration,
) -> Result<(), kube::Error> {
    let list = api.list(&ListParams::default().fields(selector)).await?;
    let mut revision = list.metadata.resource_version.clone().unwrap_or_default();
    let data = list
        .items
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .map(secret_data);
    if updates
        .send(SecretUpdate {
            name: name.to_owned(),
            data,
        })
        .await
        .is_err()
    {
        return Ok(());
    }
    loop {
        let params = WatchParams::default().fields(selector).timeout(290);
        let mut stream = api.watch(&params, &revision).await?.boxed();
        while let Some(event) = stream.try_next().await? {
            *backoff = Duration::from_millis(500);
            let (rv, data) = match event {
                WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                    (s.metadata.resource_version.clone(), Some(secret_data(s)))
                }
                WatchEvent::Deleted(s) => (s.metadata.resource_version.clone(), None),
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
            let update = SecretUpdate {
                name: name.to_owned(),
                data,
            };
            if updates.send(update).await.is_err() {
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
    map.data.unwrap_or_default()
}
