//! The RBAC authorizer over one immutable snapshot of Roles, ClusterRoles and their bindings
//! (`reference/k8s-api.md` §15.3).
//!
//! Source: kubernetes `pkg/registry/rbac/validation/rule.go` (`VisitRulesFor`, `appliesTo`,
//! the describers) and `plugin/pkg/auth/authorizer/rbac/rbac.go` (`Authorize`, `RulesFor`).
//!
//! [`Policy::new`] resolves every binding's roleRef once and indexes the bindings by subject
//! (user name, group name; a ServiceAccount subject is indexed under its user name
//! `system:serviceaccount:<ns>:<name>`), separately for ClusterRoleBindings and for the
//! RoleBindings of each namespace. [`Policy::authorize`] then looks up only the bindings that
//! can apply to the user and walks their rules in place: it allocates nothing but the reason
//! string it returns. The order bindings are tried in (user entry, then each group in the
//! user's order; cluster bindings before the namespace's) only decides which binding an allow
//! reason names; kube's informer order is unspecified as well.

use std::collections::HashMap;

use coffer_api::go_quote;
use coffer_api::k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};
use coffer_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::decision::{Decision, ResolutionError, RulesReview, aggregate_texts};
use super::rules::{list, rule_allows};
use crate::attributes::RequestAttributes;
use crate::user::UserInfo;

/// The prefix of ServiceAccount user names.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// An immutable RBAC snapshot that answers authorization questions.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The rules of every Role and ClusterRole, each list stored once.
    rule_sets: Vec<Vec<PolicyRule>>,
    /// ClusterRole name → index into `rule_sets`.
    cluster_roles: HashMap<String, usize>,
    /// Namespace → Role name → index into `rule_sets`.
    roles: HashMap<String, HashMap<String, usize>>,
    /// The ClusterRoleBindings.
    cluster: BindingTable,
    /// Namespace → its RoleBindings.
    namespaced: HashMap<String, BindingTable>,
}

/// The bindings of one scope with their subject index.
#[derive(Clone, Debug, Default)]
struct BindingTable {
    /// In the order given to [`Policy::new`].
    bindings: Vec<Binding>,
    /// User name (ServiceAccount user names included) → binding indexes, ascending.
    users: HashMap<String, Vec<usize>>,
    /// Group name → binding indexes, ascending.
    groups: HashMap<String, Vec<usize>>,
}

/// One binding with its roleRef resolved.
#[derive(Clone, Debug)]
struct Binding {
    /// The subjects in binding order.
    subjects: Vec<SubjectKey>,
    /// Index into `rule_sets`, or why the role could not be found.
    rules: Result<usize, ResolutionError>,
    /// Per subject, the allow reason naming it (kube's describer).
    reasons: Vec<String>,
}

/// A subject reduced to what it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SubjectKey {
    /// Matches the user with this name (User subjects and ServiceAccounts).
    User(String),
    /// Matches members of this group.
    Group(String),
    /// Matches no one (unknown kind, ServiceAccount without a namespace).
    Nobody,
}

impl SubjectKey {
    fn applies_to(&self, user: &UserInfo) -> bool {
        match self {
            Self::User(name) => *name == user.name,
            Self::Group(group) => user.in_group(group),
            Self::Nobody => false,
        }
    }
}

/// One step of the ordered walk over a user's rules.
pub(crate) enum Visit<'a> {
    /// A rule that applies.
    Rule(&'a PolicyRule),
    /// A binding that applies but whose role could not be resolved.
    Error(&'a ResolutionError),
}

impl Policy {
    /// Builds the snapshot from all four kinds. Roles and bindings are taken as stored; an
    /// aggregated ClusterRole contributes the rules it holds (run [`super::aggregate_all`]
    /// first when the aggregation controller has not written them yet).
    pub fn new(
        roles: Vec<Role>,
        cluster_roles: Vec<ClusterRole>,
        role_bindings: Vec<RoleBinding>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
    ) -> Policy {
        let mut policy = Policy::default();
        for cr in cluster_roles {
            let index = policy.push_rules(cr.rules);
            policy
                .cluster_roles
                .insert(cr.metadata.name.unwrap_or_default(), index);
        }
        for role in roles {
            let index = policy.push_rules(role.rules);
            policy
                .roles
                .entry(role.metadata.namespace.unwrap_or_default())
                .or_default()
                .insert(role.metadata.name.unwrap_or_default(), index);
        }
        for crb in cluster_role_bindings {
            let name = crb.metadata.name.unwrap_or_default();
            let rules = policy.resolve(&crb.role_ref, "");
            let subjects = crb.subjects.unwrap_or_default();
            let describe = |s: &Subject| {
                format!(
                    "RBAC: allowed by ClusterRoleBinding {} of {} {} to {}",
                    go_quote(&name),
                    crb.role_ref.kind,
                    go_quote(&crb.role_ref.name),
                    describe_subject(s, "")
                )
            };
            let binding = Binding {
                reasons: subjects.iter().map(describe).collect(),
                subjects: subjects.iter().map(|s| subject_key(s, "")).collect(),
                rules,
            };
            policy.cluster.push(binding);
        }
        for rb in role_bindings {
            let namespace = rb.metadata.namespace.unwrap_or_default();
            let name = rb.metadata.name.unwrap_or_default();
            let rules = policy.resolve(&rb.role_ref, &namespace);
            let subjects = rb.subjects.unwrap_or_default();
            let describe = |s: &Subject| {
                format!(
                    "RBAC: allowed by RoleBinding {} of {} {} to {}",
                    go_quote(&format!("{name}/{namespace}")),
                    rb.role_ref.kind,
                    go_quote(&rb.role_ref.name),
                    describe_subject(s, &namespace)
                )
            };
            let binding = Binding {
                reasons: subjects.iter().map(describe).collect(),
                subjects: subjects
                    .iter()
                    .map(|s| subject_key(s, &namespace))
                    .collect(),
                rules,
            };
            policy
                .namespaced
                .entry(namespace)
                .or_default()
                .push(binding);
        }
        policy
    }

    /// Decides one request. Members of `system:masters` are always allowed, with no reason,
    /// as kube-apiserver's privileged-group authorizer runs before RBAC. Otherwise the
    /// ClusterRoleBindings and, for a namespaced request, the RoleBindings of that namespace
    /// whose subjects match the user are searched for a rule that allows the request.
    pub fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
        if user.is_master() {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let namespace = attrs.namespace();
        let mut saw_error = false;
        let tables = std::iter::once(&self.cluster).chain(
            (!namespace.is_empty())
                .then(|| self.namespaced.get(namespace))
                .flatten(),
        );
        for table in tables {
            for index in table.candidates(user) {
                let binding = &table.bindings[index];
                let rules = match &binding.rules {
                    Ok(set) => &self.rule_sets[*set],
                    Err(_) => {
                        saw_error = true;
                        continue;
                    }
                };
                if rules.iter().any(|r| rule_allows(r, attrs)) {
                    return Decision {
                        allowed: true,
                        reason: binding.reason_for(user).to_owned(),
                    };
                }
            }
        }
        let mut reason = String::new();
        if saw_error {
            let mut errors = Vec::new();
            self.visit(user, namespace, |v| {
                if let Visit::Error(e) = v {
                    errors.push(e.to_string());
                }
            });
            reason = format!("RBAC: {}", aggregate_texts(errors));
        }
        Decision {
            allowed: false,
            reason,
        }
    }

    /// The rules that apply to `user` in `namespace` (SelfSubjectRulesReview, §15.3): those of
    /// every matching ClusterRoleBinding and, when `namespace` is not empty, of every matching
    /// RoleBinding there. Bindings whose role is missing contribute an evaluation error.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesReview {
        let mut review = RulesReview::default();
        let mut errors = Vec::new();
        self.visit(user, namespace, |v| match v {
            Visit::Rule(rule) => {
                if !list(&rule.resources).is_empty() {
                    review.resource_rules.push(ResourceRule {
                        verbs: rule.verbs.clone(),
                        api_groups: non_empty(&rule.api_groups),
                        resources: non_empty(&rule.resources),
                        resource_names: non_empty(&rule.resource_names),
                    });
                }
                if !list(&rule.non_resource_urls).is_empty() {
                    review.non_resource_rules.push(NonResourceRule {
                        verbs: rule.verbs.clone(),
                        non_resource_urls: non_empty(&rule.non_resource_urls),
                    });
                }
            }
            Visit::Error(e) => errors.push(e.to_string()),
        });
        review.evaluation_error = aggregate_texts(errors);
        review
    }

    /// The rules a roleRef points at, as seen from a binding in `binding_namespace` (`""` for
    /// a ClusterRoleBinding): kube's `GetRoleReferenceRules`, used to check that whoever
    /// creates a binding already holds what it grants (§15.4).
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        binding_namespace: &str,
    ) -> Result<&[PolicyRule], ResolutionError> {
        self.resolve(role_ref, binding_namespace)
            .map(|set| self.rule_sets[set].as_slice())
    }

    /// Walks, in binding order, every rule that applies to `user` in `namespace`, and every
    /// resolution error of an applicable binding (kube's `VisitRulesFor`).
    pub(crate) fn visit<'a>(
        &'a self,
        user: &UserInfo,
        namespace: &str,
        mut f: impl FnMut(Visit<'a>),
    ) {
        let tables = std::iter::once(&self.cluster).chain(
            (!namespace.is_empty())
                .then(|| self.namespaced.get(namespace))
                .flatten(),
        );
        for table in tables {
            for binding in &table.bindings {
                if !binding.subjects.iter().any(|s| s.applies_to(user)) {
                    continue;
                }
                match &binding.rules {
                    Ok(set) => self.rule_sets[*set].iter().for_each(|r| f(Visit::Rule(r))),
                    Err(e) => f(Visit::Error(e)),
                }
            }
        }
    }

    fn push_rules(&mut self, rules: Option<Vec<PolicyRule>>) -> usize {
        self.rule_sets.push(rules.unwrap_or_default());
        self.rule_sets.len() - 1
    }

    /// kube's `GetRoleReferenceRules`: a `Role` is looked up in the binding's namespace, a
    /// `ClusterRole` by name; other kinds are errors.
    fn resolve(&self, role_ref: &RoleRef, namespace: &str) -> Result<usize, ResolutionError> {
        let name = &role_ref.name;
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(namespace)
                .and_then(|m| m.get(name))
                .copied()
                .ok_or_else(|| ResolutionError::RoleNotFound(name.clone())),
            "ClusterRole" => self
                .cluster_roles
                .get(name)
                .copied()
                .ok_or_else(|| ResolutionError::ClusterRoleNotFound(name.clone())),
            other => Err(ResolutionError::UnsupportedKind(other.to_owned())),
        }
    }
}

impl BindingTable {
    fn push(&mut self, binding: Binding) {
        let index = self.bindings.len();
        for subject in &binding.subjects {
            let slot = match subject {
                SubjectKey::User(name) => self.users.entry(name.clone()).or_default(),
                SubjectKey::Group(name) => self.groups.entry(name.clone()).or_default(),
                SubjectKey::Nobody => continue,
            };
            if slot.last() != Some(&index) {
                slot.push(index);
            }
        }
        self.bindings.push(binding);
    }

    /// The bindings that may apply to `user` (a binding can come up more than once).
    fn candidates<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = usize> + 'a {
        let by_user = self.users.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten();
        by_user.chain(by_group).copied()
    }
}

impl Binding {
    /// The reason naming the first subject that applies, as kube's `appliesTo` picks it.
    fn reason_for(&self, user: &UserInfo) -> &str {
        let first = self.subjects.iter().position(|s| s.applies_to(user));
        first.map_or("", |i| self.reasons[i].as_str())
    }
}

/// kube's `appliesToUser`, precomputed: a ServiceAccount subject matches the user
/// `system:serviceaccount:<ns>:<name>`, its namespace defaulting to the binding's.
fn subject_key(subject: &Subject, binding_namespace: &str) -> SubjectKey {
    match subject.kind.as_str() {
        "User" => SubjectKey::User(subject.name.clone()),
        "Group" => SubjectKey::Group(subject.name.clone()),
        "ServiceAccount" => {
            let namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => binding_namespace,
            };
            if namespace.is_empty() {
                SubjectKey::Nobody
            } else {
                SubjectKey::User(format!(
                    "{SERVICE_ACCOUNT_PREFIX}{namespace}:{}",
                    subject.name
                ))
            }
        }
        _ => SubjectKey::Nobody,
    }
}

/// kube's `describeSubject`: `Group "devs"`, `User "bob"`, `ServiceAccount "name/namespace"`.
fn describe_subject(subject: &Subject, binding_namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let namespace = match subject.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => binding_namespace,
        };
        let both = format!("{}/{namespace}", subject.name);
        return format!("{} {}", subject.kind, go_quote(&both));
    }
    format!("{} {}", subject.kind, go_quote(&subject.name))
}

fn non_empty(v: &Option<Vec<String>>) -> Option<Vec<String>> {
    v.as_ref().filter(|l| !l.is_empty()).cloned()
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
