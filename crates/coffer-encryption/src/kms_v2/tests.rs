//! KMS v2 transformer tests with the in-process mock plugin.

use futures::executor::block_on;

use super::*;
use crate::testing::Base64KmsV2;
use crate::testing::vectors::*;

const AAD: &[u8] = b"/registry/secrets/default/s";

fn kms(key_id: &str) -> (Arc<Base64KmsV2>, KmsV2) {
    let plugin = Arc::new(Base64KmsV2::new(key_id));
    let t = KmsV2::new(plugin.clone());
    (plugin, t)
}

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).expect("vector hex")
}

#[test]
fn not_ready_until_first_probe() {
    let (_, t) = kms("1");
    let err = block_on(t.to_storage(b"x", AAD)).unwrap_err();
    assert!(
        matches!(err, TransformError::Kms(KmsError::NotReady)),
        "{err:?}"
    );
    block_on(t.probe()).expect("healthy");
    assert_eq!(t.current_key_id().as_deref(), Some("1"));
    let stored = block_on(t.to_storage(b"x", AAD)).expect("write");
    let (plain, f) = block_on(t.from_storage(&stored, AAD)).expect("read");
    assert_eq!((plain.expose_secret(), f), (&b"x"[..], Freshness::Current));
}

#[test]
fn writes_type_1_with_the_state_fields() {
    let (_, t) = kms("key-a");
    block_on(t.probe()).expect("healthy");
    let stored = block_on(t.to_storage(b"hello", AAD)).expect("write");
    let eo = EncryptedObject::decode_validated(&stored).expect("valid object");
    assert_eq!(eo.key_id, "key-a");
    assert_eq!(
        eo.source_type(),
        Some(DekSourceType::HkdfSha256XNonceAesGcmSeed)
    );
    assert_eq!(eo.encrypted_data.len(), 32 + 12 + 5 + 16);
    assert_eq!(eo.annotations.len(), 1);
    // The same seed is reused across writes; no plugin call per write.
    let again =
        EncryptedObject::decode_validated(&block_on(t.to_storage(b"hello", AAD)).expect("write"))
            .expect("valid");
    assert_eq!(again.encrypted_dek_source, eo.encrypted_dek_source);
    assert_ne!(again.encrypted_data, eo.encrypted_data);
}

#[test]
fn key_id_change_makes_a_new_seed_and_old_data_stale() {
    let (plugin, t) = kms("1");
    block_on(t.probe()).expect("healthy");
    let old = block_on(t.to_storage(b"old", AAD)).expect("write");
    block_on(t.probe()).expect("same key id keeps the seed");
    let same = block_on(t.to_storage(b"x", AAD)).expect("write");
    assert_eq!(
        EncryptedObject::decode_validated(&same)
            .expect("eo")
            .encrypted_dek_source,
        EncryptedObject::decode_validated(&old)
            .expect("eo")
            .encrypted_dek_source
    );
    plugin.set_key_id("2");
    block_on(t.probe()).expect("rotated");
    let new = block_on(t.to_storage(b"new", AAD)).expect("write");
    assert_eq!(
        EncryptedObject::decode_validated(&new).expect("eo").key_id,
        "2"
    );
    let (p, f) = block_on(t.from_storage(&old, AAD)).expect("old still reads");
    assert_eq!((p.expose_secret(), f), (&b"old"[..], Freshness::Stale));
    let (_, f) = block_on(t.from_storage(&new, AAD)).expect("new reads");
    assert_eq!(f, Freshness::Current);
}

#[test]
fn unhealthy_plugin_keeps_the_old_state() {
    let (plugin, t) = kms("1");
    block_on(t.probe()).expect("healthy");
    plugin.set_healthz("disk on fire");
    let err = block_on(t.probe()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kmsv2 Provider is not healthy, error: got unexpected healthz status: disk on fire"
    );
    assert!(
        block_on(t.to_storage(b"x", AAD)).is_ok(),
        "old state usable until it expires"
    );
    plugin.set_healthz("ok");
    plugin.set_key_id("");
    let err = block_on(t.probe()).unwrap_err();
    assert!(
        err.to_string()
            .contains("got invalid KMSv2 KeyID hash \"\": keyID is empty"),
        "{err}"
    );
}

#[test]
fn wrong_aad_and_tamper_fail() {
    let (_, t) = kms("1");
    block_on(t.probe()).expect("healthy");
    let stored = block_on(t.to_storage(b"v", AAD)).expect("write");
    assert!(block_on(t.from_storage(&stored, b"/registry/secrets/default/other")).is_err());
    let err = block_on(t.from_storage(b"\xff\xff", AAD)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to unmarshal encrypted object"),
        "{err}"
    );
}

#[test]
fn real_kube_apiserver_values_decrypt() {
    // reference/encryption.md §5.3: prefix "k8s:enc:kms:v2:kms-provider:" is the config's.
    let prefix = format!("k8s:enc:kms:v2:{KMS_V2_PROVIDER}:");
    let (_, t) = kms("1");
    block_on(t.probe()).expect("healthy");
    for (stored, aad, plain, ty) in [
        (
            KMS_V2_TYPE0_STORED,
            KMS_V2_TYPE0_AAD,
            KMS_V2_TYPE0_PLAINTEXT,
            DekSourceType::AesGcmKey,
        ),
        (
            KMS_V2_TYPE1_STORED,
            KMS_V2_TYPE1_AAD,
            KMS_V2_TYPE1_PLAINTEXT,
            DekSourceType::HkdfSha256XNonceAesGcmSeed,
        ),
    ] {
        let stored = hex(stored);
        let body = stored.strip_prefix(prefix.as_bytes()).expect("prefix");
        let eo = EncryptedObject::decode_validated(body).expect("valid object");
        assert_eq!(eo.source_type(), Some(ty));
        assert_eq!(eo.key_id, "1");
        assert_eq!(
            eo.annotations
                .get("local-kek.kms.kubernetes.io")
                .map(Vec::as_slice),
            Some(&b"encrypted-local-kek"[..])
        );
        let (p, f) = block_on(t.from_storage(body, aad)).expect("decrypts");
        assert_eq!(p.expose_secret(), hex(plain).as_slice());
        // Type 0 is stale (old type); type 1 with the current key id is current.
        let expected = if ty == DekSourceType::AesGcmKey {
            Freshness::Stale
        } else {
            Freshness::Current
        };
        assert_eq!(f, expected);
        // Re-encoding the decoded object gives the stored bytes back.
        assert_eq!(eo.encode_to_vec(), body);
    }
}

#[test]
fn derived_type_1_vector() {
    // reference/encryption.md §5.6: our own fixed-nonce encode vector.
    let stored = hex(DERIVED_KMS_V2);
    let body = stored
        .strip_prefix(b"k8s:enc:kms:v2:mock:".as_slice())
        .expect("prefix");
    let eo = EncryptedObject::decode_validated(body).expect("valid");
    assert_eq!(eo.key_id, "key-1");
    assert!(eo.annotations.is_empty());
    assert_eq!(
        eo.encode_to_vec(),
        body,
        "prost encodes fields in number order like Go"
    );
    let (_, t) = kms("key-1");
    block_on(t.probe()).expect("healthy");
    let (p, f) = block_on(t.from_storage(body, DERIVED_AAD)).expect("decrypts");
    assert_eq!(p.expose_secret(), hex(OLD_SECRET_PLAINTEXT).as_slice());
    assert_eq!(f, Freshness::Current);
}

#[test]
fn debug_shows_no_seed_or_key_id() {
    let (_, t) = kms("secret-looking-key-id");
    block_on(t.probe()).expect("healthy");
    let shown = format!("{t:?}");
    assert!(
        !shown.contains("secret-looking-key-id") && shown.contains("sha256:"),
        "{shown}"
    );
}

#[test]
fn writes_stop_when_the_state_expires_but_reads_go_on() {
    let plugin = Arc::new(Base64KmsV2::new("1"));
    let t = KmsV2::with_write_state_ttl(plugin.clone(), Duration::from_millis(50));
    block_on(t.probe()).expect("healthy");
    let stored = block_on(t.to_storage(b"x", AAD)).expect("write before expiry");
    plugin.set_healthz("unreachable");
    std::thread::sleep(Duration::from_millis(80));
    assert!(block_on(t.probe()).is_err());
    let err = block_on(t.to_storage(b"x", AAD)).unwrap_err().to_string();
    assert!(
        err.starts_with("encryptedDEKSource with keyID hash \"sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b\" expired"),
        "{err}"
    );
    assert!(
        block_on(t.from_storage(&stored, AAD)).is_ok(),
        "reads never expire"
    );
    plugin.set_healthz("ok");
    block_on(t.probe()).expect("healthy again");
    assert!(
        block_on(t.to_storage(b"x", AAD)).is_ok(),
        "a good probe renews the state"
    );
}

#[test]
fn healthz_caches_results() {
    let (plugin, t) = kms("1");
    block_on(t.healthz()).expect("healthy");
    plugin.set_healthz("broken");
    // Within 20 s the cached success is reused; a direct probe sees the failure.
    block_on(t.healthz()).expect("cached success");
    assert!(block_on(t.probe()).is_err());
}
