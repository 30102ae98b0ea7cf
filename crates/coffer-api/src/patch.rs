//! PATCH bodies applied to an object's JSON (`reference/k8s-api.md` §11): strategic merge patch
//! (written here), JSON merge patch (RFC 7386) and JSON patch (RFC 6902), the latter two through
//! the `json-patch` crate.
//!
//! Error texts and codes:
//! * a failing JSON patch operation → 422 `the server rejected our request due to an error in our
//!   request` (verified, §11.2); the library's reason is kept in [`PatchError::detail`] for a
//!   `StatusCause` (upstream sends it as an `UnexpectedServerResponse` cause; best guess);
//! * a JSON patch that is not an array → 400 `json: cannot unmarshal <kind> into Go value of type
//!   jsonpatch.Patch` (best guess of Go's text);
//! * strategic-merge directive errors use apimachinery's `mergepatch` texts (`invalid patch format
//!   of primitive list`, `patch content doesn't match retainKeys list`, …; best knowledge).
//!   A bad `$patch` value leaves out the map upstream prints (it may be a Secret's `data`); a
//!   missing merge key prints the list item as upstream does (only owner or secret references).

use serde_json::{Map, Value};

/// A patch that could not be applied; each variant names its HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// 400 BadRequest: the patch document itself is malformed. The text is the full message.
    #[error("{0}")]
    BadRequest(String),
    /// 422 Invalid with the generic message; `detail` says which operation failed.
    #[error("the server rejected our request due to an error in our request")]
    Rejected {
        /// The underlying reason (operation, path), for a `StatusCause`; never holds values.
        detail: String,
    },
    /// 500: a strategic-merge patch whose content contradicts the schema (bad `$patch` value,
    /// list item without its merge key). The text is the full message.
    #[error("{0}")]
    Internal(String),
}

impl PatchError {
    /// The HTTP status code kube-apiserver answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Rejected { .. } => 422,
            Self::Internal(_) => 500,
        }
    }

    /// The detail of a [`PatchError::Rejected`], if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Rejected { detail } => Some(detail),
            _ => None,
        }
    }
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else
/// replaces. The patch must be a JSON object (a patch that would replace the whole object is
/// refused with 400 `Invalid JSON Patch`, best guess).
pub fn apply_merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Patch".to_owned()));
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

/// Applies an RFC 6902 JSON patch (`add`, `remove`, `replace`, `move`, `copy`, `test`; pointers
/// with `~0`/`~1` escapes and the `-` array index). All operations apply or none do.
///
/// Like kube-apiserver's JSON patch library, a negative array index counts from the end (`-1` is
/// the last item; `add` at `-1` inserts before it). Operations are checked one by one as they
/// are applied, so a malformed operation after a failing one is never reported.
pub fn apply_json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go_kind(patch)
        )));
    };
    let mut doc = original.clone();
    for (i, op) in ops.iter().enumerate() {
        let mut op = op.clone();
        if let Value::Object(fields) = &mut op {
            for key in ["path", "from"] {
                if let Some(Value::String(pointer)) = fields.get_mut(key) {
                    *pointer = resolve_negative_indices(&doc, pointer);
                }
            }
        }
        let op: json_patch::PatchOperation =
            serde_json::from_value(op).map_err(|e| PatchError::Rejected {
                detail: format!("operation '/{i}' is invalid: {e}"),
            })?;
        json_patch::patch(&mut doc, std::slice::from_ref(&op)).map_err(|e| {
            PatchError::Rejected {
                detail: format!("operation '/{i}' failed at path '{}': {}", e.path, e.kind),
            }
        })?;
    }
    Ok(doc)
}

/// Applies a strategic merge patch (§11.3) to an object of `kind` (`Secret`, `ConfigMap`,
/// `Namespace`, `ServiceAccount`, RBAC kinds; unknown kinds get the metadata rules only).
///
/// Maps merge recursively and `null` deletes. Lists replace, except `metadata.finalizers`
/// (primitive union), `metadata.ownerReferences` (merged by `uid`) and ServiceAccount `secrets`
/// (merged by `name`). Directives: `$patch: replace|delete` on maps and list items (`delete`
/// empties a map but removes a list item), `{"$patch": "replace"}` as a list item,
/// `$retainKeys`, `$deleteFromPrimitiveList/<f>`, `$setElementOrder/<f>`; other `$` keys are
/// dropped (never stored). `$setElementOrder` orders the listed items as given and interleaves the
/// others by their live position (see `reorder`). Unlike upstream, the directive lists are not
/// cross-checked against the patch list.
pub fn strategic_merge(original: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    let (Value::Object(orig), Value::Object(p)) = (original, patch) else {
        let culprit = if original.is_object() {
            patch
        } else {
            original
        };
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_kind(culprit)
        )));
    };
    let schema = Schema { kind };
    Ok(Value::Object(merge_map(
        orig.clone(),
        p,
        &schema,
        &mut Vec::new(),
    )?))
}

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ListStrategy {
    /// The patch list replaces the original.
    Replace,
    /// Items are maps merged by the named key.
    MergeByKey(&'static str),
    /// Items are scalars; the patch adds missing ones.
    MergePrimitive,
}

/// The patch metadata of the kinds in scope (§11.3, §9.2).
struct Schema<'a> {
    kind: &'a str,
}

impl Schema<'_> {
    fn list_strategy(&self, path: &[String]) -> ListStrategy {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match (self.kind, p.as_slice()) {
            (_, ["metadata", "finalizers"]) => ListStrategy::MergePrimitive,
            (_, ["metadata", "ownerReferences"]) => ListStrategy::MergeByKey("uid"),
            ("ServiceAccount", ["secrets"]) => ListStrategy::MergeByKey("name"),
            // managedFields, SA imagePullSecrets (listType=atomic), RBAC rules/subjects,
            // Namespace spec.finalizers and everything else replace.
            _ => ListStrategy::Replace,
        }
    }
}

const PATCH_KEY: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";

/// Merges `patch` into `orig`. On a map, `$patch: delete` empties it (the key stays, as
/// upstream) and `$patch: replace` swaps it for the rest of the patch; any other `$patch`
/// value is an error.
fn merge_map(
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: &Schema<'_>,
    path: &mut Vec<String>,
) -> Result<Map<String, Value>, PatchError> {
    match patch.get(PATCH_KEY) {
        None => {}
        Some(Value::String(s)) if s == "delete" => return Ok(Map::new()),
        Some(Value::String(s)) if s == "replace" => {
            return merge_map(Map::new(), &without_key(patch, PATCH_KEY), schema, path);
        }
        Some(other) => {
            return Err(PatchError::Internal(format!(
                "unknown patch type: {} in map",
                other.as_str().unwrap_or("<non-string>")
            )));
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut orig, patch, retain)?;
    }
    // Deletions from primitive lists first, so they commute with additions.
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
            let Value::Array(remove) = v else {
                return Err(bad_request("invalid patch format of primitive list"));
            };
            if let Some(Value::Array(items)) = orig.get_mut(field) {
                items.retain(|item| !remove.contains(item));
            }
        }
    }
    // The live order of lists that `$setElementOrder` will normalise.
    let live_orders: Vec<(String, Vec<Value>)> = patch
        .keys()
        .filter_map(|k| k.strip_prefix(SET_ORDER_PREFIX))
        .map(|f| {
            let live = orig.get(f).and_then(Value::as_array).cloned();
            (f.to_owned(), live.unwrap_or_default())
        })
        .collect();
    for (k, pv) in patch {
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            orig.remove(k);
            continue;
        }
        path.push(k.clone());
        let merged = merge_value(orig.remove(k), pv, schema, path)?;
        path.pop();
        if let Some(v) = merged {
            orig.insert(k.clone(), v);
        }
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(SET_ORDER_PREFIX) {
            let Value::Array(order) = v else {
                return Err(bad_request("invalid patch format of setElementOrder list"));
            };
            path.push(field.to_owned());
            let strategy = schema.list_strategy(path);
            path.pop();
            let live = live_orders
                .iter()
                .find(|(f, _)| f == field)
                .map_or(&[][..], |(_, l)| l.as_slice());
            if let Some(Value::Array(items)) = orig.get_mut(field) {
                *items = reorder(std::mem::take(items), order, live, strategy);
            }
        }
    }
    Ok(orig)
}

/// Merges one field's patch value into its original value (`None` when absent).
fn merge_value(
    orig: Option<Value>,
    pv: &Value,
    schema: &Schema<'_>,
    path: &mut Vec<String>,
) -> Result<Option<Value>, PatchError> {
    // A patch map or list merges into the original of the same type, or into an empty one (so
    // its directives are processed rather than stored); anything else replaces.
    match pv {
        Value::Object(p) => {
            let base = match orig {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            Ok(Some(Value::Object(merge_map(base, p, schema, path)?)))
        }
        Value::Array(p) => {
            let base = match orig {
                Some(Value::Array(o)) => o,
                _ => Vec::new(),
            };
            merge_list(base, p, schema, path).map(Some)
        }
        other => Ok(Some(other.clone())),
    }
}

fn merge_list(
    mut orig: Vec<Value>,
    patch: &[Value],
    schema: &Schema<'_>,
    path: &mut Vec<String>,
) -> Result<Value, PatchError> {
    let strategy = schema.list_strategy(path);
    if patch.iter().any(Value::is_array) && strategy != ListStrategy::Replace {
        return Err(PatchError::Rejected {
            detail: "lists of lists are not supported".to_owned(),
        });
    }
    match strategy {
        ListStrategy::Replace => Ok(Value::Array(patch.to_vec())),
        ListStrategy::MergePrimitive => {
            for item in patch {
                if item.is_object() {
                    return Err(bad_request("invalid patch format of primitive list"));
                }
                if !orig.contains(item) {
                    orig.push(item.clone());
                }
            }
            Ok(Value::Array(orig))
        }
        ListStrategy::MergeByKey(key) => {
            let replace = patch.iter().any(|item| {
                item.get(PATCH_KEY).and_then(Value::as_str) == Some("replace")
                    && item.as_object().is_some_and(|m| m.len() == 1)
            });
            if replace {
                orig.clear();
            }
            for item in patch {
                let Value::Object(p) = item else {
                    return Err(PatchError::Internal(format!(
                        "expected a map[string]interface {{}}, but received a {}",
                        go_type_name(item)
                    )));
                };
                if p.len() == 1 && p.contains_key(PATCH_KEY) {
                    continue;
                }
                let Some(id) = p.get(key) else {
                    return Err(PatchError::Internal(format!(
                        "map: {} does not contain declared merge key: {key}",
                        go_fmt(item)
                    )));
                };
                let pos = orig.iter().position(|o| o.get(key) == Some(id));
                if p.get(PATCH_KEY).and_then(Value::as_str) == Some("delete") {
                    orig.retain(|o| o.get(key) != Some(id));
                    continue;
                }
                match pos {
                    Some(i) => {
                        let current = match std::mem::take(&mut orig[i]) {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        };
                        orig[i] = Value::Object(merge_map(current, p, schema, path)?);
                    }
                    None => orig.push(Value::Object(merge_map(Map::new(), p, schema, path)?)),
                }
            }
            Ok(Value::Array(orig))
        }
    }
}

/// `$retainKeys`: keys of the original not listed are dropped; patch keys must be listed.
fn apply_retain_keys(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
) -> Result<(), PatchError> {
    let Value::Array(keys) = retain else {
        return Err(bad_request("invalid patch format of retainKeys"));
    };
    let listed = |k: &str| keys.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch {
        if !k.starts_with('$') && !v.is_null() && !listed(k) {
            return Err(PatchError::Rejected {
                detail: "patch content doesn't match retainKeys list".to_owned(),
            });
        }
    }
    orig.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder` normalisation. Items named in `order` ("patch items") take that order;
/// the other items ("server-only") keep their merged order; the two sequences are then
/// interleaved: a server-only item goes before the next patch item when both are in the live list
/// and it came first there. So precedence is `order` > live order, and neither sequence's
/// relative order changes.
fn reorder(
    items: Vec<Value>,
    order: &[Value],
    live: &[Value],
    strategy: ListStrategy,
) -> Vec<Value> {
    let identity = |item: &Value| -> Value {
        match strategy {
            ListStrategy::MergeByKey(key) => item.get(key).cloned().unwrap_or(Value::Null),
            _ => item.clone(),
        }
    };
    let order_ids: Vec<Value> = order.iter().map(identity).collect();
    let live_ids: Vec<Value> = live.iter().map(identity).collect();
    let position = |ids: &[Value], item: &Value| ids.iter().position(|id| *id == identity(item));
    let (mut ordered, server_only): (Vec<Value>, Vec<Value>) = items
        .into_iter()
        .partition(|item| position(&order_ids, item).is_some());
    ordered.sort_by_key(|item| position(&order_ids, item));
    let mut out = Vec::with_capacity(ordered.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        ordered.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (position(&live_ids, l), position(&live_ids, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Rewrites negative array indices in a JSON pointer (`/list/-1`) into absolute ones against
/// `doc`; anything that does not resolve is left for the patch library to reject.
fn resolve_negative_indices(doc: &Value, pointer: &str) -> String {
    let Some(rest) = pointer.strip_prefix('/') else {
        return pointer.to_owned();
    };
    let mut node = Some(doc);
    let mut out = String::with_capacity(pointer.len());
    for token in rest.split('/') {
        let mut token = token.to_owned();
        if let Some(Value::Array(items)) = node {
            let back = token
                .strip_prefix('-')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(back) = back.filter(|b| *b <= items.len()) {
                token = (items.len() - back).to_string();
            }
        }
        node = match node {
            Some(Value::Object(m)) => m.get(&token.replace("~1", "/").replace("~0", "~")),
            Some(Value::Array(a)) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        out.push('/');
        out.push_str(&token);
    }
    out
}

fn without_key(m: &Map<String, Value>, key: &str) -> Map<String, Value> {
    let mut out = m.clone();
    out.remove(key);
    out
}

fn bad_request(text: &str) -> PatchError {
    PatchError::BadRequest(text.to_owned())
}

/// The JSON kind name Go's decoder uses in `cannot unmarshal <kind>` errors.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

/// The Go type name (`reflect.TypeOf`) of a decoded JSON value.
fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "%!s(<nil>)",
    }
}

/// A decoded JSON value as Go's `%v` prints it: `map[k:v]` with sorted keys, `[a b]`, `<nil>`.
/// Only used for merge-list items (owner and secret references), never for Secret data.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_fmt(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".to_owned(),
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
