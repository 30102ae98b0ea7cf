//! Unit tests for `object_meta.rs`.

#![allow(clippy::unwrap_used, reason = "tests may unwrap (STYLE.md)")]

use super::*;

fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

fn texts(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

#[test]
fn name_namespace_and_scope() {
    let rule = NameRule::Dns1123Subdomain;
    assert!(validate_object_meta(&meta("s1", Some("default")), Scope::Namespaced, rule).is_empty());
    let errs = validate_object_meta(&meta("", Some("default")), Scope::Namespaced, rule);
    assert_eq!(
        texts(&errs),
        ["metadata.name: Required value: name or generateName is required"]
    );
    let errs = validate_object_meta(&meta("s1", None), Scope::Namespaced, rule);
    assert_eq!(texts(&errs), ["metadata.namespace: Required value"]);
    let errs = validate_object_meta(
        &meta("ns", Some("x")),
        Scope::Cluster,
        NameRule::Dns1123Label,
    );
    assert_eq!(
        texts(&errs),
        ["metadata.namespace: Forbidden: not allowed on this type"]
    );
    let mut m = meta("", Some("default"));
    m.generate_name = Some("Gen-".to_owned());
    let errs = validate_object_meta(&m, Scope::Namespaced, rule);
    assert_eq!(errs.len(), 2);
    assert!(errs[0].to_string().starts_with(
        "metadata.generateName: Invalid value: \"Gen-\": a lowercase RFC 1123 subdomain"
    ));
}

#[test]
fn labels_annotations_limits() {
    let mut m = meta("s1", Some("default"));
    m.labels = Some(BTreeMap::from([("bad key".to_owned(), "ok".to_owned())]));
    m.annotations = Some(BTreeMap::from([(
        "A".to_owned(),
        "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT),
    )]));
    let errs = validate_object_meta(&m, Scope::Namespaced, NameRule::Dns1123Subdomain);
    let t = texts(&errs);
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(
        t[0].starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist")
    );
    assert_eq!(
        t[1],
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    m.labels = None;
    m.annotations = Some(BTreeMap::from([(
        "A".to_owned(),
        "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1),
    )]));
    assert!(validate_object_meta(&m, Scope::Namespaced, NameRule::Dns1123Subdomain).is_empty());
}

#[test]
fn finalizers_and_owner_refs() {
    let mut m = meta("s1", Some("default"));
    m.finalizers = Some(vec![
        "foo".to_owned(),
        "kubernetes".to_owned(),
        "a.io/b".to_owned(),
        "-bad".to_owned(),
    ]);
    let t = texts(&validate_object_meta(
        &m,
        Scope::Namespaced,
        NameRule::Dns1123Subdomain,
    ));
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(
        t[0].starts_with("metadata.finalizers: Invalid value: \"-bad\": name part must consist")
    );
    assert_eq!(
        t[1],
        "metadata.finalizers[0]: Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"
    );
    assert_eq!(
        t[2],
        "metadata.finalizers[3]: Invalid value: \"-bad\": name is neither a standard finalizer name nor is it fully qualified"
    );
    // On update only the standard-name rule runs.
    let t = texts(&validate_object_meta_update(&m, &m));
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(t[0].starts_with("metadata.finalizers[0]:"));
    let both = validate_finalizers(
        Some(&["orphan".to_owned(), "foregroundDeletion".to_owned()]),
        "metadata.finalizers",
    );
    assert_eq!(
        texts(&both),
        [
            "metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set"
        ]
    );
    let refs = [
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "a".into(),
            uid: "u1".into(),
            controller: Some(true),
            ..OwnerReference::default()
        },
        OwnerReference {
            api_version: "".into(),
            kind: "Secret".into(),
            name: "b".into(),
            uid: "".into(),
            controller: Some(true),
            ..OwnerReference::default()
        },
    ];
    let t = texts(&validate_owner_references(
        Some(&refs),
        "metadata.ownerReferences",
    ));
    assert_eq!(
        t[0],
        "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty"
    );
    assert_eq!(
        t[1],
        "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"
    );
    assert_eq!(
        t[2],
        "metadata.ownerReferences: Invalid value: [{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"a\",\"uid\":\"u1\",\"controller\":true},{\"apiVersion\":\"\",\"kind\":\"Secret\",\"name\":\"b\",\"uid\":\"\",\"controller\":true}]: Only one reference can have Controller set to true. Found \"true\" in references for ConfigMap/a and Secret/b"
    );
}

#[test]
fn update_rules() {
    let mut old = meta("s1", Some("default"));
    old.uid = Some("u1".to_owned());
    let mut new = meta("s2", Some("default"));
    new.uid = Some("u2".to_owned());
    let t = texts(&validate_object_meta_update(&new, &old));
    assert_eq!(
        t,
        [
            "metadata.name: Invalid value: \"s2\": field is immutable",
            "metadata.uid: Invalid value: \"u2\": field is immutable"
        ]
    );
    let mut new = meta("s1", Some("default"));
    prepare_meta_for_update(&mut new, &old);
    assert_eq!(new.uid.as_deref(), Some("u1"));
    assert!(validate_object_meta_update(&new, &old).is_empty());

    old.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    old.finalizers = Some(vec!["a.io/x".to_owned()]);
    new.finalizers = Some(vec!["a.io/x".to_owned(), "b.io/y".to_owned()]);
    prepare_meta_for_update(&mut new, &old);
    assert_eq!(
        texts(&validate_object_meta_update(&new, &old)),
        [
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}"
        ]
    );
    new.finalizers = None;
    assert!(validate_object_meta_update(&new, &old).is_empty());

    let mut live = meta("s1", Some("default"));
    let mut deleting = live.clone();
    deleting.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_nanosecond(1_700_000_000_500_000_000).unwrap(),
    ));
    deleting.deletion_grace_period_seconds = Some(30);
    assert_eq!(
        texts(&validate_object_meta_update(&deleting, &live)),
        [
            "metadata.deletionTimestamp: Invalid value: \"2023-11-14T22:13:20Z\": field is immutable",
            "metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable"
        ]
    );
    live.deletion_grace_period_seconds = Some(30);
    deleting.deletion_grace_period_seconds = None;
    deleting.deletion_timestamp = None;
    assert_eq!(
        texts(&validate_object_meta_update(&deleting, &live)),
        ["metadata.deletionGracePeriodSeconds: Invalid value: null: field is immutable"]
    );
}
