//! The PKCS#11 key backend against a real SoftHSM2 token, served by [`KmsV2Server`] on a unix
//! socket and reached with the KMS v2 gRPC client and the KMS v2 transformer: a wrong PIN is
//! refused clearly, seeds round-trip, a rotation changes the key id while old ciphertext still
//! decrypts, a logged-out token is logged in again, corrupted or foreign input is a gRPC error
//! (never a panic), and unsafe keys are refused.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialized, once per process, and this
//! crate forbids the `unsafe` that `std::env::set_var` needs; so the test makes a token, then
//! runs itself again as a child process with the variable set, and the child does the work.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use coffer_encryption::testing::softhsm::SoftHsm;
use coffer_encryption::{
    EncryptionConfig, Freshness, GrpcKms, GrpcKmsV2, KeyMaterial, KmsDecryptRequest, KmsEndpoint,
    KmsV2Server, KmsV2Service, LoadMode, Pkcs11Error, Pkcs11Kek, Pkcs11Options, ReadTransformer,
    TokenSelector, Transformer,
};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

const CHILD: &str = "COFFER_PKCS11_TEST_DIR";
const TOKEN: &str = "coffer-test";

#[test]
fn pkcs11_backend_with_softhsm2() {
    if let Some(dir) = std::env::var_os(CHILD) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(child(Path::new(&dir)));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let hsm = SoftHsm::init(dir.path(), TOKEN);
    let (var, conf) = hsm.env();
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["pkcs11_backend_with_softhsm2", "--exact", "--nocapture"])
        .env(var, conf)
        .env(CHILD, dir.path())
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
    assert!(!text.contains("1234"), "the PIN was printed:\n{text}");
}

fn options(dir: &Path, pin_file: &Path, label: &str) -> Pkcs11Options {
    let mut o = Pkcs11Options::new(
        SoftHsm::module(),
        TokenSelector::Label(TOKEN.into()),
        pin_file.to_path_buf(),
    );
    let _ = dir;
    o.key_label = label.into();
    o
}

async fn child(dir: &Path) {
    let pin_file = dir.join("pin");

    // Before anything logs in (a logged-in process would not even check a PIN).
    let wrong = dir.join("wrong-pin");
    std::fs::write(&wrong, "9999\n").expect("write");
    let err = Pkcs11Kek::open(&options(dir, &wrong, "coffer-kek")).expect_err("wrong PIN");
    assert!(matches!(err, Pkcs11Error::PinIncorrect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("CKR_PIN_INCORRECT") && text.contains("wrong-pin") && !text.contains("9999"),
        "{text}"
    );
    let mut absent = options(dir, &pin_file, "coffer-kek");
    absent.token = TokenSelector::Label("no-such-token".into());
    let text = Pkcs11Kek::open(&absent).expect_err("absent").to_string();
    assert!(
        text.contains("no-such-token") && text.contains("\"coffer-test\" in slot"),
        "{text}"
    );

    // No key yet: Status says how to make one; starting the plugin creates version 1.
    let kek = Pkcs11Kek::open(&options(dir, &pin_file, "coffer-kek")).expect("open");
    let text = kek.health_check().expect_err("no key").to_string();
    assert!(text.contains("coffer kms-plugin rotate"), "{text}");
    let first = kek
        .create_first_key()
        .expect("create")
        .expect("a key was made");
    assert!(first.starts_with("coffer-kek/v1-"), "{first}");
    assert_eq!(kek.create_first_key().expect("again"), None);
    assert!(!format!("{kek:?}").contains("1234"));

    // Served over gRPC on a unix socket.
    let kek = Arc::new(kek);
    let socket = dir.join("kms.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let server = KmsV2Server::new(Arc::clone(&kek) as Arc<dyn KmsV2Service>);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .serve_with_incoming(server, UnixListenerStream::new(listener))
            .await;
    });
    let client =
        GrpcKmsV2::connect_lazy(&KmsEndpoint::Path(socket.clone()), Duration::from_secs(5))
            .expect("client");
    let status = client.status().await.expect("Status");
    assert_eq!(
        (status.healthz.as_str(), status.key_id.as_str()),
        ("ok", first.as_str())
    );

    let seed = KeyMaterial::new(vec![42; 32]);
    let wrapped = client.encrypt("uid-1", &seed).await.expect("Encrypt");
    assert_eq!(wrapped.key_id, first);
    assert_eq!(wrapped.ciphertext.len(), 12 + 32 + 16);
    assert!(!wrapped.ciphertext.windows(32).any(|w| w == [42; 32]));
    let again = client.encrypt("uid-1b", &seed).await.expect("Encrypt");
    assert_ne!(again.ciphertext, wrapped.ciphertext, "a fresh IV each time");
    let old = KmsDecryptRequest {
        ciphertext: wrapped.ciphertext.clone(),
        key_id: first.clone(),
        annotations: BTreeMap::new(),
    };
    let plain = client.decrypt("uid-2", &old).await.expect("Decrypt");
    assert_eq!(plain.expose_secret(), &[42; 32]);

    // The KMS v2 transformer through the plugin.
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms: {{apiVersion: v2, name: hsm, endpoint: 'unix://{}', timeout: 3s}}\n",
        socket.display()
    );
    let config = EncryptionConfig::parse(yaml.as_bytes(), Path::new("t"), LoadMode::Startup)
        .expect("config");
    let transformers = config.build(&GrpcKms).expect("build");
    let kms = Arc::clone(&transformers.kms_v2()[0].1);
    kms.probe().await.expect("probe");
    let secrets = transformers.for_resource("", "secrets");
    let aad = b"/registry/secrets/default/s1";
    let stored_v1 = secrets
        .to_storage(b"the secret object", aad)
        .await
        .expect("write");
    let (p, fresh) = secrets.from_storage(&stored_v1, aad).await.expect("read");
    assert_eq!(
        (p.expose_secret(), fresh),
        (&b"the secret object"[..], Freshness::Current)
    );

    // Rotate (in this process; the binary's tests rotate from another process).
    let second = kek.rotate().expect("rotate");
    assert!(
        second.starts_with("coffer-kek/v2-") && second != first,
        "{second}"
    );
    assert_eq!(client.status().await.expect("Status").key_id, second);
    assert_eq!(kek.current_key_id().expect("current"), second);
    let rewrapped = client.encrypt("uid-3", &seed).await.expect("Encrypt");
    assert_eq!(rewrapped.key_id, second);
    let plain = client
        .decrypt("uid-4", &old)
        .await
        .expect("old still decrypts");
    assert_eq!(plain.expose_secret(), &[42; 32]);
    kms.probe().await.expect("probe sees the new key id");
    let (p, fresh) = secrets
        .from_storage(&stored_v1, aad)
        .await
        .expect("read old");
    assert_eq!(
        (p.expose_secret(), fresh),
        (&b"the secret object"[..], Freshness::Stale)
    );
    let stored_v2 = secrets.to_storage(b"newer", aad).await.expect("write");
    let (_, fresh) = secrets
        .from_storage(&stored_v2, aad)
        .await
        .expect("read new");
    assert_eq!(fresh, Freshness::Current);

    // Corrupted, truncated, moved and foreign input: errors, never a panic, plugin still up.
    for (what, req) in bad_requests(&old, &second) {
        let err = client.decrypt("uid-bad", &req).await.expect_err(what);
        let text = err.to_string();
        assert!(!text.contains("1234"), "{what}: {text}");
    }
    assert_eq!(
        client
            .decrypt("uid-5", &old)
            .await
            .expect("still serving")
            .expose_secret(),
        &[42; 32]
    );

    // Logged out behind the backend's back (logout is per process): it logs in again.
    let ctx = Pkcs11::new(SoftHsm::module()).expect("module");
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).expect("info").label().trim_end() == TOKEN)
        .expect("token");
    let other = ctx.open_rw_session(slot).expect("session");
    other.logout().expect("logout");
    assert_eq!(
        client
            .decrypt("uid-6", &old)
            .await
            .expect("re-login")
            .expose_secret(),
        &[42; 32]
    );
    assert_eq!(client.status().await.expect("Status").key_id, second);

    // A key that could leave the token is refused when it becomes current.
    let pin = cryptoki::types::AuthPin::new("1234".into());
    let _ = other.login(UserType::User, Some(&pin));
    other
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(b"weak-kek".to_vec()),
                Attribute::Id(b"v1-00000000".to_vec()),
            ],
        )
        .expect("generate a weak key");
    let weak = Pkcs11Kek::open(&options(dir, &pin_file, "weak-kek")).expect("open");
    let text = weak.health_check().expect_err("refused").to_string();
    assert!(
        text.contains("CKA_EXTRACTABLE") || text.contains("CKA_SENSITIVE"),
        "{text}"
    );
    // Another label is another set of keys: the first label's key ids are foreign to it.
    let text = weak
        .decrypt("uid-7", &old)
        .await
        .expect_err("foreign key id")
        .to_string();
    assert!(
        text.contains("was not issued by this PKCS#11 token"),
        "{text}"
    );
    println!("pkcs11 child: all checks passed");
}

fn bad_requests(
    good: &KmsDecryptRequest,
    other_key_id: &str,
) -> Vec<(&'static str, KmsDecryptRequest)> {
    let with = |f: &dyn Fn(&mut KmsDecryptRequest)| {
        let mut r = good.clone();
        f(&mut r);
        r
    };
    vec![
        (
            "flipped tag bit",
            with(&|r| *r.ciphertext.last_mut().expect("non-empty") ^= 1),
        ),
        ("flipped IV bit", with(&|r| r.ciphertext[0] ^= 0x80)),
        ("flipped body bit", with(&|r| r.ciphertext[20] ^= 4)),
        ("truncated", with(&|r| r.ciphertext.truncate(20))),
        ("empty", with(&|r| r.ciphertext.clear())),
        (
            "one byte short of a tag",
            with(&|r| r.ciphertext.truncate(12 + 15)),
        ),
        (
            "oversized garbage",
            with(&|r| r.ciphertext = vec![0xa5; 1024]),
        ),
        (
            "moved to another key id",
            with(&|r| r.key_id = other_key_id.to_owned()),
        ),
        (
            "unknown version",
            with(&|r| r.key_id = "coffer-kek/v9-00000000".into()),
        ),
        (
            "another label",
            with(&|r| r.key_id = "other/v1-00000000".into()),
        ),
        ("no label", with(&|r| r.key_id = "v1-00000000".into())),
        ("empty key id", with(&|r| r.key_id.clear())),
    ]
}
