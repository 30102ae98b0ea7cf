//! Coffer's API types: Kubernetes object shapes, validation and `Status` errors. No I/O.
//!
//! Object types are `k8s-openapi`'s, re-exported as [`k8s_openapi`]. The storage codec encodes
//! them exactly as kube-apiserver stores them in etcd (`k8s\0` + `runtime.Unknown` + protobuf
//! from `k8s-pb`) and decodes both that and JSON: start with [`encode_for_storage`] and
//! [`decode_from_storage`], which work for every [`StorageObject`] (Secret, ConfigMap,
//! Namespace, ServiceAccount).
//!
//! What this crate is not: it opens no files or sockets, starts no runtime, and logs nothing.
#![forbid(unsafe_code)]

mod codec;

// The public interface.
pub use codec::{
    CodecError, PROTOBUF_MAGIC, StorageObject, decode_from_storage, encode_for_storage,
    prepare_for_storage,
};
pub use k8s_openapi;
