//! The storage codec: objects encoded exactly as kube-apiserver stores them
//! (`reference/encryption.md` §4.2–§4.5; upstream apimachinery
//! `runtime/serializer/protobuf/protobuf.go`).
//!
//! A built-in kind is stored as `k8s\0` followed by a protobuf `runtime.Unknown` whose
//! `typeMeta` names the kind and whose `raw` is the object's own protobuf; the protobuf types
//! come from `k8s-pb`. Callers work with the `k8s-openapi` types; [`StorageObject`] converts.
//! [`decode_from_storage`] also accepts JSON (`{`), which is what kube-apiserver writes with
//! `--storage-media-type=application/json` and for custom resources.
//!
//! **Byte identity.** Re-encoding a decoded object gives kube-apiserver's bytes: fields in
//! number order, Go's non-pointer fields always present (as empty strings, `0`, or `42 00` for
//! a zero `creationTimestamp`), `Time` as `{seconds, nanos: 0}`, map entries sorted by key.
//! Three known differences, none of which kube-apiserver minds on read:
//! - a map entry whose value is empty is written by Go as `key` plus `12 00`; prost writes the
//!   key only;
//! - `managedFields[].fieldsV1` is held by `k8s-openapi` as a JSON value and re-serialised with
//!   sorted keys, which is the order kube-apiserver writes for ordinary objects;
//! - unknown fields (such as the removed ObjectMeta field 15, `7a 00`) are dropped.
//!
//! This module does no I/O and logs nothing; errors never quote object content.

mod convert;
mod rbac;
mod requests;

pub use requests::{RequestObject, decode_request};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde::de::DeserializeOwned;

/// The 4-byte prefix of kube-apiserver's protobuf storage encoding: `k8s` and encoding 0.
pub const PROTOBUF_MAGIC: [u8; 4] = *b"k8s\0";

/// A kind kube-apiserver stores as protobuf, with its conversion to and from `k8s-pb`.
pub trait StorageObject: Sized + DeserializeOwned {
    /// `apiVersion` written in `typeMeta` (`v1`, or `group/version`).
    const API_VERSION: &'static str;
    /// `kind` written in `typeMeta`.
    const KIND: &'static str;
    /// The `k8s-pb` message.
    type Proto: Message + Default;
    /// To protobuf, with Go's always-present fields set.
    fn to_proto(&self) -> Self::Proto;
    /// From protobuf.
    fn from_proto(proto: Self::Proto) -> Self;
}

/// Why stored bytes could not be decoded. Texts follow kube-apiserver's where it has one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// No bytes at all.
    #[error("empty data")]
    Empty,
    /// The protobuf prefix with nothing after it.
    #[error("empty body")]
    EmptyBody,
    /// Neither the protobuf prefix nor JSON.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    NotProtobuf,
    /// The protobuf is malformed.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// `typeMeta` lacks a kind or version.
    #[error("object has no kind or apiVersion in its typeMeta")]
    MissingTypeMeta,
    /// The stored object is another kind.
    #[error("stored object is {found_api_version}/{found_kind}, expected {expected}")]
    WrongKind {
        /// `apiVersion/kind` expected.
        expected: String,
        /// The stored `apiVersion`.
        found_api_version: String,
        /// The stored `kind`.
        found_kind: String,
    },
    /// The JSON form is malformed. Only the position is kept, never the text around it.
    #[error("invalid JSON object at line {line}, column {column}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
}

/// Encodes `obj` as kube-apiserver stores it: `k8s\0` + `runtime.Unknown`.
///
/// The caller clears what kube-apiserver clears before storing (see [`prepare_for_storage`]).
pub fn encode_for_storage<T: StorageObject>(obj: &T) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(T::API_VERSION.to_string()),
            kind: Some(T::KIND.to_string()),
        }),
        raw: Some(obj.to_proto().encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = Vec::with_capacity(PROTOBUF_MAGIC.len() + unknown.encoded_len());
    out.extend_from_slice(&PROTOBUF_MAGIC);
    unknown
        .encode(&mut out)
        .expect("BUG: a Vec grows, so encoding into it cannot run out of space");
    out
}

/// Decodes stored bytes: protobuf (`k8s\0`) or JSON (`{`), checking the kind.
pub fn decode_from_storage<T: StorageObject>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.is_empty() {
        return Err(CodecError::Empty);
    }
    if bytes.first() == Some(&b'{') {
        return decode_json(bytes);
    }
    let raw = unwrap_unknown(bytes, T::API_VERSION, T::KIND)?;
    let proto = T::Proto::decode(raw.as_slice())?;
    Ok(T::from_proto(proto))
}

/// The `raw` of a `k8s\0` + `runtime.Unknown` envelope whose typeMeta names
/// `api_version`/`kind`.
fn unwrap_unknown(bytes: &[u8], api_version: &str, kind: &str) -> Result<Vec<u8>, CodecError> {
    if bytes.is_empty() {
        return Err(CodecError::Empty);
    }
    let body = bytes
        .strip_prefix(&PROTOBUF_MAGIC)
        .ok_or(CodecError::NotProtobuf)?;
    if body.is_empty() {
        return Err(CodecError::EmptyBody);
    }
    let unknown = Unknown::decode(body)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let found_api_version = type_meta.api_version.unwrap_or_default();
    let found_kind = type_meta.kind.unwrap_or_default();
    if found_api_version.is_empty() || found_kind.is_empty() {
        return Err(CodecError::MissingTypeMeta);
    }
    if found_api_version != api_version || found_kind != kind {
        return Err(CodecError::WrongKind {
            expected: format!("{api_version}/{kind}"),
            found_api_version,
            found_kind,
        });
    }
    Ok(unknown.raw.unwrap_or_default())
}

/// Clears what kube-apiserver clears before a write (`PrepareObjectForStorage`):
/// `resourceVersion` (the storage revision is the truth) and `selfLink`.
pub fn prepare_for_storage(meta: &mut ObjectMeta) {
    meta.resource_version = None;
    meta.self_link = None;
}

fn decode_json<T: StorageObject>(bytes: &[u8]) -> Result<T, CodecError> {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "apiVersion", default)]
        api_version: String,
        #[serde(default)]
        kind: String,
    }
    let json_err = |e: serde_json::Error| CodecError::Json {
        line: e.line(),
        column: e.column(),
    };
    let k: Kind = serde_json::from_slice(bytes).map_err(json_err)?;
    if k.api_version != T::API_VERSION || k.kind != T::KIND {
        return Err(CodecError::WrongKind {
            expected: format!("{}/{}", T::API_VERSION, T::KIND),
            found_api_version: k.api_version,
            found_kind: k.kind,
        });
    }
    serde_json::from_slice(bytes).map_err(json_err)
}

macro_rules! core_v1 {
    ($($t:ident),*) => {$(
        impl StorageObject for $t {
            const API_VERSION: &'static str = "v1";
            const KIND: &'static str = stringify!($t);
            type Proto = k8s_pb::api::core::v1::$t;
            fn to_proto(&self) -> Self::Proto {
                convert::ToProto::to_proto(self)
            }
            fn from_proto(proto: Self::Proto) -> Self {
                convert::FromProto::from_proto(proto)
            }
        }
    )*};
}

core_v1!(Secret, ConfigMap, Namespace, ServiceAccount);

macro_rules! rbac_v1 {
    ($($t:ident),*) => {$(
        impl StorageObject for k8s_openapi::api::rbac::v1::$t {
            const API_VERSION: &'static str = "rbac.authorization.k8s.io/v1";
            const KIND: &'static str = stringify!($t);
            type Proto = k8s_pb::api::rbac::v1::$t;
            fn to_proto(&self) -> Self::Proto {
                convert::ToProto::to_proto(self)
            }
            fn from_proto(proto: Self::Proto) -> Self {
                convert::FromProto::from_proto(proto)
            }
        }
    )*};
}

rbac_v1!(Role, ClusterRole, RoleBinding, ClusterRoleBinding);

#[cfg(test)]
mod tests;
