//! Codec unit tests: framing errors, JSON, and round trips of every kind.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, LocalObjectReference, Namespace, NamespaceSpec, NamespaceStatus, ObjectReference,
    Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        uid: Some("0e5c0a8e-0000-4000-8000-000000000001".into()),
        creation_timestamp: Some(Time(
            Timestamp::from_second(1_700_000_000).expect("in range"),
        )),
        labels: Some(BTreeMap::from([("app".into(), "db".into())])),
        ..ObjectMeta::default()
    }
}

#[test]
fn framing_errors_use_upstream_text() {
    let e = |b: &[u8]| decode_from_storage::<Secret>(b).unwrap_err().to_string();
    assert_eq!(e(b""), "empty data");
    assert_eq!(e(b"k8s\0"), "empty body");
    assert_eq!(
        e(b"k8s\x01abc"),
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );
    // An Unknown with no typeMeta.
    assert_eq!(
        e(b"k8s\0\x12\x00"),
        "object has no kind or apiVersion in its typeMeta"
    );
}

#[test]
fn secret_round_trip_and_field_order() {
    let s = Secret {
        metadata: meta("db"),
        data: Some(BTreeMap::from([
            ("password".into(), ByteString(b"hunter2".to_vec())),
            ("b".into(), ByteString(vec![0, 255])),
        ])),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    let bytes = encode_for_storage(&s);
    assert!(bytes.starts_with(b"k8s\0\x0a\x0c\x0a\x02v1\x12\x06Secret\x12"));
    assert!(
        bytes.ends_with(b"\x1a\x00\x22\x00"),
        "contentEncoding and contentType written empty"
    );
    let back: Secret = decode_from_storage(&bytes).expect("decodes");
    assert_eq!(back, s);
    // Secret fields come out in number order even though k8s-pb declares immutable (5) second:
    // ... data (2) ... type (3) then immutable (5) = `28 01` at the very end of raw.
    let raw_end = bytes.len() - 4;
    assert_eq!(&bytes[raw_end - 10..raw_end], b"\x1a\x06Opaque\x28\x01");
}

#[test]
fn empty_object_writes_go_defaults() {
    let bytes = encode_for_storage(&Secret::default());
    // metadata: name, generateName, namespace, selfLink, uid, resourceVersion all "",
    // generation 0, creationTimestamp empty; then type "".
    let raw = [
        0x0a, 0x10, 0x0a, 0, 0x12, 0, 0x1a, 0, 0x22, 0, 0x2a, 0, 0x32, 0, 0x38, 0, 0x42, 0, 0x1a, 0,
    ];
    let mut expected = b"k8s\0\x0a\x0c\x0a\x02v1\x12\x06Secret\x12".to_vec();
    expected.push(raw.len() as u8);
    expected.extend_from_slice(&raw);
    expected.extend_from_slice(b"\x1a\x00\x22\x00");
    assert_eq!(bytes, expected);
    assert_eq!(
        decode_from_storage::<Secret>(&bytes).expect("decodes"),
        Secret::default()
    );
}

#[test]
fn other_kinds_round_trip() {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            finalizers: Some(vec!["x/y".into()]),
            ..meta("cfg")
        },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        binary_data: Some(BTreeMap::from([("b".into(), ByteString(vec![1, 2]))])),
        immutable: None,
    };
    assert_eq!(
        decode_from_storage::<ConfigMap>(&encode_for_storage(&cm)).expect("cm"),
        cm
    );
    let ns = Namespace {
        metadata: ObjectMeta {
            namespace: None,
            ..meta("team-a")
        },
        spec: Some(NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        }),
        status: Some(NamespaceStatus {
            phase: Some("Active".into()),
            conditions: None,
        }),
    };
    assert_eq!(
        decode_from_storage::<Namespace>(&encode_for_storage(&ns)).expect("ns"),
        ns
    );
    let sa = ServiceAccount {
        metadata: meta("builder"),
        secrets: Some(vec![ObjectReference {
            name: Some("tok".into()),
            ..ObjectReference::default()
        }]),
        image_pull_secrets: Some(vec![LocalObjectReference { name: "reg".into() }]),
        automount_service_account_token: Some(false),
    };
    assert_eq!(
        decode_from_storage::<ServiceAccount>(&encode_for_storage(&sa)).expect("sa"),
        sa
    );
}

#[test]
fn json_storage_is_read_too() {
    let json = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"j","namespace":"default"},"data":{"k":"dmFsdWU="},"type":"Opaque"}"#;
    let s: Secret = decode_from_storage(json).expect("json");
    assert_eq!(s.data.expect("data")["k"].0, b"value");
    let err = decode_from_storage::<Secret>(
        br#"{"apiVersion":"v1","kind":"Secret","data":{"k":"not base64 hunter2"}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("invalid JSON object at line 1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err =
        decode_from_storage::<Secret>(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#).unwrap_err();
    assert!(matches!(err, CodecError::WrongKind { .. }));
}

#[test]
fn prepare_clears_resource_version_and_self_link() {
    let mut m = ObjectMeta {
        resource_version: Some("42".into()),
        self_link: Some("/api/v1/namespaces/default/secrets/db".into()),
        ..meta("db")
    };
    prepare_for_storage(&mut m);
    assert_eq!((m.resource_version, m.self_link), (None, None));
}

#[test]
fn rbac_kinds_round_trip() {
    use k8s_openapi::api::rbac::v1::{
        AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
        Subject,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    let rule = PolicyRule {
        verbs: vec!["get".into(), "list".into()],
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["secrets".into()]),
        resource_names: Some(vec!["db".into()]),
        non_resource_urls: None,
    };
    let role = Role {
        metadata: meta("secret-reader"),
        rules: Some(vec![rule.clone()]),
    };
    let bytes = encode_for_storage(&role);
    assert!(bytes.starts_with(b"k8s\0"));
    assert!(
        bytes
            .windows(b"rbac.authorization.k8s.io/v1".len())
            .any(|w| w == b"rbac.authorization.k8s.io/v1")
    );
    assert_eq!(decode_from_storage::<Role>(&bytes).unwrap(), role);
    assert!(decode_from_storage::<ClusterRole>(&bytes).is_err());

    let mut cluster_meta = meta("agg");
    cluster_meta.namespace = None;
    let cluster_role = ClusterRole {
        metadata: cluster_meta.clone(),
        rules: Some(vec![PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/healthz".into()]),
            ..PolicyRule::default()
        }]),
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([("a".into(), "true".into())])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "b".into(),
                    operator: "In".into(),
                    values: Some(vec!["x".into()]),
                }]),
            }]),
        }),
    };
    let back = decode_from_storage::<ClusterRole>(&encode_for_storage(&cluster_role)).unwrap();
    assert_eq!(back, cluster_role);

    let subjects = vec![
        Subject {
            kind: "User".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            name: "bob".into(),
            namespace: None,
        },
        Subject {
            kind: "ServiceAccount".into(),
            api_group: None,
            name: "sa1".into(),
            namespace: Some("default".into()),
        },
    ];
    let role_ref = RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "Role".into(),
        name: "secret-reader".into(),
    };
    let binding = RoleBinding {
        metadata: meta("rb1"),
        subjects: Some(subjects.clone()),
        role_ref: role_ref.clone(),
    };
    let back = decode_from_storage::<RoleBinding>(&encode_for_storage(&binding)).unwrap();
    assert_eq!(back, binding);
    let cluster_binding = ClusterRoleBinding {
        metadata: cluster_meta,
        subjects: Some(subjects),
        role_ref,
    };
    let back =
        decode_from_storage::<ClusterRoleBinding>(&encode_for_storage(&cluster_binding)).unwrap();
    assert_eq!(back, cluster_binding);
}
