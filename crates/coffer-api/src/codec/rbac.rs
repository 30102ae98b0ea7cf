//! Conversions for `rbac.authorization.k8s.io/v1` (Role, ClusterRole and their bindings),
//! stored by kube-apiserver as protobuf like the core kinds. Field lists follow `k8s.io/api`
//! `rbac/v1/generated.proto`; Go's non-pointer strings (`Subject.apiGroup`,
//! `Subject.namespace`, every `RoleRef` field) are always written.

use k8s_openapi::api::rbac::v1 as api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::api::rbac::v1 as pb;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;

use super::convert::{FromProto, ToProto, always, list, nonempty, unlist};

fn rules_to(rules: &Option<Vec<api::PolicyRule>>) -> Vec<pb::PolicyRule> {
    list(rules, |r| pb::PolicyRule {
        verbs: r.verbs.clone(),
        api_groups: r.api_groups.clone().unwrap_or_default(),
        resources: r.resources.clone().unwrap_or_default(),
        resource_names: r.resource_names.clone().unwrap_or_default(),
        non_resource_ur_ls: r.non_resource_urls.clone().unwrap_or_default(),
    })
}

fn rules_from(rules: Vec<pb::PolicyRule>) -> Option<Vec<api::PolicyRule>> {
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    unlist(rules, |r| api::PolicyRule {
        verbs: r.verbs,
        api_groups: some(r.api_groups),
        resources: some(r.resources),
        resource_names: some(r.resource_names),
        non_resource_urls: some(r.non_resource_ur_ls),
    })
}

fn subjects_to(subjects: &Option<Vec<api::Subject>>) -> Vec<pb::Subject> {
    list(subjects, |s| pb::Subject {
        kind: Some(s.kind.clone()),
        api_group: always(&s.api_group),
        name: Some(s.name.clone()),
        namespace: always(&s.namespace),
    })
}

fn subjects_from(subjects: Vec<pb::Subject>) -> Option<Vec<api::Subject>> {
    unlist(subjects, |s| api::Subject {
        kind: s.kind.unwrap_or_default(),
        api_group: nonempty(s.api_group),
        name: s.name.unwrap_or_default(),
        namespace: nonempty(s.namespace),
    })
}

fn role_ref_to(r: &api::RoleRef) -> pb::RoleRef {
    pb::RoleRef {
        api_group: Some(r.api_group.clone()),
        kind: Some(r.kind.clone()),
        name: Some(r.name.clone()),
    }
}

fn role_ref_from(r: Option<pb::RoleRef>) -> api::RoleRef {
    let r = r.unwrap_or_default();
    api::RoleRef {
        api_group: r.api_group.unwrap_or_default(),
        kind: r.kind.unwrap_or_default(),
        name: r.name.unwrap_or_default(),
    }
}

fn selector_to(s: &meta::LabelSelector) -> pbmeta::LabelSelector {
    pbmeta::LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: list(&s.match_expressions, |e| pbmeta::LabelSelectorRequirement {
            key: Some(e.key.clone()),
            operator: Some(e.operator.clone()),
            values: e.values.clone().unwrap_or_default(),
        }),
    }
}

fn selector_from(s: pbmeta::LabelSelector) -> meta::LabelSelector {
    meta::LabelSelector {
        match_labels: (!s.match_labels.is_empty()).then_some(s.match_labels),
        match_expressions: unlist(s.match_expressions, |e| meta::LabelSelectorRequirement {
            key: e.key.unwrap_or_default(),
            operator: e.operator.unwrap_or_default(),
            values: (!e.values.is_empty()).then_some(e.values),
        }),
    }
}

impl ToProto for api::Role {
    type Proto = pb::Role;
    fn to_proto(&self) -> pb::Role {
        pb::Role {
            metadata: Some(self.metadata.to_proto()),
            rules: rules_to(&self.rules),
        }
    }
}

impl FromProto<pb::Role> for api::Role {
    fn from_proto(p: pb::Role) -> Self {
        api::Role {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            rules: rules_from(p.rules),
        }
    }
}

impl ToProto for api::ClusterRole {
    type Proto = pb::ClusterRole;
    fn to_proto(&self) -> pb::ClusterRole {
        pb::ClusterRole {
            metadata: Some(self.metadata.to_proto()),
            rules: rules_to(&self.rules),
            aggregation_rule: self.aggregation_rule.as_ref().map(|a| pb::AggregationRule {
                cluster_role_selectors: list(&a.cluster_role_selectors, selector_to),
            }),
        }
    }
}

impl FromProto<pb::ClusterRole> for api::ClusterRole {
    fn from_proto(p: pb::ClusterRole) -> Self {
        api::ClusterRole {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            rules: rules_from(p.rules),
            aggregation_rule: p.aggregation_rule.map(|a| api::AggregationRule {
                cluster_role_selectors: unlist(a.cluster_role_selectors, selector_from),
            }),
        }
    }
}

impl ToProto for api::RoleBinding {
    type Proto = pb::RoleBinding;
    fn to_proto(&self) -> pb::RoleBinding {
        pb::RoleBinding {
            metadata: Some(self.metadata.to_proto()),
            subjects: subjects_to(&self.subjects),
            role_ref: Some(role_ref_to(&self.role_ref)),
        }
    }
}

impl FromProto<pb::RoleBinding> for api::RoleBinding {
    fn from_proto(p: pb::RoleBinding) -> Self {
        api::RoleBinding {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            subjects: subjects_from(p.subjects),
            role_ref: role_ref_from(p.role_ref),
        }
    }
}

impl ToProto for api::ClusterRoleBinding {
    type Proto = pb::ClusterRoleBinding;
    fn to_proto(&self) -> pb::ClusterRoleBinding {
        pb::ClusterRoleBinding {
            metadata: Some(self.metadata.to_proto()),
            subjects: subjects_to(&self.subjects),
            role_ref: Some(role_ref_to(&self.role_ref)),
        }
    }
}

impl FromProto<pb::ClusterRoleBinding> for api::ClusterRoleBinding {
    fn from_proto(p: pb::ClusterRoleBinding) -> Self {
        api::ClusterRoleBinding {
            metadata: meta::ObjectMeta::from_proto(p.metadata.unwrap_or_default()),
            subjects: subjects_from(p.subjects),
            role_ref: role_ref_from(p.role_ref),
        }
    }
}
