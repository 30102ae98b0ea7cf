//! In-memory Kubernetes side for the sync tests: Secrets, stores and credentials in maps,
//! counting writes. The reconciler code under test is the real one (`sync_one`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use coffer_sync::provider::{CredentialSource, ProviderError, SecretValue};
use coffer_sync::sync::{KubeAccess, StoreLookup};
use coffer_sync::types::*;
use k8s_openapi::api::core::v1::Secret;

#[derive(Default)]
pub struct Memory {
    pub secrets: Mutex<BTreeMap<(String, String), Secret>>,
    pub statuses: Mutex<BTreeMap<(String, String), ExternalSecretStatus>>,
    pub stores: Mutex<BTreeMap<(String, String), SecretStore>>,
    pub creds: Mutex<BTreeMap<(String, String, String), String>>,
    pub sa_tokens: Mutex<BTreeMap<(String, String), String>>,
    pub writes: AtomicU64,
    rv: AtomicU64,
}

impl Memory {
    pub fn put_cred(&self, ns: &str, name: &str, key: &str, value: &str) {
        self.creds
            .lock()
            .unwrap()
            .insert((ns.into(), name.into(), key.into()), value.into());
    }
    pub fn put_store(&self, ns: &str, store: SecretStore) {
        self.stores
            .lock()
            .unwrap()
            .insert((ns.into(), store.name().to_owned()), store);
    }
    pub fn secret_value(&self, ns: &str, name: &str, key: &str) -> Option<Vec<u8>> {
        let s = self.secrets.lock().unwrap();
        s.get(&(ns.into(), name.into()))?
            .data
            .as_ref()?
            .get(key)
            .map(|b| b.0.clone())
    }
    pub fn ready(&self, ns: &str, name: &str) -> Option<Condition> {
        let s = self.statuses.lock().unwrap();
        s.get(&(ns.into(), name.into()))?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned()
    }
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KubeAccess for Memory {
    async fn get_secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String> {
        Ok(self
            .secrets
            .lock()
            .unwrap()
            .get(&(ns.into(), name.into()))
            .cloned())
    }
    async fn create_secret(&self, s: &Secret) -> Result<(), String> {
        let key = (
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default(),
        );
        let mut map = self.secrets.lock().unwrap();
        if map.contains_key(&key) {
            return Err("AlreadyExists".into());
        }
        let mut s = s.clone();
        s.metadata.resource_version = Some(self.rv.fetch_add(1, Ordering::SeqCst).to_string());
        map.insert(key, s);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn update_secret(&self, s: &Secret) -> Result<(), String> {
        let key = (
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default(),
        );
        let mut map = self.secrets.lock().unwrap();
        let cur = map.get(&key).ok_or("NotFound")?;
        if cur.metadata.resource_version != s.metadata.resource_version {
            return Err("Conflict".into());
        }
        let mut s = s.clone();
        s.metadata.resource_version = Some(self.rv.fetch_add(1, Ordering::SeqCst).to_string());
        map.insert(key, s);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn delete_secret(&self, ns: &str, name: &str) -> Result<(), String> {
        self.secrets
            .lock()
            .unwrap()
            .remove(&(ns.into(), name.into()));
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn update_status(
        &self,
        es: &ExternalSecret,
        st: &ExternalSecretStatus,
    ) -> Result<(), String> {
        self.statuses
            .lock()
            .unwrap()
            .insert((es.namespace().into(), es.name().into()), st.clone());
        Ok(())
    }
}

impl StoreLookup for Memory {
    fn store(&self, _kind: StoreKind, ns: &str, name: &str) -> Option<SecretStore> {
        self.stores
            .lock()
            .unwrap()
            .get(&(ns.into(), name.into()))
            .cloned()
    }
}

#[async_trait]
impl CredentialSource for Memory {
    async fn secret_key(
        &self,
        ns: &str,
        sel: &SecretKeySelector,
    ) -> Result<SecretValue, ProviderError> {
        self.creds
            .lock()
            .unwrap()
            .get(&(ns.into(), sel.name.clone(), sel.key.clone()))
            .map(|v| SecretValue::from(v.as_str()))
            .ok_or_else(|| {
                ProviderError::Credentials(format!(
                    "Secret {ns}/{} has no key {:?}",
                    sel.name, sel.key
                ))
            })
    }
    async fn service_account_token(
        &self,
        ns: &str,
        sa: &ServiceAccountSelector,
    ) -> Result<SecretValue, ProviderError> {
        self.sa_tokens
            .lock()
            .unwrap()
            .get(&(ns.into(), sa.name.clone()))
            .map(|v| SecretValue::from(v.as_str()))
            .ok_or_else(|| {
                ProviderError::Credentials(format!("no ServiceAccount {ns}/{}", sa.name))
            })
    }
}

pub fn es(ns: &str, name: &str, store: &str, spec: serde_json::Value) -> ExternalSecret {
    let mut v = serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "generation": 1},
        "spec": {"secretStoreRef": {"name": store, "kind": "SecretStore"}, "refreshInterval": "1h"}
    });
    if let Some(o) = spec.as_object() {
        for (k, x) in o {
            v["spec"][k] = x.clone();
        }
    }
    serde_json::from_value(v).expect("valid ExternalSecret")
}

pub fn store(name: &str, provider: serde_json::Value) -> SecretStore {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": name, "namespace": "app", "resourceVersion": "1"},
        "spec": {"provider": provider}
    }))
    .expect("valid store")
}
