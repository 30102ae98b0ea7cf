//! The KMS v2 `EncryptedObject` stored after the `k8s:enc:kms:v2:<name>:` prefix, and its
//! validation (`reference/encryption.md` §2.6.1, §2.6.4; upstream `envelope/kmsv2/v2/api.proto`
//! and `ValidateEncryptedObject`).
//!
//! The message is not in `k8s-pb` (it belongs to the apiserver, not the API), so it is declared
//! here with prost from the field numbers in the reference.

use std::collections::BTreeMap;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::error::KmsError;

/// Largest `encryptedDEKSource` and `keyID`, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Largest total size of annotation keys and values, in bytes.
pub const MAX_ANNOTATIONS_BYTES: usize = 32 * 1024;

/// `EncryptedDEKSourceType`: what the plugin's plaintext is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DekSourceType {
    /// `AES_GCM_KEY` (0): the plaintext is the AES-GCM key. Written by 1.27/1.28; read only.
    AesGcmKey,
    /// `HKDF_SHA256_XNONCE_AES_GCM_SEED` (1): the plaintext is a seed; what Coffer writes.
    HkdfSha256XNonceAesGcmSeed,
}

impl DekSourceType {
    /// The protobuf enum number.
    pub fn number(self) -> i32 {
        match self {
            DekSourceType::AesGcmKey => 0,
            DekSourceType::HkdfSha256XNonceAesGcmSeed => 1,
        }
    }
}

/// `message EncryptedObject` (proto3, package `v2`).
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct EncryptedObject {
    /// The GCM body (type 0) or `info || nonce || ciphertext || tag` (type 1).
    #[prost(bytes = "vec", tag = "1")]
    pub encrypted_data: Vec<u8>,
    /// The KEK id the plugin reported. Public: logged and hashed in metrics.
    #[prost(string, tag = "2")]
    pub key_id: String,
    /// The plugin's ciphertext of the DEK (type 0) or seed (type 1).
    #[prost(bytes = "vec", tag = "3")]
    pub encrypted_dek_source: Vec<u8>,
    /// Plugin annotations. Stored in plaintext in etcd.
    #[prost(btree_map = "string, bytes", tag = "4")]
    pub annotations: BTreeMap<String, Vec<u8>>,
    /// `EncryptedDEKSourceType` as a number.
    #[prost(int32, tag = "5")]
    pub encrypted_dek_source_type: i32,
}

impl std::fmt::Debug for EncryptedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedObject")
            .field("encrypted_data_len", &self.encrypted_data.len())
            .field("key_id_hash", &hash_of(self.key_id.as_bytes()))
            .field("encrypted_dek_source_len", &self.encrypted_dek_source.len())
            .field(
                "annotation_keys",
                &self.annotations.keys().collect::<Vec<_>>(),
            )
            .field("encrypted_dek_source_type", &self.encrypted_dek_source_type)
            .finish()
    }
}

impl EncryptedObject {
    /// Decodes and validates stored bytes (after the prefix).
    pub fn decode_validated(data: &[u8]) -> Result<Self, KmsError> {
        let eo = Self::decode(data).map_err(|e| KmsError::Unmarshal(e.to_string()))?;
        eo.validate()?;
        Ok(eo)
    }

    /// The source type, if it is one this version knows.
    pub fn source_type(&self) -> Option<DekSourceType> {
        match self.encrypted_dek_source_type {
            0 => Some(DekSourceType::AesGcmKey),
            1 => Some(DekSourceType::HkdfSha256XNonceAesGcmSeed),
            _ => None,
        }
    }

    /// `ValidateEncryptedObject`: the checks upstream runs on read and before write, in order.
    pub fn validate(&self) -> Result<(), KmsError> {
        let invalid = |s: String| Err(KmsError::InvalidObject(s));
        if self.source_type().is_none() {
            return invalid(format!(
                "unknown encryptedDEKSourceType: {}",
                self.encrypted_dek_source_type
            ));
        }
        if self.encrypted_data.is_empty() {
            return invalid("encrypted data is empty".into());
        }
        if let Err(e) = validate_dek_source(&self.encrypted_dek_source) {
            return invalid(format!("failed to validate encrypted DEK source: {e}"));
        }
        if let Err(e) = validate_key_id(&self.key_id) {
            return invalid(format!("failed to validate key id: {e}"));
        }
        validate_annotations(&self.annotations).map_err(KmsError::InvalidObject)
    }
}

/// `sha256:<hex>` of a public identifier (a key id), or `""` for empty input, as upstream's
/// `GetHashIfNotEmpty`.
pub fn hash_of(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(bytes);
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The encrypted DEK source must be 1..=1024 bytes.
pub(crate) fn validate_dek_source(src: &[u8]) -> Result<(), String> {
    match src.len() {
        0 => Err("encrypted DEK source is empty".into()),
        n if n > MAX_FIELD_BYTES => Err(format!(
            "encrypted DEK source is {n} bytes, which exceeds the max size of {MAX_FIELD_BYTES}"
        )),
        _ => Ok(()),
    }
}

/// A key id must be 1..=1024 bytes.
pub(crate) fn validate_key_id(key_id: &str) -> Result<(), String> {
    match key_id.len() {
        0 => Err("keyID is empty".into()),
        n if n > MAX_FIELD_BYTES => Err(format!(
            "keyID is {n} bytes, which exceeds the max size of {MAX_FIELD_BYTES}"
        )),
        _ => Ok(()),
    }
}

/// Annotation keys must be fully qualified domain names; the total size is capped.
pub(crate) fn validate_annotations(annotations: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let mut total = 0usize;
    for (k, v) in annotations {
        if let Err(detail) = validate_fqdn(k) {
            return Err(format!(
                "failed to validate annotations: annotations: Invalid value: {k:?}: {detail}"
            ));
        }
        total += k.len() + v.len();
    }
    if total > MAX_ANNOTATIONS_BYTES {
        return Err(format!(
            "failed to validate annotations: total size of annotations is {total}, which exceeds the max size of {MAX_ANNOTATIONS_BYTES}"
        ));
    }
    Ok(())
}

/// Go's `IsFullyQualifiedDomainName`: strip one trailing dot, then an RFC 1123 subdomain of at
/// least two labels, each at most 63 bytes.
fn validate_fqdn(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    if !name.split('.').all(label_ok) {
        return Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                    characters, '-' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    if name.split('.').count() < 2 {
        return Err("should be a domain with at least two segments separated by dots".into());
    }
    if let Some(long) = name.split('.').find(|l| l.len() > 63) {
        return Err(format!("label {long:?} must be no more than 63 characters"));
    }
    Ok(())
}

/// The bytes that decide which stored DEK sources share one cache entry (upstream
/// `generateCacheKey`), hashed so the cache holds no ciphertext.
pub(crate) fn cache_key(eo: &EncryptedObject) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((eo.encrypted_dek_source_type as u32).to_be_bytes());
    let mut field = |b: &[u8]| {
        h.update((b.len() as u16).to_be_bytes());
        h.update(b);
    };
    field(&eo.encrypted_dek_source);
    field(eo.key_id.as_bytes());
    if !eo.annotations.is_empty() {
        // BTreeMap iterates in sorted key order, as upstream sorts.
        let mut parts = Vec::new();
        for (k, v) in &eo.annotations {
            parts.push(k.as_bytes());
            parts.push(v.as_slice());
        }
        h.update((eo.annotations.len() as u32).to_be_bytes());
        for p in parts {
            h.update((p.len() as u16).to_be_bytes());
            h.update(p);
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eo() -> EncryptedObject {
        EncryptedObject {
            encrypted_data: vec![1],
            key_id: "1".into(),
            encrypted_dek_source: vec![2],
            annotations: BTreeMap::new(),
            encrypted_dek_source_type: 1,
        }
    }

    fn err(e: EncryptedObject) -> String {
        e.validate().unwrap_err().to_string()
    }

    #[test]
    fn validation_messages_in_order() {
        assert!(eo().validate().is_ok());
        assert_eq!(
            err(EncryptedObject {
                encrypted_dek_source_type: 2,
                ..eo()
            }),
            "unknown encryptedDEKSourceType: 2"
        );
        assert_eq!(
            err(EncryptedObject {
                encrypted_data: vec![],
                ..eo()
            }),
            "encrypted data is empty"
        );
        assert_eq!(
            err(EncryptedObject {
                encrypted_dek_source: vec![],
                ..eo()
            }),
            "failed to validate encrypted DEK source: encrypted DEK source is empty"
        );
        assert_eq!(
            err(EncryptedObject {
                encrypted_dek_source: vec![0; 1025],
                ..eo()
            }),
            "failed to validate encrypted DEK source: encrypted DEK source is 1025 bytes, which exceeds the max size of 1024"
        );
        assert_eq!(
            err(EncryptedObject {
                key_id: String::new(),
                ..eo()
            }),
            "failed to validate key id: keyID is empty"
        );
        assert_eq!(
            err(EncryptedObject {
                key_id: "k".repeat(1025),
                ..eo()
            }),
            "failed to validate key id: keyID is 1025 bytes, which exceeds the max size of 1024"
        );
        let mut big = eo();
        big.annotations.insert("a.com".into(), vec![0; 32 * 1024]);
        assert_eq!(
            err(big),
            "failed to validate annotations: total size of annotations is 32773, which exceeds the max size of 32768"
        );
    }

    #[test]
    fn annotation_keys_must_be_fqdn() {
        for ok in [
            "a.com",
            "dev.k8s.io.",
            "10.0.0.1",
            "local-kek.kms.kubernetes.io",
        ] {
            assert!(validate_fqdn(ok).is_ok(), "{ok}");
        }
        for bad in [
            "com",
            "Dev.k8s.io",
            "*.example.com",
            "underscores_are_bad.k8s.io",
        ] {
            assert!(validate_fqdn(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_fqdn("com").unwrap_err(),
            "should be a domain with at least two segments separated by dots"
        );
        let mut a = BTreeMap::new();
        a.insert("com".to_string(), vec![]);
        assert!(
            validate_annotations(&a).unwrap_err().starts_with(
                "failed to validate annotations: annotations: Invalid value: \"com\": "
            )
        );
    }

    #[test]
    fn key_id_hash_matches_upstream_constant() {
        // reference/encryption.md §5.5.
        assert_eq!(
            hash_of(b"1"),
            "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
        );
        assert_eq!(
            hash_of(b"testAPIServerID"),
            "sha256:14f9d63e669337ac6bfda2e2162915ee6a6067743eddd4e5c374b572f951ff37"
        );
        assert_eq!(hash_of(b""), "");
    }

    #[test]
    fn type_1_is_written_as_28_01_and_type_0_omitted() {
        let bytes = eo().encode_to_vec();
        assert_eq!(bytes, [0x0a, 1, 1, 0x12, 1, b'1', 0x1a, 1, 2, 0x28, 1]);
        let zero = EncryptedObject {
            encrypted_dek_source_type: 0,
            ..eo()
        }
        .encode_to_vec();
        assert_eq!(zero, [0x0a, 1, 1, 0x12, 1, b'1', 0x1a, 1, 2]);
    }
}
