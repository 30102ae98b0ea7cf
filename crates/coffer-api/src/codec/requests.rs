//! Request-only kinds that kubectl ≥ 1.32 sends as protobuf but the server never stores: the
//! review APIs and TokenRequest (`reference/k8s-api.md` §6, §9.4, §9.5). Only the direction
//! the server needs exists: protobuf → `k8s-openapi`, request fields only (`status` is the
//! server's to fill).

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1 as authn;
use k8s_openapi::api::authorization::v1 as authz;
use k8s_pb::api::authentication::v1 as pbauthn;
use k8s_pb::api::authorization::v1 as pbauthz;

use super::convert::{FromProto, nonempty};
use super::{CodecError, unwrap_unknown};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A kind that arrives in request bodies only.
pub trait RequestObject: Sized {
    /// `apiVersion` expected in `typeMeta`.
    const API_VERSION: &'static str;
    /// `kind` expected in `typeMeta`.
    const KIND: &'static str;
    /// Decodes the object's protobuf (the `raw` of the `runtime.Unknown`).
    fn decode_raw(raw: &[u8]) -> Result<Self, prost::DecodeError>;
}

/// Decodes a protobuf request body (`k8s\0` + `runtime.Unknown`), checking the kind.
pub fn decode_request<T: RequestObject>(bytes: &[u8]) -> Result<T, CodecError> {
    let raw = unwrap_unknown(bytes, T::API_VERSION, T::KIND)?;
    Ok(T::decode_raw(&raw)?)
}

fn meta(m: Option<k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta>) -> ObjectMeta {
    ObjectMeta::from_proto(m.unwrap_or_default())
}

fn resource_attributes(a: pbauthz::ResourceAttributes) -> authz::ResourceAttributes {
    authz::ResourceAttributes {
        namespace: nonempty(a.namespace),
        verb: nonempty(a.verb),
        group: nonempty(a.group),
        version: nonempty(a.version),
        resource: nonempty(a.resource),
        subresource: nonempty(a.subresource),
        name: nonempty(a.name),
        field_selector: None,
        label_selector: None,
    }
}

fn non_resource_attributes(a: pbauthz::NonResourceAttributes) -> authz::NonResourceAttributes {
    authz::NonResourceAttributes {
        path: nonempty(a.path),
        verb: nonempty(a.verb),
    }
}

fn subject_spec(s: pbauthz::SubjectAccessReviewSpec) -> authz::SubjectAccessReviewSpec {
    authz::SubjectAccessReviewSpec {
        resource_attributes: s.resource_attributes.map(resource_attributes),
        non_resource_attributes: s.non_resource_attributes.map(non_resource_attributes),
        user: nonempty(s.user),
        groups: (!s.groups.is_empty()).then_some(s.groups),
        extra: (!s.extra.is_empty()).then(|| {
            s.extra
                .into_iter()
                .map(|(k, v)| (k, v.items))
                .collect::<BTreeMap<_, _>>()
        }),
        uid: nonempty(s.uid),
    }
}

macro_rules! request_object {
    ($t:ty, $pb:ty, $api_version:literal, $kind:literal, |$p:ident| $body:expr) => {
        impl RequestObject for $t {
            const API_VERSION: &'static str = $api_version;
            const KIND: &'static str = $kind;
            fn decode_raw(raw: &[u8]) -> Result<Self, prost::DecodeError> {
                let $p = <$pb as prost::Message>::decode(raw)?;
                Ok($body)
            }
        }
    };
}

request_object!(
    authz::SelfSubjectAccessReview,
    pbauthz::SelfSubjectAccessReview,
    "authorization.k8s.io/v1",
    "SelfSubjectAccessReview",
    |p| {
        let spec = p.spec.unwrap_or_default();
        authz::SelfSubjectAccessReview {
            metadata: meta(p.metadata),
            spec: authz::SelfSubjectAccessReviewSpec {
                resource_attributes: spec.resource_attributes.map(resource_attributes),
                non_resource_attributes: spec.non_resource_attributes.map(non_resource_attributes),
            },
            status: None,
        }
    }
);

request_object!(
    authz::SubjectAccessReview,
    pbauthz::SubjectAccessReview,
    "authorization.k8s.io/v1",
    "SubjectAccessReview",
    |p| authz::SubjectAccessReview {
        metadata: meta(p.metadata),
        spec: subject_spec(p.spec.unwrap_or_default()),
        status: None,
    }
);

request_object!(
    authz::LocalSubjectAccessReview,
    pbauthz::LocalSubjectAccessReview,
    "authorization.k8s.io/v1",
    "LocalSubjectAccessReview",
    |p| authz::LocalSubjectAccessReview {
        metadata: meta(p.metadata),
        spec: subject_spec(p.spec.unwrap_or_default()),
        status: None,
    }
);

request_object!(
    authz::SelfSubjectRulesReview,
    pbauthz::SelfSubjectRulesReview,
    "authorization.k8s.io/v1",
    "SelfSubjectRulesReview",
    |p| authz::SelfSubjectRulesReview {
        metadata: meta(p.metadata),
        spec: authz::SelfSubjectRulesReviewSpec {
            namespace: nonempty(p.spec.unwrap_or_default().namespace),
        },
        status: None,
    }
);

request_object!(
    authn::TokenReview,
    pbauthn::TokenReview,
    "authentication.k8s.io/v1",
    "TokenReview",
    |p| {
        let spec = p.spec.unwrap_or_default();
        authn::TokenReview {
            metadata: meta(p.metadata),
            spec: authn::TokenReviewSpec {
                token: nonempty(spec.token),
                audiences: (!spec.audiences.is_empty()).then_some(spec.audiences),
            },
            status: None,
        }
    }
);

request_object!(
    authn::TokenRequest,
    pbauthn::TokenRequest,
    "authentication.k8s.io/v1",
    "TokenRequest",
    |p| {
        let spec = p.spec.unwrap_or_default();
        authn::TokenRequest {
            metadata: meta(p.metadata),
            spec: authn::TokenRequestSpec {
                audiences: spec.audiences,
                expiration_seconds: spec.expiration_seconds,
                bound_object_ref: spec.bound_object_ref.map(|b| authn::BoundObjectReference {
                    kind: nonempty(b.kind),
                    api_version: nonempty(b.api_version),
                    name: nonempty(b.name),
                    uid: nonempty(b.u_id),
                }),
            },
            status: None,
        }
    }
);

#[cfg(test)]
mod tests {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;

    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = b"k8s\0".to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    #[test]
    fn self_subject_access_review_from_protobuf() {
        let pb = pbauthz::SelfSubjectAccessReview {
            spec: Some(pbauthz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(pbauthz::ResourceAttributes {
                    namespace: Some("default".into()),
                    verb: Some("get".into()),
                    resource: Some("secrets".into()),
                    group: Some(String::new()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            ..Default::default()
        };
        let bytes = envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            pb.encode_to_vec(),
        );
        let review: authz::SelfSubjectAccessReview = decode_request(&bytes).unwrap();
        let attrs = review.spec.resource_attributes.unwrap();
        assert_eq!(attrs.verb.as_deref(), Some("get"));
        assert_eq!(attrs.namespace.as_deref(), Some("default"));
        assert_eq!(attrs.group, None);
        assert!(decode_request::<authn::TokenReview>(&bytes).is_err());
    }

    #[test]
    fn token_request_from_protobuf() {
        let pb = pbauthn::TokenRequest {
            spec: Some(pbauthn::TokenRequestSpec {
                audiences: vec!["vault".into()],
                expiration_seconds: Some(600),
                bound_object_ref: Some(pbauthn::BoundObjectReference {
                    kind: Some("Secret".into()),
                    api_version: Some("v1".into()),
                    name: Some("s1".into()),
                    u_id: None,
                }),
            }),
            ..Default::default()
        };
        let bytes = envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            pb.encode_to_vec(),
        );
        let request: authn::TokenRequest = decode_request(&bytes).unwrap();
        assert_eq!(request.spec.audiences, ["vault"]);
        assert_eq!(request.spec.expiration_seconds, Some(600));
        assert_eq!(
            request.spec.bound_object_ref.unwrap().name.as_deref(),
            Some("s1")
        );
    }
}
