//! The Azure Key Vault provider against a test server.
//!
//! No real Key Vault or Entra ID can run here, so the server below is built from Microsoft's
//! published REST descriptions: the client-credentials grant
//! (`POST /{tenant}/oauth2/v2.0/token`, form `grant_type=client_credentials`, `client_id`,
//! `client_secret`, `scope=https://vault.azure.net/.default`, answering `access_token`,
//! `expires_in`, or 400 `invalid_client`), and Key Vault "Get Secret"
//! (`GET /secrets/{name}/{version}?api-version=…` with `Authorization: Bearer`, answering a
//! SecretBundle `{"value","id"}`, 401 for a bad token, 403 `Forbidden`, 404 `SecretNotFound`,
//! 429 with `Retry-After`). `AZURE_AUTHORITY_HOST` points the token request at it, as the
//! Azure SDKs allow; the test re-runs itself to set it (changing the environment in-process
//! needs `unsafe`).

// Test helpers outside #[test] functions unwrap poisoned locks and fixtures freely.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coffer_sync::sync::{Metrics, SyncContext, sync_one_at};
use serde_json::json;
use support::{Memory, es, store};

#[derive(Default)]
struct Azure {
    tokens: AtomicU64,
    gets: AtomicU64,
    throttle_next: AtomicU64,
    /// Token generation accepted by the vault (older ones get 401: expired).
    valid_from: AtomicU64,
    api_version: std::sync::Mutex<Option<String>>,
}

type S = Arc<Azure>;

async fn token(State(s): State<S>, Path(tenant): Path<String>, body: String) -> Response {
    let form: BTreeMap<String, String> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect();
    let ok = tenant == "tenant-1"
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some("app-id")
        && form.get("client_secret").map(String::as_str) == Some("app-secret")
        && form.get("scope").map(String::as_str) == Some("https://vault.azure.net/.default");
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215"})),
        )
            .into_response();
    }
    let n = s.tokens.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(
        json!({"token_type": "Bearer", "expires_in": 3599, "access_token": format!("tok-{n}")}),
    )
    .into_response()
}

async fn secret(
    State(s): State<S>,
    Path(parts): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Response {
    *s.api_version.lock().unwrap() = q.get("api-version").cloned();
    if s.throttle_next.load(Ordering::SeqCst) > 0 {
        s.throttle_next.fetch_sub(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"error": {"code": "Throttled"}})),
        )
            .into_response();
    }
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let generation = auth
        .strip_prefix("Bearer tok-")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if generation == 0 || generation < s.valid_from.load(Ordering::SeqCst) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"error": {"code": "Unauthorized", "message": "AKV10000: token is expired"}}),
            ),
        )
            .into_response();
    }
    s.gets.fetch_add(1, Ordering::SeqCst);
    let (name, version) = parts.split_once('/').unwrap_or((parts.as_str(), ""));
    let versions: BTreeMap<&str, &str> = [
        ("v1", r#"{"user":"admin","password":"old"}"#),
        ("v2", r#"{"user":"admin","password":"new"}"#),
    ]
    .into_iter()
    .collect();
    match name {
        "db-creds" => {
            let v = if version.is_empty() { "v2" } else { version };
            match versions.get(v) {
                Some(val) => axum::Json(json!({"value": val, "id": format!("https://vault.example/secrets/db-creds/{v}"), "attributes": {"enabled": true}})).into_response(),
                None => (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "SecretNotFound"}}))).into_response(),
            }
        }
        "forbidden" => (
            StatusCode::FORBIDDEN,
            axum::Json(
                json!({"error": {"code": "Forbidden", "message": "caller is not authorized"}}),
            ),
        )
            .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "SecretNotFound"}})),
        )
            .into_response(),
    }
}

#[test]
fn azure_key_vault_service_principal() {
    if let Ok(port) = std::env::var("COFFER_TEST_AZURE_PORT") {
        let port: u16 = port.parse().expect("port");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(scenario(port));
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "azure_key_vault_service_principal",
            "--exact",
            "--nocapture",
        ])
        .env("COFFER_TEST_AZURE_PORT", port.to_string())
        .env("AZURE_AUTHORITY_HOST", format!("http://127.0.0.1:{port}"))
        .status()
        .expect("re-run");
    assert!(status.success(), "the Azure scenario failed (output above)");
}

async fn scenario(port: u16) {
    let az = Arc::new(Azure::default());
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/secrets/{*parts}", get(secret))
        .with_state(az.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let url = format!("http://127.0.0.1:{port}");

    let mem = Arc::new(Memory::default());
    mem.put_cred("app", "azure-secret-sp", "ClientID", "app-id");
    mem.put_cred("app", "azure-secret-sp", "ClientSecret", "app-secret");
    let provider = |tenant: &str| {
        json!({"azurekv": {"tenantId": tenant, "vaultUrl": url, "authSecretRef": {
        "clientId": {"name": "azure-secret-sp", "key": "ClientID"},
        "clientSecret": {"name": "azure-secret-sp", "key": "ClientSecret"}}}})
    };
    mem.put_store("app", store("azure-store", provider("tenant-1")));
    let ctx = SyncContext::new(mem.clone(), mem.clone(), Arc::new(Metrics::new()));
    let now = tokio::time::Instant::now;
    let e = es(
        "app",
        "database-credentials",
        "azure-store",
        json!({"data": [
            {"secretKey": "database-password", "remoteRef": {"key": "secret/db-creds", "property": "password"}},
            {"secretKey": "old-password", "remoteRef": {"key": "db-creds", "property": "password", "version": "v1"}}
        ]}),
    );
    let r = sync_one_at(&e, &ctx, mem.as_ref(), 0, Some(now())).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(
        mem.secret_value("app", "database-credentials", "database-password")
            .as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(
        mem.secret_value("app", "database-credentials", "old-password")
            .as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(
        az.api_version.lock().unwrap().as_deref(),
        Some("7.0"),
        "the REST API version ESO's client uses"
    );
    assert_eq!(
        az.tokens.load(Ordering::SeqCst),
        1,
        "one token for both reads"
    );

    // Expired token: 401, one new token, the read succeeds.
    az.valid_from.store(2, Ordering::SeqCst);
    let r = sync_one_at(&e, &ctx, mem.as_ref(), 0, Some(now())).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(az.tokens.load(Ordering::SeqCst), 2);

    // Throttled once: waits for Retry-After, then succeeds.
    az.throttle_next.store(1, Ordering::SeqCst);
    let t = std::time::Instant::now();
    let r = sync_one_at(&e, &ctx, mem.as_ref(), 0, Some(now())).await;
    assert!(r.ok, "{}", r.message);
    assert!(t.elapsed() >= std::time::Duration::from_secs(1));

    // 403 and 404: errors naming the key, nothing written.
    for (key, want) in [("forbidden", "access denied"), ("nope", "not found")] {
        let bad = es(
            "app",
            key,
            "azure-store",
            json!({"data": [{"secretKey": "k", "remoteRef": {"key": key}}]}),
        );
        let r = sync_one_at(&bad, &ctx, mem.as_ref(), 0, Some(now())).await;
        assert!(!r.ok && r.message.contains(want), "{key}: {}", r.message);
        assert!(mem.secret_value("app", key, "k").is_none());
    }
    // cert/ objects are refused by name.
    let cert = es(
        "app",
        "cert",
        "azure-store",
        json!({"data": [{"secretKey": "k", "remoteRef": {"key": "cert/db-client-cert"}}]}),
    );
    let r = sync_one_at(&cert, &ctx, mem.as_ref(), 0, Some(now())).await;
    assert!(!r.ok && r.message.contains("\"cert\""), "{}", r.message);

    // Wrong tenant: the token endpoint's 400 invalid_client is a denial; the secret never leaks.
    let mut other = store("azure-bad", provider("tenant-x"));
    other.metadata.resource_version = Some("9".into());
    mem.put_store("app", other);
    let bad = es(
        "app",
        "bad",
        "azure-bad",
        json!({"data": [{"secretKey": "k", "remoteRef": {"key": "db-creds"}}]}),
    );
    let r = sync_one_at(&bad, &ctx, mem.as_ref(), 0, Some(now())).await;
    assert!(
        !r.ok && r.message.contains("invalid_client"),
        "{}",
        r.message
    );
    assert!(!r.message.contains("app-secret"), "{}", r.message);
}
