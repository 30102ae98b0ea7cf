//! `rbac.authorization.k8s.io/v1`: Role, ClusterRole, RoleBinding, ClusterRoleBinding
//! (`reference/k8s-api.md` §9.3). Validation is `coffer_access`'s; the escalation and bind
//! checks (§15.4) run in the handlers, where the caller's identity is known.

use coffer_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use coffer_access::ResourceAttributes;
use coffer_api::k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

use super::{AGE, Admission, ApiKind, causes};
use crate::status::{ApiError, ApiResult, Cause, GroupResource};

/// The RBAC API group.
pub const RBAC_GROUP: &str = coffer_access::rbac::RBAC_GROUP;

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

    protobuf_storage!();

    fn admit(&self, old: Option<&Self>, ctx: &Admission<'_>) -> ApiResult<()> {
        if gc_only(self, old) {
            return Ok(());
        }
        confirm_role(
            ctx,
            Self::RESOURCE,
            &self.metadata,
            self.rules.as_deref(),
            false,
        )
    }

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(coffer_access::rbac::validate_role(self, old))
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

    protobuf_storage!();

    fn admit(&self, old: Option<&Self>, ctx: &Admission<'_>) -> ApiResult<()> {
        if gc_only(self, old) {
            return Ok(());
        }
        let aggregated = self.aggregation_rule.is_some();
        confirm_role(
            ctx,
            Self::RESOURCE,
            &self.metadata,
            self.rules.as_deref(),
            aggregated,
        )
    }

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(coffer_access::rbac::validate_cluster_role(self, old))
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

    protobuf_storage!();

    fn normalise(&mut self, _old: Option<&Self>) {
        coffer_access::rbac::default_role_binding(self);
    }

    fn admit(&self, old: Option<&Self>, ctx: &Admission<'_>) -> ApiResult<()> {
        if gc_only(self, old) {
            return Ok(());
        }
        confirm_binding(ctx, Self::RESOURCE, &self.metadata, &self.role_ref)
    }

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(coffer_access::rbac::validate_role_binding(self, old))
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

    protobuf_storage!();

    fn normalise(&mut self, _old: Option<&Self>) {
        coffer_access::rbac::default_cluster_role_binding(self);
    }

    fn admit(&self, old: Option<&Self>, ctx: &Admission<'_>) -> ApiResult<()> {
        if gc_only(self, old) {
            return Ok(());
        }
        confirm_binding(ctx, Self::RESOURCE, &self.metadata, &self.role_ref)
    }

    fn validate(&self, old: Option<&Self>) -> Vec<Cause> {
        causes(coffer_access::rbac::validate_cluster_role_binding(
            self, old,
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

/// True for an update that changes only garbage-collection fields (ownerReferences,
/// finalizers), which kube-apiserver exempts from the escalation checks.
fn gc_only<K: ApiKind + PartialEq>(new: &K, old: Option<&K>) -> bool {
    let Some(old) = old else {
        return false;
    };
    let strip = |o: &K| {
        let mut o = o.clone();
        let meta = o.metadata_mut();
        meta.owner_references = None;
        meta.finalizers = None;
        meta.resource_version = None;
        meta.managed_fields = None;
        o
    };
    strip(new) == strip(old)
}

/// Creating or updating a Role or ClusterRole (§15.4): allowed to `system:masters`, to holders
/// of `escalate` on the role, or when the caller already holds every rule it grants; an
/// `aggregationRule` needs full authority.
fn confirm_role(
    ctx: &Admission<'_>,
    resource: &'static str,
    meta: &ObjectMeta,
    rules: Option<&[PolicyRule]>,
    aggregated: bool,
) -> ApiResult<()> {
    if ctx.user.is_master() {
        return Ok(());
    }
    let name = meta.name.clone().unwrap_or_default();
    let request = ResourceAttributes {
        verb: ctx.verb.to_owned(),
        group: RBAC_GROUP.to_owned(),
        version: "v1".to_owned(),
        resource: resource.to_owned(),
        subresource: String::new(),
        namespace: ctx.namespace.to_owned(),
        name: if ctx.verb == "create" {
            String::new()
        } else {
            name.clone()
        },
    };
    if let Some(escalate) = coffer_access::rbac::escalate_attributes(&request)
        && crate::authz::allows(ctx.state, ctx.user, escalate)
    {
        return Ok(());
    }
    let policy = ctx.state.rbac.policy();
    let forbidden = |reason: String| ApiError::Forbidden {
        resource: Some((RBAC_GROUP.to_owned(), resource.to_owned())),
        name: Some(name.clone()),
        reason,
    };
    if aggregated
        && policy
            .confirm_no_escalation(ctx.user, "", &coffer_access::rbac::full_authority())
            .is_err()
    {
        return Err(forbidden(
            coffer_access::rbac::AGGREGATION_RULE_FORBIDDEN.to_owned(),
        ));
    }
    policy
        .confirm_no_escalation(ctx.user, ctx.namespace, rules.unwrap_or_default())
        .map_err(|e| forbidden(e.reason(ctx.user)))
}

/// Creating or updating a binding (§15.4): allowed to `system:masters`, to holders of `bind`
/// on the referenced role, or when the caller already holds every rule of that role. A
/// missing role is 404, as kube-apiserver's registry reports it.
fn confirm_binding(
    ctx: &Admission<'_>,
    resource: &'static str,
    meta: &ObjectMeta,
    role_ref: &RoleRef,
) -> ApiResult<()> {
    if ctx.user.is_master() {
        return Ok(());
    }
    if let Some(bind) = coffer_access::rbac::bind_attributes(role_ref, ctx.namespace)
        && crate::authz::allows(ctx.state, ctx.user, bind)
    {
        return Ok(());
    }
    let policy = ctx.state.rbac.policy();
    let rules = policy
        .role_ref_rules(role_ref, ctx.namespace)
        .map_err(|_| ApiError::NotFound {
            resource: GroupResource {
                group: RBAC_GROUP,
                resource: if role_ref.kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                },
            },
            name: role_ref.name.clone(),
        })?;
    policy
        .confirm_no_escalation(ctx.user, ctx.namespace, rules)
        .map_err(|e| ApiError::Forbidden {
            resource: Some((RBAC_GROUP.to_owned(), resource.to_owned())),
            name: meta.name.clone(),
            reason: e.reason(ctx.user),
        })
}
