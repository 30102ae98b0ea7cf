//! End to end, issue 5's token and audit items: `kubectl create token` gives a bearer token
//! that works until its ServiceAccount is deleted; tokens for another audience, signed by
//! another key, or expired are refused; TokenReview judges them; a canary Secret value written,
//! read, listed, patched and watched never reaches the audit log (even at `RequestResponse`),
//! the server log, or an error; removing a line from the audit log makes `coffer audit verify`
//! fail.
//!
//! JWTs for the negative cases are made with the `openssl` command line, independently of
//! Coffer's own signer, so a bug shared by signer and verifier cannot hide.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::Coffer;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("openssl output");
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn rsa_key(path: &Path) {
    openssl(
        &["genrsa", "-out", path.to_str().expect("utf8"), "2048"],
        None,
    );
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An RS256 JWT over `claims`, signed with the PEM key at `key` by openssl.
fn jwt(key: &Path, claims: &Value) -> String {
    let header = b64url(br#"{"alg":"RS256","kid":"test"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let signature = openssl(
        &["dgst", "-sha256", "-sign", key.to_str().expect("utf8")],
        Some(input.as_bytes()),
    );
    format!("{input}.{}", b64url(&signature))
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("seconds")
}

fn claims(sa_uid: &str, audience: &str, exp: i64) -> Value {
    json!({
        "iss": ISSUER, "sub": "system:serviceaccount:default:app", "aud": [audience],
        "exp": exp, "iat": exp - 3600, "nbf": exp - 3600,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "app", "uid": sa_uid}},
    })
}

/// `kubectl get secret s1` with a bearer token: Ok(stdout) or Err(stderr).
fn get_with(c: &Coffer, token: &str) -> Result<String, String> {
    let out = c.kubectl(
        "1.33",
        &["--token", token, "get", "secret", "s1", "-o", "name"],
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn token_review(c: &Coffer, token: &str) -> Value {
    let file = c.data_dir().join("review.json");
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    std::fs::write(&file, review.to_string()).expect("write");
    let out = c.ok(
        "1.33",
        &["create", "-f", file.to_str().expect("utf8"), "-o", "json"],
    );
    let review: Value = serde_json::from_str(&out).expect("json");
    assert!(
        review["spec"].get("token").is_none(),
        "a TokenReview answer must not echo the token"
    );
    review["status"].clone()
}

#[test]
fn service_account_tokens_work_until_their_account_goes_and_others_are_refused() {
    let keys = tempfile::tempdir().expect("tempdir");
    let signing = keys.path().join("sa.key");
    let other = keys.path().join("other.key");
    rsa_key(&signing);
    rsa_key(&other);
    let c = Coffer::start(&[
        "--service-account-signing-key-file",
        signing.to_str().expect("utf8"),
    ]);
    c.ok("1.33", &["create", "serviceaccount", "app"]);
    c.ok(
        "1.33",
        &["create", "secret", "generic", "s1", "--from-literal=a=b"],
    );
    c.ok(
        "1.33",
        &[
            "create",
            "role",
            "reader",
            "--verb=get",
            "--resource=secrets",
        ],
    );
    c.ok(
        "1.33",
        &[
            "create",
            "rolebinding",
            "reader",
            "--role=reader",
            "--serviceaccount=default:app",
        ],
    );
    let uid = c.ok(
        "1.33",
        &["get", "sa", "app", "-o", "jsonpath={.metadata.uid}"],
    );

    // kubectl 1.27 (JSON) and 1.33 (protobuf) both get a token that works as a bearer token.
    for version in ["1.27", "1.33"] {
        let token = c.ok(version, &["create", "token", "app"]).trim().to_owned();
        assert_eq!(token.split('.').count(), 3, "a JWS: {version}");
        assert_eq!(get_with(&c, &token).expect("token works"), "secret/s1\n");
        let whoami = c.ok("1.33", &["--token", &token, "auth", "whoami"]);
        assert!(whoami.contains("system:serviceaccount:default:app"));
        assert!(whoami.contains("system:serviceaccounts:default"));
    }
    let token = c.ok("1.33", &["create", "token", "app"]).trim().to_owned();
    let status = token_review(&c, &token);
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:app"
    );

    // Limits of TokenRequest, worded as kube-apiserver words them.
    let short = c.fails("1.33", &["create", "token", "app", "--duration=1m"]);
    assert!(short.contains("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"), "{short}");
    let missing = c.fails("1.33", &["create", "token", "nosuch"]);
    assert!(
        missing.contains(r#"serviceaccounts "nosuch" not found"#),
        "{missing}"
    );

    // A token for another audience is not one for this API.
    let vault = c
        .ok("1.33", &["create", "token", "app", "--audience=vault"])
        .trim()
        .to_owned();
    let refused = get_with(&c, &vault).expect_err("another audience");
    assert!(refused.contains("Unauthorized"), "{refused}");

    // Tokens made outside Coffer: the right key works (so the refusals below are about the
    // key and the expiry, not the format); another key, or an expired token, is refused.
    let good = jwt(&signing, &claims(&uid, ISSUER, now() + 600));
    assert_eq!(get_with(&c, &good).expect("hand-made token"), "secret/s1\n");
    let forged = jwt(&other, &claims(&uid, ISSUER, now() + 600));
    assert!(
        get_with(&c, &forged).is_err(),
        "a token signed by another key"
    );
    assert_eq!(token_review(&c, &forged)["authenticated"], false);
    let expired = jwt(&signing, &claims(&uid, ISSUER, now() - 300));
    assert!(get_with(&c, &expired).is_err(), "an expired token");

    // Deleting the ServiceAccount ends its tokens, even a recreated one of the same name.
    c.ok("1.33", &["delete", "serviceaccount", "app"]);
    assert!(get_with(&c, &token).is_err(), "token of a deleted account");
    c.ok("1.33", &["create", "serviceaccount", "app"]);
    assert!(
        get_with(&c, &token).is_err(),
        "token of a deleted and recreated account"
    );
    assert_eq!(token_review(&c, &token)["authenticated"], false);
}

#[test]
fn tokens_bound_to_a_secret_end_with_it() {
    let c = Coffer::start(&[]);
    c.ok(
        "1.33",
        &["create", "secret", "generic", "s1", "--from-literal=a=b"],
    );
    c.ok(
        "1.33",
        &[
            "create",
            "clusterrolebinding",
            "default-admin",
            "--clusterrole=cluster-admin",
            "--serviceaccount=default:default",
        ],
    );
    let token = c
        .ok(
            "1.33",
            &[
                "create",
                "token",
                "default",
                "--bound-object-kind=Secret",
                "--bound-object-name=s1",
            ],
        )
        .trim()
        .to_owned();
    assert_eq!(
        get_with(&c, &token).expect("bound token works"),
        "secret/s1\n"
    );
    let missing = c.fails(
        "1.33",
        &[
            "create",
            "token",
            "default",
            "--bound-object-kind=Secret",
            "--bound-object-name=nosuch",
        ],
    );
    assert!(
        missing.contains(r#"secrets "nosuch" not found"#),
        "{missing}"
    );
    c.ok("1.33", &["delete", "secret", "s1"]);
    let refused = c.kubectl("1.33", &["--token", &token, "get", "secrets"]);
    assert!(
        !refused.status.success(),
        "a token bound to a deleted Secret is refused"
    );
}

const CANARY: &str = "canary-7f3a9c-never-log-me";

/// The canary as it travels: raw, and base64 (Secret `data` values are base64 in JSON).
fn canary_forms() -> Vec<String> {
    let b64 = |s: &str| b64url(s.as_bytes()).replace('-', "+").replace('_', "/");
    vec![CANARY.to_owned(), b64(CANARY), b64(&format!("{CANARY}2"))]
}

#[test]
fn audit_log_never_holds_a_secret_value_and_verify_finds_a_removed_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.log");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n",
    )
    .expect("policy");
    let c = Coffer::start(&[
        "--audit-log-path",
        audit.to_str().expect("utf8"),
        "--audit-policy-file",
        policy.to_str().expect("utf8"),
    ]);
    let literal = format!("--from-literal=password={CANARY}");
    c.ok("1.33", &["create", "secret", "generic", "canary", &literal]);
    c.ok(
        "1.27",
        &["create", "secret", "generic", "canary-json", &literal],
    );
    let read = c.ok("1.33", &["get", "secret", "canary", "-o", "yaml"]);
    assert!(
        read.contains(&canary_forms()[1]),
        "the owner reads the value"
    );
    c.ok("1.33", &["get", "secrets", "-o", "json"]);
    c.ok("1.33", &["describe", "secret", "canary"]);
    let patch = json!({"stringData": {"password2": format!("{CANARY}2")}}).to_string();
    c.ok("1.33", &["patch", "secret", "canary", "-p", &patch]);
    c.ok(
        "1.33",
        &[
            "get",
            "secrets",
            "--watch",
            "--request-timeout=2s",
            "-o",
            "json",
        ],
    );
    c.ok(
        "1.33",
        &[
            "create",
            "configmap",
            "cm",
            &format!("--from-literal=k={CANARY}"),
        ],
    );
    // A write refused by the server for its content: the error must not quote the value.
    let manifest = dir.path().join("bad.yaml");
    std::fs::write(
        &manifest,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\nstringData:\n  bad key: {CANARY}\n"),
    )
    .expect("manifest");
    let bad = c.fails("1.33", &["create", "-f", manifest.to_str().expect("utf8")]);
    assert!(bad.contains("is invalid"), "{bad}");
    for form in canary_forms() {
        assert!(!bad.contains(&form), "an error quoted the value: {bad}");
    }
    // A kind whose bodies may be logged is logged with its bodies: the policy is in force.
    // (kubectl 1.27 sends JSON; protobuf request bodies are recorded through the response.)
    c.ok(
        "1.27",
        &["create", "role", "r", "--verb=get", "--resource=configmaps"],
    );
    assert_eq!(
        c.coffer(&["audit", "verify", audit.to_str().expect("utf8")])
            .status
            .code(),
        Some(0)
    );

    let log = std::fs::read_to_string(&audit).expect("audit log");
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("an Event per line"))
        .collect();
    let role = events
        .iter()
        .find(|e| e["objectRef"]["resource"] == "roles" && e["stage"] == "ResponseComplete")
        .expect("the Role create was audited");
    assert_eq!(role["level"], "RequestResponse");
    assert!(role["requestObject"]["rules"].is_array(), "{role}");
    assert!(role["responseObject"]["rules"].is_array(), "{role}");
    let secret_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["objectRef"]["resource"] == "secrets")
        .collect();
    assert!(secret_events.len() >= 10, "secret requests are audited");
    for e in &secret_events {
        assert_eq!(e["level"], "Metadata", "{e}");
        assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none());
    }
    for form in canary_forms() {
        assert!(!log.contains(&form), "the audit log holds the value");
        assert!(!c.log().contains(&form), "the server log holds the value");
    }

    // Remove one line from the middle: verify fails and says where.
    let lines: Vec<&str> = log.lines().collect();
    let mut cut = lines.clone();
    cut.remove(lines.len() / 2);
    let tampered = dir.path().join("tampered.log");
    std::fs::write(&tampered, cut.join("\n") + "\n").expect("write");
    std::fs::copy(
        dir.path().join("audit.log.head"),
        dir.path().join("tampered.log.head"),
    )
    .expect("head");
    let out = c.coffer(&["audit", "verify", tampered.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("line"), "{why}");
}
