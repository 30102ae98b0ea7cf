//! The OpenAPI v3 document of `rbac.authorization.k8s.io/v1` (for `kubectl explain role`
//! and kubectl's check that the server validates fields), descriptions from `k8s.io/api`.

use serde_json::{Value, json};

use crate::discovery::group_version;
use crate::kinds::RBAC_GROUP;
use crate::openapi::{Api, group_kind_schema, object_meta_schema, paths_for};

const SCHEMA: &str = "io.k8s.api.rbac.v1";

fn strings(description: &str) -> Value {
    json!({"type": "array", "description": description, "items": {"type": "string", "default": ""}})
}

fn reference(name: &str, description: &str) -> Value {
    json!({"allOf": [{"$ref": format!("#/components/schemas/{SCHEMA}.{name}")}], "description": description})
}

fn array_of(name: &str, description: &str) -> Value {
    json!({"type": "array", "description": description,
        "items": {"allOf": [{"$ref": format!("#/components/schemas/{SCHEMA}.{name}")}], "default": {}}})
}

/// The whole group document.
pub fn document() -> Value {
    let api = Api {
        group: RBAC_GROUP,
        version: "v1",
        prefix: "/apis/rbac.authorization.k8s.io/v1",
        schema: SCHEMA,
    };
    let gv = group_version(RBAC_GROUP, "v1").expect("BUG: rbac/v1 is in the discovery table");
    let mut paths = serde_json::Map::new();
    for r in gv.resources {
        paths.extend(paths_for(&api, r));
    }
    let rules = array_of(
        "PolicyRule",
        "Rules holds all the PolicyRules for this Role",
    );
    let subjects = array_of(
        "Subject",
        "Subjects holds references to the objects the role applies to.",
    );
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Coffer", "version": "rbac.authorization.k8s.io/v1"},
        "paths": paths,
        "components": {"schemas": {
            format!("{SCHEMA}.Role"): group_kind_schema(RBAC_GROUP, "v1", "Role",
                "Role is a namespaced, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding.",
                json!({"rules": rules})),
            format!("{SCHEMA}.ClusterRole"): group_kind_schema(RBAC_GROUP, "v1", "ClusterRole",
                "ClusterRole is a cluster level, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding or ClusterRoleBinding.",
                json!({
                    "rules": array_of("PolicyRule", "Rules holds all the PolicyRules for this ClusterRole"),
                    "aggregationRule": reference("AggregationRule", "AggregationRule is an optional field that describes how to build the Rules for this ClusterRole. If AggregationRule is set, then the Rules are controller managed and direct changes to Rules will be stomped by the controller."),
                })),
            format!("{SCHEMA}.RoleBinding"): group_kind_schema(RBAC_GROUP, "v1", "RoleBinding",
                "RoleBinding references a role, but does not contain it.  It can reference a Role in the same namespace or a ClusterRole in the global namespace. It adds who information via Subjects and namespace information by which namespace it exists in.  RoleBindings in a given namespace only have effect in that namespace.",
                json!({
                    "subjects": subjects.clone(),
                    "roleRef": reference("RoleRef", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
                })),
            format!("{SCHEMA}.ClusterRoleBinding"): group_kind_schema(RBAC_GROUP, "v1", "ClusterRoleBinding",
                "ClusterRoleBinding references a ClusterRole, but not contain it.  It can reference a ClusterRole in the global namespace, and adds who information via Subject.",
                json!({
                    "subjects": subjects,
                    "roleRef": reference("RoleRef", "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
                })),
            format!("{SCHEMA}.PolicyRule"): {
                "type": "object",
                "description": "PolicyRule holds information that describes a policy rule, but does not contain information about who the rule applies to or which namespace the rule applies to.",
                "required": ["verbs"],
                "properties": {
                    "verbs": strings("Verbs is a list of Verbs that apply to ALL the ResourceKinds contained in this rule. '*' represents all verbs."),
                    "apiGroups": strings("APIGroups is the name of the APIGroup that contains the resources.  If multiple API groups are specified, any action requested against one of the enumerated resources in any API group will be allowed. \"\" represents the core API group and \"*\" represents all API groups."),
                    "resources": strings("Resources is a list of resources this rule applies to. '*' represents all resources."),
                    "resourceNames": strings("ResourceNames is an optional white list of names that the rule applies to.  An empty set means that everything is allowed."),
                    "nonResourceURLs": strings("NonResourceURLs is a set of partial urls that a user should have access to.  *s are allowed, but only as the full, final step in the path."),
                },
            },
            format!("{SCHEMA}.Subject"): {
                "type": "object",
                "description": "Subject contains a reference to the object or user identities a role binding applies to.  This can either hold a direct API object reference, or a value for non-objects such as user and group names.",
                "required": ["kind", "name"],
                "properties": {
                    "kind": {"type": "string", "default": "", "description": "Kind of object being referenced. Values defined by this API group are \"User\", \"Group\", and \"ServiceAccount\". If the Authorizer does not recognized the kind value, the Authorizer should report an error."},
                    "apiGroup": {"type": "string", "description": "APIGroup holds the API group of the referenced subject. Defaults to \"\" for ServiceAccount subjects. Defaults to \"rbac.authorization.k8s.io\" for User and Group subjects."},
                    "name": {"type": "string", "default": "", "description": "Name of the object being referenced."},
                    "namespace": {"type": "string", "description": "Namespace of the referenced object.  If the object kind is non-namespace, such as \"User\" or \"Group\", and this value is not empty the Authorizer should report an error."},
                },
            },
            format!("{SCHEMA}.RoleRef"): {
                "type": "object",
                "description": "RoleRef contains information that points to the role being used",
                "required": ["apiGroup", "kind", "name"],
                "properties": {
                    "apiGroup": {"type": "string", "default": "", "description": "APIGroup is the group for the resource being referenced"},
                    "kind": {"type": "string", "default": "", "description": "Kind is the type of resource being referenced"},
                    "name": {"type": "string", "default": "", "description": "Name is the name of resource being referenced"},
                },
            },
            format!("{SCHEMA}.AggregationRule"): {
                "type": "object",
                "description": "AggregationRule describes how to locate ClusterRoles to aggregate into the ClusterRole",
                "properties": {
                    "clusterRoleSelectors": {"type": "array", "description": "ClusterRoleSelectors holds a list of selectors which will be used to find ClusterRoles and create the rules. If any of the selectors match, then the ClusterRole's permissions will be added",
                        "items": {"type": "object", "properties": {
                            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "matchExpressions": {"type": "array", "items": {"type": "object"}},
                        }}},
                },
            },
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": object_meta_schema(),
        }},
    })
}
