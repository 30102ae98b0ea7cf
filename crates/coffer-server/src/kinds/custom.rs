//! Custom kinds: External Secrets Operator's resources (`external-secrets.io`) and Coffer's
//! own (`coffer.dev`), served like CustomResourceDefinitions are: stored as JSON (as
//! kube-apiserver stores custom resources), `spec` free-form beyond its schema, and a `status`
//! subresource — a write to the object keeps the stored status, and only `/status` changes it.
//!
//! Each kind is a [`CustomDef`]; [`Custom<D>`] is the object (type meta, metadata, and every
//! other top-level field kept as JSON). Several served versions share one stored version;
//! with no conversion between them (the fields are the same), an object is answered in the
//! stored version whichever path it was read through.

use std::borrow::Cow;
use std::marker::PhantomData;

use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use coffer_api::k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use coffer_api::{
    CodecError, FieldError, NameRule, Scope, validate_object_meta, validate_object_meta_update,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::{AGE, ApiKind, causes};
use crate::status::Cause;

/// One custom kind.
pub trait CustomDef: Send + Sync + 'static {
    /// The group.
    const GROUP: &'static str;
    /// The stored (and preferred) version.
    const VERSION: &'static str;
    /// `group/version` of [`CustomDef::VERSION`].
    const API_VERSION: &'static str;
    /// Other versions served with the same fields.
    const ALSO_SERVED: &'static [&'static str];
    /// The kind.
    const KIND: &'static str;
    /// The plural resource.
    const RESOURCE: &'static str;
    /// Namespaced (else cluster-scoped).
    const NAMESPACED: bool;
}

/// An object of a custom kind.
pub struct Custom<D> {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// Every other top-level field (`spec`, `status`, ...).
    pub fields: Map<String, Value>,
    kind: PhantomData<D>,
}

impl<D> Clone for Custom<D> {
    fn clone(&self) -> Self {
        Custom {
            metadata: self.metadata.clone(),
            fields: self.fields.clone(),
            kind: PhantomData,
        }
    }
}

impl<D> PartialEq for Custom<D> {
    fn eq(&self, other: &Self) -> bool {
        self.metadata == other.metadata && self.fields == other.fields
    }
}

tokio::task_local! {
    /// The version a request named in its path (`/apis/<group>/<version>/...`): objects are
    /// answered in it when it is one of their served versions. Set by [`served_version`].
    static SERVED_VERSION: String;
}

/// Runs `fut` (a request, or a watch stream's task) answering custom objects in `version`.
pub async fn served_version<F: std::future::Future>(version: String, fut: F) -> F::Output {
    SERVED_VERSION.scope(version, fut).await
}

/// The version the current request is served in, if one was set.
pub fn current_served_version() -> Option<String> {
    SERVED_VERSION.try_with(Clone::clone).ok()
}

impl<D: CustomDef> Custom<D> {
    fn to_map(&self, api_version: &str) -> Result<Map<String, Value>, serde_json::Error> {
        let mut map = Map::new();
        map.insert("apiVersion".to_owned(), json!(api_version));
        map.insert("kind".to_owned(), json!(D::KIND));
        map.insert("metadata".to_owned(), serde_json::to_value(&self.metadata)?);
        for (k, v) in &self.fields {
            map.insert(k.clone(), v.clone());
        }
        Ok(map)
    }
}

impl<D: CustomDef> Serialize for Custom<D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let served = SERVED_VERSION
            .try_with(|v| {
                D::ALSO_SERVED
                    .contains(&v.as_str())
                    .then(|| format!("{}/{v}", D::GROUP))
            })
            .ok()
            .flatten();
        self.to_map(served.as_deref().unwrap_or(D::API_VERSION))
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de, D: CustomDef> Deserialize<'de> for Custom<D> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        let mut fields = Map::deserialize(deserializer)?;
        fields.remove("apiVersion");
        fields.remove("kind");
        let metadata = match fields.remove("metadata") {
            Some(m) => serde_json::from_value(m).map_err(serde::de::Error::custom)?,
            None => ObjectMeta::default(),
        };
        Ok(Custom {
            metadata,
            fields,
            kind: PhantomData,
        })
    }
}

/// k8s-openapi's `Resource`. Its `Scope` type is not read by Coffer (which scopes by
/// [`CustomDef::NAMESPACED`] and the discovery table), so every custom kind names one.
impl<D: CustomDef> Resource for Custom<D> {
    const API_VERSION: &'static str = D::API_VERSION;
    const GROUP: &'static str = D::GROUP;
    const KIND: &'static str = D::KIND;
    const VERSION: &'static str = D::VERSION;
    const URL_PATH_SEGMENT: &'static str = D::RESOURCE;
    type Scope = NamespaceResourceScope;
}

impl<D: CustomDef> Metadata for Custom<D> {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<D: CustomDef> ApiKind for Custom<D> {
    const RESOURCE: &'static str = D::RESOURCE;
    const API_GROUP: &'static str = D::GROUP;

    fn served_api_version() -> Cow<'static, str> {
        match current_served_version() {
            Some(v) if D::ALSO_SERVED.contains(&v.as_str()) => {
                Cow::Owned(format!("{}/{v}", D::GROUP))
            }
            _ => Cow::Borrowed(D::API_VERSION),
        }
    }

    fn accepts_api_version(version: &str) -> bool {
        version == D::API_VERSION
            || version
                .strip_prefix(D::GROUP)
                .and_then(|v| v.strip_prefix('/'))
                .is_some_and(|v| D::ALSO_SERVED.contains(&v))
    }

    /// Always the stored version, whatever the request's.
    fn encode(&self) -> Vec<u8> {
        let map = self
            .to_map(D::API_VERSION)
            .expect("BUG: ObjectMeta always serializes");
        serde_json::to_vec(&map).expect("BUG: a JSON map always serializes")
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::Json {
            line: e.line(),
            column: e.column(),
        })
    }

    /// The status subresource: writes to the object keep the stored status. `generation`
    /// starts at 1 and grows when `spec` changes, as for custom resources in Kubernetes.
    fn normalise(&mut self, old: Option<&Self>) {
        self.metadata.generation = match old {
            None => Some(1),
            Some(o) if o.fields.get("spec") != self.fields.get("spec") => {
                Some(o.metadata.generation.unwrap_or(0) + 1)
            }
            Some(o) => o.metadata.generation,
        };
        match old.and_then(|o| o.fields.get("status")) {
            Some(status) => {
                self.fields.insert("status".to_owned(), status.clone());
            }
            None if old.is_some() => {
                self.fields.remove("status");
            }
            None => {}
        }
    }

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        let scope = if D::NAMESPACED {
            Scope::Namespaced
        } else {
            Scope::Cluster
        };
        let mut errs = old
            .map(|o| validate_object_meta_update(&self.metadata, &o.metadata))
            .unwrap_or_default();
        errs.extend(validate_object_meta(
            &self.metadata,
            scope,
            NameRule::Dns1123Subdomain,
        ));
        match self.fields.get("spec") {
            Some(Value::Object(_)) => {}
            Some(other) => errs.push(FieldError::invalid(
                "spec",
                other.to_string().as_str(),
                "must be an object",
            )),
            None => errs.push(FieldError::required("spec", "")),
        }
        causes(errs)
    }

    const STATUS_SUBRESOURCE: bool = true;

    fn status(&self) -> Option<Value> {
        self.fields.get("status").cloned()
    }

    fn set_status(&mut self, status: Option<Value>) {
        match status {
            Some(s) => {
                self.fields.insert("status".to_owned(), s);
            }
            None => {
                self.fields.remove("status");
            }
        }
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        &[AGE]
    }

    fn cells(&self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! custom_kind {
    ($name:ident, $group:literal, $version:literal, [$($also:literal),*], $kind:literal, $resource:literal, $namespaced:literal) => {
        #[doc = concat!("`", $group, "/", $version, "` `", $kind, "`.")]
        pub struct $name;

        impl CustomDef for $name {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const ALSO_SERVED: &'static [&'static str] = &[$($also),*];
            const KIND: &'static str = $kind;
            const RESOURCE: &'static str = $resource;
            const NAMESPACED: bool = $namespaced;
        }
    };
}

/// External Secrets Operator's group.
pub const ESO_GROUP: &str = "external-secrets.io";
/// Coffer's own group.
pub const COFFER_GROUP: &str = "coffer.dev";

custom_kind!(
    SecretStoreDef,
    "external-secrets.io",
    "v1",
    ["v1beta1"],
    "SecretStore",
    "secretstores",
    true
);
custom_kind!(
    ClusterSecretStoreDef,
    "external-secrets.io",
    "v1",
    ["v1beta1"],
    "ClusterSecretStore",
    "clustersecretstores",
    false
);
custom_kind!(
    ExternalSecretDef,
    "external-secrets.io",
    "v1",
    ["v1beta1"],
    "ExternalSecret",
    "externalsecrets",
    true
);
custom_kind!(
    ClusterExternalSecretDef,
    "external-secrets.io",
    "v1",
    ["v1beta1"],
    "ClusterExternalSecret",
    "clusterexternalsecrets",
    false
);
custom_kind!(
    SecretRotationDef,
    "coffer.dev",
    "v1",
    [],
    "SecretRotation",
    "secretrotations",
    true
);

/// `external-secrets.io` `SecretStore`.
pub type SecretStore = Custom<SecretStoreDef>;
/// `external-secrets.io` `ClusterSecretStore`.
pub type ClusterSecretStore = Custom<ClusterSecretStoreDef>;
/// `external-secrets.io` `ExternalSecret`.
pub type ExternalSecret = Custom<ExternalSecretDef>;
/// `external-secrets.io` `ClusterExternalSecret`.
pub type ClusterExternalSecret = Custom<ClusterExternalSecretDef>;
/// `coffer.dev` `SecretRotation`.
pub type SecretRotation = Custom<SecretRotationDef>;
