//! Conversions between the `k8s-openapi` types callers use and the `k8s-pb` messages stored.
//!
//! Go's generated marshallers always write non-pointer fields, even when empty, so every such
//! field is set to `Some` here (empty string, `0`, empty message); pointer fields stay optional.
//! On the way back, an empty non-pointer string becomes `None`, as Go's JSON `omitempty` shows
//! it. Field lists follow `reference/encryption.md` §4.3 and `k8s.io/api` `generated.proto`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1 as api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::jiff::Timestamp;
use k8s_pb::api::core::v1 as pb;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;

/// `k8s-openapi` → `k8s-pb`.
pub(super) trait ToProto {
    type Proto;
    fn to_proto(&self) -> Self::Proto;
}

/// `k8s-pb` → `k8s-openapi`.
pub(super) trait FromProto<P> {
    fn from_proto(p: P) -> Self;
}

/// A Go non-pointer string: always written.
pub(super) fn always(s: &Option<String>) -> Option<String> {
    Some(s.clone().unwrap_or_default())
}

/// Back from a Go non-pointer string: empty is absent.
pub(super) fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

pub(super) fn list<T, P>(v: &Option<Vec<T>>, f: impl Fn(&T) -> P) -> Vec<P> {
    v.iter().flatten().map(f).collect()
}

pub(super) fn unlist<P, T>(v: Vec<P>, f: impl Fn(P) -> T) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.into_iter().map(f).collect())
}

fn map<V: Clone>(m: &Option<BTreeMap<String, V>>) -> BTreeMap<String, V> {
    m.clone().unwrap_or_default()
}

fn unmap<V>(m: BTreeMap<String, V>) -> Option<BTreeMap<String, V>> {
    (!m.is_empty()).then_some(m)
}

fn bytes_map(m: &Option<BTreeMap<String, ByteString>>) -> BTreeMap<String, Vec<u8>> {
    m.iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

fn unbytes_map(m: BTreeMap<String, Vec<u8>>) -> Option<BTreeMap<String, ByteString>> {
    (!m.is_empty()).then(|| m.into_iter().map(|(k, v)| (k, ByteString(v))).collect())
}

/// metav1.Time: whole seconds and `nanos: 0`; a zero (absent) time is an empty message.
fn time(t: &Option<meta::Time>) -> pbmeta::Time {
    match t {
        Some(t) => pbmeta::Time {
            seconds: Some(t.0.as_second()),
            nanos: Some(0),
        },
        None => pbmeta::Time::default(),
    }
}

/// Reads seconds only, as kube-apiserver does. A time outside jiff's range is dropped.
fn untime(t: Option<pbmeta::Time>) -> Option<meta::Time> {
    let seconds = t?.seconds?;
    Timestamp::from_second(seconds).ok().map(meta::Time)
}

impl ToProto for meta::ObjectMeta {
    type Proto = pbmeta::ObjectMeta;
    fn to_proto(&self) -> pbmeta::ObjectMeta {
        pbmeta::ObjectMeta {
            name: always(&self.name),
            generate_name: always(&self.generate_name),
            namespace: always(&self.namespace),
            self_link: always(&self.self_link),
            uid: always(&self.uid),
            resource_version: always(&self.resource_version),
            generation: Some(self.generation.unwrap_or_default()),
            creation_timestamp: Some(time(&self.creation_timestamp)),
            deletion_timestamp: self
                .deletion_timestamp
                .as_ref()
                .map(|t| time(&Some(t.clone()))),
            deletion_grace_period_seconds: self.deletion_grace_period_seconds,
            labels: map(&self.labels),
            annotations: map(&self.annotations),
            owner_references: list(&self.owner_references, |o| pbmeta::OwnerReference {
                api_version: Some(o.api_version.clone()),
                kind: Some(o.kind.clone()),
                name: Some(o.name.clone()),
                uid: Some(o.uid.clone()),
                controller: o.controller,
                block_owner_deletion: o.block_owner_deletion,
            }),
            finalizers: self.finalizers.clone().unwrap_or_default(),
            managed_fields: list(&self.managed_fields, |m| pbmeta::ManagedFieldsEntry {
                manager: always(&m.manager),
                operation: always(&m.operation),
                api_version: always(&m.api_version),
                time: m.time.as_ref().map(|t| time(&Some(t.clone()))),
                fields_type: always(&m.fields_type),
                fields_v1: m.fields_v1.as_ref().map(|f| pbmeta::FieldsV1 {
                    raw: Some(serde_json::to_vec(&f.0).unwrap_or_default()),
                }),
                subresource: always(&m.subresource),
            }),
        }
    }
}

impl FromProto<pbmeta::ObjectMeta> for meta::ObjectMeta {
    fn from_proto(p: pbmeta::ObjectMeta) -> Self {
        meta::ObjectMeta {
            name: nonempty(p.name),
            generate_name: nonempty(p.generate_name),
            namespace: nonempty(p.namespace),
            self_link: nonempty(p.self_link),
            uid: nonempty(p.uid),
            resource_version: nonempty(p.resource_version),
            generation: p.generation.filter(|g| *g != 0),
            creation_timestamp: untime(p.creation_timestamp),
            deletion_timestamp: untime(p.deletion_timestamp),
            deletion_grace_period_seconds: p.deletion_grace_period_seconds,
            labels: unmap(p.labels),
            annotations: unmap(p.annotations),
            owner_references: unlist(p.owner_references, |o| meta::OwnerReference {
                api_version: o.api_version.unwrap_or_default(),
                kind: o.kind.unwrap_or_default(),
                name: o.name.unwrap_or_default(),
                uid: o.uid.unwrap_or_default(),
                controller: o.controller,
                block_owner_deletion: o.block_owner_deletion,
            }),
            finalizers: unlist(p.finalizers, |f| f),
            managed_fields: unlist(p.managed_fields, |m| meta::ManagedFieldsEntry {
                manager: nonempty(m.manager),
                operation: nonempty(m.operation),
                api_version: nonempty(m.api_version),
                time: untime(m.time),
                fields_type: nonempty(m.fields_type),
                // Unparseable managed-fields JSON is dropped rather than failing the object,
                // as the field is advisory bookkeeping.
                fields_v1: m.fields_v1.and_then(|f| {
                    serde_json::from_slice(&f.raw.unwrap_or_default())
                        .ok()
                        .map(meta::FieldsV1)
                }),
                subresource: nonempty(m.subresource),
            }),
        }
    }
}

impl ToProto for api::Secret {
    type Proto = pb::Secret;
    fn to_proto(&self) -> pb::Secret {
        pb::Secret {
            metadata: Some(self.metadata.to_proto()),
            immutable: self.immutable,
            data: bytes_map(&self.data),
            string_data: map(&self.string_data),
            r#type: always(&self.type_),
        }
    }
}

impl FromProto<pb::Secret> for api::Secret {
    fn from_proto(p: pb::Secret) -> Self {
        api::Secret {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            immutable: p.immutable,
            data: unbytes_map(p.data),
            string_data: unmap(p.string_data),
            type_: nonempty(p.r#type),
        }
    }
}

impl ToProto for api::ConfigMap {
    type Proto = pb::ConfigMap;
    fn to_proto(&self) -> pb::ConfigMap {
        pb::ConfigMap {
            metadata: Some(self.metadata.to_proto()),
            immutable: self.immutable,
            data: map(&self.data),
            binary_data: bytes_map(&self.binary_data),
        }
    }
}

impl FromProto<pb::ConfigMap> for api::ConfigMap {
    fn from_proto(p: pb::ConfigMap) -> Self {
        api::ConfigMap {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            immutable: p.immutable,
            data: unmap(p.data),
            binary_data: unbytes_map(p.binary_data),
        }
    }
}

impl ToProto for api::Namespace {
    type Proto = pb::Namespace;
    fn to_proto(&self) -> pb::Namespace {
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().unwrap_or_default();
        pb::Namespace {
            metadata: Some(self.metadata.to_proto()),
            spec: Some(pb::NamespaceSpec {
                finalizers: spec.finalizers.unwrap_or_default(),
            }),
            status: Some(pb::NamespaceStatus {
                phase: always(&status.phase),
                conditions: list(&status.conditions, |c| pb::NamespaceCondition {
                    r#type: Some(c.type_.clone()),
                    status: Some(c.status.clone()),
                    last_transition_time: Some(time(&c.last_transition_time)),
                    reason: always(&c.reason),
                    message: always(&c.message),
                }),
            }),
        }
    }
}

impl FromProto<pb::Namespace> for api::Namespace {
    fn from_proto(p: pb::Namespace) -> Self {
        let spec = p.spec.unwrap_or_default();
        let status = p.status.unwrap_or_default();
        let status = api::NamespaceStatus {
            phase: nonempty(status.phase),
            conditions: unlist(status.conditions, |c| api::NamespaceCondition {
                type_: c.r#type.unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                last_transition_time: untime(c.last_transition_time),
                reason: nonempty(c.reason),
                message: nonempty(c.message),
            }),
        };
        let spec = api::NamespaceSpec {
            finalizers: unlist(spec.finalizers, |f| f),
        };
        api::Namespace {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            spec: (spec != api::NamespaceSpec::default()).then_some(spec),
            status: (status != api::NamespaceStatus::default()).then_some(status),
        }
    }
}

impl ToProto for api::ServiceAccount {
    type Proto = pb::ServiceAccount;
    fn to_proto(&self) -> pb::ServiceAccount {
        pb::ServiceAccount {
            metadata: Some(self.metadata.to_proto()),
            secrets: list(&self.secrets, |r| pb::ObjectReference {
                kind: always(&r.kind),
                namespace: always(&r.namespace),
                name: always(&r.name),
                uid: always(&r.uid),
                api_version: always(&r.api_version),
                resource_version: always(&r.resource_version),
                field_path: always(&r.field_path),
            }),
            image_pull_secrets: list(&self.image_pull_secrets, |r| pb::LocalObjectReference {
                name: Some(r.name.clone()),
            }),
            automount_service_account_token: self.automount_service_account_token,
        }
    }
}

impl FromProto<pb::ServiceAccount> for api::ServiceAccount {
    fn from_proto(p: pb::ServiceAccount) -> Self {
        api::ServiceAccount {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            secrets: unlist(p.secrets, |r| api::ObjectReference {
                kind: nonempty(r.kind),
                namespace: nonempty(r.namespace),
                name: nonempty(r.name),
                uid: nonempty(r.uid),
                api_version: nonempty(r.api_version),
                resource_version: nonempty(r.resource_version),
                field_path: nonempty(r.field_path),
            }),
            image_pull_secrets: unlist(p.image_pull_secrets, |r| api::LocalObjectReference {
                name: r.name.unwrap_or_default(),
            }),
            automount_service_account_token: p.automount_service_account_token,
        }
    }
}
