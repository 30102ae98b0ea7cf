//! The controller's layers with canned streams and an in-memory API: which events trigger a
//! sync, which stores an ExternalSecret uses, and failure counting with backoff.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;
use crate::provider::{CredentialSource, ProviderError, SecretValue};
use crate::sync::StoreLookup;
use crate::types::{SecretKeySelector, SecretStore, ServiceAccountSelector};

fn secret(data: &[(&str, &str)], hash: Option<&str>) -> Secret {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some("friends".into()),
            namespace: Some("app".into()),
            annotations: hash
                .map(|h| BTreeMap::from([(ANNOTATION_DATA_HASH.to_owned(), h.to_owned())])),
            owner_references: Some(vec![OwnerReference {
                api_version: "external-secrets.io/v1beta1".into(),
                kind: "ExternalSecret".into(),
                name: "example".into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    }
}

#[tokio::test]
async fn only_deleted_or_hand_edited_secrets_trigger_a_sync() {
    let data = [("password", "two")];
    let good_hash = data_hash(
        &data
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    let ours = secret(&data, Some(&good_hash));
    let edited_by_hand = secret(&[("password", "typed by someone")], Some(&good_hash));
    let events = futures::stream::iter(vec![
        Ok(watcher::Event::Init),
        Ok(watcher::Event::InitApply(ours.clone())),
        Ok(watcher::Event::InitDone),
        Ok(watcher::Event::Apply(ours.clone())),
        Ok(watcher::Event::Apply(edited_by_hand)),
        Ok(watcher::Event::Delete(ours)),
    ]);
    let out: Vec<_> = secret_triggers(events).collect().await;
    let data: Vec<String> = out
        .into_iter()
        .map(|r| {
            let s = r.expect("no errors");
            String::from_utf8(s.data.expect("data")["password"].0.clone()).expect("utf8")
        })
        .collect();
    assert_eq!(data, ["typed by someone", "two"]);
}

#[test]
fn a_secret_maps_to_its_controlling_external_secret() {
    let s = secret(&[], None);
    let refs = owners(&s, &resource("ExternalSecret"));
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "example");
    assert_eq!(refs[0].namespace.as_deref(), Some("app"));
    let mut foreign = s;
    foreign.metadata.owner_references.as_mut().expect("refs")[0].kind = "Deployment".into();
    assert!(owners(&foreign, &resource("ExternalSecret")).is_empty());
}

fn dynamic(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).expect("object")
}

#[test]
fn status_writes_do_not_trigger_but_spec_labels_and_annotations_do() {
    let base = serde_json::json!({
        "apiVersion": API_VERSION, "kind": "ExternalSecret",
        "metadata": {"name": "e", "namespace": "app", "resourceVersion": "1"},
        "spec": {"refreshInterval": "1h"}
    });
    let h = sync_relevant(&dynamic(base.clone()));
    let mut status = base.clone();
    status["status"] = serde_json::json!({"refreshTime": "2026-01-01T00:00:00Z"});
    status["metadata"]["resourceVersion"] = "2".into();
    assert_eq!(sync_relevant(&dynamic(status)), h);
    let mut spec = base.clone();
    spec["spec"]["refreshInterval"] = "1m".into();
    assert_ne!(sync_relevant(&dynamic(spec)), h);
    let mut forced = base;
    forced["metadata"]["annotations"] = serde_json::json!({"external-secrets.io/force-sync": "1"});
    assert_ne!(sync_relevant(&dynamic(forced)), h);
}

#[test]
fn store_references_include_source_refs() {
    let es = serde_json::json!({"spec": {
        "secretStoreRef": {"name": "aws"},
        "data": [{"secretKey": "k", "remoteRef": {"key": "x"},
                  "sourceRef": {"storeRef": {"name": "global", "kind": "ClusterSecretStore"}}}],
        "dataFrom": [{"extract": {"key": "y"}, "sourceRef": {"storeRef": {"name": "vault"}}}]
    }});
    let refs: Vec<_> = store_refs(&es).into_iter().collect();
    assert_eq!(
        refs,
        [
            (StoreKind::SecretStore, "aws".to_owned()),
            (StoreKind::SecretStore, "vault".to_owned()),
            (StoreKind::ClusterSecretStore, "global".to_owned()),
        ]
    );
}

/// The API in memory: no stores, so every sync fails with "store not found".
#[derive(Default)]
struct Empty {
    statuses: Mutex<Vec<ExternalSecretStatus>>,
}

#[async_trait]
impl KubeAccess for Empty {
    async fn get_secret(&self, _: &str, _: &str) -> Result<Option<Secret>, String> {
        Ok(None)
    }
    async fn create_secret(&self, _: &Secret) -> Result<(), String> {
        Err("unexpected write".into())
    }
    async fn update_secret(&self, _: &Secret) -> Result<(), String> {
        Err("unexpected write".into())
    }
    async fn delete_secret(&self, _: &str, _: &str) -> Result<(), String> {
        Err("unexpected write".into())
    }
    async fn update_status(
        &self,
        _: &ExternalSecret,
        status: &ExternalSecretStatus,
    ) -> Result<(), String> {
        self.statuses
            .lock()
            .expect("BUG: poisoned")
            .push(status.clone());
        Ok(())
    }
}

impl StoreLookup for Empty {
    fn store(&self, _: StoreKind, _: &str, _: &str) -> Option<SecretStore> {
        None
    }
}

#[async_trait]
impl CredentialSource for Empty {
    async fn secret_key(
        &self,
        _: &str,
        _: &SecretKeySelector,
    ) -> Result<SecretValue, ProviderError> {
        Err(ProviderError::Credentials("none".into()))
    }
    async fn service_account_token(
        &self,
        _: &str,
        _: &ServiceAccountSelector,
    ) -> Result<SecretValue, ProviderError> {
        Err(ProviderError::Credentials("none".into()))
    }
}

#[tokio::test]
async fn consecutive_failures_back_off_and_success_would_reset() {
    let api = Arc::new(Empty::default());
    let sync = SyncContext::new(api.clone(), api.clone(), Arc::new(Metrics::new()));
    let es: ExternalSecret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "e", "namespace": "app", "uid": "u"},
        "spec": {"secretStoreRef": {"name": "missing"}, "refreshInterval": "1h",
                 "data": [{"secretKey": "k", "remoteRef": {"key": "x"}}]}
    }))
    .expect("valid");
    let failures = Mutex::new(HashMap::new());
    let mut waits = Vec::new();
    for _ in 0..3 {
        waits.push(reconcile_parsed(&es, &sync, api.as_ref(), &failures).await);
    }
    assert_eq!(
        waits,
        [5, 10, 20].map(|s| Action::requeue(Duration::from_secs(s)))
    );
    assert_eq!(
        failures.lock().expect("BUG: poisoned")[&("app".to_owned(), "e".to_owned())],
        3
    );
    let statuses = api.statuses.lock().expect("BUG: poisoned");
    let ready = &statuses[0].conditions[0];
    assert_eq!(
        (ready.type_.as_str(), ready.status.as_str()),
        ("Ready", "False")
    );
    assert!(
        ready
            .message
            .as_deref()
            .is_some_and(|m| m.contains("not found")),
        "{ready:?}"
    );
    assert_eq!(sync.metrics.totals().1, 3, "three sync errors counted");
}
