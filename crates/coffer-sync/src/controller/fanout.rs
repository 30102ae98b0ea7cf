//! ClusterExternalSecret fan-out, as ESO's `clusterexternalsecret` controller: one
//! ExternalSecret (named `externalSecretName`, default the ClusterExternalSecret's name)
//! in every namespace named in `namespaces` or matching `namespaceSelector(s)`, owned by
//! the ClusterExternalSecret; removed from namespaces that stop matching; an existing
//! ExternalSecret not owned by it is left alone and reported in `failedNamespaces`.
//!
//! [`target_namespaces`] and [`desired_external_secret`] are pure; [`reconcile`] applies
//! them. The ExternalSecret's spec is copied from the raw JSON, so fields Coffer does not
//! model reach the ExternalSecret unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use serde_json::{Value, json};

use super::{API_VERSION, resource};
use crate::GoDuration;
use crate::sync::selector_matches;

/// ESO's default `refreshTime` of a ClusterExternalSecret: how often namespaces are
/// re-checked when nothing changes.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// The namespaces a ClusterExternalSecret (as JSON) targets, given every namespace and its
/// labels: the names in `spec.namespaces` plus those any selector matches, sorted.
pub fn target_namespaces(
    ces: &Value,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeSet<String> {
    let spec = &ces["spec"];
    let mut out: BTreeSet<String> = spec["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let mut selectors: Vec<LabelSelector> = spec["namespaceSelectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| serde_json::from_value(s.clone()).ok())
        .collect();
    if let Some(s) = spec
        .get("namespaceSelector")
        .filter(|s| !s.is_null())
        .and_then(|s| serde_json::from_value(s.clone()).ok())
    {
        selectors.push(s);
    }
    for (name, labels) in namespaces {
        if selectors.iter().any(|s| selector_matches(s, labels)) {
            out.insert(name.clone());
        }
    }
    out
}

/// The ExternalSecret a ClusterExternalSecret wants in `namespace`.
pub fn desired_external_secret(ces: &Value, namespace: &str) -> Value {
    let name = es_name(ces);
    let meta = &ces["spec"]["externalSecretMetadata"];
    let mut es = json!({
        "apiVersion": API_VERSION,
        "kind": "ExternalSecret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": "ClusterExternalSecret",
                "name": ces["metadata"]["name"],
                "uid": ces["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": ces["spec"]["externalSecretSpec"].clone(),
    });
    for field in ["labels", "annotations"] {
        if meta[field].as_object().is_some_and(|m| !m.is_empty()) {
            es["metadata"][field] = meta[field].clone();
        }
    }
    es
}

/// The name of the ExternalSecrets a ClusterExternalSecret creates.
fn es_name(ces: &Value) -> String {
    ces["spec"]["externalSecretName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or_else(|| ces["metadata"]["name"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn owned_by(es: &DynamicObject, uid: &str) -> bool {
    es.metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

/// Whether `current` already is `want` (spec, labels, annotations, owner).
fn up_to_date(current: &DynamicObject, want: &Value) -> bool {
    let cur = serde_json::to_value(current).unwrap_or_default();
    let same = |a: &Value, b: &Value| {
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
        a == b || (empty(a) && empty(b))
    };
    same(&cur["spec"], &want["spec"])
        && same(&cur["metadata"]["labels"], &want["metadata"]["labels"])
        && same(
            &cur["metadata"]["annotations"],
            &want["metadata"]["annotations"],
        )
}

/// Reconciles one ClusterExternalSecret: creates, updates and removes its ExternalSecrets
/// and writes its status. Returns when to look again (`refreshTime`).
pub async fn reconcile(
    client: &kube::Client,
    ces_obj: &DynamicObject,
    namespaces: &Store<Namespace>,
) -> Action {
    let ces = serde_json::to_value(ces_obj).unwrap_or_default();
    let ces_name = ces_obj.metadata.name.clone().unwrap_or_default();
    let uid = ces_obj.metadata.uid.clone().unwrap_or_default();
    let refresh = ces["spec"]["refreshTime"]
        .as_str()
        .and_then(|t| GoDuration::parse(t).ok())
        .map(|d| d.as_duration())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_REFRESH);
    let all: BTreeMap<String, BTreeMap<String, String>> = namespaces
        .state()
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                n.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect();
    let targets = target_namespaces(&ces, &all);
    let name = es_name(&ces);
    let es_ar = resource("ExternalSecret");
    let mut provisioned = Vec::new();
    let mut failed = Vec::new();
    for ns in &targets {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &es_ar);
        let want = desired_external_secret(&ces, ns);
        let result = match api.get_opt(&name).await {
            Ok(None) => match serde_json::from_value::<DynamicObject>(want) {
                Ok(obj) => api
                    .create(&PostParams::default(), &obj)
                    .await
                    .map(drop)
                    .map_err(|e| format!("could not create ExternalSecret: {e}")),
                Err(e) => Err(format!("could not build ExternalSecret: {e}")),
            },
            Ok(Some(cur)) if !owned_by(&cur, &uid) => Err(format!(
                "ExternalSecret {ns}/{name} already exists and is not owned by this ClusterExternalSecret; rename or delete it"
            )),
            Ok(Some(cur)) if up_to_date(&cur, &want) => Ok(()),
            Ok(Some(cur)) => {
                let mut patch = want;
                patch["metadata"]["resourceVersion"] = cur.metadata.resource_version.clone().into();
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
                    .map_err(|e| format!("could not update ExternalSecret: {e}"))
            }
            Err(e) => Err(format!("could not read ExternalSecret: {e}")),
        };
        match result {
            Ok(()) => provisioned.push(ns.clone()),
            Err(reason) => failed.push(json!({"namespace": ns, "reason": reason})),
        }
    }
    // Namespaces that no longer match: remove the ExternalSecret this one created there.
    let before: Vec<String> = ces["status"]["provisionedNamespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    for ns in before.iter().filter(|n| !targets.contains(*n)) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &es_ar);
        if let Ok(Some(cur)) = api.get_opt(&name).await
            && owned_by(&cur, &uid)
            && let Err(e) = api.delete(&name, &DeleteParams::default()).await
        {
            failed.push(
                json!({"namespace": ns, "reason": format!("could not delete ExternalSecret: {e}")}),
            );
        }
    }
    let ready = failed.is_empty();
    let mut status = json!({
        "externalSecretName": name,
        "provisionedNamespaces": provisioned,
        "failedNamespaces": failed,
        "conditions": [{
            "type": "Ready",
            "status": if ready { "True" } else { "False" },
            "message": if ready { "" } else { "one or more namespaces failed" },
        }],
    });
    let old_conditions = &ces["status"]["conditions"];
    if old_conditions[0]["status"] == status["conditions"][0]["status"] {
        status["conditions"][0]["lastTransitionTime"] =
            old_conditions[0]["lastTransitionTime"].clone();
    } else {
        status["conditions"][0]["lastTransitionTime"] = now_rfc3339().into();
    }
    let changed = [
        "externalSecretName",
        "provisionedNamespaces",
        "failedNamespaces",
        "conditions",
    ]
    .iter()
    .any(|f| {
        let old = &ces["status"][*f];
        let new = &status[*f];
        old != new && !(old.is_null() && new.as_array().is_some_and(Vec::is_empty))
    });
    if changed {
        let api: Api<DynamicObject> =
            Api::all_with(client.clone(), &resource("ClusterExternalSecret"));
        if let Err(e) = api
            .patch_status(
                &ces_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            tracing::warn!(name = %ces_name, error = %e, "could not update ClusterExternalSecret status");
        }
    }
    Action::requeue(refresh)
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ces() -> Value {
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": {"name": "shared", "uid": "u-1"},
            "spec": {
                "externalSecretName": "db",
                "externalSecretMetadata": {"labels": {"team": "a"}, "annotations": {}},
                "namespaces": ["explicit"],
                "namespaceSelectors": [{"matchLabels": {"env": "prod"}}],
                "namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]},
                "externalSecretSpec": {"secretStoreRef": {"name": "s", "kind": "ClusterSecretStore"}, "unknownField": 1}
            }
        })
    }

    #[test]
    fn namespaces_by_name_and_by_any_selector() {
        let ns = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let all = BTreeMap::from([
            ("a".to_owned(), ns(&[("env", "prod")])),
            ("b".to_owned(), ns(&[("env", "dev")])),
            ("c".to_owned(), ns(&[("tier", "gold")])),
            ("d".to_owned(), ns(&[])),
        ]);
        let got: Vec<String> = target_namespaces(&ces(), &all).into_iter().collect();
        assert_eq!(got, ["a", "c", "explicit"]);
        let none = json!({"spec": {}});
        assert!(target_namespaces(&none, &all).is_empty());
    }

    #[test]
    fn desired_external_secret_keeps_the_raw_spec_and_is_owned() {
        let es = desired_external_secret(&ces(), "a");
        assert_eq!(es["metadata"]["name"], "db");
        assert_eq!(es["metadata"]["namespace"], "a");
        assert_eq!(es["metadata"]["labels"]["team"], "a");
        assert!(es["metadata"].get("annotations").is_none());
        assert_eq!(es["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(es["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(es["spec"]["unknownField"], 1);
        let mut unnamed = ces();
        unnamed["spec"]["externalSecretName"] = Value::Null;
        assert_eq!(
            desired_external_secret(&unnamed, "a")["metadata"]["name"],
            "shared"
        );
    }
}
