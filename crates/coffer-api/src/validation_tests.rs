//! Unit tests for `validation.rs`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::field_error::invalid_message;

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn secret(name: &str, type_: &str, data: &[(&str, &[u8])]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_owned()),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

fn texts(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

#[test]
fn key_a_b_full_status_message() {
    let s = secret("badkey", "Opaque", &[("a b", b"x")]);
    let errs = validate_secret_create(&s);
    assert_eq!(
        invalid_message("Secret", "badkey", &errs),
        format!("Secret \"badkey\" is invalid: data[a b]: Invalid value: \"a b\": {KEY_MSG}")
    );
    assert_eq!(
        errs[0].message(),
        format!("Invalid value: \"a b\": {KEY_MSG}")
    );
    assert_eq!(errs[0].field, "data[a b]");
}

#[test]
fn data_keys() {
    let long_ok = "k".repeat(253);
    let ok = secret(
        "s1",
        "Opaque",
        &[
            ("a", b""),
            ("A-_.9", b""),
            (".a", b""),
            ("_x", b""),
            (&long_ok, b""),
        ],
    );
    assert!(validate_secret_create(&ok).is_empty());
    let empty = secret("s1", "Opaque", &[("", b"value-1\n")]);
    assert_eq!(
        texts(&validate_secret_create(&empty)),
        [format!("data[]: Invalid value: \"\": {KEY_MSG}")]
    );
    for (key, msg) in [
        (".", "must not be '.'"),
        ("..", "must not be '..'"),
        ("..a", "must not start with '..'"),
    ] {
        let s = secret("s1", "Opaque", &[(key, b"")]);
        assert_eq!(
            texts(&validate_secret_create(&s)),
            [format!("data[{key}]: Invalid value: \"{key}\": {msg}")]
        );
    }
    let long = "k".repeat(254);
    let s = secret("s1", "Opaque", &[(&long, b"")]);
    assert_eq!(
        texts(&validate_secret_create(&s)),
        [format!(
            "data[{long}]: Invalid value: \"{long}\": must be no more than 253 characters"
        )]
    );
}

#[test]
fn bad_name() {
    let errs = validate_secret_create(&secret("BadName", "Opaque", &[]));
    assert_eq!(
        invalid_message("Secret", "BadName", &errs),
        "Secret \"BadName\" is invalid: metadata.name: Invalid value: \"BadName\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    for bad in ["-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
        let errs = validate_secret_create(&secret(bad, "Opaque", &[]));
        assert_eq!(errs.len(), 1, "{bad}");
        assert_eq!(errs[0].field, "metadata.name");
    }
}

#[test]
fn size_limit() {
    let half = vec![b'x'; MAX_SECRET_SIZE / 2];
    let ok = secret("s1", "Opaque", &[("a", &half), ("b", &half)]);
    assert!(validate_secret_create(&ok).is_empty());
    let more = vec![b'x'; MAX_SECRET_SIZE / 2 + 1];
    let big = secret("s1", "Opaque", &[("a", &half), ("b", &more)]);
    assert_eq!(
        texts(&validate_secret_create(&big)),
        ["data: Too long: may not be more than 1048576 bytes"]
    );
}

#[test]
fn type_rules() {
    let t = |s: Secret| texts(&validate_secret_create(&s));
    assert_eq!(
        t(secret("s", secret_type::TLS, &[("tls.crt", b"x")])),
        ["data[tls.key]: Required value"]
    );
    assert!(
        t(secret(
            "s",
            secret_type::TLS,
            &[("tls.crt", b"junk"), ("tls.key", b"junk")]
        ))
        .is_empty()
    );
    assert!(t(secret("s", secret_type::BASIC_AUTH, &[("password", b"")])).is_empty());
    assert_eq!(
        t(secret("s", secret_type::BASIC_AUTH, &[])),
        [
            "data[username]: Required value",
            "data[password]: Required value"
        ]
    );
    assert_eq!(
        t(secret(
            "s",
            secret_type::SSH_AUTH,
            &[("ssh-privatekey", b"")]
        )),
        ["data[ssh-privatekey]: Required value"]
    );
    assert_eq!(
        t(secret("s", secret_type::SERVICE_ACCOUNT_TOKEN, &[])),
        ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    );
    let mut sa = secret("s", secret_type::SERVICE_ACCOUNT_TOKEN, &[]);
    sa.metadata.annotations = Some(BTreeMap::from([(
        SERVICE_ACCOUNT_NAME_ANNOTATION.to_owned(),
        "default".to_owned(),
    )]));
    assert!(t(sa).is_empty());
    assert!(t(secret("s", "example.com/custom", &[])).is_empty());
    assert!(t(secret("s", secret_type::BOOTSTRAP_TOKEN, &[])).is_empty());
    assert_eq!(
        t(secret("s", secret_type::DOCKERCFG, &[])),
        ["data[.dockercfg]: Required value"]
    );
    assert!(
        t(secret(
            "s",
            secret_type::DOCKER_CONFIG_JSON,
            &[(".dockerconfigjson", b"{\"auths\":{}}")]
        ))
        .is_empty()
    );
}

#[test]
fn dockerconfigjson_invalid_json_is_redacted() {
    let s = secret(
        "s",
        secret_type::DOCKER_CONFIG_JSON,
        &[(".dockerconfigjson", b"not json")],
    );
    let errs = validate_secret_create(&s);
    assert_eq!(
        texts(&errs),
        [
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid character 'o' in literal null (expecting 'u')"
        ]
    );
    let s = secret(
        "s",
        secret_type::DOCKERCFG,
        &[(".dockercfg", b"[\"hunter2\"]")],
    );
    let text = texts(&validate_secret_create(&s)).join("\n");
    assert!(text.starts_with("data[.dockercfg]: Invalid value: \"<secret contents redacted>\": json: cannot unmarshal array"));
    assert!(!text.contains("hunter2"));
}

#[test]
fn immutable_and_type_updates() {
    let old = secret("s1", "Opaque", &[("a", b"1")]);
    let mut new = secret(
        "s1",
        secret_type::TLS,
        &[("tls.crt", b""), ("tls.key", b"")],
    );
    assert_eq!(
        texts(&validate_secret_update(&new, &old)),
        ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
    );
    new = secret("s1", "Opaque", &[("a", b"1"), ("b", b"2")]);
    assert!(validate_secret_update(&new, &old).is_empty());

    let mut frozen = old.clone();
    frozen.immutable = Some(true);
    let mut changed = frozen.clone();
    changed.data = new.data.clone();
    assert_eq!(
        texts(&validate_secret_update(&changed, &frozen)),
        ["data: Forbidden: field is immutable when `immutable` is set"]
    );
    let mut unfrozen = frozen.clone();
    unfrozen.immutable = Some(false);
    assert_eq!(
        texts(&validate_secret_update(&unfrozen, &frozen)),
        ["immutable: Forbidden: field is immutable when `immutable` is set"]
    );
    unfrozen.immutable = None;
    assert_eq!(validate_secret_update(&unfrozen, &frozen).len(), 1);
    let mut relabeled = frozen.clone();
    relabeled.metadata.labels = Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]));
    assert!(validate_secret_update(&relabeled, &frozen).is_empty());
}

#[test]
fn string_data_merges_before_validation() {
    let mut s = secret("s1", "Opaque", &[("a", b"a")]);
    s.string_data = Some(BTreeMap::from([
        ("a".to_owned(), "z".to_owned()),
        ("a b".to_owned(), "y".to_owned()),
    ]));
    merge_string_data(&mut s);
    assert!(s.string_data.is_none());
    let data = s.data.clone().unwrap_or_default();
    assert_eq!(data.get("a").map(|v| v.0.as_slice()), Some(&b"z"[..]));
    assert_eq!(validate_secret_create(&s)[0].field, "data[a b]");
}

#[test]
fn configmaps() {
    let mut cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("c".into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("k".to_owned(), "v".to_owned()),
            ("a b".to_owned(), String::new()),
        ])),
        binary_data: Some(BTreeMap::from([("k".to_owned(), ByteString(vec![1]))])),
        ..ConfigMap::default()
    };
    assert_eq!(
        texts(&validate_configmap_create(&cm)),
        [
            format!("data[a b]: Invalid value: \"a b\": {KEY_MSG}"),
            "data[k]: Invalid value: \"k\": duplicate of key present in binaryData".to_owned(),
            "binaryData[k]: Invalid value: \"k\": duplicate of key present in data".to_owned(),
        ]
    );
    cm.data = Some(BTreeMap::from([(
        "big".to_owned(),
        "x".repeat(MAX_SECRET_SIZE),
    )]));
    assert_eq!(
        texts(&validate_configmap_create(&cm)),
        [": Too long: may not be more than 1048576 bytes"]
    );
    let mut old = cm.clone();
    old.data = None;
    old.binary_data = None;
    old.immutable = Some(true);
    let mut new = old.clone();
    new.binary_data = Some(BTreeMap::from([("b".to_owned(), ByteString(vec![2]))]));
    assert_eq!(
        texts(&validate_configmap_update(&new, &old)),
        ["binaryData: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn namespaces_and_service_accounts() {
    let ns = |name: &str| Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    assert!(validate_namespace_create(&ns("team-a")).is_empty());
    let errs = validate_namespace_create(&ns("a.b"));
    assert!(errs[0].to_string().starts_with("metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc'"));
    let mut with_fin = ns("x");
    with_fin.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
        finalizers: Some(vec!["bogus".into()]),
    });
    assert_eq!(
        texts(&validate_namespace_create(&with_fin)),
        [
            "spec.finalizers: Invalid value: \"bogus\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    assert_eq!(
        texts(&validate_namespace_update(&ns("y"), &ns("x"))),
        ["metadata.name: Invalid value: \"y\": field is immutable"]
    );
    let sa = |name: &str| ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    assert!(validate_service_account_create(&sa("default")).is_empty());
    assert_eq!(validate_service_account_create(&sa("Bad")).len(), 1);
    assert_eq!(
        validate_service_account_update(&sa("Bad"), &sa("Bad")).len(),
        1
    );
}

#[test]
fn secret_values_never_appear_in_errors() {
    let marker: &[u8] = b"TOPSECRET-VALUE";
    let types = [
        "Opaque",
        secret_type::SERVICE_ACCOUNT_TOKEN,
        secret_type::DOCKERCFG,
        secret_type::DOCKER_CONFIG_JSON,
        secret_type::BASIC_AUTH,
        secret_type::SSH_AUTH,
        secret_type::TLS,
    ];
    let big = [marker.repeat(70_000), b"x".to_vec()].concat();
    for t in types {
        let s = secret(
            "Bad_Name",
            t,
            &[
                ("a b", marker),
                (".dockercfg", marker),
                (".dockerconfigjson", marker),
                ("ssh-privatekey", b""),
                ("big", &big),
            ],
        );
        let mut old = s.clone();
        old.immutable = Some(true);
        old.type_ = Some("other".to_owned());
        for errs in [validate_secret_create(&s), validate_secret_update(&s, &old)] {
            assert!(!errs.is_empty(), "{t}");
            for e in &errs {
                let all = format!("{e} {e:?} {:?}", e.to_status_cause());
                assert!(!all.contains("TOPSECRET"), "{t}: {all}");
            }
        }
    }
}
