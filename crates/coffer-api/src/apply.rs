//! Server-side apply and `managedFields` bookkeeping (`reference/k8s-api.md` §11.4), after
//! kube-apiserver's field manager (`k8s.io/apimachinery/pkg/util/managedfields/internal`) and
//! structured-merge-diff's `merge/update.go`:
//!
//! - [`update_managed_fields`] records a create, PUT or non-apply PATCH: the writer (operation
//!   `Update`) gains every field it added or changed, and every other manager loses those
//!   fields and the ones it removed.
//! - [`apply`] merges an applied configuration into the live object: the applier owns exactly
//!   the fields of its configuration; fields it owned before and no longer applies are removed
//!   unless another manager owns them; changing a field another manager owns is a conflict
//!   unless `force`, which takes the field over.
//!
//! Worked example. `kubectl create secret generic s --from-literal=a=1` records
//! `kubectl-create` (Update) owning `.data`, `.data.a`, `.type`. `kubectl apply --server-side`
//! of `data: {a: "Mg=="}` by manager `kubectl` then changes `.data.a`, which `kubectl-create`
//! owns: 409 `Apply failed with 1 conflict: conflict with "kubectl-create" using v1: .data.a`.
//! With `force` the apply goes through; `kubectl` (Apply) owns `.data.a`, `kubectl-create`
//! keeps `.data` and `.type`. A later apply without `data.a` removes the key, because nobody
//! else owns it.
//!
//! Paths in conflicts are field names, map keys and list keys, never values: a Secret's data
//! never enters an error text.

use std::cmp::Ordering;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::{Map, Value, json};

use crate::apply_schema::ApplySchema;
use crate::fieldpath::{FieldPath, FieldSet, PathElement};
use crate::typed::{self, SchemaError};

/// The manager kube assigns the fields of an object that had no `managedFields` when it was
/// first applied to.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// The annotation client-side apply keeps; a server-side apply by manager `kubectl` rewrites
/// it when present, so a later client-side apply sees the same configuration.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Longest `fieldManager` kube accepts.
pub const FIELD_MANAGER_MAX_LEN: usize = 128;

/// Who writes, in which version, and when.
#[derive(Clone, Debug)]
pub struct FieldManager<'a> {
    /// The manager name (`fieldManager`, or derived from the User-Agent).
    pub manager: &'a str,
    /// The `apiVersion` the write was made in, e.g. `v1`.
    pub api_version: &'a str,
    /// The time recorded for the manager.
    pub time: Time,
}

/// Why an apply failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// Fields owned by other managers would change (409).
    #[error("{0}")]
    Conflicts(Conflicts),
    /// The configuration does not fit the kind's schema (400).
    #[error("{0}")]
    Schema(SchemaError),
    /// The configuration carries `metadata.managedFields` (400).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsNotNil,
}

/// One field another manager owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as kube prints it: `"kubectl"` for an applier, `"kubectl-edit" using v1`
    /// for an updater.
    pub manager: String,
    /// The field, e.g. `.data.password`.
    pub path: FieldPath,
}

/// Every conflict of one apply, ordered by manager, then path as structured-merge-diff
/// iterates a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// `(message, field)` of each `FieldManagerConflict` cause.
    pub fn causes(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0
            .iter()
            .map(|c| (format!("conflict with {}", c.manager), c.path.to_string()))
    }
}

/// kube's text: `Apply failed with 1 conflict: conflict with "m" using v1: .data.k`, or for
/// several `Apply failed with N conflicts: conflicts with "m":\n- .a\n- .b`.
impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager, only.path
            );
        }
        let mut lines = Vec::new();
        let mut current: Option<&str> = None;
        for c in &self.0 {
            if current != Some(c.manager.as_str()) {
                lines.push(format!("conflicts with {}:", c.manager));
                current = Some(&c.manager);
            }
            lines.push(format!("- {}", c.path));
        }
        write!(
            f,
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

/// The `managedFields` of `new` after a create (`live` is `None`), PUT or non-apply PATCH by
/// `who`. `new` keeps the managed fields it carries when they are valid and not empty (that
/// is how a client rewrites them); `[]` or `[{}]` resets them; otherwise the live object's
/// are the base (kube's `decodeLiveOrNew`).
pub fn update_managed_fields(
    schema: ApplySchema,
    live: Option<&Value>,
    new: &Value,
    who: &FieldManager<'_>,
) -> Option<Vec<ManagedFieldsEntry>> {
    let new_entries = new.pointer("/metadata/managedFields");
    let mut managers = if is_reset(new_entries) {
        Managers::default()
    } else {
        match Managers::decode(new_entries) {
            Ok(m) if !m.0.is_empty() => m,
            _ => Managers::decode(live.and_then(|l| l.pointer("/metadata/managedFields")))
                .unwrap_or_default(),
        }
    };
    let before = live.map_or_else(empty_object, without_managed_fields);
    let after = without_managed_fields(new);
    let cmp = typed::compare(schema.root, &before, &after);
    managers.record_update(schema, &cmp, who);
    managers.encode()
}

/// Applies `config` by `who` to `live` (`None`: the object does not exist yet) and returns the
/// new object with its `managedFields`. With `force`, conflicting fields change owner.
pub fn apply(
    schema: ApplySchema,
    live: Option<&Value>,
    config: &Value,
    who: &FieldManager<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApplyError::ManagedFieldsNotNil);
    }
    let applied = typed::field_set(schema.root, config).map_err(ApplyError::Schema)?;
    let live_obj = live.map_or_else(empty_object, without_managed_fields);
    let mut managers = Managers::decode(live.and_then(|l| l.pointer("/metadata/managedFields")))
        .unwrap_or_default();
    if managers.0.is_empty() {
        // An object written before anyone tracked fields: what it holds belongs to
        // `before-first-apply`, so the first apply can conflict with it.
        let cmp = typed::compare(schema.root, &empty_object(), &live_obj);
        let first = FieldManager {
            manager: BEFORE_FIRST_APPLY,
            ..who.clone()
        };
        managers.record_update(schema, &cmp, &first);
    }
    let mut merged =
        typed::merge(schema.root, Some(&live_obj), Some(config)).unwrap_or_else(empty_object);

    let me = Identity::apply(who.manager);
    let last = managers
        .find(&me)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut owned_by_any = applied.clone();
    for e in managers.0.iter().filter(|e| !e.is(&me)) {
        owned_by_any = owned_by_any.union(&e.fields);
    }
    prune(schema, &mut merged, &last, &owned_by_any);

    let cmp = typed::compare(schema.root, &live_obj, &merged);
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for e in managers.0.iter().filter(|e| !e.is(&me)) {
        for path in e.fields.intersection(&changed).iter() {
            conflicts.push(Conflict {
                manager: e.identity.printed(),
                path: path.clone(),
            });
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| {
            a.manager
                .cmp(&b.manager)
                .then_with(|| set_order(&a.path, &b.path))
        });
        return Err(ApplyError::Conflicts(Conflicts(conflicts)));
    }
    for e in managers.0.iter_mut().filter(|e| !e.is(&me)) {
        e.fields = e.fields.difference(&changed).difference(&cmp.removed);
    }
    let object_changed = merged != live_obj;
    let fields = owned(schema, &applied);
    match managers.0.iter_mut().find(|e| e.is(&me)) {
        Some(e) => {
            e.fields = fields;
            e.identity.api_version = who.api_version.to_owned();
            if object_changed {
                e.time = Some(who.time.clone());
            }
        }
        None => managers.0.push(Entry {
            identity: Identity {
                api_version: who.api_version.to_owned(),
                ..me
            },
            time: Some(who.time.clone()),
            fields,
        }),
    }
    if who.manager == "kubectl" {
        sync_last_applied(&mut merged, config);
    }
    let encoded = managers.encode();
    if let Some(meta) = merged.as_object_mut().and_then(|o| {
        o.entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
    }) {
        match encoded {
            Some(entries) => {
                meta.insert(
                    "managedFields".to_owned(),
                    serde_json::to_value(entries).expect("BUG: managedFields serialize"),
                );
            }
            None => {
                meta.remove("managedFields");
            }
        }
    }
    Ok(merged)
}

/// Removes what the applier applied last time and no longer applies, unless someone owns it
/// or something under it; a struct field left behind with nothing owned under it goes too
/// (kube's `prune`: removal of the last set made of `EnsureNamedFieldsAreMembers`, then
/// `addBackOwnedItems` and `addBackDanglingItems`).
fn prune(schema: ApplySchema, merged: &mut Value, last: &FieldSet, owned_by_any: &FieldSet) {
    for path in last.difference(owned_by_any).iter() {
        if owned_by_any.has_prefix(&path.0) {
            // A container (`.data` with ".") whose contents someone still owns stays.
            continue;
        }
        typed::remove_path(merged, &path.0);
        for len in 1..path.0.len() {
            let prefix = &path.0[..len];
            if typed::is_named_field(schema.root, prefix) && !owned_by_any.has_prefix(prefix) {
                typed::remove_path(merged, prefix);
                break;
            }
        }
    }
}

/// When the live object carries client-side apply's annotation, a server-side apply by
/// `kubectl` rewrites it to the applied configuration (kube's `lastAppliedUpdater`).
fn sync_last_applied(merged: &mut Value, config: &Value) {
    let has = merged
        .pointer(&format!(
            "/metadata/annotations/{}",
            pointer_escape(LAST_APPLIED_ANNOTATION)
        ))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has {
        return;
    }
    let mut last = config.clone();
    if let Some(a) = last
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
    let text = format!("{}\n", last);
    if let Some(a) = merged
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(text));
    }
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// What a manager may own of `set`: not type meta, not the server's metadata
/// (`stripMetaManager`), not fields the main resource resets (a status subresource's).
fn owned(schema: ApplySchema, set: &FieldSet) -> FieldSet {
    const STRIPPED_META: &[&str] = &[
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ];
    set.filter(|p| match p.0.as_slice() {
        [PathElement::Field(f), ..] if f == "apiVersion" || f == "kind" => false,
        [PathElement::Field(f)] if f == "metadata" => false,
        [PathElement::Field(f), PathElement::Field(m), ..]
            if f == "metadata" && STRIPPED_META.contains(&m.as_str()) =>
        {
            false
        }
        [PathElement::Field(f), ..] if schema.reset.contains(&f.as_str()) => false,
        _ => true,
    })
}

/// Orders paths as structured-merge-diff iterates a set: at each level the members ending
/// there first, then the deeper ones, each group by element.
fn set_order(a: &FieldPath, b: &FieldPath) -> Ordering {
    let (a, b) = (&a.0, &b.0);
    for i in 0..a.len().min(b.len()) {
        let (a_ends, b_ends) = (a.len() == i + 1, b.len() == i + 1);
        if a[i] != b[i] || a_ends != b_ends {
            return b_ends.cmp(&a_ends).then_with(|| a[i].cmp(&b[i]));
        }
    }
    a.len().cmp(&b.len())
}

fn empty_object() -> Value {
    json!({"metadata": {}})
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// `[]` or `[{}]`: a client asking to drop all managed fields.
fn is_reset(entries: Option<&Value>) -> bool {
    match entries {
        Some(Value::Array(a)) => {
            a.is_empty() || (a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

/// How kube tells managers apart (`BuildManagerIdentifier`): an applier by name and
/// subresource, an updater also by apiVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    manager: String,
    apply: bool,
    api_version: String,
    subresource: String,
}

impl Identity {
    fn apply(manager: &str) -> Self {
        Identity {
            manager: manager.to_owned(),
            apply: true,
            api_version: String::new(),
            subresource: String::new(),
        }
    }

    fn same(&self, other: &Identity) -> bool {
        self.manager == other.manager
            && self.apply == other.apply
            && self.subresource == other.subresource
            && (self.apply || self.api_version == other.api_version)
    }

    /// kube's `printManager`.
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if !self.apply {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

#[derive(Clone, Debug)]
struct Entry {
    identity: Identity,
    time: Option<Time>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, id: &Identity) -> bool {
        self.identity.same(id)
    }
}

/// The decoded `managedFields` of an object.
#[derive(Clone, Debug, Default)]
struct Managers(Vec<Entry>);

impl Managers {
    fn decode(entries: Option<&Value>) -> Result<Self, ()> {
        let Some(entries) = entries.filter(|e| !e.is_null()) else {
            return Ok(Managers::default());
        };
        let entries: Vec<ManagedFieldsEntry> =
            serde_json::from_value(entries.clone()).map_err(|_| ())?;
        let mut out: Vec<Entry> = Vec::new();
        for e in entries {
            let apply = match e.operation.as_deref() {
                Some("Apply") => true,
                Some("Update") => false,
                _ => return Err(()),
            };
            if e.fields_type.as_deref().unwrap_or("FieldsV1") != "FieldsV1" {
                return Err(());
            }
            let fields = match &e.fields_v1 {
                Some(FieldsV1(v)) => FieldSet::from_fields_v1(v).map_err(|_| ())?,
                None => FieldSet::new(),
            };
            let identity = Identity {
                manager: e.manager.unwrap_or_default(),
                apply,
                api_version: e.api_version.unwrap_or_default(),
                subresource: e.subresource.unwrap_or_default(),
            };
            if out.iter().any(|o| o.is(&identity)) {
                return Err(());
            }
            out.push(Entry {
                identity,
                time: e.time,
                fields,
            });
        }
        Ok(Managers(out))
    }

    fn find(&self, id: &Identity) -> Option<&Entry> {
        self.0.iter().find(|e| e.is(id))
    }

    /// An `Update` by `who` that made the changes `cmp` lists (`Updater.Update` with the
    /// `managedFieldsUpdater`'s merge into the manager's earlier entry).
    fn record_update(&mut self, schema: ApplySchema, cmp: &typed::Comparison, who: &FieldManager) {
        let me = Identity {
            manager: who.manager.to_owned(),
            apply: false,
            api_version: who.api_version.to_owned(),
            subresource: String::new(),
        };
        let changed = cmp.changed();
        for e in self.0.iter_mut() {
            e.fields = e.fields.difference(&changed).difference(&cmp.removed);
        }
        let took = owned(schema, &changed);
        if !took.is_empty() {
            match self.0.iter_mut().find(|e| e.is(&me)) {
                Some(e) => {
                    e.fields = e.fields.union(&took);
                    e.time = Some(who.time.clone());
                }
                None => self.0.push(Entry {
                    identity: me,
                    time: Some(who.time.clone()),
                    fields: took,
                }),
            }
        }
        self.0.retain(|e| !e.fields.is_empty());
    }

    /// The entries, in kube's order (operation, time, manager, apiVersion, subresource);
    /// `None` when there are none.
    fn encode(mut self) -> Option<Vec<ManagedFieldsEntry>> {
        self.0.retain(|e| !e.fields.is_empty());
        if self.0.is_empty() {
            return None;
        }
        let secs = |e: &Entry| e.time.as_ref().map_or(0, |t| t.0.as_second());
        self.0.sort_by(|p, q| {
            q.identity
                .apply
                .cmp(&p.identity.apply)
                .then_with(|| secs(p).cmp(&secs(q)))
                .then_with(|| p.identity.manager.cmp(&q.identity.manager))
                .then_with(|| p.identity.api_version.cmp(&q.identity.api_version))
                .then_with(|| p.identity.subresource.cmp(&q.identity.subresource))
        });
        Some(
            self.0
                .into_iter()
                .map(|e| ManagedFieldsEntry {
                    api_version: Some(e.identity.api_version),
                    fields_type: Some("FieldsV1".to_owned()),
                    fields_v1: Some(FieldsV1(e.fields.to_fields_v1())),
                    manager: Some(e.identity.manager),
                    operation: Some(if e.identity.apply { "Apply" } else { "Update" }.to_owned()),
                    subresource: (!e.identity.subresource.is_empty())
                        .then_some(e.identity.subresource),
                    time: e.time,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
