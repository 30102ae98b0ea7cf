//! `rbac.authorization.k8s.io/v1`: Role, ClusterRole, RoleBinding, ClusterRoleBinding
//! (`reference/k8s-api.md` §9.3). Validation is `coffer_access`'s; the escalation and bind
//! checks (§15.4) run in the handlers, where the caller's identity is known.

use coffer_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::{AGE, ApiKind, causes};
use crate::status::Cause;

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// kubectl's binding columns (the wide-only Users, Groups and ServiceAccounts have
/// priority 1 upstream; they are left out here).
const BINDING_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "Role",
        "string",
        "RoleRef references a Role or ClusterRole in the current namespace.",
    ),
    AGE,
];

const ROLE_COLUMNS: &[(&str, &str, &str)] = &[(
    "Created At",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)];

impl ApiKind for Role {
    const RESOURCE: &'static str = "roles";
    const API_GROUP: &'static str = RBAC_GROUP;

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(interim::validate(
            &self.metadata,
            old.map(|o| &o.metadata),
            coffer_api::Scope::Namespaced,
        ))
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        ROLE_COLUMNS
    }

    fn cells(&self) -> Vec<Value> {
        vec![created_at(&self.metadata)]
    }

    const AGE_COLUMN: bool = false;
}

impl ApiKind for ClusterRole {
    const RESOURCE: &'static str = "clusterroles";
    const API_GROUP: &'static str = RBAC_GROUP;

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(interim::validate(
            &self.metadata,
            old.map(|o| &o.metadata),
            coffer_api::Scope::Cluster,
        ))
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        ROLE_COLUMNS
    }

    fn cells(&self) -> Vec<Value> {
        vec![created_at(&self.metadata)]
    }

    const AGE_COLUMN: bool = false;
}

impl ApiKind for RoleBinding {
    const RESOURCE: &'static str = "rolebindings";
    const API_GROUP: &'static str = RBAC_GROUP;

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(interim::validate(
            &self.metadata,
            old.map(|o| &o.metadata),
            coffer_api::Scope::Namespaced,
        ))
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        BINDING_COLUMNS
    }

    fn cells(&self) -> Vec<Value> {
        vec![json!(format!(
            "{}/{}",
            self.role_ref.kind, self.role_ref.name
        ))]
    }
}

impl ApiKind for ClusterRoleBinding {
    const RESOURCE: &'static str = "clusterrolebindings";
    const API_GROUP: &'static str = RBAC_GROUP;

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(interim::validate(
            &self.metadata,
            old.map(|o| &o.metadata),
            coffer_api::Scope::Cluster,
        ))
    }

    fn columns() -> &'static [(&'static str, &'static str, &'static str)] {
        BINDING_COLUMNS
    }

    fn cells(&self) -> Vec<Value> {
        vec![json!(format!(
            "{}/{}",
            self.role_ref.kind, self.role_ref.name
        ))]
    }
}

fn created_at(meta: &ObjectMeta) -> Value {
    json!(
        meta.creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default()
    )
}

// Until coffer-access's RBAC validation lands: metadata rules only.
mod interim {
    use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use coffer_api::{
        FieldError, NameRule, Scope, validate_object_meta, validate_object_meta_update,
    };

    pub fn validate(new: &ObjectMeta, old: Option<&ObjectMeta>, scope: Scope) -> Vec<FieldError> {
        let mut errs = old
            .map(|o| validate_object_meta_update(new, o))
            .unwrap_or_default();
        errs.extend(validate_object_meta(new, scope, NameRule::PathSegment));
        errs
    }
}
