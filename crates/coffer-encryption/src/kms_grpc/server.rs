//! A gRPC server for `v2.KeyManagementService` in front of any [`KmsV2Service`]: the plugin side
//! of the protocol, used by `coffer kms-plugin` and by tests of the client. Routing is written
//! out here instead of generated, so the build needs no `protoc`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use super::proto::{self, *};
use crate::kms_v2::{KmsDecryptRequest, KmsV2Service};
use crate::secret::KeyMaterial;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Serves a [`KmsV2Service`] as `v2.KeyManagementService`. Use it with
/// `tonic::transport::Server::builder().serve_with_incoming(KmsV2Server::new(..), incoming)`.
#[derive(Clone)]
pub struct KmsV2Server {
    inner: Arc<dyn KmsV2Service>,
}

impl KmsV2Server {
    /// Wraps the key backend.
    pub fn new(inner: Arc<dyn KmsV2Service>) -> Self {
        Self { inner }
    }
}

impl std::fmt::Debug for KmsV2Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsV2Server").finish_non_exhaustive()
    }
}

impl NamedService for KmsV2Server {
    const NAME: &'static str = "v2.KeyManagementService";
}

impl tower::Service<http::Request<Body>> for KmsV2Server {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let method = Method(Arc::clone(&self.inner));
        Box::pin(async move {
            Ok(match req.uri().path() {
                V2_STATUS => {
                    Grpc::new(ProstCodec::<StatusResponse, StatusRequest>::default())
                        .unary(method, req)
                        .await
                }
                V2_ENCRYPT => {
                    Grpc::new(ProstCodec::<EncryptResponse, EncryptRequest>::default())
                        .unary(method, req)
                        .await
                }
                V2_DECRYPT => {
                    Grpc::new(ProstCodec::<DecryptResponse, proto::DecryptRequest>::default())
                        .unary(method, req)
                        .await
                }
                _ => Status::unimplemented("unknown method").into_http(),
            })
        })
    }
}

/// One call into the backend; implements each unary method.
struct Method(Arc<dyn KmsV2Service>);

fn to_status(e: crate::error::KmsError) -> Status {
    Status::internal(e.to_string())
}

impl UnaryService<StatusRequest> for Method {
    type Response = StatusResponse;
    type Future = BoxFuture<Result<Response<StatusResponse>, Status>>;
    fn call(&mut self, _req: Request<StatusRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move {
            let s = inner.status().await.map_err(to_status)?;
            Ok(Response::new(StatusResponse {
                version: s.version,
                healthz: s.healthz,
                key_id: s.key_id,
            }))
        })
    }
}

impl UnaryService<EncryptRequest> for Method {
    type Response = EncryptResponse;
    type Future = BoxFuture<Result<Response<EncryptResponse>, Status>>;
    fn call(&mut self, req: Request<EncryptRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move {
            let mut req = req.into_inner();
            let plain = KeyMaterial::new(std::mem::take(&mut req.plaintext));
            let r = inner.encrypt(&req.uid, &plain).await.map_err(to_status)?;
            Ok(Response::new(EncryptResponse {
                ciphertext: r.ciphertext,
                key_id: r.key_id,
                annotations: r.annotations,
            }))
        })
    }
}

impl UnaryService<proto::DecryptRequest> for Method {
    type Response = DecryptResponse;
    type Future = BoxFuture<Result<Response<DecryptResponse>, Status>>;
    fn call(&mut self, req: Request<proto::DecryptRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move {
            let req = req.into_inner();
            let stored = KmsDecryptRequest {
                ciphertext: req.ciphertext,
                key_id: req.key_id,
                annotations: req.annotations,
            };
            let plain = inner.decrypt(&req.uid, &stored).await.map_err(to_status)?;
            Ok(Response::new(DecryptResponse {
                plaintext: plain.expose_secret().to_vec(),
            }))
        })
    }
}
