//! The Vault provider and the whole reconciler against a test server.
//!
//! No real Vault can run here, so `VaultServer` below is built from HashiCorp's published
//! HTTP API description (developer.hashicorp.com/vault/api-docs): KV v2 `GET
//! /v1/:mount/data/:path?version=N` answering `{"data":{"data":{..},"metadata":{"version":N}}}`,
//! KV v2 `LIST /v1/:mount/metadata/:path` (`GET ?list=true`) answering `{"data":{"keys":[..]}}`,
//! KV v1 `GET /v1/:mount/:path` answering `{"data":{..}}`, `POST /v1/auth/approle/login`
//! (`role_id`, `secret_id`) and `POST /v1/auth/kubernetes/login` (`role`, `jwt`) answering
//! `{"auth":{"client_token":..,"lease_duration":..}}`, the `X-Vault-Token` and
//! `X-Vault-Namespace` headers, `{"errors":[..]}` bodies with 403 (permission denied,
//! including expired tokens) and 404, and 429 with `Retry-After` as Vault's rate-limit quotas
//! answer.

// Test helpers outside #[test] functions unwrap poisoned locks and fixtures freely.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coffer_sync::sync::{Metrics, SyncContext, sync_one, sync_one_at};
use serde_json::json;
use support::{Memory, es, store};

#[derive(Default)]
struct VaultServer {
    /// path → versions (1-based).
    kv: Mutex<BTreeMap<String, Vec<serde_json::Value>>>,
    /// token → remaining uses.
    tokens: Mutex<BTreeMap<String, i64>>,
    reads: AtomicU64,
    logins: AtomicU64,
    throttle_next: AtomicU64,
    last_namespace: Mutex<Option<String>>,
    last_login: Mutex<Option<serde_json::Value>>,
}

type S = Arc<VaultServer>;

fn errors(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"errors": [msg]}))).into_response()
}

impl VaultServer {
    fn put(&self, path: &str, data: serde_json::Value) {
        self.kv
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .push(data);
    }
    fn check_token(&self, h: &HeaderMap) -> Result<(), Box<Response>> {
        *self.last_namespace.lock().unwrap() = h
            .get("x-vault-namespace")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let tok = h
            .get("x-vault-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut tokens = self.tokens.lock().unwrap();
        match tokens.get_mut(tok) {
            Some(uses) if *uses != 0 => {
                *uses -= 1;
                Ok(())
            }
            _ => Err(Box::new(errors(StatusCode::FORBIDDEN, "permission denied"))),
        }
    }
}

async fn read(
    State(s): State<S>,
    Path(path): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if s.throttle_next.load(Ordering::SeqCst) > 0 {
        s.throttle_next.fetch_sub(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"errors": ["request path \"x\": rate limit quota exceeded"]})),
        )
            .into_response();
    }
    if let Err(r) = s.check_token(&h) {
        return *r;
    }
    s.reads.fetch_add(1, Ordering::SeqCst);
    if q.get("list").is_some_and(|v| v == "true") {
        let prefix = path.replacen("/metadata/", "/data/", 1);
        let kv = s.kv.lock().unwrap();
        let keys: Vec<String> = kv
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect();
        return if keys.is_empty() {
            errors(StatusCode::NOT_FOUND, "")
        } else {
            axum::Json(json!({"data": {"keys": keys}})).into_response()
        };
    }
    let kv = s.kv.lock().unwrap();
    let Some(versions) = kv.get(&path) else {
        return errors(StatusCode::NOT_FOUND, "");
    };
    if path.contains("/data/") {
        let n = q
            .get("version")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(versions.len());
        match versions.get(n.wrapping_sub(1)) {
            Some(d) => {
                axum::Json(json!({"data": {"data": d, "metadata": {"version": n}}})).into_response()
            }
            None => errors(StatusCode::NOT_FOUND, ""),
        }
    } else {
        axum::Json(json!({"data": versions.last()})).into_response()
    }
}

async fn login(
    State(s): State<S>,
    Path(mount): Path<String>,
    body: axum::Json<serde_json::Value>,
) -> Response {
    s.logins.fetch_add(1, Ordering::SeqCst);
    *s.last_login.lock().unwrap() = Some(body.0.clone());
    let ok = match mount.as_str() {
        "approle" => body["role_id"] == "role-1" && body["secret_id"] == "secret-id-1",
        "kubernetes" => body["role"] == "app" && body["jwt"] == "sa-jwt",
        _ => false,
    };
    if !ok {
        return errors(StatusCode::BAD_REQUEST, "invalid role or secret ID");
    }
    let n = s.logins.load(Ordering::SeqCst);
    let token = format!("s.login{n}");
    // Each login token is good for 3 reads, then it "expires" (403, as Vault answers).
    s.tokens.lock().unwrap().insert(token.clone(), 3);
    axum::Json(json!({"auth": {"client_token": token, "lease_duration": 3600, "renewable": true}}))
        .into_response()
}

async fn serve(s: S) -> String {
    let app = Router::new()
        .route("/v1/auth/{mount}/login", post(login))
        .route("/v1/{*path}", get(read))
        .with_state(s);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

fn ctx(mem: &Arc<Memory>) -> SyncContext {
    SyncContext::new(mem.clone(), mem.clone(), Arc::new(Metrics::new()))
}

fn token_store(url: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"vault": {"server": url, "path": "secret", "version": "v2", "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}});
    if let Some(o) = extra.as_object() {
        for (k, x) in o {
            v["vault"][k] = x.clone();
        }
    }
    v
}

#[tokio::test]
async fn token_auth_kv2_versions_properties_and_errors() {
    let server = Arc::new(VaultServer::default());
    server.tokens.lock().unwrap().insert("root".into(), -1);
    server.put(
        "secret/data/db",
        json!({"user": "admin", "password": "v1-pass"}),
    );
    server.put(
        "secret/data/db",
        json!({"user": "admin", "password": "v2-pass", "nested": {"port": 5432}}),
    );
    let url = serve(server.clone()).await;
    let mem = Arc::new(Memory::default());
    mem.put_cred("app", "vault-token", "token", "root");
    mem.put_store(
        "app",
        store("vault", token_store(&url, json!({"namespace": "team-a"}))),
    );
    let c = ctx(&mem);
    let e = es(
        "app",
        "db",
        "vault",
        json!({"data": [
        {"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}},
        {"secretKey": "old", "remoteRef": {"key": "db", "property": "password", "version": "1"}},
        {"secretKey": "port", "remoteRef": {"key": "db", "property": "nested.port"}}
    ], "dataFrom": [{"extract": {"key": "db"}}]}),
    );
    let r = sync_one(&e, &c, mem.as_ref(), 0).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(
        mem.secret_value("app", "db", "password").as_deref(),
        Some(&b"v2-pass"[..])
    );
    assert_eq!(
        mem.secret_value("app", "db", "old").as_deref(),
        Some(&b"v1-pass"[..])
    );
    assert_eq!(
        mem.secret_value("app", "db", "port").as_deref(),
        Some(&b"5432"[..])
    );
    assert_eq!(
        mem.secret_value("app", "db", "user").as_deref(),
        Some(&b"admin"[..]),
        "dataFrom.extract"
    );
    assert_eq!(
        server.last_namespace.lock().unwrap().as_deref(),
        Some("team-a")
    );
    // Two versions read (latest shared by three entries, and version 1): two calls.
    assert_eq!(server.reads.load(Ordering::SeqCst), 2);

    // 404: not found, nothing written, condition false.
    let missing = es(
        "app",
        "missing",
        "vault",
        json!({"data": [{"secretKey": "k", "remoteRef": {"key": "nope"}}]}),
    );
    let r = sync_one(&missing, &c, mem.as_ref(), 0).await;
    assert!(!r.ok);
    assert!(r.message.contains("not found"), "{}", r.message);
    assert_eq!(
        mem.ready("app", "missing")
            .expect("status")
            .reason
            .as_deref(),
        Some("SecretSyncedError")
    );

    // 403 with a static token: denied (no login to retry), message says what to check.
    mem.put_cred("app", "bad-token", "token", "wrong");
    let mut bad = store("vault-bad", token_store(&url, json!({})));
    bad.spec
        .provider
        .vault
        .as_mut()
        .unwrap()
        .auth
        .as_mut()
        .unwrap()
        .token_secret_ref
        .as_mut()
        .unwrap()
        .name = "bad-token".into();
    mem.put_store("app", bad);
    let denied = es(
        "app",
        "denied",
        "vault-bad",
        json!({"data": [{"secretKey": "k", "remoteRef": {"key": "db"}}]}),
    );
    let r = sync_one(&denied, &c, mem.as_ref(), 0).await;
    assert!(!r.ok);
    assert!(
        r.message.contains("access denied") && r.message.contains("permission denied"),
        "{}",
        r.message
    );
    assert!(
        !r.message.contains("wrong"),
        "the token never appears: {}",
        r.message
    );
}

#[tokio::test]
async fn approle_relogin_on_expired_token_and_kubernetes_auth() {
    let server = Arc::new(VaultServer::default());
    for i in 0..8 {
        server.put(
            &format!("secret/data/k{i}"),
            json!({"v": format!("value-{i}")}),
        );
    }
    let url = serve(server.clone()).await;
    let mem = Arc::new(Memory::default());
    mem.put_cred("app", "approle", "secret-id", "secret-id-1");
    mem.put_store("app", store("ar", json!({"vault": {"server": url, "path": "secret", "auth": {"appRole": {"path": "approle", "roleId": "role-1", "secretRef": {"name": "approle", "key": "secret-id"}}}}})));
    let c = ctx(&mem);
    for i in 0..8 {
        let e = es(
            "app",
            &format!("e{i}"),
            "ar",
            json!({"data": [{"secretKey": "v", "remoteRef": {"key": format!("k{i}"), "property": "v"}}]}),
        );
        let r = sync_one(&e, &c, mem.as_ref(), 0).await;
        assert!(r.ok, "{}", r.message);
        assert_eq!(
            mem.secret_value("app", &format!("e{i}"), "v"),
            Some(format!("value-{i}").into_bytes())
        );
    }
    // Tokens last 3 reads: 8 reads need 3 logins (the 403 of an expired token logs in again).
    assert_eq!(server.logins.load(Ordering::SeqCst), 3);

    mem.sa_tokens
        .lock()
        .unwrap()
        .insert(("app".into(), "vault-sa".into()), "sa-jwt".into());
    mem.put_store("app", store("k8s", json!({"vault": {"server": url, "path": "secret", "auth": {"kubernetes": {"role": "app", "serviceAccountRef": {"name": "vault-sa"}}}}})));
    let e = es(
        "app",
        "viak8s",
        "k8s",
        json!({"data": [{"secretKey": "v", "remoteRef": {"key": "k1", "property": "v"}}]}),
    );
    let r = sync_one(&e, &c, mem.as_ref(), 0).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(
        server.last_login.lock().unwrap().as_ref().expect("login")["jwt"],
        "sa-jwt"
    );

    // A wrong role: the login's 400 is reported, nothing written.
    mem.put_store("app", store("k8s-bad", json!({"vault": {"server": url, "path": "secret", "auth": {"kubernetes": {"role": "other", "serviceAccountRef": {"name": "vault-sa"}}}}})));
    let e = es(
        "app",
        "badrole",
        "k8s-bad",
        json!({"data": [{"secretKey": "v", "remoteRef": {"key": "k1"}}]}),
    );
    let r = sync_one(&e, &c, mem.as_ref(), 0).await;
    assert!(
        !r.ok && r.message.contains("auth/kubernetes/login"),
        "{}",
        r.message
    );
    assert!(mem.secret_value("app", "badrole", "v").is_none());
}

#[tokio::test]
async fn throttling_honours_retry_after_and_kv1() {
    let server = Arc::new(VaultServer::default());
    server.tokens.lock().unwrap().insert("root".into(), -1);
    server.put("kv1/app/cfg", json!({"a": "b"}));
    let url = serve(server.clone()).await;
    let mem = Arc::new(Memory::default());
    mem.put_cred("app", "vault-token", "token", "root");
    mem.put_store(
        "app",
        store(
            "v1",
            token_store(&url, json!({"path": "kv1", "version": "v1"})),
        ),
    );
    let c = ctx(&mem);
    server.throttle_next.store(1, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let e = es(
        "app",
        "cfg",
        "v1",
        json!({"dataFrom": [{"extract": {"key": "app/cfg"}}]}),
    );
    let r = sync_one(&e, &c, mem.as_ref(), 0).await;
    assert!(r.ok, "{}", r.message);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as Retry-After said"
    );
    assert_eq!(
        mem.secret_value("app", "cfg", "a").as_deref(),
        Some(&b"b"[..])
    );
    // Throttled beyond the retries: a clear error, the Secret stays.
    server.throttle_next.store(10, Ordering::SeqCst);
    let e2 = es(
        "app",
        "cfg",
        "v1",
        json!({"dataFrom": [{"extract": {"key": "app/cfg"}}], "refreshInterval": "0"}),
    );
    let r = sync_one(&e2, &c, mem.as_ref(), 0).await;
    assert!(!r.ok && r.message.contains("429"), "{}", r.message);
    assert_eq!(
        mem.secret_value("app", "cfg", "a").as_deref(),
        Some(&b"b"[..]),
        "last good Secret kept"
    );
}

#[tokio::test]
async fn five_hundred_external_secrets_fifty_remote_secrets_fifty_calls_per_refresh() {
    let server = Arc::new(VaultServer::default());
    server.tokens.lock().unwrap().insert("root".into(), -1);
    for i in 0..50 {
        server.put(
            &format!("secret/data/shared/{i}"),
            json!({"password": format!("p{i}")}),
        );
    }
    let url = serve(server.clone()).await;
    let mem = Arc::new(Memory::default());
    mem.put_cred("app", "vault-token", "token", "root");
    mem.put_store("app", store("vault", token_store(&url, json!({}))));
    let c = Arc::new(ctx(&mem));
    let all: Vec<_> = (0..500)
        .map(|n| es("app", &format!("es-{n}"), "vault", json!({"data": [{"secretKey": "password", "remoteRef": {"key": format!("shared/{}", n % 50), "property": "password"}}]})))
        .collect();
    let refresh = |window: tokio::time::Instant| {
        let (c, mem, all) = (c.clone(), mem.clone(), all.clone());
        async move {
            let runs = all
                .iter()
                .map(|e| sync_one_at(e, &c, mem.as_ref(), 0, Some(window)));
            futures::future::join_all(runs).await
        }
    };
    let reports = refresh(tokio::time::Instant::now()).await;
    assert!(reports.iter().all(|r| r.ok));
    assert_eq!(
        server.reads.load(Ordering::SeqCst),
        50,
        "first refresh: one call per remote secret"
    );
    assert_eq!(mem.writes(), 500);
    assert_eq!(
        mem.secret_value("app", "es-123", "password").as_deref(),
        Some(&b"p23"[..])
    );

    // Next refresh: 5 remote values changed. 50 calls again, and only the 50 Secrets that
    // use a changed value are written; the other 450 are left alone.
    for i in 0..5 {
        server.put(
            &format!("secret/data/shared/{i}"),
            json!({"password": format!("rotated{i}")}),
        );
    }
    let reports = refresh(tokio::time::Instant::now()).await;
    assert!(reports.iter().all(|r| r.ok));
    assert_eq!(
        server.reads.load(Ordering::SeqCst),
        100,
        "second refresh: 50 more calls"
    );
    assert_eq!(mem.writes(), 550, "only changed Secrets rewritten");
    assert_eq!(
        mem.secret_value("app", "es-100", "password").as_deref(),
        Some(&b"rotated0"[..])
    );
    let (calls, errors, writes, skipped) = c.metrics.totals();
    assert_eq!((calls, errors, writes, skipped), (1000, 0, 550, 450));
    assert_eq!(c.metrics.provider_calls_total(), 100);
    assert!(c.metrics.encode().contains("externalsecret_provider_api_calls_count{provider=\"vault\",call=\"GetSecret\",status=\"success\"} 100"));

    // Vault down: nothing written, every Secret keeps its last good value, condition false.
    let dead = store("vault", token_store("http://127.0.0.1:9", json!({})));
    let mut dead = dead;
    dead.metadata.resource_version = Some("2".into());
    mem.put_store("app", dead);
    let reports = refresh(tokio::time::Instant::now()).await;
    assert!(
        reports
            .iter()
            .all(|r| !r.ok && r.requeue_after == Some(Duration::from_secs(5)))
    );
    assert_eq!(
        mem.writes(),
        550,
        "nothing deleted or rewritten while the provider is down"
    );
    assert_eq!(
        mem.secret_value("app", "es-100", "password").as_deref(),
        Some(&b"rotated0"[..])
    );
    assert_eq!(mem.ready("app", "es-7").expect("status").status, "False");
}
