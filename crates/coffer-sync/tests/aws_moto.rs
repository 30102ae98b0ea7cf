//! The AWS Secrets Manager provider against moto's server (a real peer: `moto_server`,
//! installed by scripts/test.sh), through the whole reconciler with ESO's documented AWS
//! example shapes: static keys from a Secret, region, `AWS_ENDPOINT_URL`, AWSCURRENT /
//! AWSPREVIOUS / `uuid/<VersionId>`, JSON properties, a new version picked up on the next
//! refresh, and a stopped moto keeping the last good Secret.

// Test helpers outside #[test] functions unwrap poisoned locks and fixtures freely.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use coffer_sync::sync::{Metrics, SyncContext, sync_one_at};
use serde_json::json;
use support::{Memory, es, store};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto(port: u16) -> (Moto, String) {
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server is installed (pip install 'moto[server]'; scripts/test.sh does it)");
    let url = format!("http://127.0.0.1:{port}");
    // From here the guard kills and waits for the child on every path.
    let moto = Moto(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (moto, url);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not start on {url}");
}

/// The SDK reads `AWS_ENDPOINT_URL` from the environment, which a test may not change in
/// its own process (`unsafe` is forbidden), so the test runs itself again with it set.
#[test]
fn aws_secrets_manager_through_moto() {
    if let Ok(port) = std::env::var("COFFER_TEST_MOTO_PORT") {
        let port: u16 = port.parse().expect("port");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(moto_scenario(port));
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["aws_secrets_manager_through_moto", "--exact", "--nocapture"])
        .env("COFFER_TEST_MOTO_PORT", port.to_string())
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .status()
        .expect("re-run the test binary");
    assert!(status.success(), "the moto scenario failed (output above)");
}

async fn moto_scenario(port: u16) {
    let (moto, url) = start_moto(port);
    let admin = {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(&url)
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .load()
            .await;
        aws_sdk_secretsmanager::Client::new(&conf)
    };
    let first = admin
        .create_secret()
        .name("friendslist")
        .secret_string(r#"{"name":{"first":"Tom"},"friends":[{"first":"Dale"},{"first":"Roger"}],"password":"one"}"#)
        .send()
        .await
        .expect("create");
    let first_id = first.version_id().expect("version id").to_owned();
    admin
        .put_secret_value()
        .secret_id("friendslist")
        .secret_string(r#"{"name":{"first":"Tom"},"friends":[{"first":"Dale"},{"first":"Roger"}],"password":"two"}"#)
        .send()
        .await
        .expect("second version");

    let mem = Arc::new(Memory::default());
    mem.put_cred("app", "awssm-secret", "access-key", "test");
    mem.put_cred("app", "awssm-secret", "secret-access-key", "test");
    mem.put_store("app", store("aws-secretsmanager", json!({"aws": {"service": "SecretsManager", "region": "eu-central-1", "auth": {"secretRef": {
        "accessKeyIDSecretRef": {"name": "awssm-secret", "key": "access-key"},
        "secretAccessKeySecretRef": {"name": "awssm-secret", "key": "secret-access-key"}}}}})));
    let ctx = SyncContext::new(mem.clone(), mem.clone(), Arc::new(Metrics::new()));
    let e = es(
        "app",
        "example",
        "aws-secretsmanager",
        json!({
            "target": {"name": "friends", "creationPolicy": "Owner"},
            "data": [
                {"secretKey": "my_name", "remoteRef": {"key": "friendslist", "property": "name.first"}},
                {"secretKey": "first_friend", "remoteRef": {"key": "friendslist", "property": "friends.1.first"}},
                {"secretKey": "current", "remoteRef": {"key": "friendslist", "property": "password"}},
                {"secretKey": "previous", "remoteRef": {"key": "friendslist", "property": "password", "version": "AWSPREVIOUS"}},
                {"secretKey": "by_id", "remoteRef": {"key": "friendslist", "property": "password", "version": format!("uuid/{first_id}")}}
            ],
            "dataFrom": [{"extract": {"key": "friendslist"}}]
        }),
    );
    let get = |k: &str| {
        mem.secret_value("app", "friends", k)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    let r = sync_one_at(&e, &ctx, mem.as_ref(), 0, Some(tokio::time::Instant::now())).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(get("my_name").as_deref(), Some("Tom"));
    assert_eq!(get("first_friend").as_deref(), Some("Roger"));
    assert_eq!(get("current").as_deref(), Some("two"));
    assert_eq!(get("previous").as_deref(), Some("one"));
    assert_eq!(get("by_id").as_deref(), Some("one"));
    assert_eq!(get("password").as_deref(), Some("two"), "dataFrom.extract");
    // AWSCURRENT (shared by four entries), AWSPREVIOUS, and the version id: three calls.
    assert_eq!(ctx.metrics.provider_calls_total(), 3);

    // A new version reaches the Secret on the next refresh.
    admin
        .put_secret_value()
        .secret_id("friendslist")
        .secret_string(r#"{"name":{"first":"Tom"},"friends":[],"password":"three"}"#)
        .send()
        .await
        .expect("third version");
    let e2 = es(
        "app",
        "example",
        "aws-secretsmanager",
        json!({"target": {"name": "friends"},
        "data": [{"secretKey": "current", "remoteRef": {"key": "friendslist", "property": "password"}}]}),
    );
    let r = sync_one_at(
        &e2,
        &ctx,
        mem.as_ref(),
        0,
        Some(tokio::time::Instant::now()),
    )
    .await;
    assert!(r.ok && r.wrote, "{}", r.message);
    assert_eq!(get("current").as_deref(), Some("three"));
    // Unchanged on the refresh after: no write.
    let writes = mem.writes();
    let r = sync_one_at(
        &e2,
        &ctx,
        mem.as_ref(),
        0,
        Some(tokio::time::Instant::now()),
    )
    .await;
    assert!(r.ok && !r.wrote);
    assert_eq!(mem.writes(), writes);

    // A missing secret is NotFound.
    let missing = es(
        "app",
        "missing",
        "aws-secretsmanager",
        json!({"data": [{"secretKey": "k", "remoteRef": {"key": "nope"}}]}),
    );
    let r = sync_one_at(
        &missing,
        &ctx,
        mem.as_ref(),
        0,
        Some(tokio::time::Instant::now()),
    )
    .await;
    assert!(!r.ok && r.message.contains("not found"), "{}", r.message);

    // moto stops: a provider error, the Secret keeps its last good value, Ready=False.
    drop(moto);
    let r = sync_one_at(
        &e2,
        &ctx,
        mem.as_ref(),
        0,
        Some(tokio::time::Instant::now()),
    )
    .await;
    assert!(!r.ok, "{}", r.message);
    assert!(r.message.contains("unavailable"), "{}", r.message);
    assert_eq!(r.requeue_after, Some(Duration::from_secs(5)));
    assert_eq!(get("current").as_deref(), Some("three"));
    assert_eq!(mem.ready("app", "example").expect("status").status, "False");
}
