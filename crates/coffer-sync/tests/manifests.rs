//! ESO's documented example manifests (tests/fixtures/eso, verbatim) parse into Coffer's
//! types with ESO's field names and defaults.

use std::time::Duration;

use coffer_sync::types::*;

fn fixture(name: &str) -> Vec<Manifest> {
    let path = format!(
        "{}/tests/fixtures/eso/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    // mkdocs markers, not YAML (see fixtures/eso/README.md).
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("{%"))
        .map(|l| format!("{l}\n"))
        .collect();
    Manifest::parse_all(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one_es(name: &str) -> ExternalSecret {
    match fixture(name).into_iter().next() {
        Some(Manifest::ExternalSecret(es)) => es,
        other => panic!("{name}: {other:?}"),
    }
}

fn one_store(name: &str) -> SecretStore {
    match fixture(name).into_iter().next() {
        Some(Manifest::SecretStore(s) | Manifest::ClusterSecretStore(s)) => s,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn aws_store_and_external_secret() {
    let store = one_store("aws-sm-store");
    let aws = store.spec.provider.aws.expect("aws provider");
    assert_eq!(aws.service, "SecretsManager");
    assert_eq!(aws.region, "eu-central-1");
    let sr = aws.auth.secret_ref.expect("secretRef");
    assert_eq!(sr.access_key_id.name, "awssm-secret");
    assert_eq!(sr.access_key_id.key, "access-key");
    assert_eq!(sr.secret_access_key_secret_ref.key, "secret-access-key");

    let es = one_es("aws-sm-external-secret");
    assert_eq!(
        es.spec.refresh_interval.as_duration(),
        Duration::from_secs(3600)
    );
    assert_eq!(es.spec.secret_store_ref.name, "aws-secretsmanager");
    assert_eq!(es.spec.secret_store_ref.kind, StoreKind::SecretStore);
    assert_eq!(es.target_name(), "friends");
    assert_eq!(es.spec.target.creation_policy, CreationPolicy::Owner);
    assert_eq!(es.spec.data[0].secret_key, "my_name");
    assert_eq!(
        es.spec.data[0].remote_ref.property.as_deref(),
        Some("name.first")
    );
    assert_eq!(
        es.spec.data[2].remote_ref.metadata_policy,
        MetadataPolicy::Fetch
    );
}

#[test]
fn defaults_are_esos() {
    let es = one_es("basic-external-secret");
    assert_eq!(es.spec.refresh_policy, RefreshPolicy::Periodic);
    assert_eq!(es.spec.target.deletion_policy, DeletionPolicy::Retain);
    let es: ExternalSecret = serde_json::from_value(serde_json::json!({
        "apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
        "metadata": {"name": "n", "namespace": "ns"},
        "spec": {"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "k", "remoteRef": {"key": "r"}}]}
    }))
    .expect("minimal v1beta1");
    assert_eq!(
        es.spec.refresh_interval.as_duration(),
        Duration::from_secs(3600)
    );
    assert_eq!(es.spec.secret_store_ref.kind, StoreKind::SecretStore);
    assert_eq!(es.spec.target.creation_policy, CreationPolicy::Owner);
    assert_eq!(es.spec.target.deletion_policy, DeletionPolicy::Retain);
    assert_eq!(
        es.spec.data[0].remote_ref.decoding_strategy,
        DecodingStrategy::None
    );
    assert_eq!(es.target_name(), "n");
}

#[test]
fn vault_stores() {
    let s = one_store("vault-approle-store");
    let v = s.spec.provider.vault.expect("vault");
    assert_eq!(v.server, "https://vault.acme.org");
    assert_eq!(v.path.as_deref(), Some("secret"));
    assert_eq!(v.version, VaultKvVersion::V2);
    let ar = v.auth.and_then(|a| a.app_role).expect("appRole");
    assert_eq!(ar.path, "approle");
    assert_eq!(
        ar.role_id.as_deref(),
        Some("db02de05-fa39-4855-059b-67221c5c2f63")
    );
    assert_eq!(ar.secret_ref.key, "secret-id");
    let s = one_store("vault-token-store");
    assert!(
        s.spec
            .provider
            .vault
            .and_then(|v| v.auth)
            .and_then(|a| a.token_secret_ref)
            .is_some()
    );
    let s = one_store("vault-kubernetes-store");
    let k = s
        .spec
        .provider
        .vault
        .and_then(|v| v.auth)
        .and_then(|a| a.kubernetes)
        .expect("k8s");
    assert_eq!(k.mount_path, "kubernetes");
    assert!(!k.role.is_empty());
}

#[test]
fn azure_store_and_external_secrets() {
    let s = one_store("azkv-secret-store-spn-secret");
    let az = s.spec.provider.azurekv.expect("azurekv");
    assert!(az.vault_url.starts_with("https://"));
    assert!(az.auth_secret_ref.and_then(|a| a.client_secret).is_some());
    let es = one_es("azkv-external-secret");
    assert_eq!(es.spec.data[1].remote_ref.key, "secret/database-password");
    let es = one_es("azkv-datafrom-external-secret");
    assert!(!es.spec.data_from.is_empty());
}

#[test]
fn full_examples_and_templates() {
    let stores = fixture("full-secret-store");
    assert!(!stores.is_empty());
    let cluster = fixture("full-cluster-secret-store");
    assert!(matches!(cluster[0], Manifest::ClusterSecretStore(_)));
    match &fixture("full-cluster-external-secret")[0] {
        Manifest::ClusterExternalSecret(ces) => {
            assert!(!ces.external_secret_name().is_empty());
            assert!(
                !ces.spec.external_secret_spec.data.is_empty()
                    || !ces.spec.external_secret_spec.data_from.is_empty()
            );
        }
        other => panic!("{other:?}"),
    }
    let es = one_es("datafrom-rewrite-transform");
    assert!(
        es.spec
            .data_from
            .iter()
            .any(|d| d.rewrite.iter().any(|r| r.transform.is_some()))
    );
    let es = one_es("datafrom-rewrite-remove-path");
    assert!(es.spec.data_from[0].rewrite[0].regexp.is_some());
    for name in [
        "multikey-template-v2-external-secret",
        "merge-template-v2-external-secret",
        "template-v2-literal-example",
        "multiline-template-v2-external-secret",
        "basic-secret-store",
    ] {
        assert!(!fixture(name).is_empty(), "{name}");
    }
}

#[test]
fn full_external_secret_as_documented() {
    // ESO's full-external-secret.yaml has `acme.org/sha: 1234`, an integer annotation that a
    // Kubernetes API server refuses too; Coffer refuses it the same way. Quoted, it parses
    // with every documented field. The file also repeats `dataFrom:` ("#Or"): the last wins.
    let path = format!(
        "{}/tests/fixtures/eso/full-external-secret.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text: String = std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .filter(|l| !l.trim_start().starts_with("{%"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = Manifest::parse_all(&text).expect_err("integer annotation");
    assert!(err.to_string().contains("1234"), "{err}");
    let fixed = text.replacen("acme.org/sha: 1234", "acme.org/sha: \"1234\"", 1);
    let es = match Manifest::parse_all(&fixed).expect("parses").remove(0) {
        Manifest::ExternalSecret(es) => es,
        other => panic!("{other:?}"),
    };
    assert_eq!(es.spec.target.creation_policy, CreationPolicy::Merge);
    assert_eq!(es.spec.refresh_policy, RefreshPolicy::Periodic);
    let t = es.spec.target.template.expect("template");
    assert_eq!(t.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(t.engine_version, "v2");
    assert_eq!(es.spec.data[0].remote_ref.version.as_deref(), Some("v1"));
    assert_eq!(
        es.spec.data[0]
            .source_ref
            .as_ref()
            .and_then(|s| s.store_ref.as_ref())
            .map(|r| r.kind),
        Some(StoreKind::ClusterSecretStore)
    );
    assert_eq!(es.spec.data_from.len(), 2);
    assert_eq!(
        es.spec.data_from[1]
            .find
            .as_ref()
            .expect("find")
            .conversion_strategy,
        ConversionStrategy::Unicode
    );
    assert_eq!(
        es.spec.data_from[0]
            .extract
            .as_ref()
            .expect("extract")
            .decoding_strategy,
        DecodingStrategy::Auto
    );
    assert_eq!(
        es.spec.data_from[0].rewrite[0]
            .regexp
            .as_ref()
            .expect("regexp")
            .target,
        "rewriting-${1}-with-groups"
    );
}

#[test]
fn bad_manifests_are_refused_with_what_to_do() {
    let e = Manifest::parse_all("apiVersion: external-secrets.io/v1alpha1\nkind: ExternalSecret\n")
        .expect_err("old version");
    assert!(e.to_string().contains("v1beta1"), "{e}");
    let e = Manifest::parse_all("apiVersion: external-secrets.io/v1\nkind: PushSecret\n")
        .expect_err("kind");
    assert!(e.to_string().contains("PushSecret"), "{e}");
    let e = Manifest::parse_all(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nspec:\n  refreshInterval: soon\n",
    )
    .expect_err("bad duration");
    assert!(e.to_string().contains("soon"), "{e}");
    let e = Manifest::parse_all(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nspec:\n  target:\n    creationPolicy: Sometimes\n",
    )
    .expect_err("bad enum");
    assert!(e.to_string().contains("Sometimes"), "{e}");
}
