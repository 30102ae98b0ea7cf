//! Unit tests for `patch.rs`.

#![allow(clippy::unwrap_used, reason = "tests may unwrap (STYLE.md)")]

use serde_json::json;

use super::*;

fn smp(orig: Value, patch: Value, kind: &str) -> Value {
    strategic_merge(&orig, &patch, kind).unwrap()
}

fn secret() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s1", "namespace": "default",
                     "labels": {"a": "1", "b": "2"},
                     "finalizers": ["x.io/a", "x.io/b"],
                     "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c1", "uid": "u1"},
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c2", "uid": "u2"}]},
        "data": {"key": "dmFsdWU=", "other": "eA=="},
        "type": "Opaque"
    })
}

#[test]
fn smp_maps_merge_and_null_deletes() {
    let out = smp(
        secret(),
        json!({"metadata": {"labels": {"testsecret": "true", "a": null}}, "data": {"key": "ZG1Gc2RXVXg="}}),
        "Secret",
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"b": "2", "testsecret": "true"})
    );
    assert_eq!(out["data"], json!({"key": "ZG1Gc2RXVXg=", "other": "eA=="}));
    assert_eq!(out["type"], "Opaque");
    let out = smp(secret(), json!({"data": null}), "Secret");
    assert!(out.get("data").is_none());
}

#[test]
fn smp_patch_directives_on_maps() {
    let out = smp(
        secret(),
        json!({"metadata": {"labels": {"$patch": "replace", "only": "me"}}}),
        "Secret",
    );
    assert_eq!(out["metadata"]["labels"], json!({"only": "me"}));
    let out = smp(secret(), json!({"data": {"$patch": "delete"}}), "Secret");
    assert_eq!(out["data"], json!({}));
    let out = smp(
        secret(),
        json!({"$patch": "replace", "kind": "Secret"}),
        "Secret",
    );
    assert_eq!(out, json!({"kind": "Secret"}));
    let out = smp(
        secret(),
        json!({"data": {"$retainKeys": ["key", "new"], "new": "bg=="}}),
        "Secret",
    );
    assert_eq!(out["data"], json!({"key": "dmFsdWU=", "new": "bg=="}));
    let out = smp(
        secret(),
        json!({"$unknown": 1, "data": {"$x": "y"}}),
        "Secret",
    );
    assert!(out.get("$unknown").is_none());
    assert!(out["data"].get("$x").is_none());
}

#[test]
fn smp_directive_errors() {
    let err = strategic_merge(
        &secret(),
        &json!({"data": {"$patch": "bogus", "k": "c2VjcmV0"}}),
        "Secret",
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "unknown patch type: bogus in map");
    assert_eq!(err.status_code(), 500);
    let err =
        strategic_merge(&secret(), &json!({"data": {"$patch": "merge"}}), "Secret").unwrap_err();
    assert_eq!(err.to_string(), "unknown patch type: merge in map");
    let err = strategic_merge(
        &secret(),
        &json!({"metadata": {"ownerReferences": ["x"]}}),
        "Secret",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected a map[string]interface {}, but received a string"
    );
    assert!(!err.to_string().contains("c2VjcmV0"));
    let err = strategic_merge(
        &secret(),
        &json!({"data": {"$retainKeys": ["key"], "other": "eA=="}}),
        "Secret",
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 422);
    assert_eq!(
        err.detail(),
        Some("patch content doesn't match retainKeys list")
    );
    let err = strategic_merge(&secret(), &json!({"$retainKeys": "x"}), "Secret").unwrap_err();
    assert_eq!(
        err,
        PatchError::BadRequest("invalid patch format of retainKeys".into())
    );
    let err = strategic_merge(
        &secret(),
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
        "Secret",
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "invalid patch format of primitive list");
    let err = strategic_merge(
        &secret(),
        &json!({"metadata": {"ownerReferences": [{"name": "c3"}]}}),
        "Secret",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: map[name:c3] does not contain declared merge key: uid"
    );
    let err = strategic_merge(&secret(), &json!([1]), "Secret").unwrap_err();
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert_eq!(err.status_code(), 400);
}

#[test]
fn smp_finalizers_are_a_merged_primitive_list() {
    let out = smp(
        secret(),
        json!({"metadata": {"finalizers": ["x.io/c", "x.io/a"]}}),
        "Secret",
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["x.io/a", "x.io/b", "x.io/c"])
    );
    let out = smp(
        secret(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x.io/a"]}}),
        "Secret",
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["x.io/b"]));
    let out = smp(
        secret(),
        json!({"metadata": {"$setElementOrder/finalizers": ["x.io/c", "x.io/b", "x.io/a"], "finalizers": ["x.io/c"]}}),
        "Secret",
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["x.io/c", "x.io/b", "x.io/a"])
    );
    // A server-only item goes before the next ordered item that came after it in the live list.
    let live = json!({"metadata": {"finalizers": ["a.io/1", "srv.io/x", "a.io/2"]}});
    let out = smp(
        live,
        json!({"metadata": {"$setElementOrder/finalizers": ["a.io/2", "a.io/1", "a.io/3"], "finalizers": ["a.io/3"]}}),
        "Secret",
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["srv.io/x", "a.io/2", "a.io/1", "a.io/3"])
    );
    let out = smp(
        secret(),
        json!({"metadata": {"finalizers": null}}),
        "Secret",
    );
    assert!(out["metadata"].get("finalizers").is_none());
}

#[test]
fn smp_owner_references_merge_by_uid() {
    let out = smp(
        secret(),
        json!({"metadata": {"ownerReferences": [
            {"uid": "u2", "name": "c2-renamed"},
            {"uid": "u3", "apiVersion": "v1", "kind": "Secret", "name": "s3"},
            {"uid": "u1", "$patch": "delete"}]}}),
        "Secret",
    );
    let refs = out["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0]["name"], "c2-renamed");
    assert_eq!(refs[0]["kind"], "ConfigMap");
    assert_eq!(refs[1]["uid"], "u3");
    let out = smp(
        secret(),
        json!({"metadata": {"ownerReferences": [{"$patch": "replace"}, {"uid": "u9", "name": "n"}]}}),
        "Secret",
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "u9", "name": "n"}])
    );
    let out = smp(
        secret(),
        json!({"metadata": {"$setElementOrder/ownerReferences": [{"uid": "u2"}, {"uid": "u1"}]}}),
        "Secret",
    );
    assert_eq!(out["metadata"]["ownerReferences"][0]["uid"], "u2");
    let out = smp(
        secret(),
        json!({"metadata": {"managedFields": [{"manager": "m"}]}}),
        "Secret",
    );
    assert_eq!(out["metadata"]["managedFields"], json!([{"manager": "m"}]));
}

#[test]
fn smp_service_account_lists() {
    let sa = json!({"kind": "ServiceAccount", "metadata": {"name": "default"},
        "secrets": [{"name": "a"}], "imagePullSecrets": [{"name": "p1"}]});
    let out = smp(
        sa.clone(),
        json!({"secrets": [{"name": "b"}], "imagePullSecrets": [{"name": "p2"}],
               "automountServiceAccountToken": false}),
        "ServiceAccount",
    );
    assert_eq!(out["secrets"], json!([{"name": "a"}, {"name": "b"}]));
    assert_eq!(out["imagePullSecrets"], json!([{"name": "p2"}]));
    assert_eq!(out["automountServiceAccountToken"], false);
    // The same field on another kind replaces.
    let out = smp(sa, json!({"secrets": [{"name": "b"}]}), "Role");
    assert_eq!(out["secrets"], json!([{"name": "b"}]));
}

#[test]
fn merge_patch_rfc7386() {
    let out = apply_merge_patch(
        &secret(),
        &json!({"metadata": {"labels": {"env": "prod", "a": null}, "finalizers": ["z.io/z"]}, "stringData": {"x": "y"}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"b": "2", "env": "prod"}));
    assert_eq!(out["metadata"]["finalizers"], json!(["z.io/z"]));
    assert_eq!(out["stringData"], json!({"x": "y"}));
    let err = apply_merge_patch(&secret(), &json!([1])).unwrap_err();
    assert_eq!(err.status_code(), 400);
}

#[test]
fn json_patch_operations() {
    let doc = json!({"data": {"a/b": "MQ==", "t~n": "Mg==", "x": "eA=="}, "list": [1, 2]});
    let out = apply_json_patch(
        &doc,
        &json!([
            {"op": "add", "path": "/data/new", "value": "bg=="},
            {"op": "remove", "path": "/data/x"},
            {"op": "replace", "path": "/data/a~1b", "value": "Mw=="},
            {"op": "move", "from": "/data/t~0n", "path": "/data/moved"},
            {"op": "copy", "from": "/data/new", "path": "/data/copy"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "test", "path": "/list/2", "value": 3}
        ]),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"data": {"a/b": "Mw==", "new": "bg==", "moved": "Mg==", "copy": "bg=="}, "list": [1, 2, 3]})
    );
}

#[test]
fn json_patch_negative_indices() {
    let doc = json!({"list": [1, 2, 3], "m": {"-1": "x"}});
    let out = apply_json_patch(
        &doc,
        &json!([
            {"op": "remove", "path": "/list/-1"},
            {"op": "add", "path": "/list/-1", "value": 9},
            {"op": "replace", "path": "/m/-1", "value": "y"}
        ]),
    )
    .unwrap();
    assert_eq!(out, json!({"list": [1, 9, 2], "m": {"-1": "y"}}));
    let err = apply_json_patch(&doc, &json!([{"op": "remove", "path": "/list/-4"}])).unwrap_err();
    assert_eq!(err.status_code(), 422);
}

#[test]
fn json_patch_failures() {
    let generic = "the server rejected our request due to an error in our request";
    let doc = json!({"data": {"k": "c2VjcmV0"}});
    for bad in [
        json!([{"op": "remove", "path": "/data/missing"}]),
        json!([{"op": "replace", "path": "/data/missing", "value": "x"}]),
        json!([{"op": "test", "path": "/data/k", "value": "nope"}]),
        json!([{"op": "add", "path": "/stringData/x", "value": "y"}]),
        json!([{"op": "frobnicate", "path": "/data"}]),
    ] {
        let err = apply_json_patch(&doc, &bad).unwrap_err();
        assert_eq!(err.to_string(), generic);
        assert_eq!(err.status_code(), 422);
        assert!(!err.detail().unwrap().contains("c2VjcmV0"), "{err:?}");
    }
    // All or nothing: the first op's effect is not kept, and whole maps may be added.
    let ok = apply_json_patch(
        &doc,
        &json!([{"op": "add", "path": "/stringData", "value": {"x": "y"}}]),
    )
    .unwrap();
    assert_eq!(ok["stringData"], json!({"x": "y"}));
    let err = apply_json_patch(&doc, &json!({"op": "add"})).unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    );
}
