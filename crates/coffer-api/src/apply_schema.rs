//! How the fields of each served kind merge and are owned under server-side apply: the parts
//! of kube's OpenAPI schemas that structured-merge-diff reads (struct fields, granular maps,
//! and list types from `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and, where those
//! are absent, `x-kubernetes-patch-strategy: merge` + `x-kubernetes-patch-merge-key`, as
//! kube-openapi's `schemaconv` derives them). Lists are atomic unless they say otherwise, as in
//! kube; custom resources' lists are atomic (CRD structural schemas default to atomic).

/// The type of one node of an object.
#[derive(Debug)]
pub(crate) enum Node {
    /// A scalar: a leaf.
    Scalar,
    /// A list, map or struct owned as a whole (`listType=atomic`, `structType=atomic`).
    Atomic,
    /// A struct with these named fields; other fields are not declared in the schema.
    Struct(&'static [(&'static str, Node)]),
    /// A struct with these named fields whose other fields are free-form, as a custom
    /// resource's objects are treated here: nested objects are structs, lists atomic.
    Open(&'static [(&'static str, Node)]),
    /// A granular map (`data`, `labels`): each key is owned on its own.
    Map(&'static Node),
    /// A list of scalars owned item by item (`listType=set`).
    Set,
    /// A list of objects owned item by item, named by these key fields (`listType=map`).
    Keyed(&'static [&'static str], &'static Node),
}

/// What a child of a node is: its type and whether it is a named (struct) field.
pub(crate) struct Child<'a> {
    pub(crate) node: &'a Node,
    pub(crate) named: bool,
}

impl Node {
    /// The child `key` of an object node; `None` when the schema does not declare it.
    pub(crate) fn child(&self, key: &str) -> Option<Child<'static>> {
        match self {
            Node::Struct(fields) => fields
                .iter()
                .find(|(n, _)| *n == key)
                .map(|(_, node)| Child { node, named: true }),
            Node::Open(fields) => Some(fields.iter().find(|(n, _)| *n == key).map_or(
                Child {
                    node: &OPEN,
                    named: true,
                },
                |(_, node)| Child { node, named: true },
            )),
            Node::Map(elem) => Some(Child {
                node: elem,
                named: false,
            }),
            _ => None,
        }
    }

    /// Whether values of this node are JSON objects merged field by field.
    pub(crate) fn is_object(&self) -> bool {
        matches!(self, Node::Struct(_) | Node::Open(_) | Node::Map(_))
    }

    /// Whether values of this node are lists merged item by item.
    pub(crate) fn is_list(&self) -> bool {
        matches!(self, Node::Set | Node::Keyed(..))
    }
}

/// A free-form object of a custom resource.
const OPEN: Node = Node::Open(&[]);

const STRING_MAP: Node = Node::Map(&Node::Scalar);

const OWNER_REFERENCE: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("blockOwnerDeletion", Node::Scalar),
    ("controller", Node::Scalar),
    ("kind", Node::Scalar),
    ("name", Node::Scalar),
    ("uid", Node::Scalar),
]);

/// `ObjectMeta`: `finalizers` is `listType=set`, `ownerReferences` a map keyed by `uid`,
/// `managedFields` atomic.
const OBJECT_META: Node = Node::Struct(&[
    ("annotations", STRING_MAP),
    ("creationTimestamp", Node::Scalar),
    ("deletionGracePeriodSeconds", Node::Scalar),
    ("deletionTimestamp", Node::Scalar),
    ("finalizers", Node::Set),
    ("generateName", Node::Scalar),
    ("generation", Node::Scalar),
    ("labels", STRING_MAP),
    ("managedFields", Node::Atomic),
    ("name", Node::Scalar),
    ("namespace", Node::Scalar),
    ("ownerReferences", Node::Keyed(&["uid"], &OWNER_REFERENCE)),
    ("resourceVersion", Node::Scalar),
    ("selfLink", Node::Scalar),
    ("uid", Node::Scalar),
]);

const SECRET: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("data", STRING_MAP),
    ("immutable", Node::Scalar),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
    ("stringData", STRING_MAP),
    ("type", Node::Scalar),
]);

const CONFIG_MAP: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("binaryData", STRING_MAP),
    ("data", STRING_MAP),
    ("immutable", Node::Scalar),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
]);

const OBJECT_REFERENCE: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("fieldPath", Node::Scalar),
    ("kind", Node::Scalar),
    ("name", Node::Scalar),
    ("namespace", Node::Scalar),
    ("resourceVersion", Node::Scalar),
    ("uid", Node::Scalar),
]);

/// `secrets` has patch strategy merge on `name` (so it is keyed by `name`);
/// `imagePullSecrets` is `listType=atomic`.
const SERVICE_ACCOUNT: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("automountServiceAccountToken", Node::Scalar),
    ("imagePullSecrets", Node::Atomic),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
    ("secrets", Node::Keyed(&["name"], &OBJECT_REFERENCE)),
]);

const NAMESPACE: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
    ("spec", Node::Struct(&[("finalizers", Node::Atomic)])),
    ("status", Node::Atomic),
]);

/// `rules` is `listType=atomic`.
const ROLE: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
    ("rules", Node::Atomic),
]);

const CLUSTER_ROLE: Node = Node::Struct(&[
    (
        "aggregationRule",
        Node::Struct(&[("clusterRoleSelectors", Node::Atomic)]),
    ),
    ("apiVersion", Node::Scalar),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
    ("rules", Node::Atomic),
]);

/// `subjects` is `listType=atomic`, `roleRef` is `structType=atomic`.
const BINDING: Node = Node::Struct(&[
    ("apiVersion", Node::Scalar),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
    ("roleRef", Node::Atomic),
    ("subjects", Node::Atomic),
]);

const CUSTOM: Node = Node::Open(&[
    ("apiVersion", Node::Scalar),
    ("kind", Node::Scalar),
    ("metadata", OBJECT_META),
]);

/// The merge and ownership rules of one kind.
#[derive(Clone, Copy, Debug)]
pub struct ApplySchema {
    pub(crate) root: &'static Node,
    /// Top-level fields the main resource's writes reset (a status subresource's `status`):
    /// nobody owns them through the main resource (kube's `GetResetFields`).
    pub(crate) reset: &'static [&'static str],
}

impl ApplySchema {
    /// The rules of a built-in kind (`group` empty for core), `None` for other kinds.
    pub fn builtin(group: &str, kind: &str) -> Option<Self> {
        let (root, reset): (&'static Node, &'static [&'static str]) = match (group, kind) {
            ("", "Secret") => (&SECRET, &[]),
            ("", "ConfigMap") => (&CONFIG_MAP, &[]),
            ("", "ServiceAccount") => (&SERVICE_ACCOUNT, &[]),
            ("", "Namespace") => (&NAMESPACE, &["status"]),
            ("rbac.authorization.k8s.io", "Role") => (&ROLE, &[]),
            ("rbac.authorization.k8s.io", "ClusterRole") => (&CLUSTER_ROLE, &[]),
            ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => (&BINDING, &[]),
            _ => return None,
        };
        Some(ApplySchema { root, reset })
    }

    /// The rules of a custom resource: objects merge field by field, lists are atomic, and
    /// with a status subresource `status` is not owned through the main resource.
    pub fn custom(status_subresource: bool) -> Self {
        ApplySchema {
            root: &CUSTOM,
            reset: if status_subresource { &["status"] } else { &[] },
        }
    }
}
