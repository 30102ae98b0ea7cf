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
    cells.push(json!(age(
        meta.creation_timestamp.as_ref().map(|t| t.0),
        now
    )));
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

/// kubectl's age format (`duration.HumanDuration`): `5s`, `3m20s`, `2d4h`, ...
pub fn age(created: Option<Timestamp>, now: Timestamp) -> String {
    let Some(created) = created else {
        return "<unknown>".to_owned();
    };
    let secs = now.as_second() - created.as_second();
    if secs < -1 {
        return "<invalid>".to_owned();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    let y = d / 365;
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => {
            if s % 60 == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{}s", s % 60)
            }
        }
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => {
            if m % 60 == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{}m", m % 60)
            }
        }
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 => {
            if h % 24 == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{}h", h % 24)
            }
        }
        _ if y < 2 => format!("{d}d"),
        _ if y < 8 => {
            if d % 365 == 0 {
                format!("{y}y")
            } else {
                format!("{y}y{}d", d % 365)
            }
        }
        _ => format!("{y}y"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("ts")
    }

    #[test]
    fn ages_follow_kubectl() {
        let now = at(1_000_000_000);
        let ago = |s: i64| age(Some(at(1_000_000_000 - s)), now);
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(119), "119s");
        assert_eq!(ago(200), "3m20s");
        assert_eq!(ago(600), "10m");
        assert_eq!(ago(4 * 3600 + 60), "4h1m");
        assert_eq!(ago(30 * 3600), "30h");
        assert_eq!(ago(3 * 86400 + 3600), "3d1h");
        assert_eq!(ago(100 * 86400), "100d");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some(at(1_000_000_010)), now), "<invalid>");
    }
}
