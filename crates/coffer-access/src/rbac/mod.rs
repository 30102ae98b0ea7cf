//! Kubernetes RBAC (`reference/k8s-api.md` §9.3, §9.4, §15): rule matching, the authorizer
//! over a snapshot ([`Policy`]), SelfSubjectRulesReview, escalation prevention, ClusterRole
//! aggregation, validation and the default roles.
//!
//! Start with [`Policy::new`] over the stored Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings, then ask [`Policy::authorize`] for each request; [`forbidden_message`]
//! words the 403. Writes to RBAC objects are defaulted and validated (`default_*`,
//! `validate_*`), then checked for escalation as below. The server seeds storage with
//! [`bootstrap_cluster_roles`] and [`bootstrap_cluster_role_bindings`] and keeps aggregated
//! ClusterRoles current with [`aggregate`] (or [`aggregate_all`] on a snapshot).
//!
//! # Escalation (§15.4), in kube-apiserver's order
//!
//! * Role or ClusterRole create/update: the ordinary `create`/`update` authorization; then,
//!   unless the user is in `system:masters` or [`escalate_attributes`] of the request is
//!   allowed, [`Policy::confirm_no_escalation`] over the new rules in the object's namespace
//!   (`""` for a ClusterRole); for a ClusterRole whose new or old version has an
//!   `aggregationRule`, the same over [`full_authority`], failing with
//!   [`AGGREGATION_RULE_FORBIDDEN`]. Failures answer 403 with [`Escalation::message`].
//! * RoleBinding or ClusterRoleBinding create/update: unless master or [`bind_attributes`] is
//!   allowed, [`Policy::role_ref_rules`] (a missing role fails with
//!   [`ResolutionError::registry_message`]) then [`Policy::confirm_no_escalation`] in the
//!   binding's namespace.
//! * Updates that change only ownerReferences or finalizers skip both checks.

mod aggregation;
mod bootstrap;
mod decision;
mod escalation;
mod policy;
mod rules;
mod validation;

#[cfg(test)]
mod test_support;

pub use aggregation::{aggregate, aggregate_all};
pub use bootstrap::{
    AGGREGATE_TO_ADMIN, AGGREGATE_TO_EDIT, AGGREGATE_TO_VIEW, AUTOUPDATE_ANNOTATION,
    BOOTSTRAPPING_LABEL, bootstrap_cluster_role_bindings, bootstrap_cluster_roles,
};
pub use decision::{Decision, ResolutionError, RulesReview, forbidden_message};
pub use escalation::{
    AGGREGATION_RULE_FORBIDDEN, Escalation, RBAC_GROUP, bind_attributes, compact_string,
    escalate_attributes, full_authority,
};
pub use policy::{Policy, SERVICE_ACCOUNT_PREFIX};
pub use rules::{
    ALL, api_group_matches, non_resource_url_matches, resource_matches, resource_name_matches,
    rule_allows, rule_allows_non_resource, rule_allows_resource, verb_matches,
};
pub use validation::{
    default_cluster_role_binding, default_role_binding, validate_cluster_role,
    validate_cluster_role_binding, validate_role, validate_role_binding,
};
