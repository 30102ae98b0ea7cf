//! Field paths and field sets as structured-merge-diff models them, and their `FieldsV1` form
//! (`metadata.managedFields[].fieldsV1`, `reference/k8s-api.md` §11.4).
//!
//! A path is a list of elements: a struct field or map key (`f:data`), an item of a keyed list
//! (`k:{"uid":"…"}`), an item of a set list (`v:"finalizer"`) or a list index (`i:0`). A set is
//! the paths it holds as members. In `FieldsV1` each element is a JSON key, a member with no
//! children is `{}`, and a member that also has children says so with `".": {}` (upstream
//! `fieldpath/serialize.go`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PathElement {
    /// A struct field or a map key: `f:<name>`.
    Field(String),
    /// An item of a keyed (`listType=map`) list, named by its key fields: `k:<json>`, the JSON
    /// object of the key fields with sorted names, compact.
    Key(String),
    /// An item of a set (`listType=set`) list: `v:<json>`.
    Value(String),
    /// An item of a list by position: `i:<n>` (only seen in sets decoded from elsewhere).
    Index(usize),
}

impl PathElement {
    /// The `FieldsV1` key for this element.
    pub fn fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(json) => format!("k:{json}"),
            PathElement::Value(json) => format!("v:{json}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn parse(key: &str) -> Result<Self, FieldsV1Error> {
        let bad = || FieldsV1Error(format!("unknown path element {key:?}"));
        let (prefix, rest) = key.split_once(':').ok_or_else(bad)?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "k" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                let Value::Object(fields) = v else {
                    return Err(bad());
                };
                Ok(PathElement::Key(key_json(
                    fields.iter().map(|(k, v)| (k.as_str(), v)),
                )))
            }
            "v" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                Ok(PathElement::Value(v.to_string()))
            }
            "i" => rest.parse().map(PathElement::Index).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// `.name`, `[uid="x"]`, `[="v"]`, `[0]`: structured-merge-diff's `PathElement.String`, the
/// form conflict messages use.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(json) => {
                let fields: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(json) => {
                let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                write!(f, "[={}]", value_string(&v))
            }
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// structured-merge-diff's `value.ToString`: strings quoted, other scalars plain.
fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// The compact JSON of a list item's key fields, names sorted (`{"name":"a","port":80}`).
pub(crate) fn key_json<'a>(fields: impl Iterator<Item = (&'a str, &'a Value)>) -> String {
    let sorted: BTreeMap<&str, &Value> = fields.collect();
    let parts: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_owned())))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A path from the object's root to one field or item.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<PathElement>);

impl FieldPath {
    /// The path of struct fields or map keys, e.g. `["data", "password"]`.
    pub fn fields(names: &[&str]) -> Self {
        FieldPath(
            names
                .iter()
                .map(|n| PathElement::Field((*n).to_owned()))
                .collect(),
        )
    }

    /// Whether `self` starts with `prefix` (or equals it).
    pub fn starts_with(&self, prefix: &[PathElement]) -> bool {
        self.0.starts_with(prefix)
    }
}

/// `.data.password`: how kube names a field in a conflict.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A set of field paths (structured-merge-diff's `fieldpath.Set`, members only: a path whose
/// children are members is not itself a member unless inserted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// Adds a path.
    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    /// Whether the path is a member.
    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The members in order.
    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// Members of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Whether some member is `prefix` or lies under it.
    pub fn has_prefix(&self, prefix: &[PathElement]) -> bool {
        self.0
            .range(FieldPath(prefix.to_vec())..)
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }

    /// Members for which `keep` is true.
    pub fn filter(&self, keep: impl Fn(&FieldPath) -> bool) -> FieldSet {
        FieldSet(self.0.iter().filter(|p| keep(p)).cloned().collect())
    }

    /// The `FieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        fn render(node: &Node) -> Value {
            let mut out = Map::new();
            if node.member && !node.children.is_empty() {
                out.insert(".".to_owned(), Value::Object(Map::new()));
            }
            for (k, child) in &node.children {
                out.insert(k.clone(), render(child));
            }
            Value::Object(out)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for e in &path.0 {
                node = node.children.entry(e.fields_v1_key()).or_default();
            }
            node.member = true;
        }
        render(&root)
    }

    /// Reads a `FieldsV1` JSON value.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldsV1Error> {
        fn walk(
            obj: &Map<String, Value>,
            path: &mut Vec<PathElement>,
            out: &mut FieldSet,
        ) -> Result<(), FieldsV1Error> {
            for (k, v) in obj {
                if k == "." {
                    if !path.is_empty() {
                        out.insert(FieldPath(path.clone()));
                    }
                    continue;
                }
                let Value::Object(child) = v else {
                    return Err(FieldsV1Error(format!("{k:?} is not an object")));
                };
                path.push(PathElement::parse(k)?);
                if child.is_empty() {
                    out.insert(FieldPath(path.clone()));
                } else {
                    walk(child, path, out)?;
                }
                path.pop();
            }
            Ok(())
        }
        let Value::Object(obj) = value else {
            return Err(FieldsV1Error("fieldsV1 is not an object".to_owned()));
        };
        let mut out = FieldSet::new();
        walk(obj, &mut Vec::new(), &mut out)?;
        Ok(out)
    }
}

/// A `fieldsV1` value that is not a valid field set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid fieldsV1: {0}")]
pub struct FieldsV1Error(String);
