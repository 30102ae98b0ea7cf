//! gRPC clients for KMS plugins on a unix socket (`reference/encryption.md` §3.3).
//!
//! Each call runs under its own deadline (the provider's `timeout`). Like upstream's
//! `WaitForReady(true)`, a call made while the socket is missing or refusing keeps retrying
//! until that deadline instead of failing at once. `:authority` is `localhost`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::sync::OnceCell;
use tonic::Code;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_prost::ProstCodec;

use super::proto::{self, *};
use crate::config::KmsEndpoint;
use crate::error::KmsError;
use crate::kms_v1::KmsV1Service;
use crate::kms_v2::{KmsDecryptRequest, KmsEncrypted, KmsStatus, KmsV2Service};
use crate::secret::KeyMaterial;

/// How long to wait between attempts while the plugin's socket is unavailable.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A lazily connected channel plus the per-call deadline.
#[derive(Clone, Debug)]
struct Conn {
    channel: Channel,
    timeout: Duration,
}

impl Conn {
    /// Fails outside a Tokio runtime: the channel spawns its worker task there.
    fn new(endpoint: &KmsEndpoint, timeout: Duration) -> Result<Self, KmsError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KmsError::Service(
                "KMS gRPC clients must be created inside a Tokio runtime".into(),
            ));
        }
        let target = endpoint.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let target = target.clone();
            async move { connect_unix(&target).await.map(TokioIo::new) }
        });
        let channel =
            Endpoint::from_static("http://localhost").connect_with_connector_lazy(connector);
        Ok(Self { channel, timeout })
    }

    async fn call<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, KmsError>
    where
        Req: Message + Clone + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let method = path.rsplit('/').next().unwrap_or(path);
        loop {
            let mut grpc = Grpc::new(self.channel.clone());
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let attempt = async {
                grpc.ready()
                    .await
                    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                grpc.unary(
                    request,
                    PathAndQuery::from_static(path),
                    ProstCodec::<Req, Resp>::default(),
                )
                .await
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) if status.code() == Code::Unavailable => {
                    if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
                        return Err(KmsError::Service(format!(
                            "{method}: plugin unavailable until the {:?} deadline: {}",
                            self.timeout,
                            status.message()
                        )));
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(status)) => {
                    return Err(KmsError::Service(format!(
                        "{method}: {:?}: {}",
                        status.code(),
                        status.message()
                    )));
                }
                Err(_) => {
                    return Err(KmsError::Service(format!(
                        "{method}: deadline of {:?} exceeded",
                        self.timeout
                    )));
                }
            }
        }
    }
}

/// Dials the socket: a path, or a Linux abstract name.
async fn connect_unix(target: &KmsEndpoint) -> std::io::Result<tokio::net::UnixStream> {
    match target {
        KmsEndpoint::Path(p) => tokio::net::UnixStream::connect(p).await,
        KmsEndpoint::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            // Connecting a unix socket does not block on the network; it either succeeds or
            // fails at once.
            let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
            s.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(s)
        }
    }
}

/// A KMS v2 plugin reached over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcKmsV2 {
    conn: Conn,
}

impl GrpcKmsV2 {
    /// A client that connects on first use. Fails outside a Tokio runtime.
    pub fn connect_lazy(endpoint: &KmsEndpoint, timeout: Duration) -> Result<Self, KmsError> {
        Ok(Self {
            conn: Conn::new(endpoint, timeout)?,
        })
    }
}

#[async_trait]
impl KmsV2Service for GrpcKmsV2 {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        let r: StatusResponse = self.conn.call(V2_STATUS, StatusRequest {}).await?;
        Ok(KmsStatus {
            version: r.version.clone(),
            healthz: r.healthz.clone(),
            key_id: r.key_id.clone(),
        })
    }

    async fn encrypt(&self, uid: &str, plaintext: &KeyMaterial) -> Result<KmsEncrypted, KmsError> {
        let req = EncryptRequest {
            plaintext: plaintext.expose_secret().to_vec(),
            uid: uid.into(),
        };
        let r: EncryptResponse = self.conn.call(V2_ENCRYPT, req).await?;
        Ok(KmsEncrypted {
            ciphertext: r.ciphertext,
            key_id: r.key_id,
            annotations: r.annotations,
        })
    }

    async fn decrypt(&self, uid: &str, req: &KmsDecryptRequest) -> Result<KeyMaterial, KmsError> {
        let req = proto::DecryptRequest {
            ciphertext: req.ciphertext.clone(),
            uid: uid.into(),
            key_id: req.key_id.clone(),
            annotations: req.annotations.clone(),
        };
        let mut r: DecryptResponse = self.conn.call(V2_DECRYPT, req).await?;
        Ok(KeyMaterial::new(std::mem::take(&mut r.plaintext)))
    }
}

/// A KMS v1 plugin reached over gRPC, for reading old data. `Version` is checked once before
/// the first `Decrypt`.
#[derive(Clone, Debug)]
pub struct GrpcKmsV1 {
    conn: Conn,
    version_checked: Arc<OnceCell<()>>,
}

impl GrpcKmsV1 {
    /// A client that connects on first use. Fails outside a Tokio runtime.
    pub fn connect_lazy(endpoint: &KmsEndpoint, timeout: Duration) -> Result<Self, KmsError> {
        Ok(Self {
            conn: Conn::new(endpoint, timeout)?,
            version_checked: Arc::new(OnceCell::new()),
        })
    }

    async fn check_version(&self) -> Result<(), KmsError> {
        self.version_checked
            .get_or_try_init(|| async {
                let req = V1VersionRequest { version: "v1beta1".into() };
                let r: V1VersionResponse = self.conn.call(V1_VERSION, req).await?;
                if r.version == "v1beta1" {
                    Ok(())
                } else {
                    Err(KmsError::Service(format!(
                        "KMS provider api version {} is not supported, only v1beta1 is supported now",
                        r.version
                    )))
                }
            })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl KmsV1Service for GrpcKmsV1 {
    async fn decrypt(&self, cipher: &[u8]) -> Result<KeyMaterial, KmsError> {
        self.check_version().await?;
        let req = V1DecryptRequest {
            version: "v1beta1".into(),
            cipher: cipher.to_vec(),
        };
        let mut r: V1DecryptResponse = self.conn.call(V1_DECRYPT, req).await?;
        Ok(KeyMaterial::new(std::mem::take(&mut r.plain)))
    }
}
