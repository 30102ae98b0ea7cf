//! The KMS v2 gRPC client against our own gRPC server on a real unix socket (a path and a
//! Linux abstract name), with the mock plugin as key backend: the real kube-apiserver values
//! decrypt through it, writes round-trip, calls wait for a late socket within the timeout, and
//! a missing plugin fails at the deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_encryption::testing::Base64KmsV2;
use coffer_encryption::testing::vectors::*;
use coffer_encryption::{
    EncryptionConfig, GrpcKms, GrpcKmsV2, KmsEndpoint, KmsV2, KmsV2Server, KmsV2Service, LoadMode,
    ReadTransformer, Transformer,
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

/// Serves the mock plugin on `listener` until the test ends.
fn serve(listener: UnixListener, plugin: Arc<Base64KmsV2>) {
    tokio::spawn(async move {
        let incoming = UnixListenerStream::new(listener);
        let server = KmsV2Server::new(plugin);
        let _ = tonic::transport::Server::builder()
            .serve_with_incoming(server, incoming)
            .await;
    });
}

fn config(endpoint: &str, timeout: &str) -> EncryptionConfig {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - kms: {{apiVersion: v2, name: kms-provider, endpoint: '{endpoint}', timeout: {timeout}}}
"
    );
    EncryptionConfig::parse(yaml.as_bytes(), Path::new("t"), LoadMode::Startup).expect("valid")
}

fn socket_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("kms.sock")
}

#[tokio::test]
async fn kube_apiserver_values_through_grpc_on_a_socket_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = socket_path(&dir);
    serve(
        UnixListener::bind(&path).expect("bind"),
        Arc::new(Base64KmsV2::new("1")),
    );
    let c = config(&format!("unix://{}", path.display()), "3s");
    let t = c.build(&GrpcKms).expect("build");
    t.kms_v2()[0]
        .1
        .probe()
        .await
        .expect("Status and Encrypt over gRPC");
    let secrets = t.for_resource("", "secrets");
    for (stored, aad, plain) in [
        (
            KMS_V2_TYPE0_STORED,
            KMS_V2_TYPE0_AAD,
            KMS_V2_TYPE0_PLAINTEXT,
        ),
        (
            KMS_V2_TYPE1_STORED,
            KMS_V2_TYPE1_AAD,
            KMS_V2_TYPE1_PLAINTEXT,
        ),
    ] {
        let (p, _) = secrets
            .from_storage(&hex::decode(stored).expect("hex"), aad)
            .await
            .expect("Decrypt over gRPC");
        assert_eq!(
            p.expose_secret(),
            hex::decode(plain).expect("hex").as_slice()
        );
    }
    let ours = secrets
        .to_storage(b"value", b"/registry/secrets/a/b")
        .await
        .expect("write");
    let (p, _) = secrets
        .from_storage(&ours, b"/registry/secrets/a/b")
        .await
        .expect("read");
    assert_eq!(p.expose_secret(), b"value");
}

#[tokio::test]
async fn abstract_socket_and_key_rotation() {
    let name = format!("coffer-test-kms-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let std_listener = std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind abstract");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let plugin = Arc::new(Base64KmsV2::new("a"));
    serve(
        UnixListener::from_std(std_listener).expect("tokio listener"),
        plugin.clone(),
    );
    let client = Arc::new(
        GrpcKmsV2::connect_lazy(&KmsEndpoint::Abstract(name), Duration::from_secs(3))
            .expect("in a runtime"),
    );
    let kms = KmsV2::new(client.clone());
    kms.probe().await.expect("healthy");
    let old = kms.to_storage(b"old", b"k").await.expect("write");
    plugin.set_key_id("b");
    kms.probe().await.expect("rotated");
    assert_eq!(kms.current_key_id().as_deref(), Some("b"));
    let (p, f) = kms.from_storage(&old, b"k").await.expect("old reads");
    assert_eq!(p.expose_secret(), b"old");
    assert!(f.is_stale());
    let status = client.status().await.expect("status");
    assert_eq!(
        (
            status.version.as_str(),
            status.healthz.as_str(),
            status.key_id.as_str()
        ),
        ("v2", "ok", "b")
    );
}

#[tokio::test]
async fn waits_for_a_late_socket_within_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = socket_path(&dir);
    let client = GrpcKmsV2::connect_lazy(&KmsEndpoint::Path(path.clone()), Duration::from_secs(5))
        .expect("in a runtime");
    let late = path.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        serve(
            UnixListener::bind(&late).expect("bind"),
            Arc::new(Base64KmsV2::new("1")),
        );
    });
    let status = client.status().await.expect("waited for the plugin");
    assert_eq!(status.key_id, "1");
}

#[tokio::test]
async fn missing_plugin_fails_at_the_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = GrpcKmsV2::connect_lazy(
        &KmsEndpoint::Path(socket_path(&dir)),
        Duration::from_millis(500),
    )
    .expect("in a runtime");
    let start = Instant::now();
    let err = client.status().await.unwrap_err();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(
        err.to_string()
            .starts_with("KMS plugin call failed: Status: "),
        "{err}"
    );
    // Until a probe succeeds, reads and writes of that provider fail.
    let kms = KmsV2::new(Arc::new(client));
    assert!(kms.probe().await.is_err());
    assert!(kms.to_storage(b"x", b"k").await.is_err());
}

#[tokio::test]
async fn local_key_file_plugin_rotation_end_to_end() {
    // The plugin side: a local KEK file served over gRPC. Coffer's side: a config with a KMS v2
    // provider connected through GrpcKms.
    let dir = tempfile::tempdir().expect("tempdir");
    let kek_path = dir.path().join("kek.json");
    let kek = Arc::new(coffer_encryption::LocalKekFile::create(&kek_path).expect("create"));
    let sock = socket_path(&dir);
    let listener = UnixListener::bind(&sock).expect("bind");
    tokio::spawn(async move {
        let incoming = UnixListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .serve_with_incoming(KmsV2Server::new(kek), incoming)
            .await;
    });
    let t = config(&format!("unix://{}", sock.display()), "3s")
        .build(&GrpcKms)
        .expect("build");
    let kms = Arc::clone(&t.kms_v2()[0].1);
    kms.probe().await.expect("healthy");
    let secrets = t.for_resource("", "secrets");
    let aad = b"/registry/secrets/default/db";
    let before = secrets.to_storage(b"v1 data", aad).await.expect("write");

    let new_id = coffer_encryption::LocalKekFile::rotate(&kek_path).expect("rotate");
    kms.probe().await.expect("sees the new key id");
    assert_eq!(kms.current_key_id(), Some(new_id));
    let (plain, freshness) = secrets
        .from_storage(&before, aad)
        .await
        .expect("old data reads");
    assert_eq!(plain.expose_secret(), b"v1 data");
    assert!(freshness.is_stale(), "data under the old KEK is stale");
    // Rewriting (what `coffer storage rewrap` does for stale values) makes it current.
    let rewrapped = secrets
        .to_storage(plain.expose_secret(), aad)
        .await
        .expect("rewrite");
    let (_, freshness) = secrets.from_storage(&rewrapped, aad).await.expect("read");
    assert!(!freshness.is_stale());
}

/// A KMS v1 plugin whose `Decrypt` is base64-decode, reporting `version` from `Version`.
#[derive(Clone)]
struct V1Plugin {
    version: &'static str,
}

mod v1 {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use base64::Engine as _;
    use coffer_encryption::kms_proto::*;
    use tonic::body::Body;
    use tonic::server::{Grpc, UnaryService};
    use tonic::{Request, Response, Status};
    use tonic_prost::ProstCodec;

    type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    impl tower::Service<http::Request<Body>> for super::V1Plugin {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<Body>) -> Self::Future {
            let me = self.clone();
            Box::pin(async move {
                Ok(match req.uri().path() {
                    V1_VERSION => {
                        Grpc::new(ProstCodec::<V1VersionResponse, V1VersionRequest>::default())
                            .unary(me, req)
                            .await
                    }
                    V1_DECRYPT => {
                        Grpc::new(ProstCodec::<V1DecryptResponse, V1DecryptRequest>::default())
                            .unary(me, req)
                            .await
                    }
                    _ => Status::unimplemented("unknown").into_http(),
                })
            })
        }
    }

    impl UnaryService<V1VersionRequest> for super::V1Plugin {
        type Response = V1VersionResponse;
        type Future = BoxFuture<Result<Response<V1VersionResponse>, Status>>;
        fn call(&mut self, _: Request<V1VersionRequest>) -> Self::Future {
            let version = self.version.to_string();
            Box::pin(async move {
                Ok(Response::new(V1VersionResponse {
                    version,
                    runtime_name: "test".into(),
                    runtime_version: "0".into(),
                }))
            })
        }
    }

    impl UnaryService<V1DecryptRequest> for super::V1Plugin {
        type Response = V1DecryptResponse;
        type Future = BoxFuture<Result<Response<V1DecryptResponse>, Status>>;
        fn call(&mut self, req: Request<V1DecryptRequest>) -> Self::Future {
            Box::pin(async move {
                let req = req.into_inner();
                if req.version != "v1beta1" {
                    return Err(Status::invalid_argument("version"));
                }
                let plain = base64::engine::general_purpose::STANDARD
                    .decode(&req.cipher)
                    .map_err(|_| Status::invalid_argument("not base64"))?;
                Ok(Response::new(V1DecryptResponse { plain }))
            })
        }
    }
}

#[tokio::test]
async fn kms_v1_reads_over_grpc_and_checks_the_version() {
    for (version, ok) in [("v1beta1", true), ("v2", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = socket_path(&dir);
        let listener = UnixListener::bind(&sock).expect("bind");
        tokio::spawn(async move {
            let incoming = UnixListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming(V1Plugin { version }, incoming)
                .await;
        });
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms: {{name: mock, endpoint: 'unix://{}'}}\n",
            sock.display()
        );
        let c = EncryptionConfig::parse(yaml.as_bytes(), Path::new("t"), LoadMode::Startup)
            .expect("valid");
        let secrets = c
            .build(&GrpcKms)
            .expect("build")
            .for_resource("", "secrets");
        let read = secrets
            .from_storage(&hex::decode(DERIVED_KMS_V1).expect("hex"), DERIVED_AAD)
            .await;
        if ok {
            let (p, _) = read.expect("decrypts over gRPC");
            assert_eq!(
                p.expose_secret(),
                hex::decode(OLD_SECRET_PLAINTEXT).expect("hex").as_slice()
            );
        } else {
            let err = read.unwrap_err().to_string();
            assert!(
                err.contains(
                    "KMS provider api version v2 is not supported, only v1beta1 is supported now"
                ),
                "{err}"
            );
        }
    }
}

#[test]
fn building_grpc_clients_outside_a_runtime_is_an_error_not_a_panic() {
    let err = config("unix:///@nowhere", "1s")
        .build(&GrpcKms)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "KMS provider \"kms-provider\": KMS plugin call failed: KMS gRPC clients must be created inside a Tokio runtime"
    );
}
