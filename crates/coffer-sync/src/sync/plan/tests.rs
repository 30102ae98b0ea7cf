//! Every branch of the pure reconciler.

use super::*;
use crate::provider::{ProviderError, SecretValue};
use crate::types::ExternalSecret;

fn es(extra: serde_json::Value) -> ExternalSecret {
    let mut v = serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "app", "uid": "uid-1", "generation": 3},
        "spec": {"secretStoreRef": {"name": "s"}, "target": {}}
    });
    if let (Some(t), Some(e)) = (v.pointer_mut("/spec/target"), extra.as_object()) {
        for (k, x) in e {
            t[k] = x.clone();
        }
    }
    serde_json::from_value(v).expect("es")
}

fn desired(pairs: &[(&str, &str)]) -> Desired {
    Desired {
        data: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretValue::from(*v)))
            .collect(),
        ..Desired::default()
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_123)
}

fn created(p: &Plan) -> Secret {
    match &p.write {
        SecretWrite::Create(s) | SecretWrite::Update(s) => (**s).clone(),
        other => panic!("expected a write, got {other:?}"),
    }
}

#[test]
fn creates_owned_secret_with_esos_metadata() {
    let p = plan(
        &es(serde_json::json!({})),
        Ok(desired(&[("password", "pw")])),
        None,
        now(),
        0,
    );
    assert!(p.ok);
    let s = created(&p);
    assert!(matches!(p.write, SecretWrite::Create(_)));
    assert_eq!(s.metadata.name.as_deref(), Some("db"));
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let labels = s.metadata.labels.clone().expect("labels");
    assert_eq!(labels[LABEL_MANAGED], "true");
    assert_eq!(labels[LABEL_CREATED_BY], "db");
    let owner = &s.metadata.owner_references.clone().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ExternalSecret", "uid-1", Some(true))
    );
    let ann = s.metadata.annotations.clone().expect("annotations");
    assert_eq!(ann[ANNOTATION_DATA_HASH].len(), 56, "sha3-224 hex");
    let ready = &p.status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("True", Some("SecretSynced"))
    );
    assert_eq!(ready.message.as_deref(), Some("secret synced"));
    assert_eq!(p.status.synced_resource_version.as_deref(), Some("3"));
    assert!(p.status.refresh_time.is_some());
    // Aligned to the hour: 1_700_000_123 is 923 s into its hour.
    assert_eq!(p.requeue_after, Some(Duration::from_secs(3600 - 923)));
}

#[test]
fn data_hash_matches_esos_go_formatting() {
    // Go: fmt.Sprintf("%+v", map[string][]byte{"a": []byte("hi")}) == "map[a:[104 105]]".
    let mut m = BTreeMap::new();
    m.insert("a".to_owned(), ByteString(b"hi".to_vec()));
    let want: String = sha3::Sha3_224::digest(b"map[a:[104 105]]")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(data_hash(&m), want);
    assert_eq!(data_hash(&BTreeMap::new()).len(), 56);
}

#[test]
fn unchanged_data_is_not_rewritten() {
    let e = es(serde_json::json!({}));
    let first = created(&plan(&e, Ok(desired(&[("k", "v")])), None, now(), 0));
    let again = plan(&e, Ok(desired(&[("k", "v")])), Some(&first), now(), 0);
    assert_eq!(again.write, SecretWrite::None, "same data: no write");
    assert!(again.ok);
    let changed = plan(&e, Ok(desired(&[("k", "v2")])), Some(&first), now(), 0);
    let s = created(&changed);
    assert!(matches!(changed.write, SecretWrite::Update(_)));
    assert_eq!(s.data.expect("data")["k"].0, b"v2");
}

#[test]
fn provider_failure_keeps_the_secret_and_backs_off() {
    let e = es(serde_json::json!({}));
    let err = SyncError::Provider(ProviderError::Unavailable {
        provider: "vault",
        detail: "connection refused".into(),
    });
    let p = plan(&e, Err(err.clone()), None, now(), 0);
    assert_eq!(p.write, SecretWrite::None);
    assert!(!p.ok);
    let c = &p.status.conditions[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("SecretSyncedError"))
    );
    assert!(c.message.as_deref().is_some_and(|m| {
        m.starts_with("could not get secret data from provider: vault: unavailable")
    }));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(5)));
    assert_eq!(
        plan(&e, Err(err.clone()), None, now(), 3).requeue_after,
        Some(Duration::from_secs(40))
    );
    assert_eq!(
        plan(&e, Err(err), None, now(), 30).requeue_after,
        Some(MAX_BACKOFF)
    );
}

#[test]
fn deletion_policy_when_remote_is_gone() {
    let gone = || {
        Err(SyncError::Provider(ProviderError::NotFound {
            provider: "aws",
            key: "k".into(),
        }))
    };
    let retain = es(serde_json::json!({}));
    let secret = created(&plan(&retain, Ok(desired(&[("k", "v")])), None, now(), 0));
    let p = plan(&retain, gone(), Some(&secret), now(), 0);
    assert_eq!(p.write, SecretWrite::None);
    assert_eq!(
        p.status.conditions[0].message.as_deref(),
        Some(message::SYNCED_RETAIN)
    );
    let delete = es(serde_json::json!({"deletionPolicy": "Delete"}));
    let p = plan(&delete, gone(), Some(&secret), now(), 0);
    assert_eq!(p.write, SecretWrite::Delete);
    assert_eq!(
        p.status.conditions[0].reason.as_deref(),
        Some("SecretDeleted")
    );
    // Not found with no Secret yet is an error, not a deletion.
    assert!(!plan(&delete, gone(), None, now(), 0).ok);
}

#[test]
fn creation_policies() {
    let merge = es(serde_json::json!({"creationPolicy": "Merge"}));
    let p = plan(&merge, Ok(desired(&[("k", "v")])), None, now(), 0);
    assert_eq!(p.write, SecretWrite::None);
    assert_eq!(
        p.status.conditions[0].reason.as_deref(),
        Some("SecretMissing")
    );
    let mut existing = Secret::default();
    existing.metadata.name = Some("db".into());
    existing.data = Some(
        [("other".to_owned(), ByteString(b"x".to_vec()))]
            .into_iter()
            .collect(),
    );
    let s = created(&plan(
        &merge,
        Ok(desired(&[("k", "v")])),
        Some(&existing),
        now(),
        0,
    ));
    let data = s.data.expect("data");
    assert_eq!(
        (data["k"].0.as_slice(), data["other"].0.as_slice()),
        (&b"v"[..], &b"x"[..])
    );
    assert!(
        s.metadata.owner_references.is_none(),
        "Merge does not take ownership"
    );
    let orphan = es(serde_json::json!({"creationPolicy": "Orphan"}));
    assert!(
        created(&plan(&orphan, Ok(desired(&[("k", "v")])), None, now(), 0))
            .metadata
            .owner_references
            .is_none()
    );
    let none = es(serde_json::json!({"creationPolicy": "None"}));
    assert_eq!(
        plan(&none, Ok(desired(&[("k", "v")])), None, now(), 0).write,
        SecretWrite::None
    );
    // Owned by another ExternalSecret: refused, nothing written.
    let mut other = created(&plan(
        &es(serde_json::json!({})),
        Ok(desired(&[("k", "v")])),
        None,
        now(),
        0,
    ));
    if let Some(refs) = other.metadata.owner_references.as_mut() {
        refs[0].uid = "someone-else".into();
    }
    let p = plan(
        &es(serde_json::json!({})),
        Ok(desired(&[("k", "v2")])),
        Some(&other),
        now(),
        0,
    );
    assert_eq!(p.write, SecretWrite::None);
    assert!(
        p.status.conditions[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("owned by another"))
    );
}

#[test]
fn invalid_keys_and_refresh_policies() {
    let p = plan(
        &es(serde_json::json!({})),
        Ok(desired(&[("a/b", "v")])),
        None,
        now(),
        0,
    );
    assert!(!p.ok && p.write == SecretWrite::None);
    let mut once = es(serde_json::json!({}));
    once.spec.refresh_policy = RefreshPolicy::CreatedOnce;
    assert!(should_refresh(&once, false));
    once.status = Some(ExternalSecretStatus {
        synced_resource_version: Some("3".into()),
        ..Default::default()
    });
    assert!(!should_refresh(&once, true));
    let mut on_change = once.clone();
    on_change.spec.refresh_policy = RefreshPolicy::OnChange;
    assert!(!should_refresh(&on_change, true));
    on_change.metadata.generation = Some(4);
    assert!(should_refresh(&on_change, true));
    assert_eq!(
        plan(&on_change, Ok(desired(&[("k", "v")])), None, now(), 0).requeue_after,
        None
    );
}

#[test]
fn condition_messages_never_hold_values() {
    let e = es(serde_json::json!({}));
    let p = plan(&e, Ok(desired(&[("bad key", "hunter2")])), None, now(), 0);
    let text = format!("{:?}", p.status);
    assert!(!text.contains("hunter2"), "{text}");
}
