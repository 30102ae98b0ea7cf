//! `meta.k8s.io` Tables for `kubectl get` (`reference/k8s-api.md` §7).

use coffer_api::k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::kinds::ApiKind;

/// A Table of `items`. `headers` is false for watch events after the first (§7.3).
pub fn table<K: ApiKind>(items: &[K], version: &str, list_meta: Value, headers: bool) -> Value {
    let now = crate::kinds::now();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "rows": items.iter().map(|o| row(o, now)).collect::<Vec<_>>(),
    });
    if headers {
        let mut columns = vec![
            json!({"name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace."}),
        ];
        columns.extend(
            K::columns()
                .iter()
                .map(|(name, ty, description)| json!({"name": name, "type": ty, "format": "", "description": description, "priority": 0})),
        );
        t["columnDefinitions"] = json!(columns);
    }
    t
}

fn row<K: ApiKind>(obj: &K, now: Timestamp) -> Value {
    let meta = obj.metadata();
    let mut cells = vec![json!(meta.name.clone().unwrap_or_default())];
    cells.extend(obj.cells());
    if K::AGE_COLUMN {
        cells.push(json!(coffer_api::age(
            meta.creation_timestamp.as_ref().map(|t| t.0),
            now
        )));
    }
    let mut partial = json!({});
    for (field, value) in [
        ("name", meta.name.as_ref().map(|v| json!(v))),
        ("namespace", meta.namespace.as_ref().map(|v| json!(v))),
        ("uid", meta.uid.as_ref().map(|v| json!(v))),
        (
            "resourceVersion",
            meta.resource_version.as_ref().map(|v| json!(v)),
        ),
        (
            "creationTimestamp",
            meta.creation_timestamp
                .as_ref()
                .map(|t| json!(t.0.to_string())),
        ),
        ("labels", meta.labels.as_ref().map(|v| json!(v))),
        ("annotations", meta.annotations.as_ref().map(|v| json!(v))),
    ] {
        if let Some(v) = value {
            partial[field] = v;
        }
    }
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": partial},
    })
}
