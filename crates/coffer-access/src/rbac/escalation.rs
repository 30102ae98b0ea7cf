//! Privilege-escalation prevention (`reference/k8s-api.md` §15.4, §18.4): whoever creates or
//! updates a Role, ClusterRole or binding must already hold what it grants, unless they are in
//! `system:masters` or may `escalate` (roles) or `bind` (the referenced role).
//!
//! Sources: kubernetes `pkg/registry/rbac/validation/rule.go` (`ConfirmNoEscalation`),
//! `staging/src/k8s.io/component-helpers/auth/rbac/validation/policy_comparator.go`
//! (`Covers`, `BreakdownRule`), `pkg/registry/rbac/validation/policy_compact.go`
//! (`CompactRules`), `pkg/apis/rbac/v1/evaluation_helpers.go` (`CompactString`) and
//! `pkg/registry/rbac/escalation_check.go` (the `escalate` / `bind` shortcuts).
//!
//! The order the server applies these checks in is in the `rbac` module docs.

use std::collections::BTreeSet;
use std::collections::HashMap;

use coffer_api::go_quote;
use coffer_api::k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

use super::decision::aggregate_texts;
use super::policy::{Policy, Visit};
use super::rules::{ALL, list, non_resource_url_covers};
use crate::attributes::ResourceAttributes;
use crate::user::UserInfo;

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The reason kube gives when someone without full authority sets an `aggregationRule`.
pub const AGGREGATION_RULE_FORBIDDEN: &str =
    "must have cluster-admin privileges to use the aggregationRule";

/// Rules the user would grant without holding them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalation {
    /// The missing rules, compacted, as kube's `CompactString`, sorted and de-duplicated.
    pub missing: Vec<String>,
    /// Resolution errors met while collecting the user's rules (registry wording).
    pub resolution_errors: Vec<String>,
}

impl Escalation {
    /// The 403 message kube-apiserver sends (§15.4, §18.4):
    /// `roles.rbac.authorization.k8s.io "r" is forbidden: user "bob" (groups=["devs"
    /// "system:authenticated"]) is attempting to grant RBAC permissions not currently held:`
    /// then one missing rule per line, then `; resolution errors: [...]` when there were any.
    ///
    /// `resource_kind` is `roles`, `clusterroles`, `rolebindings` or `clusterrolebindings`;
    /// an empty `name` drops the quoted name, as apimachinery's `NewForbidden` does.
    pub fn message(&self, resource_kind: &str, name: &str, user: &UserInfo) -> String {
        let resource = format!("{resource_kind}.{RBAC_GROUP}");
        let reason = self.reason(user);
        if name.is_empty() {
            format!("{resource} is forbidden: {reason}")
        } else {
            format!("{resource} {} is forbidden: {reason}", go_quote(name))
        }
    }

    /// The reason alone, without the `<resource> "<name>" is forbidden: ` prefix.
    pub fn reason(&self, user: &UserInfo) -> String {
        let mut msg = format!(
            "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            go_quote(&user.name),
            go_quote_list(&user.groups),
            self.missing.join("\n")
        );
        if !self.resolution_errors.is_empty() {
            let errors = aggregate_texts(&self.resolution_errors);
            msg.push_str(&format!("; resolution errors: [{errors}]"));
        }
        msg
    }
}

impl Policy {
    /// Checks that `user` already holds every permission in `rules` within `namespace` (`""`:
    /// cluster-wide, i.e. ClusterRoleBindings only): each verb × group × resource × name and
    /// each verb × non-resource URL of `rules` must be covered by one of the user's rules.
    /// Members of `system:masters` always pass (kube's `EscalationAllowed`).
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        rules: &[PolicyRule],
    ) -> Result<(), Escalation> {
        if user.is_master() {
            return Ok(());
        }
        let mut owner = Vec::new();
        let mut errors = Vec::new();
        self.visit(user, namespace, |v| match v {
            Visit::Rule(r) => owner.push(r),
            Visit::Error(e) => errors.push(e.registry_message()),
        });
        let missing = uncovered(&owner, rules);
        if missing.is_empty() {
            return Ok(());
        }
        let described: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
        Err(Escalation {
            missing: described.into_iter().collect(),
            resolution_errors: errors,
        })
    }
}

/// The attributes of kube's `escalate` shortcut for a write to `roles` or `clusterroles` in
/// the RBAC group: verb `escalate`, the request's namespace and name (empty on create, so a
/// rule restricted by resourceNames never allows creating). `None` for other resources.
pub fn escalate_attributes(request: &ResourceAttributes) -> Option<ResourceAttributes> {
    let is_role = matches!(request.resource.as_str(), "roles" | "clusterroles");
    (request.group == RBAC_GROUP && is_role).then(|| ResourceAttributes {
        verb: "escalate".to_owned(),
        group: request.group.clone(),
        version: ALL.to_owned(),
        resource: request.resource.clone(),
        subresource: String::new(),
        namespace: request.namespace.clone(),
        name: request.name.clone(),
    })
}

/// The attributes of kube's `bind` shortcut for a binding referencing `role_ref`, created in
/// `binding_namespace` (`""` for a ClusterRoleBinding): verb `bind` on `roles` or
/// `clusterroles` named by the roleRef. `None` for an unknown roleRef kind.
pub fn bind_attributes(role_ref: &RoleRef, binding_namespace: &str) -> Option<ResourceAttributes> {
    let resource = match role_ref.kind.as_str() {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        _ => return None,
    };
    Some(ResourceAttributes {
        verb: "bind".to_owned(),
        group: role_ref.api_group.clone(),
        version: String::new(),
        resource: resource.to_owned(),
        subresource: String::new(),
        namespace: binding_namespace.to_owned(),
        name: role_ref.name.clone(),
    })
}

/// `*` on `*.*` plus `*` on every non-resource URL: what setting an `aggregationRule` needs.
pub fn full_authority() -> Vec<PolicyRule> {
    let all = vec![ALL.to_owned()];
    vec![
        PolicyRule {
            verbs: all.clone(),
            api_groups: Some(all.clone()),
            resources: Some(all.clone()),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: all.clone(),
            non_resource_urls: Some(all),
            ..PolicyRule::default()
        },
    ]
}

/// kube's `CompactString`: `{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}`,
/// fields present only when non-empty, string lists in Go `%q` form.
pub fn compact_string(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, values) in [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
        ("ResourceNames", list(&rule.resource_names)),
        ("Verbs", rule.verbs.as_slice()),
    ] {
        if !values.is_empty() {
            parts.push(format!("{label}:{}", go_quote_list(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[{}]", quoted.join(" "))
}

/// kube's `Covers`: every servant rule broken down to one verb, group, resource and name (or
/// one verb and URL), minus those some owner rule covers.
fn uncovered(owner: &[&PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

/// kube's `BreakdownRule`: groups × resources × verbs [× names], then URLs × verbs.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| Some(vec![s.clone()]);
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    verbs: vec![verb.clone()],
                    api_groups: one(group),
                    resources: one(resource),
                    ..PolicyRule::default()
                };
                let names = list(&rule.resource_names);
                for name in names {
                    out.push(PolicyRule {
                        resource_names: one(name),
                        ..base.clone()
                    });
                }
                if names.is_empty() {
                    out.push(base);
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
    }
    out
}

/// kube's `ruleCovers` for an owner rule and a broken-down servant rule.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let has = |set: &[String], v: &str| set.iter().any(|s| s == v);
    let has_all = |set: &[String], items: &[String]| items.iter().all(|i| has(set, i));
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let owner_groups = list(&owner.api_groups);
    let groups = has(owner_groups, ALL) || has_all(owner_groups, list(&sub.api_groups));
    let owner_resources = list(&owner.resources);
    let resources = has(owner_resources, ALL)
        || list(&sub.resources).iter().all(|r| {
            has(owner_resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(owner_resources, &format!("*/{sub}")))
        });
    let owner_urls = list(&owner.non_resource_urls);
    let urls = list(&sub.non_resource_urls)
        .iter()
        .all(|u| owner_urls.iter().any(|o| non_resource_url_covers(o, u)));
    let owner_names = list(&owner.resource_names);
    // A servant rule without names needs an owner rule without names.
    let sub_names = list(&sub.resource_names);
    let names =
        owner_names.is_empty() || (!sub_names.is_empty() && has_all(owner_names, sub_names));
    verbs && groups && resources && urls && names
}

/// kube's `CompactRules`: rules naming one group and one resource and nothing but verbs are
/// merged per (group, resource), appending verbs in order; the merged rules follow the others.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut by_key: HashMap<(String, String), usize> = HashMap::new();
    for rule in rules {
        let groups = list(&rule.api_groups);
        let resources = list(&rule.resources);
        let is_simple = list(&rule.resource_names).is_empty()
            && list(&rule.non_resource_urls).is_empty()
            && groups.len() == 1
            && resources.len() == 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        let key = (groups[0].clone(), resources[0].clone());
        match by_key.get(&key) {
            Some(&i) => simple[i].verbs.extend(rule.verbs),
            None => {
                by_key.insert(key, simple.len());
                simple.push(rule);
            }
        }
    }
    out.extend(simple);
    out
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
