//! The storage codec against objects real kube-apiserver stored (`reference/encryption.md`
//! §4.6, §5.3, §5.4): they decode to the expected Secret and re-encode byte for byte.

#[path = "common/vectors.rs"]
mod vectors;

use coffer_api::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use coffer_api::{CodecError, decode_from_storage, encode_for_storage};

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).expect("vector hex")
}

fn data(s: &Secret, key: &str) -> Vec<u8> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .expect("data key present")
}

#[test]
fn kms_v2_type0_secret_decodes_and_reencodes_identically() {
    let bytes = hex(vectors::KMS_V2_TYPE0_PLAINTEXT);
    let s: Secret = decode_from_storage(&bytes).expect("decodes");
    assert_eq!(s.metadata.name.as_deref(), Some("dek-source-aes-gcm-key"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("kms-v2-legacy-data"));
    assert_eq!(
        s.metadata.uid.as_deref(),
        Some("1f4a8f7b-01b4-49d1-b898-751eb56937f1")
    );
    let created = s.metadata.creation_timestamp.as_ref().expect("timestamp");
    assert_eq!(created.0.as_second(), 1_693_583_809); // 2023-09-01T15:56:49Z
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(data(&s, "api_key"), b"086a7ffc-0225-11e8-ba89-0ed5f89f718b");
    let mf = &s.metadata.managed_fields.as_ref().expect("managed fields")[0];
    assert_eq!(mf.operation.as_deref(), Some("Update"));
    assert_eq!(mf.fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(
        encode_for_storage(&s),
        bytes,
        "re-encoding is byte-identical"
    );
}

#[test]
fn kms_v2_type1_secret_decodes_and_reencodes_identically() {
    let bytes = hex(vectors::KMS_V2_TYPE1_PLAINTEXT);
    let s: Secret = decode_from_storage(&bytes).expect("decodes");
    assert_eq!(
        s.metadata.name.as_deref(),
        Some("dek-source-hkdf-sha256-xnonce-aes-gcm-seed")
    );
    assert_eq!(
        s.metadata.uid.as_deref(),
        Some("87c514b4-9c26-4041-ad0d-0d07dca557ed")
    );
    assert_eq!(
        s.metadata
            .creation_timestamp
            .as_ref()
            .expect("ts")
            .0
            .as_second(),
        1_693_578_193
    );
    assert_eq!(data(&s, "api_key"), b"086a7ffc-0225-11e8-ba89-0ed5f89f718b");
    assert_eq!(
        encode_for_storage(&s),
        bytes,
        "re-encoding is byte-identical"
    );
}

#[test]
fn old_secret_with_removed_field_15_decodes() {
    let bytes = hex(vectors::OLD_SECRET_PLAINTEXT);
    let s: Secret = decode_from_storage(&bytes).expect("unknown field 15 is skipped");
    assert_eq!(s.metadata.name.as_deref(), Some("test-secret"));
    assert_eq!(
        s.metadata.namespace.as_deref(),
        Some("secret-encryption-test")
    );
    assert_eq!(
        s.metadata.uid.as_deref(),
        Some("72dfe5c4-1456-4239-b1ed-adffa2f1f7ba")
    );
    assert_eq!(
        s.metadata
            .creation_timestamp
            .as_ref()
            .expect("ts")
            .0
            .as_second(),
        1_575_997_028
    );
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(data(&s, "api_key"), "🤗🐼".as_bytes());
    // Today's kube-apiserver writes the same object without `7a 00` (field 15), so the
    // ObjectMeta length drops from 0x5f to 0x5d and the raw length from 0x7e to 0x7c.
    let mut modern = bytes.clone();
    let at = modern
        .windows(4)
        .position(|w| w == [0x10, 0x00, 0x7a, 0x00])
        .expect("field 15")
        + 2;
    modern.drain(at..at + 2);
    let raw_len = modern.iter().position(|b| *b == 0x7e).expect("raw length");
    modern[raw_len] = 0x7c;
    let meta_len = modern
        .iter()
        .position(|b| *b == 0x5f)
        .expect("metadata length");
    modern[meta_len] = 0x5d;
    assert_eq!(encode_for_storage(&s), modern);
}

#[test]
fn wrong_kind_is_refused() {
    let bytes = hex(vectors::OLD_SECRET_PLAINTEXT);
    let err = decode_from_storage::<ConfigMap>(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stored object is v1/Secret, expected v1/ConfigMap"
    );
    assert!(matches!(err, CodecError::WrongKind { .. }));
}
