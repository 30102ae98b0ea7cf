use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::*;

fn secret_schema() -> ApplySchema {
    ApplySchema::builtin("", "Secret").expect("Secret")
}

fn who(manager: &str, second: i64) -> FieldManager<'_> {
    FieldManager {
        manager,
        api_version: "v1",
        time: Time(Timestamp::from_second(second).expect("time")),
    }
}

fn secret(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "data": data})
}

fn managed(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn fields_of(obj: &Value, manager: &str) -> Value {
    managed(obj)
        .into_iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

/// A create by `manager` (operation Update), as the server records it.
fn created(obj: Value, manager: &str) -> Value {
    let mf = update_managed_fields(secret_schema(), None, &obj, &who(manager, 10));
    let mut obj = obj;
    obj["metadata"]["managedFields"] = serde_json::to_value(mf).expect("json");
    obj
}

#[test]
fn apply_creates_with_the_documented_entry() {
    let config = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"ssa1","namespace":"default"},"stringData":{"k":"v"},"type":"Opaque"});
    let out = apply(secret_schema(), None, &config, &who("kubectl", 100), false).expect("apply");
    assert_eq!(
        managed(&out),
        vec![json!({
            "apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl", "operation": "Apply",
            "time": "1970-01-01T00:01:40Z",
            "fieldsV1": {"f:stringData": {"f:k": {}}, "f:type": {}},
        })]
    );
    assert_eq!(out["stringData"], json!({"k": "v"}));
}

#[test]
fn create_records_the_creator_as_kubectl_shows_it() {
    let mut obj = secret(json!({"a": "MQ==", "b": "Mg=="}));
    obj["type"] = json!("Opaque");
    obj["metadata"]["labels"] = json!({"app": "demo"});
    let out = created(obj, "kubectl-create");
    assert_eq!(
        fields_of(&out, "kubectl-create"),
        json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:type": {}})
    );
    assert_eq!(managed(&out)[0]["operation"], "Update");
}

#[test]
fn reapply_without_a_key_removes_it_and_then_the_map() {
    let s = secret_schema();
    let one = apply(
        s,
        None,
        &secret(json!({"a": "MQ==", "b": "Mg=="})),
        &who("m", 1),
        false,
    )
    .expect("first");
    let two = apply(
        s,
        Some(&one),
        &secret(json!({"a": "MQ=="})),
        &who("m", 2),
        false,
    )
    .expect("second");
    assert_eq!(two["data"], json!({"a": "MQ=="}));
    assert_eq!(fields_of(&two, "m"), json!({"f:data": {"f:a": {}}}));
    let config =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque"});
    let three = apply(s, Some(&two), &config, &who("m", 3), false).expect("third");
    assert!(three.get("data").is_none(), "{three}");
    assert_eq!(fields_of(&three, "m"), json!({"f:type": {}}));
}

#[test]
fn a_field_shared_by_two_appliers_stays_until_both_drop_it() {
    let s = secret_schema();
    let both = secret(json!({"x": "MQ=="}));
    let one = apply(s, None, &both, &who("m1", 1), false).expect("m1");
    // Same value: no conflict, both own it.
    let two = apply(s, Some(&one), &both, &who("m2", 2), false).expect("m2");
    assert_eq!(fields_of(&two, "m1"), fields_of(&two, "m2"));
    let three = apply(
        s,
        Some(&two),
        &secret(json!({"y": "Mg=="})),
        &who("m1", 3),
        false,
    )
    .expect("m1 drops x");
    assert_eq!(three["data"], json!({"x": "MQ==", "y": "Mg=="}));
    let four =
        apply(s, Some(&three), &secret(json!({})), &who("m2", 4), false).expect("m2 drops x");
    assert_eq!(four["data"], json!({"y": "Mg=="}));
}

#[test]
fn conflict_names_the_manager_and_field_and_force_takes_it() {
    let s = secret_schema();
    let live = created(
        secret(json!({"password": "c2VjcmV0MQ=="})),
        "kubectl-create",
    );
    let config = secret(json!({"password": "aHVudGVyMg=="}));
    let err = apply(s, Some(&live), &config, &who("kubectl", 5), false).expect_err("conflict");
    let text = err.to_string();
    assert_eq!(
        text,
        "Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1: .data.password"
    );
    assert!(!text.contains("aHVudGVyMg") && !text.contains("c2VjcmV0MQ"));
    let ApplyError::Conflicts(c) = &err else {
        panic!("not conflicts: {err:?}");
    };
    assert_eq!(
        c.causes().collect::<Vec<_>>(),
        vec![(
            "conflict with \"kubectl-create\" using v1".to_owned(),
            ".data.password".to_owned()
        )]
    );
    let forced = apply(s, Some(&live), &config, &who("kubectl", 5), true).expect("force");
    assert_eq!(forced["data"]["password"], "aHVudGVyMg==");
    assert_eq!(fields_of(&forced, "kubectl-create"), json!({"f:data": {}}));
    assert_eq!(
        fields_of(&forced, "kubectl"),
        json!({"f:data": {"f:password": {}}})
    );
}

#[test]
fn an_update_after_apply_takes_the_field_and_the_next_apply_conflicts() {
    let s = secret_schema();
    let applied = apply(
        s,
        None,
        &secret(json!({"a": "MQ=="})),
        &who("kubectl", 1),
        false,
    )
    .expect("apply");
    let mut edited = applied.clone();
    edited["data"]["a"] = json!("Mg==");
    let mf = update_managed_fields(s, Some(&applied), &edited, &who("kubectl-edit", 2));
    edited["metadata"]["managedFields"] = serde_json::to_value(mf).expect("json");
    assert_eq!(fields_of(&edited, "kubectl"), Value::Null);
    assert_eq!(
        fields_of(&edited, "kubectl-edit"),
        json!({"f:data": {"f:a": {}}})
    );
    let err = apply(
        s,
        Some(&edited),
        &secret(json!({"a": "MQ=="})),
        &who("kubectl", 3),
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.a"
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let s = secret_schema();
    let mut live = created(secret(json!({"a": "MQ==", "b": "MQ=="})), "kubectl-create");
    live["metadata"]["labels"] = json!({"x": "1"});
    let mf = update_managed_fields(
        s,
        Some(&created(
            secret(json!({"a": "MQ==", "b": "MQ=="})),
            "kubectl-create",
        )),
        &live,
        &who("kubectl-label", 20),
    );
    live["metadata"]["managedFields"] = serde_json::to_value(mf).expect("json");
    let mut config = secret(json!({"a": "Mg==", "b": "Mg=="}));
    config["metadata"]["labels"] = json!({"x": "2"});
    let err = apply(s, Some(&live), &config, &who("kubectl", 30), false).expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"kubectl-create\" using v1:\n- .data.a\n- .data.b\nconflicts with \"kubectl-label\" using v1:\n- .metadata.labels.x"
    );
}

#[test]
fn an_object_without_managed_fields_belongs_to_before_first_apply() {
    let live = secret(json!({"a": "MQ=="}));
    let err = apply(
        secret_schema(),
        Some(&live),
        &secret(json!({"a": "Mg=="})),
        &who("kubectl", 1),
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.a"
    );
}

#[test]
fn identical_reapply_changes_nothing() {
    let s = secret_schema();
    let config = secret(json!({"a": "MQ=="}));
    let one = apply(s, None, &config, &who("m", 1), false).expect("one");
    let two = apply(s, Some(&one), &config, &who("m", 99), false).expect("two");
    assert_eq!(one, two);
}

#[test]
fn update_keeps_sent_managed_fields_and_resets_on_empty_list() {
    let s = secret_schema();
    let live = created(secret(json!({"a": "MQ=="})), "kubectl-create");
    let mut new = live.clone();
    new["metadata"]["managedFields"][0]["manager"] = json!("renamed");
    let kept = update_managed_fields(s, Some(&live), &new, &who("x", 2)).expect("some");
    assert_eq!(kept[0].manager.as_deref(), Some("renamed"));
    new["metadata"]["managedFields"] = json!([]);
    assert!(update_managed_fields(s, Some(&live), &new, &who("x", 2)).is_none());
    // Absent: the live object's are kept, and a no-op write adds nobody.
    new["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("managedFields");
    let same = update_managed_fields(s, Some(&live), &new, &who("x", 2)).expect("some");
    assert_eq!(same.len(), 1);
    assert_eq!(same[0].manager.as_deref(), Some("kubectl-create"));
}

#[test]
fn sets_and_keyed_lists_are_owned_per_item() {
    let s = secret_schema();
    let mut a = secret(json!({}));
    a["metadata"]["finalizers"] = json!(["x.io/a"]);
    a["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u1"}]);
    let one = apply(s, None, &a, &who("m1", 1), false).expect("m1");
    assert_eq!(
        fields_of(&one, "m1"),
        json!({"f:data": {}, "f:metadata": {
            "f:finalizers": {"v:\"x.io/a\"": {}},
            "f:ownerReferences": {"k:{\"uid\":\"u1\"}": {".": {}, "f:apiVersion": {}, "f:kind": {}, "f:name": {}, "f:uid": {}}},
        }})
    );
    let mut b = secret(json!({}));
    b["metadata"]["finalizers"] = json!(["x.io/b"]);
    let two = apply(s, Some(&one), &b, &who("m2", 2), false).expect("m2");
    assert_eq!(two["metadata"]["finalizers"], json!(["x.io/a", "x.io/b"]));
    let dropped = apply(s, Some(&two), &secret(json!({})), &who("m1", 3), false).expect("m1 drops");
    assert_eq!(dropped["metadata"]["finalizers"], json!(["x.io/b"]));
    assert!(dropped["metadata"].get("ownerReferences").is_none());
}

#[test]
fn role_rules_are_atomic() {
    let s = ApplySchema::builtin("rbac.authorization.k8s.io", "Role").expect("Role");
    let role = |verbs: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": verbs}]})
    };
    let one = apply(s, None, &role(json!(["get"])), &who("m1", 1), false).expect("m1");
    assert_eq!(fields_of(&one, "m1"), json!({"f:rules": {}}));
    let err = apply(s, Some(&one), &role(json!(["list"])), &who("m2", 2), false).expect_err("c");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"m1\": .rules"
    );
}

#[test]
fn custom_kinds_merge_objects_and_do_not_own_status() {
    let s = ApplySchema::custom(true);
    let es = json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "e"},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"kind": "SecretStore", "name": "vault"},
                 "data": [{"secretKey": "k", "remoteRef": {"key": "p"}}]},
        "status": {"refreshTime": null}});
    let out = apply(s, None, &es, &who("kubectl", 1), false).expect("apply");
    assert_eq!(
        fields_of(&out, "kubectl"),
        json!({"f:spec": {"f:data": {}, "f:refreshInterval": {}, "f:secretStoreRef": {"f:kind": {}, "f:name": {}}}})
    );
}

#[test]
fn undeclared_fields_and_managed_fields_are_refused() {
    let s = secret_schema();
    let mut bad = secret(json!({}));
    bad["spec"] = json!({"x": 1});
    let err = apply(s, None, &bad, &who("m", 1), false).expect_err("schema");
    assert_eq!(err.to_string(), ".spec: field not declared in schema");
    let mut mf = secret(json!({}));
    mf["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(s, None, &mf, &who("m", 1), false).expect_err("mf"),
        ApplyError::ManagedFieldsNotNil
    );
}

#[test]
fn kubectl_rewrites_the_client_side_last_applied_annotation() {
    let s = secret_schema();
    let mut live = created(secret(json!({"a": "MQ=="})), "kubectl-client-side-apply");
    live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: "{\"old\":true}\n"});
    let config = secret(json!({"a": "MQ=="}));
    let out = apply(s, Some(&live), &config, &who("kubectl", 2), false).expect("apply");
    let text = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .expect("annotation");
    assert_eq!(text, format!("{config}\n"));
}

#[test]
fn fields_v1_round_trips() {
    let v = json!({"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:ownerReferences": {"k:{\"uid\":\"u\"}": {".": {}, "f:uid": {}}}}});
    let set = crate::FieldSet::from_fields_v1(&v).expect("decode");
    assert_eq!(set.to_fields_v1(), v);
    assert!(crate::FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
}

#[test]
fn a_dropped_container_keeps_what_others_own_under_it() {
    // kubectl's client-side to server-side migration moves `.data` (the container) and the
    // last-applied annotation into the applier's set; `kubectl-last-applied` owns the
    // annotation. Re-applying must keep both the data and the annotation.
    let s = secret_schema();
    let mut live = secret(json!({"a": "YQ=="}));
    live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: "{}\n"});
    live["metadata"]["managedFields"] = json!([
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}}},
        {"manager": "kubectl-last-applied", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}}},
    ]);
    let out = apply(
        s,
        Some(&live),
        &secret(json!({"a": "YQ=="})),
        &who("kubectl", 5),
        false,
    )
    .expect("apply");
    assert_eq!(out["data"], json!({"a": "YQ=="}));
    assert!(out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].is_string());
    assert_eq!(
        fields_of(&out, "kubectl-last-applied"),
        json!({"f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}})
    );
    assert_eq!(fields_of(&out, "kubectl"), json!({"f:data": {"f:a": {}}}));
}
