//! [`StoreLookup`] over the controller's reflector stores: SecretStores, ClusterSecretStores
//! and Namespaces (for the labels ClusterSecretStore `namespaceSelector` conditions match).
//!
//! The stores hold `DynamicObject`s as the API answered them through `external-secrets.io/v1`;
//! a lookup converts one object to the typed [`SecretStore`] (a few microseconds, and only
//! when a sync needs a store whose provider is not built yet or changed).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::sync::StoreLookup;
use crate::types::{SecretStore, StoreKind};

/// The reflector stores a sync reads. Cheap to clone (each store is shared).
#[derive(Clone)]
pub struct ReflectedStores {
    /// SecretStores (namespaced).
    pub secret_stores: Store<DynamicObject>,
    /// ClusterSecretStores; `None` when the controller watches one namespace only.
    pub cluster_secret_stores: Option<Store<DynamicObject>>,
    /// Namespaces; `None` when the controller watches one namespace only.
    pub namespaces: Option<Store<Namespace>>,
}

impl std::fmt::Debug for ReflectedStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReflectedStores")
            .field("secret_stores", &self.secret_stores.len())
            .field(
                "cluster_secret_stores",
                &self.cluster_secret_stores.as_ref().map(Store::len),
            )
            .finish_non_exhaustive()
    }
}

impl ReflectedStores {
    /// Waits (at most `limit`) until every store has its first full list, so the first
    /// syncs do not report a store as missing only because its list had not arrived.
    pub async fn wait_until_ready(&self, limit: std::time::Duration) {
        let all = async {
            let _ = self.secret_stores.wait_until_ready().await;
            if let Some(s) = &self.cluster_secret_stores {
                let _ = s.wait_until_ready().await;
            }
            if let Some(n) = &self.namespaces {
                let _ = n.wait_until_ready().await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }
}

/// Reads a typed kind from a dynamic object (the JSON the API answered).
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    obj: &DynamicObject,
    api_version: &str,
    kind: &str,
) -> Result<T, serde_json::Error> {
    let mut value = serde_json::to_value(obj)?;
    value["apiVersion"] = api_version.into();
    value["kind"] = kind.into();
    serde_json::from_value(value)
}

impl StoreLookup for ReflectedStores {
    fn store(&self, kind: StoreKind, namespace: &str, name: &str) -> Option<SecretStore> {
        let (store, kind_name, key) = match kind {
            StoreKind::SecretStore => (
                &self.secret_stores,
                "SecretStore",
                ObjectRef::new_with(name, super::resource("SecretStore")).within(namespace),
            ),
            StoreKind::ClusterSecretStore => (
                self.cluster_secret_stores.as_ref()?,
                "ClusterSecretStore",
                ObjectRef::new_with(name, super::resource("ClusterSecretStore")),
            ),
        };
        let obj = store.get(&key)?;
        match typed(&obj, &format!("{}/v1", crate::types::GROUP), kind_name) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(kind = kind_name, namespace, name, error = %e, "store does not parse; treated as missing");
                None
            }
        }
    }

    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let ns = self
            .namespaces
            .as_ref()?
            .get(&ObjectRef::<Namespace>::new(namespace))?;
        Some(ns.metadata.labels.clone().unwrap_or_default())
    }
}
