//! The messages of `v2.KeyManagementService` and the one `v1beta1` call a reader needs,
//! declared with prost from the field numbers in `reference/encryption.md` §3.1–§3.2
//! (`k8s.io/kms/apis/v2/api.proto`, `apis/v1beta1/api.proto`). Declaring them by hand keeps
//! the build free of `protoc`.
//!
//! Messages that carry a seed or DEK in plaintext zero it on drop and print no bytes.

use std::collections::BTreeMap;

use prost::Message;
use zeroize::Zeroize;

/// gRPC path of `Status`.
pub const V2_STATUS: &str = "/v2.KeyManagementService/Status";
/// gRPC path of `Encrypt`.
pub const V2_ENCRYPT: &str = "/v2.KeyManagementService/Encrypt";
/// gRPC path of `Decrypt`.
pub const V2_DECRYPT: &str = "/v2.KeyManagementService/Decrypt";
/// gRPC path of the v1 `Version`.
pub const V1_VERSION: &str = "/v1beta1.KeyManagementService/Version";
/// gRPC path of the v1 `Decrypt`.
pub const V1_DECRYPT: &str = "/v1beta1.KeyManagementService/Decrypt";

/// `StatusRequest {}`.
#[derive(Clone, PartialEq, Message)]
pub struct StatusRequest {}

/// `StatusResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct StatusResponse {
    /// `v2` or `v2beta1`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// `ok` when healthy.
    #[prost(string, tag = "2")]
    pub healthz: String,
    /// The current KEK id.
    #[prost(string, tag = "3")]
    pub key_id: String,
}

/// `EncryptRequest`: the plaintext is a seed.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct EncryptRequest {
    /// The seed to wrap.
    #[prost(bytes = "vec", tag = "1")]
    pub plaintext: Vec<u8>,
    /// A UUID for the plugin's logs.
    #[prost(string, tag = "2")]
    pub uid: String,
}

/// `EncryptResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct EncryptResponse {
    /// The wrapped seed.
    #[prost(bytes = "vec", tag = "1")]
    pub ciphertext: Vec<u8>,
    /// The KEK id used.
    #[prost(string, tag = "2")]
    pub key_id: String,
    /// Annotations to store with values.
    #[prost(btree_map = "string, bytes", tag = "3")]
    pub annotations: BTreeMap<String, Vec<u8>>,
}

/// `DecryptRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct DecryptRequest {
    /// The stored ciphertext.
    #[prost(bytes = "vec", tag = "1")]
    pub ciphertext: Vec<u8>,
    /// A UUID for the plugin's logs.
    #[prost(string, tag = "2")]
    pub uid: String,
    /// The stored KEK id.
    #[prost(string, tag = "3")]
    pub key_id: String,
    /// The stored annotations.
    #[prost(btree_map = "string, bytes", tag = "4")]
    pub annotations: BTreeMap<String, Vec<u8>>,
}

/// `DecryptResponse`: the plaintext is a seed or DEK.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct DecryptResponse {
    /// The unwrapped seed or DEK.
    #[prost(bytes = "vec", tag = "1")]
    pub plaintext: Vec<u8>,
}

/// v1beta1 `VersionRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct V1VersionRequest {
    /// Always `v1beta1`.
    #[prost(string, tag = "1")]
    pub version: String,
}

/// v1beta1 `VersionResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct V1VersionResponse {
    /// Must be `v1beta1`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// The plugin's name.
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    /// The plugin's version.
    #[prost(string, tag = "3")]
    pub runtime_version: String,
}

/// v1beta1 `DecryptRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct V1DecryptRequest {
    /// Always `v1beta1`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// The wrapped DEK.
    #[prost(bytes = "vec", tag = "2")]
    pub cipher: Vec<u8>,
}

/// v1beta1 `DecryptResponse`: the plaintext DEK.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct V1DecryptResponse {
    /// The DEK.
    #[prost(bytes = "vec", tag = "1")]
    pub plain: Vec<u8>,
}

macro_rules! secret_message {
    ($($t:ident . $f:ident),*) => {$(
        impl Drop for $t {
            fn drop(&mut self) {
                self.$f.zeroize();
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}([REDACTED; {} bytes])", stringify!($t), self.$f.len())
            }
        }
    )*};
}

secret_message!(
    EncryptRequest.plaintext,
    DecryptResponse.plaintext,
    V1DecryptResponse.plain
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_numbers_match_the_proto() {
        let r = DecryptRequest {
            ciphertext: vec![1],
            uid: "u".into(),
            key_id: "k".into(),
            annotations: BTreeMap::from([("a.b".to_string(), vec![2])]),
        };
        assert_eq!(
            r.encode_to_vec(),
            [
                0x0a, 1, 1, 0x12, 1, b'u', 0x1a, 1, b'k', 0x22, 8, 0x0a, 3, b'a', b'.', b'b', 0x12,
                1, 2
            ]
        );
        let s = StatusResponse {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id: "1".into(),
        };
        assert_eq!(s.encode_to_vec(), b"\x0a\x02v2\x12\x02ok\x1a\x011");
    }

    #[test]
    fn plaintext_messages_do_not_print_bytes() {
        let r = EncryptRequest {
            plaintext: b"canary-seed".to_vec(),
            uid: "u".into(),
        };
        let shown = format!(
            "{r:?} {:?}",
            DecryptResponse {
                plaintext: b"canary-dek".to_vec()
            }
        );
        assert!(
            !shown.contains("canary") && !shown.contains("99"),
            "{shown}"
        );
    }
}
