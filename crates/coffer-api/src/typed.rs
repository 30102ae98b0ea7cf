//! Objects (JSON values) walked with their [`Node`] types: the field set of an object, the
//! comparison of two objects, the merge of an applied configuration into a live object and the
//! removal of fields. Each follows structured-merge-diff's `typed` package (`tofieldset.go`,
//! `compare.go`, `merge.go`, `remove.go`).

use serde_json::{Map, Value};

use crate::apply_schema::Node;
use crate::fieldpath::{FieldPath, FieldSet, PathElement, key_json};

/// A value that does not fit the kind's schema. The text names the path, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SchemaError {
    /// The path, e.g. `.spec`.
    pub path: String,
    /// e.g. `field not declared in schema`.
    pub reason: String,
}

fn schema_error(path: &[PathElement], reason: &str) -> SchemaError {
    SchemaError {
        path: FieldPath(path.to_vec()).to_string(),
        reason: reason.to_owned(),
    }
}

/// The path element of a list item of `node` (a set or keyed list).
fn item_element(
    node: &Node,
    item: &Value,
    path: &[PathElement],
) -> Result<PathElement, SchemaError> {
    match node {
        Node::Keyed(keys, _) => {
            let Value::Object(obj) = item else {
                return Err(schema_error(
                    path,
                    "associative list with keys has an element that is not a map",
                ));
            };
            let mut fields = Vec::new();
            for k in *keys {
                match obj.get(*k) {
                    Some(v) if !v.is_null() => fields.push((*k, v)),
                    _ => {
                        return Err(schema_error(
                            path,
                            &format!(
                                "associative list with keys has an element that omits key field {k:?}"
                            ),
                        ));
                    }
                }
            }
            Ok(PathElement::Key(key_json(fields.into_iter())))
        }
        _ => Ok(PathElement::Value(item.to_string())),
    }
}

fn item_node(node: &Node) -> &Node {
    match node {
        Node::Keyed(_, elem) => elem,
        _ => &Node::Scalar,
    }
}

/// Whether `v` is a container `node` merges piece by piece, and not empty.
fn is_nonempty_container(node: &Node, v: Option<&Value>) -> bool {
    match v {
        Some(Value::Object(m)) => node.is_object() && !m.is_empty(),
        Some(Value::Array(a)) => node.is_list() && !a.is_empty(),
        _ => false,
    }
}

/// Whether `lhs` and `rhs` are handled as one leaf: atomic types, values of the wrong shape,
/// and containers empty or absent on both sides (which keeps the empty/null distinction).
fn is_leaf(node: &Node, lhs: Option<&Value>, rhs: Option<&Value>) -> bool {
    let shaped = |v: Option<&Value>| match v {
        None => true,
        Some(Value::Object(_)) => node.is_object(),
        Some(Value::Array(_)) => node.is_list(),
        Some(_) => false,
    };
    !(shaped(lhs) && shaped(rhs))
        || !(is_nonempty_container(node, lhs) || is_nonempty_container(node, rhs))
}

/// The set of fields `obj` sets: leaves, every map entry and list item, and struct fields
/// whose value is null or an empty object (`ToFieldSet`).
pub(crate) fn field_set(node: &Node, obj: &Value) -> Result<FieldSet, SchemaError> {
    let mut out = FieldSet::new();
    walk_set(node, obj, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn walk_set(
    node: &Node,
    v: &Value,
    path: &mut Vec<PathElement>,
    out: &mut FieldSet,
) -> Result<(), SchemaError> {
    match v {
        Value::Object(m) if node.is_object() => {
            for (k, val) in m {
                let Some(child) = node.child(k) else {
                    path.push(PathElement::Field(k.clone()));
                    return Err(schema_error(path, "field not declared in schema"));
                };
                path.push(PathElement::Field(k.clone()));
                walk_set(child.node, val, path, out)?;
                let empty = val.is_null() || val.as_object().is_some_and(Map::is_empty);
                if empty || !child.named {
                    out.insert(FieldPath(path.clone()));
                }
                path.pop();
            }
        }
        Value::Array(items) if node.is_list() => {
            for item in items {
                let pe = item_element(node, item, path)?;
                path.push(pe);
                walk_set(item_node(node), item, path, out)?;
                out.insert(FieldPath(path.clone()));
                path.pop();
            }
        }
        Value::Object(_) | Value::Array(_) if !path.is_empty() => {
            out.insert(FieldPath(path.clone()));
        }
        _ if !path.is_empty() && !v.is_null() => out.insert(FieldPath(path.clone())),
        _ => {}
    }
    Ok(())
}

/// What changed between two objects (`Comparison`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

impl Comparison {
    /// `added ∪ modified`: what a writer took.
    pub(crate) fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares `lhs` (before) with `rhs` (after). Containers that appear or vanish are added or
/// removed themselves, besides their contents.
pub(crate) fn compare(node: &Node, lhs: &Value, rhs: &Value) -> Comparison {
    let mut c = Comparison::default();
    walk_compare(node, Some(lhs), Some(rhs), &mut Vec::new(), &mut c);
    c
}

fn walk_compare(
    node: &Node,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) {
    if is_leaf(node, lhs, rhs) {
        if path.is_empty() {
            return;
        }
        match (lhs, rhs) {
            (None, Some(_)) => c.added.insert(FieldPath(path.clone())),
            (Some(_), None) => c.removed.insert(FieldPath(path.clone())),
            (Some(a), Some(b)) if a != b => c.modified.insert(FieldPath(path.clone())),
            _ => {}
        }
        return;
    }
    match (lhs, rhs) {
        (Some(Value::Object(_)), _) | (_, Some(Value::Object(_))) => {
            let empty = Map::new();
            let l = lhs.and_then(Value::as_object).unwrap_or(&empty);
            let r = rhs.and_then(Value::as_object).unwrap_or(&empty);
            for (k, lv) in l {
                let child = node.child(k).map_or(&Node::Scalar, |c| c.node);
                path.push(PathElement::Field(k.clone()));
                walk_compare(child, Some(lv), r.get(k), path, c);
                path.pop();
            }
            for (k, rv) in r {
                if l.contains_key(k) {
                    continue;
                }
                let child = node.child(k).map_or(&Node::Scalar, |c| c.node);
                path.push(PathElement::Field(k.clone()));
                walk_compare(child, None, Some(rv), path, c);
                path.pop();
            }
        }
        _ => {
            let items = |v: Option<&Value>| -> Vec<(PathElement, Value)> {
                v.and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| {
                                item_element(node, i, path).ok().map(|p| (p, i.clone()))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let l = items(lhs);
            let r = items(rhs);
            let elem = item_node(node);
            for (pe, lv) in &l {
                let rv = r.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
                path.push(pe.clone());
                walk_compare(elem, Some(lv), rv, path, c);
                path.pop();
            }
            for (pe, rv) in &r {
                if l.iter().any(|(p, _)| p == pe) {
                    continue;
                }
                path.push(pe.clone());
                walk_compare(elem, None, Some(rv), path, c);
                path.pop();
            }
        }
    }
    if !path.is_empty() {
        match (lhs, rhs) {
            (None, Some(_)) => c.added.insert(FieldPath(path.clone())),
            (Some(_), None) => c.removed.insert(FieldPath(path.clone())),
            _ => {}
        }
    }
}

/// Merges `rhs` (an applied configuration) into `lhs` (the live object): `rhs` wins on leaves
/// and atomic values; objects merge by field, sets and keyed lists by item (live items keep
/// their order, new ones follow in `rhs` order).
pub(crate) fn merge(node: &Node, lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
    if is_leaf(node, lhs, rhs) {
        return rhs.or(lhs).cloned();
    }
    match (lhs, rhs) {
        (Some(Value::Object(_)), _) | (_, Some(Value::Object(_))) => {
            let empty = Map::new();
            let l = lhs.and_then(Value::as_object).unwrap_or(&empty);
            let r = rhs.and_then(Value::as_object).unwrap_or(&empty);
            let mut out = Map::new();
            for (k, lv) in l {
                let child = node.child(k).map_or(&Node::Scalar, |c| c.node);
                if let Some(v) = merge(child, Some(lv), r.get(k)) {
                    out.insert(k.clone(), v);
                }
            }
            for (k, rv) in r {
                if l.contains_key(k) {
                    continue;
                }
                let child = node.child(k).map_or(&Node::Scalar, |c| c.node);
                if let Some(v) = merge(child, None, Some(rv)) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        _ => {
            let empty = Vec::new();
            let l = lhs.and_then(Value::as_array).unwrap_or(&empty);
            let r = rhs.and_then(Value::as_array).unwrap_or(&empty);
            let key = |i: &Value| item_element(node, i, &[]).ok();
            let elem = item_node(node);
            let mut out = Vec::new();
            let mut seen = Vec::new();
            for lv in l {
                let pe = key(lv);
                let rv = r.iter().find(|i| pe.is_some() && key(i) == pe);
                if let Some(v) = merge(elem, Some(lv), rv) {
                    out.push(v);
                }
                seen.push(pe);
            }
            for rv in r {
                let pe = key(rv);
                if pe.is_some() && seen.contains(&pe) {
                    continue;
                }
                if let Some(v) = merge(elem, None, Some(rv)) {
                    out.push(v);
                }
                seen.push(pe);
            }
            Some(Value::Array(out))
        }
    }
}

/// Removes the field or item at `path` from `obj`, if present.
pub(crate) fn remove_path(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for pe in parents {
        let next = match (pe, cur) {
            (PathElement::Field(k), Value::Object(m)) => m.get_mut(k),
            (pe, Value::Array(items)) => items.iter_mut().find(|i| item_matches(pe, i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (PathElement::Field(k), Value::Object(m)) => {
            m.remove(k);
        }
        (pe, Value::Array(items)) => items.retain(|i| !item_matches(pe, i)),
        _ => {}
    }
}

fn item_matches(pe: &PathElement, item: &Value) -> bool {
    match pe {
        PathElement::Key(json) => {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(json) else {
                return false;
            };
            key.iter().all(|(k, v)| item.get(k) == Some(v))
        }
        PathElement::Value(json) => serde_json::from_str::<Value>(json).ok().as_ref() == Some(item),
        _ => false,
    }
}

/// Whether `path` names a struct field all the way down (no map key or list item at its end),
/// which is what kube's `EnsureNamedFieldsAreMembers` adds to a set being pruned.
pub(crate) fn is_named_field(root: &Node, path: &[PathElement]) -> bool {
    let mut node = root;
    let mut named = false;
    for pe in path {
        match pe {
            PathElement::Field(k) => match node.child(k) {
                Some(child) => {
                    named = child.named;
                    node = child.node;
                }
                None => return false,
            },
            _ => {
                named = false;
                node = item_node(node);
            }
        }
    }
    named
}
