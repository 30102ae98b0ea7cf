//! Key material never appears in `Debug` output or error messages: a canary key is loaded and
//! every printable thing around it is checked for the key in raw, hex and base64 form.

use std::path::Path;

use coffer_encryption::{EncryptionConfig, LoadMode, NoKms, ReadTransformer, Transformer};
use futures::executor::block_on;

/// 32 ASCII bytes, so a raw leak would be readable too.
const CANARY: &str = "CANARY-KEY-0123456789-abcdefghij";
const CANARY_B64: &str = "Q0FOQVJZLUtFWS0wMTIzNDU2Nzg5LWFiY2RlZmdoaWo=";

fn assert_clean(what: &str, text: &str) {
    let hex = hex::encode(CANARY);
    for needle in [
        CANARY,
        CANARY_B64,
        &CANARY_B64[..20],
        hex.as_str(),
        "CANARY",
    ] {
        assert!(
            !text.contains(needle),
            "{what} leaks the canary key: {text}"
        );
    }
}

#[test]
fn canary_key_never_prints() {
    assert_eq!(base64_len(), CANARY.len());
    let mut errors = Vec::new();
    for provider in ["aesgcm", "aescbc", "secretbox"] {
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - {provider}:\n      keys: [{{name: canary, secret: '{CANARY_B64}'}}]\n"
        );
        let config = EncryptionConfig::parse(yaml.as_bytes(), Path::new("t"), LoadMode::Startup)
            .expect("valid");
        assert_clean("config Debug", &format!("{config:?} {config:#?}"));
        let t = config.build(&NoKms).expect("build");
        assert_clean("transformers Debug", &format!("{t:?}"));
        let list = t.for_resource("", "secrets");
        assert_clean("prefix list Debug", &format!("{list:?}"));
        let stored = block_on(list.to_storage(b"plain", b"/registry/secrets/a/b")).expect("write");
        let mut bad = stored.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        if let Err(e) = block_on(list.from_storage(&bad, b"/registry/secrets/a/b")) {
            errors.push(format!("{e} {e:?}"));
        }
        if let Err(e) = block_on(list.from_storage(&stored, b"/registry/secrets/a/c")) {
            errors.push(format!("{e} {e:?}"));
        }
        // A near miss in the config: wrong length, the message must not echo the secret.
        let short = yaml.replace(CANARY_B64, &CANARY_B64[..40]);
        if let Err(e) = EncryptionConfig::parse(short.as_bytes(), Path::new("t"), LoadMode::Startup)
        {
            errors.push(format!("{e} {e:?}"));
        }
        // A type error on the secret field.
        let typed = yaml.replace(&format!("'{CANARY_B64}'"), &format!("['{CANARY_B64}']"));
        if let Err(e) = EncryptionConfig::parse(typed.as_bytes(), Path::new("t"), LoadMode::Startup)
        {
            errors.push(format!("{e} {e:?}"));
        }
    }
    // A secret YAML reads as a number: the type error must not echo it.
    let numeric = "apiVersion: v1\nkind: EncryptionConfig\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys: [{name: k, secret: 98765432109876543210}]\n";
    let e =
        EncryptionConfig::parse(numeric.as_bytes(), Path::new("t"), LoadMode::Startup).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("98765432109876543210") && !shown.contains("9.87"),
        "{shown}"
    );
    assert!(
        shown.contains("resources[0].providers[0].aesgcm.keys[0].secret"),
        "{shown}"
    );
    assert!(errors.len() >= 6, "{errors:?}");
    for e in &errors {
        assert_clean("error", e);
    }
}

fn base64_len() -> usize {
    coffer_encryption::KeyMaterial::from_go_base64(CANARY_B64)
        .expect("canary base64")
        .len()
}
