//! Loading tests: one per validation rule of `reference/encryption.md` §1.3, with the message.

use std::path::Path;

use futures::executor::block_on;

use super::*;
use crate::error::TransformError;
use crate::testing::vectors::*;
use crate::transformer::{Freshness, ReadTransformer};

const HEAD: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";
const K16: &str = "c2VjcmV0IGlzIHNlY3VyZQ==";
const K32: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=";

fn parse(body: &str) -> Result<EncryptionConfig, ConfigError> {
    EncryptionConfig::parse(
        format!("{HEAD}{body}").as_bytes(),
        Path::new("enc.yaml"),
        LoadMode::Startup,
    )
}

fn error(body: &str) -> String {
    match parse(body) {
        Ok(_) => panic!("expected an error for:\n{body}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that loading fails with exactly one field error with this text.
fn one(body: &str, expected: &str) {
    assert_eq!(
        error(body),
        format!("error while parsing file: {expected}"),
        "{body}"
    );
}

fn providers(p: &str) -> String {
    format!("resources:\n- resources: [secrets]\n  providers:\n{p}")
}

#[test]
fn empty_file() {
    let e =
        EncryptionConfig::parse(b"", Path::new("/etc/enc.yaml"), LoadMode::Startup).unwrap_err();
    assert_eq!(
        e.to_string(),
        "encryption provider configuration file \"/etc/enc.yaml\" is empty"
    );
}

#[test]
fn missing_file() {
    let e =
        EncryptionConfig::load(Path::new("/nonexistent/enc.yaml"), LoadMode::Startup).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "error reading encryption provider configuration file \"/nonexistent/enc.yaml\": "
        ),
        "{e}"
    );
}

#[test]
fn strict_decoding_names_the_field() {
    let e = error(&providers(
        "  - identity: {}\n  - kms:\n      name: a\n      pandas: 1\n",
    ));
    assert_eq!(
        e,
        "error while parsing file: error decoding encryption provider configuration file \"enc.yaml\": strict decoding error: unknown field \"resources[0].providers[1].kms.pandas\""
    );
}

#[test]
fn resource_list_rules() {
    one(
        "resources: []\n",
        "resources: Required value: at least one resources is required",
    );
    one(
        "resources:\n- providers:\n  - identity: {}\n",
        "resources[0].resources: Required value: at least one resources[0].resources is required",
    );
    one(
        "resources:\n- resources: [secrets]\n",
        "resources[0].providers: Required value: at least one resources[0].providers is required",
    );
}

#[test]
fn provider_shape_rules() {
    let e = error(&providers("  - {}\n"));
    assert!(e.ends_with("provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity"), "{e}");
    assert!(
        e.contains("resources[0].providers[0]: Invalid value: "),
        "{e}"
    );
    let e = error(&providers(&format!(
        "  - identity: {{}}\n    aesgcm:\n      keys: [{{name: k, secret: {K16}}}]\n"
    )));
    assert!(e.ends_with("more than one provider specified in a single element, should split into different list elements"), "{e}");
}

#[test]
fn key_rules() {
    one(
        &providers("  - aesgcm:\n      keys: []\n"),
        "resources[0].providers[0].aesgcm.keys: Required value: at least one keys is required",
    );
    one(
        &providers(&format!("  - aescbc:\n      keys: [{{secret: {K16}}}]\n")),
        "resources[0].providers[0].aescbc.keys[0].name: Required value: name is a mandatory field for a key",
    );
    one(
        &providers("  - secretbox:\n      keys: [{name: k}]\n"),
        "resources[0].providers[0].secretbox.keys[0].secret: Required value: secret is a mandatory field for a key",
    );
    one(
        &providers("  - aesgcm:\n      keys: [{name: k, secret: 'not base64!'}]\n"),
        "resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64 encoded",
    );
    one(
        &providers("  - aescbc:\n      keys: [{name: k, secret: YWJj}]\n"),
        "resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 3, expected one of [16 24 32]",
    );
    one(
        &providers(&format!(
            "  - secretbox:\n      keys: [{{name: k, secret: {K16}}}]\n"
        )),
        "resources[0].providers[0].secretbox.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 16, expected one of [32]",
    );
    // aescbc accepts 16 and 24 byte keys, as upstream's code does (not its docs).
    assert!(
        parse(&providers(&format!(
            "  - aescbc:\n      keys: [{{name: k, secret: {K16}}}]\n"
        )))
        .is_ok()
    );
}

fn kms(fields: &str) -> String {
    providers(&format!("  - kms:\n{fields}"))
}

#[test]
fn kms_rules() {
    let p = "resources[0].providers[0].kms";
    one(
        &kms("      endpoint: unix:///k.sock\n"),
        &format!("{p}.name: Required value: name is a mandatory field for a provider"),
    );
    one(
        &kms("      apiVersion: v2\n      name: a:b\n      endpoint: unix:///k.sock\n"),
        &format!(
            "{p}.name: Invalid value: \"a:b\": invalid KMS provider name a:b, must not contain ':'"
        ),
    );
    // v1 names may contain ':'.
    assert!(parse(&kms("      name: a:b\n      endpoint: unix:///k.sock\n")).is_ok());
    one(
        &kms(
            "      apiVersion: v2\n      name: a\n      endpoint: unix:///k.sock\n      timeout: 0s\n",
        ),
        &format!("{p}.timeout: Invalid value: \"0s\": timeout should be a positive value"),
    );
    one(
        &kms("      apiVersion: v2\n      name: a\n"),
        &format!("{p}.endpoint: Invalid value: \"\": endpoint is a mandatory field for a kms"),
    );
    one(
        &kms("      apiVersion: v2\n      name: a\n      endpoint: https://kms\n"),
        &format!(
            "{p}.endpoint: Invalid value: \"https://kms\": unsupported scheme \"https\" for KMS provider, only unix is supported"
        ),
    );
    one(
        &kms("      apiVersion: v2\n      name: a\n      endpoint: ':x'\n"),
        &format!(
            "{p}.endpoint: Invalid value: \":x\": invalid endpoint for kms provider, error: parse \":x\": missing protocol scheme"
        ),
    );
    one(
        &kms(
            "      apiVersion: v2\n      name: a\n      endpoint: unix:///k.sock\n      cachesize: 10\n",
        ),
        &format!("{p}.cachesize: Invalid value: 10: cachesize is not supported in v2"),
    );
    one(
        &kms("      name: a\n      endpoint: unix:///k.sock\n      cachesize: 0\n"),
        &format!(
            "{p}.cachesize: Invalid value: 0: cachesize should be a positive value, or negative to disable"
        ),
    );
    one(
        &kms("      apiVersion: v3\n      name: a\n      endpoint: unix:///k.sock\n"),
        &format!(
            "{p}.apiVersion: Invalid value: \"v3\": unsupported apiVersion apiVersion for KMS provider, only v1 and v2 are supported"
        ),
    );
}

#[test]
fn kms_defaults() {
    let c = parse(&kms("      name: a\n      endpoint: unix:///@kms.sock\n")).expect("valid");
    let ProviderConfig::Kms(k) = &c.entries()[0].providers[0] else {
        panic!("kms")
    };
    assert_eq!(k.api_version, KmsApiVersion::V1);
    assert_eq!(k.cache_size, Some(1000));
    assert_eq!(k.timeout, Duration::from_secs(3));
    assert_eq!(k.endpoint, KmsEndpoint::Abstract("kms.sock".into()));
    let c = parse(&kms("      apiVersion: v2\n      name: a\n      endpoint: unix:///k.sock\n      timeout: 1m30s\n")).expect("valid");
    let ProviderConfig::Kms(k) = &c.entries()[0].providers[0] else {
        panic!("kms")
    };
    assert_eq!((k.cache_size, k.timeout), (None, Duration::from_secs(90)));
}

#[test]
fn duplicate_kms_names() {
    let two = |v1: &str, v2: &str| {
        format!(
            "resources:\n- resources: [secrets]\n  providers:\n  - kms: {{apiVersion: {v1}, name: a, endpoint: 'unix:///a'}}\n  - kms: {{apiVersion: {v2}, name: a, endpoint: 'unix:///b'}}\n"
        )
    };
    one(
        &two("v1", "v2"),
        "resources[0].providers[1].kms.name: Invalid value: \"a\": duplicate KMS provider name a, names must be unique",
    );
    // v1 names are only checked with automatic reload.
    assert!(parse(&two("v1", "v1")).is_ok());
    let bytes = format!("{HEAD}{}", two("v1", "v1"));
    assert!(
        EncryptionConfig::parse(bytes.as_bytes(), Path::new("x"), LoadMode::AutomaticReload)
            .is_err()
    );
}

#[test]
fn several_errors_aggregate_like_go() {
    let e = error(&providers(
        "  - aesgcm:\n      keys: [{name: '', secret: ''}]\n",
    ));
    assert_eq!(
        e,
        "error while parsing file: [resources[0].providers[0].aesgcm.keys[0].name: Required value: name is a mandatory field for a key, resources[0].providers[0].aesgcm.keys[0].secret: Required value: secret is a mandatory field for a key]"
    );
}

#[test]
fn resource_name_rule_reaches_the_file_error() {
    one(
        "resources:\n- resources: [Secrets]\n  providers: [{identity: {}}]\n",
        "resources[0].resources[0]: Invalid value: \"Secrets\": resource name should not contain capital letters",
    );
}

#[test]
fn masking_across_entries() {
    let body = "resources:\n- resources: ['*.']\n  providers: [{identity: {}}]\n- resources: [secrets]\n  providers: [{identity: {}}]\n";
    assert_eq!(
        error(body),
        "resource \"secrets\" is masked by earlier rule \"*.\""
    );
    let body = "resources:\n- resources: ['*.*']\n  providers: [{identity: {}}]\n- resources: [deployments.apps]\n  providers: [{identity: {}}]\n";
    assert_eq!(
        error(body),
        "resource \"deployments.apps\" is masked by earlier rule \"*.*\""
    );
    // A specific resource before the wildcard is an exemption, and is allowed.
    let body = "resources:\n- resources: [events]\n  providers: [{identity: {}}]\n- resources: ['*.']\n  providers: [{identity: {}}]\n";
    assert!(parse(body).is_ok());
}

#[test]
fn legacy_kind_and_json() {
    let legacy = format!(
        "kind: EncryptionConfig\napiVersion: v1\n{}",
        providers("  - identity: {}\n")
    );
    assert!(EncryptionConfig::parse(legacy.as_bytes(), Path::new("x"), LoadMode::Startup).is_ok());
    let json = format!(
        r#"{{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{{"resources":["secrets"],"providers":[{{"aesgcm":{{"keys":[{{"name":"key1","secret":"{K16}"}}]}}}},{{"identity":{{}}}}]}}]}}"#
    );
    let c =
        EncryptionConfig::parse(json.as_bytes(), Path::new("x"), LoadMode::Startup).expect("json");
    assert_eq!(c.entries()[0].providers.len(), 2);
    assert!(c.hash().starts_with("sha256:") && c.hash().len() == 71);
}

#[test]
fn debug_and_errors_never_show_keys() {
    let c = parse(&providers(&format!(
        "  - secretbox:\n      keys: [{{name: k, secret: {K32}}}]\n"
    )))
    .expect("valid");
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("YWJj") && !shown.contains("abcdefghij"),
        "{shown}"
    );
    let e = error(&providers(
        "  - secretbox:\n      keys: [{name: k, secret: YWJjZGVm}]\n",
    ));
    assert!(!e.contains("YWJjZGVm"), "{e}");
}

#[test]
fn lookup_order_and_concatenation() {
    let body = format!(
        "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys: [{{name: a, secret: {K16}}}]\n- resources: ['*.apps']\n  providers: [{{secretbox: {{keys: [{{name: b, secret: {K32}}}]}}}}]\n- resources: [secrets]\n  providers: [{{identity: {{}}}}]\n- resources: ['*.*']\n  providers: [{{aescbc: {{keys: [{{name: c, secret: {K32}}}]}}}}]\n"
    );
    let t = parse(&body).expect("valid").build(&NoKms).expect("build");
    let prefixes = |g, r| {
        t.for_resource(g, r)
            .prefixes()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
    };
    // The same resource in two entries: the lists are concatenated in file order.
    assert_eq!(prefixes("", "secrets"), ["k8s:enc:aesgcm:v1:", ""]);
    assert_eq!(prefixes("apps", "deployments"), ["k8s:enc:secretbox:v1:"]);
    assert_eq!(prefixes("", "configmaps"), ["k8s:enc:aescbc:v1:"]);
    let aad = b"/registry/secrets/default/s";
    let stored = block_on(t.for_resource("", "secrets").to_storage(b"v", aad)).expect("write");
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:a:"));
    let counts: Vec<_> = t
        .aesgcm_keys()
        .iter()
        .map(|(n, k)| (n.as_str(), k.writes()))
        .collect();
    assert_eq!(counts, [("a", 1)]);
    // Plaintext from before encryption reads through identity, stale.
    let (p, f) =
        block_on(t.for_resource("", "secrets").from_storage(b"k8s\0old", aad)).expect("read");
    assert_eq!((p.expose_secret(), f), (&b"k8s\0old"[..], Freshness::Stale));
}

#[test]
fn unconfigured_resources_use_identity_that_fails_closed() {
    let t = parse(&providers("  - identity: {}\n"))
        .expect("valid")
        .build(&NoKms)
        .expect("build");
    let l = t.for_resource("", "configmaps");
    let err = block_on(l.from_storage(b"k8s:enc:aesgcm:v1:k:xxxx", b"k")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "identity transformer tried to read encrypted data"
    );
}

#[test]
fn key_rotation_marks_second_key_stale_and_no_key_errors() {
    let body = format!(
        "  - aesgcm:\n      keys: [{{name: new, secret: {K32}}}, {{name: old, secret: {K16}}}]\n"
    );
    let t = parse(&providers(&body))
        .expect("valid")
        .build(&NoKms)
        .expect("build");
    let rotated = format!("  - aesgcm:\n      keys: [{{name: old, secret: {K16}}}]\n");
    let old = parse(&providers(&rotated))
        .expect("valid")
        .build(&NoKms)
        .expect("build");
    let aad = b"/registry/secrets/ns/n";
    let stored = block_on(old.for_resource("", "secrets").to_storage(b"v", aad)).expect("write");
    let (_, f) = block_on(t.for_resource("", "secrets").from_storage(&stored, aad)).expect("read");
    assert_eq!(f, Freshness::Stale);
    let err = block_on(
        t.for_resource("", "secrets")
            .from_storage(b"k8s:enc:aesgcm:v1:gone:0123456789abcdef", aad),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no matching key was found for the provided AES transformer"
    );
    let err = block_on(
        t.for_resource("", "secrets")
            .from_storage(b"k8s:enc:secretbox:v1:x:", aad),
    )
    .unwrap_err();
    assert!(
        matches!(err, TransformError::NoMatch(NoMatch::Prefix)),
        "{err:?}"
    );
}

#[test]
fn kms_needs_a_connector() {
    let c = parse(&kms(
        "      apiVersion: v2\n      name: a\n      endpoint: unix:///k.sock\n",
    ))
    .expect("valid");
    let e = c.build(&NoKms).unwrap_err();
    assert_eq!(
        e.to_string(),
        "KMS provider \"a\" (v2) needs a KMS client, and none was supplied"
    );
}

#[test]
fn derived_vectors_through_the_config() {
    // reference/encryption.md §5.6, read through full configs (the config owns the prefixes).
    let plain = ::hex::decode(OLD_SECRET_PLAINTEXT).expect("hex");
    for (provider, key_name, secret, stored) in [
        ("aescbc", "A", DERIVED_AESCBC_KEY, DERIVED_AESCBC),
        ("aesgcm", "key1", DERIVED_AESGCM_KEY, DERIVED_AESGCM),
        (
            "secretbox",
            "key1",
            DERIVED_SECRETBOX_KEY,
            DERIVED_SECRETBOX,
        ),
    ] {
        let body =
            format!("  - {provider}:\n      keys: [{{name: {key_name}, secret: '{secret}'}}]\n");
        let t = parse(&providers(&body))
            .expect("valid")
            .build(&NoKms)
            .expect("build");
        let stored = ::hex::decode(stored).expect("hex");
        let (p, f) = block_on(
            t.for_resource("", "secrets")
                .from_storage(&stored, DERIVED_AAD),
        )
        .expect(provider);
        assert_eq!(p.expose_secret(), plain.as_slice(), "{provider}");
        assert_eq!(f, Freshness::Current);
    }
}
