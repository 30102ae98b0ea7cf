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
