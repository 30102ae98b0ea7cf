use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::*;

const RSA1_PKCS1: &str = include_str!("testdata/rsa1-pkcs1.pem");
const RSA1_PKCS8: &str = include_str!("testdata/rsa1-pkcs8.pem");
const RSA1_PUB: &str = include_str!("testdata/rsa1-pub.pem");
const RSA2_PKCS8: &str = include_str!("testdata/rsa2-pkcs8.pem");
const EC1_SEC1: &str = include_str!("testdata/ec1-sec1.pem");
const EC1_PKCS8: &str = include_str!("testdata/ec1-pkcs8.pem");
const EC1_PUB: &str = include_str!("testdata/ec1-pub.pem");
// Computed independently with openssl (see testdata/README.md).
const RSA1_KID: &str = "TvUASAKoZI4tk1QR2eFwNaalW5W8kzCUH2zBQttXG1E";
const EC1_KID: &str = "hRrigFtqCfrrXmKwi0iW1vQrR3lMyweysuy5jXBpDIA";

const ISSUER: &str = "https://coffer.local";

fn key(pem: &str) -> SigningKey {
    SigningKey::from_pem(pem.as_bytes(), "test").expect("key")
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_946_400)
}

fn spec(bound: Option<BoundObject>) -> TokenSpec {
    TokenSpec {
        namespace: "team-a".into(),
        sa_name: "builder".into(),
        sa_uid: "sa-uid-1".into(),
        audiences: vec![ISSUER.into()],
        expiration_seconds: 3600,
        bound_object: bound,
        now: t0(),
    }
}

fn authenticator(keys: Vec<PublicKey>) -> TokenAuthenticator {
    TokenAuthenticator::new(vec![ISSUER.into()], vec![ISSUER.into()], keys)
}

fn issue(signing: &SigningKey, spec: &TokenSpec) -> String {
    TokenIssuer::new(ISSUER, signing.clone())
        .issue(spec)
        .expect("issue")
        .token
        .expose_secret()
        .to_owned()
}

fn part(token: &str, i: usize) -> serde_json::Value {
    let p = token.split('.').nth(i).expect("part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p)
        .expect("b64");
    serde_json::from_slice(&bytes).expect("json")
}

fn invalid(result: Result<ServiceAccountToken, TokenError>) -> InvalidToken {
    match result {
        Err(TokenError::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn round_trip_rsa_with_kube_claims() {
    let signing = key(RSA1_PKCS1);
    let issued = TokenIssuer::new(ISSUER, signing.clone())
        .issue(&spec(None))
        .expect("issue");
    assert_eq!(issued.expires_at, t0() + Duration::from_secs(3600));
    let token = issued.token.expose_secret();
    assert_eq!(
        part(token, 0),
        serde_json::json!({"alg": "RS256", "kid": RSA1_KID})
    );
    let claims = part(token, 1);
    let jti = claims["jti"].as_str().expect("jti").to_owned();
    assert!(uuid::Uuid::parse_str(&jti).is_ok());
    assert_eq!(
        claims,
        serde_json::json!({
            "iss": ISSUER,
            "sub": "system:serviceaccount:team-a:builder",
            "aud": [ISSUER],
            "exp": 1_795_946_400i64 + 3600,
            "iat": 1_795_946_400i64,
            "nbf": 1_795_946_400i64,
            "jti": jti,
            "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "builder", "uid": "sa-uid-1"}}
        })
    );
    let sa = authenticator(vec![signing.public_key().clone()])
        .authenticate_at(token, None, t0() + Duration::from_secs(10))
        .expect("valid");
    assert_eq!(
        sa,
        ServiceAccountToken {
            namespace: "team-a".into(),
            name: "builder".into(),
            uid: "sa-uid-1".into(),
            bound: None,
            node: None,
            jti: Some(jti.clone()),
            audiences: vec![ISSUER.into()],
            expires_at: 1_795_946_400 + 3600,
        }
    );
    let user = user_info(&sa);
    assert_eq!(user.name, "system:serviceaccount:team-a:builder");
    assert_eq!(user.uid, "sa-uid-1");
    assert_eq!(
        user.groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            "system:authenticated"
        ]
    );
    assert_eq!(
        user.extra.get("authentication.kubernetes.io/credential-id"),
        Some(&vec![format!("JTI={jti}")])
    );
    assert_eq!(user.extra.len(), 1);
}

#[test]
fn round_trip_ec_and_pod_binding() {
    let signing = key(EC1_SEC1);
    assert_eq!(signing.public_key().algorithm(), KeyAlgorithm::Es256);
    let pod = BoundObject {
        kind: BoundKind::Pod,
        name: "web-0".into(),
        uid: "pod-uid".into(),
    };
    let token = issue(&signing, &spec(Some(pod.clone())));
    assert_eq!(part(&token, 0)["alg"], "ES256");
    assert_eq!(
        part(&token, 1)["kubernetes.io"]["pod"],
        serde_json::json!({"name": "web-0", "uid": "pod-uid"})
    );
    let sa = authenticator(vec![signing.public_key().clone()])
        .authenticate_at(&token, None, t0())
        .expect("valid");
    assert_eq!(sa.bound, Some(pod));
    let user = user_info(&sa);
    assert_eq!(
        user.extra.get("authentication.kubernetes.io/pod-name"),
        Some(&vec!["web-0".to_owned()])
    );
    assert_eq!(
        user.extra.get("authentication.kubernetes.io/pod-uid"),
        Some(&vec!["pod-uid".to_owned()])
    );
}

#[test]
fn secret_and_node_bindings() {
    let signing = key(RSA1_PKCS8);
    let auth = authenticator(vec![signing.public_key().clone()]);
    for kind in [BoundKind::Secret, BoundKind::Node] {
        let object = BoundObject {
            kind,
            name: "o".into(),
            uid: "u".into(),
        };
        let token = issue(&signing, &spec(Some(object.clone())));
        let claim = if kind == BoundKind::Secret {
            "secret"
        } else {
            "node"
        };
        assert!(part(&token, 1)["kubernetes.io"][claim].is_object());
        let sa = auth.authenticate_at(&token, None, t0()).expect("valid");
        assert_eq!(sa.bound, Some(object));
        let user = user_info(&sa);
        assert_eq!(
            user.extra
                .contains_key("authentication.kubernetes.io/node-name"),
            kind == BoundKind::Node
        );
    }
}

#[test]
fn wrong_key_is_refused() {
    let token = issue(&key(RSA1_PKCS1), &spec(None));
    let other = authenticator(vec![key(RSA2_PKCS8).public_key().clone()]);
    assert_eq!(
        invalid(other.authenticate_at(&token, None, t0())),
        InvalidToken::BadSignature
    );
    // Any configured key works, whatever the kid says.
    let both = authenticator(vec![
        key(RSA2_PKCS8).public_key().clone(),
        PublicKey::all_from_pem(RSA1_PUB.as_bytes(), "pub").expect("pub")[0].clone(),
    ]);
    assert!(both.authenticate_at(&token, None, t0()).is_ok());
}

#[test]
fn wrong_audience_is_refused_and_override_works() {
    let signing = key(RSA1_PKCS1);
    let mut s = spec(None);
    s.audiences = vec!["vault".into(), "other".into()];
    let token = issue(&signing, &s);
    let auth = authenticator(vec![signing.public_key().clone()]);
    assert!(matches!(
        invalid(auth.authenticate_at(&token, None, t0())),
        InvalidToken::AudienceMismatch { .. }
    ));
    let wanted = vec!["vault".to_owned(), "x".to_owned()];
    let sa = auth
        .authenticate_at(&token, Some(&wanted), t0())
        .expect("vault audience");
    assert_eq!(sa.audiences, vec!["vault".to_owned()]);
}

#[test]
fn expiry_and_not_before_with_leeway() {
    let signing = key(RSA1_PKCS1);
    let token = issue(&signing, &spec(None));
    let auth = authenticator(vec![signing.public_key().clone()]);
    let exp = t0() + Duration::from_secs(3600);
    assert!(
        auth.authenticate_at(&token, None, exp + Duration::from_secs(60))
            .is_ok()
    );
    assert_eq!(
        invalid(auth.authenticate_at(&token, None, exp + Duration::from_secs(61))),
        InvalidToken::Expired
    );
    assert!(
        auth.authenticate_at(&token, None, t0() - Duration::from_secs(60))
            .is_ok()
    );
    assert_eq!(
        invalid(auth.authenticate_at(&token, None, t0() - Duration::from_secs(61))),
        InvalidToken::NotYetValid
    );
}

#[test]
fn other_issuers_and_non_jwts_are_not_ours() {
    let signing = key(RSA1_PKCS1);
    let foreign = TokenIssuer::new("https://elsewhere", signing.clone())
        .issue(&spec(None))
        .expect("issue");
    let auth = authenticator(vec![signing.public_key().clone()]);
    for token in [
        foreign.token.expose_secret(),
        "admintoken",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
        "",
    ] {
        assert!(
            matches!(
                auth.authenticate_at(token, None, t0()),
                Err(TokenError::NotAServiceAccountToken)
            ),
            "{token}"
        );
    }
}

#[test]
fn tampered_payload_is_refused() {
    let signing = key(RSA1_PKCS1);
    let token = issue(&signing, &spec(None));
    let mut claims = part(&token, 1);
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin".into();
    claims["sub"] = "system:serviceaccount:team-a:admin".into();
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).expect("json"));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let auth = authenticator(vec![signing.public_key().clone()]);
    assert_eq!(
        invalid(auth.authenticate_at(&forged, None, t0())),
        InvalidToken::BadSignature
    );
    // An "alg: none" header is refused before any key is tried.
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let unsigned = format!("{}.{}.{}", none_header, parts[1], parts[2]);
    assert_eq!(
        invalid(auth.authenticate_at(&unsigned, None, t0())),
        InvalidToken::UnsupportedAlgorithm
    );
}

#[test]
fn kid_matches_kube_for_known_keys() {
    assert_eq!(key(RSA1_PKCS1).public_key().kid(), RSA1_KID);
    assert_eq!(key(RSA1_PKCS8).public_key().kid(), RSA1_KID);
    assert_eq!(key(EC1_SEC1).public_key().kid(), EC1_KID);
    assert_eq!(key(EC1_PKCS8).public_key().kid(), EC1_KID);
    let publics = PublicKey::all_from_pem(
        format!("{RSA1_PUB}{EC1_PUB}{RSA2_PKCS8}").as_bytes(),
        "bundle",
    )
    .expect("bundle");
    let kids: Vec<&str> = publics.iter().map(PublicKey::kid).collect();
    assert_eq!(kids.len(), 3);
    assert_eq!(&kids[..2], &[RSA1_KID, EC1_KID]);
}

#[test]
fn debug_never_shows_key_or_token_bytes() {
    let signing = key(RSA1_PKCS1);
    let text = format!("{signing:?} {:?}", signing.public_key());
    assert!(text.contains(RSA1_KID), "{text}");
    let body_line = RSA1_PKCS1.lines().nth(1).expect("pem body");
    assert!(!text.contains(&body_line[..16]), "{text}");
    assert!(!text.contains("MII"), "{text}");
    let issuer = TokenIssuer::new(ISSUER, signing);
    let issued = issuer.issue(&spec(None)).expect("issue");
    let shown = format!("{issuer:?} {issued:?} {:?}", issued.token);
    assert!(!shown.contains(issued.token.expose_secret()), "{shown}");
    assert!(!shown.contains("eyJ"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

#[test]
fn pem_round_trip_and_bad_input() {
    let signing = key(RSA1_PKCS8);
    let again = SigningKey::from_pem(signing.to_pem().as_bytes(), "again").expect("reparse");
    assert_eq!(again.public_key().kid(), RSA1_KID);
    assert!(
        signing
            .to_pem()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let ec = key(EC1_SEC1);
    assert_eq!(key(&ec.to_pem()).public_key().kid(), EC1_KID);

    assert!(matches!(
        SigningKey::from_pem(RSA1_PUB.as_bytes(), "pub.pem"),
        Err(KeyError::NoKey { .. })
    ));
    let garbage = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    let err = SigningKey::from_pem(garbage.as_bytes(), "bad.pem").expect_err("garbage");
    assert!(
        err.to_string()
            .starts_with("bad.pem: PEM block 0 (RSA PRIVATE KEY)"),
        "{err}"
    );
    assert!(PublicKey::all_from_pem(b"no pem here", "x").is_err());
}

#[test]
fn expiration_rules() {
    assert_eq!(validate_expiration(None), Ok(3600));
    assert_eq!(validate_expiration(Some(600)), Ok(600));
    assert_eq!(
        validate_expiration(Some(599)),
        Err("may not specify a duration less than 10 minutes".to_owned())
    );
    assert_eq!(validate_expiration(Some(1 << 32)), Ok(1 << 32));
    assert_eq!(
        validate_expiration(Some((1 << 32) + 1)),
        Err("may not specify a duration larger than 2^32 seconds".to_owned())
    );
    assert_eq!(
        validate_expiration_capped(Some(86_400 * 7), 86_400),
        Ok(86_400)
    );
    assert_eq!(validate_expiration_capped(Some(1200), 86_400), Ok(1200));
}

#[test]
fn issue_refuses_empty_audiences() {
    let mut s = spec(None);
    s.audiences.clear();
    assert!(matches!(
        TokenIssuer::new(ISSUER, key(RSA1_PKCS1)).issue(&s),
        Err(IssueError::NoAudience)
    ));
}

#[test]
fn key_files_load_generate_and_stay_private() {
    let dir = std::env::temp_dir().join(format!("coffer-sa-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("sa.key");
    let _ = std::fs::remove_file(&path);
    let (generated, fresh) = load_or_generate_signing_key(&path).expect("generate");
    assert!(fresh);
    assert_eq!(generated.public_key().algorithm(), KeyAlgorithm::Rs256);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (loaded, fresh) = load_or_generate_signing_key(&path).expect("load");
    assert!(!fresh);
    assert_eq!(loaded.public_key().kid(), generated.public_key().kid());
    let publics = load_public_key_files(&[path.as_path()]).expect("as public");
    assert_eq!(publics[0].kid(), generated.public_key().kid());
    let token = issue(&loaded, &spec(None));
    assert!(
        authenticator(publics)
            .authenticate_at(&token, None, t0())
            .is_ok()
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
