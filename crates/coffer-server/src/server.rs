//! Start-up and the connection loop: bootstrap files, TLS, the router with its layers, and a
//! clean shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use coffer_encryption::{
    ConfigWatcher, EncryptionConfig, GrpcKms, LoadMode, ReloadingTransformers,
};
use coffer_storage::{KeyLayout, Store};
use futures::future::Either;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use coffer_access::{TokenAuthenticator, TokenIssuer};

use crate::audit::Auditor;
use crate::authn::{Authenticator, Credential, TokenFile, UserInfo, user_from_certificate};
use crate::bootstrap;
use crate::cache::ObjectCache;
use crate::rbac_cache::RbacCache;
use crate::state::{AppState, Inner, SecretListPolicy, ServiceAccounts};
use crate::status::ApiError;

/// What `coffer serve` was asked to do, with kube-apiserver's flag names.
pub struct ServeOptions {
    /// `--data-dir`: generated files live here.
    pub data_dir: PathBuf,
    /// `--bind-address`.
    pub bind_address: IpAddr,
    /// `--secure-port` (0 = any free port).
    pub secure_port: u16,
    /// `--tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-private-key-file`.
    pub tls_private_key_file: Option<PathBuf>,
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// `--token-auth-file`.
    pub token_auth_file: Option<PathBuf>,
    /// `--encryption-provider-config`.
    pub encryption_provider_config: Option<PathBuf>,
    /// `--encryption-provider-config-automatic-reload`: how often to poll the file, or `None`.
    pub encryption_provider_config_automatic_reload: Option<Duration>,
    /// The store to serve from.
    pub store: Arc<dyn Store>,
    /// `--etcd-prefix`.
    pub layout: KeyLayout,
    /// `--secret-list-policy`.
    pub secret_list_policy: SecretListPolicy,
    /// ServiceAccount tokens and the audit log.
    pub access: AccessOptions,
    /// Secret versions (`--secret-history`, `--secret-recovery-window`).
    pub secret_history: crate::history::HistoryOptions,
    /// `--object-cache-size`: bytes of encoded objects kept by revision (0 = none;
    /// `cache.rs` states the tradeoff).
    pub object_cache_bytes: usize,
}

/// ServiceAccount-token and audit flags, with kube-apiserver's names.
#[derive(Clone, Debug, Default)]
pub struct AccessOptions {
    /// `--service-account-issuer` (repeatable; the first signs). Default
    /// `https://kubernetes.default.svc.cluster.local`.
    pub service_account_issuer: Vec<String>,
    /// `--service-account-key-file`: more public keys that verify tokens.
    pub service_account_key_file: Vec<PathBuf>,
    /// `--service-account-signing-key-file`; generated under `--data-dir` when absent.
    pub service_account_signing_key_file: Option<PathBuf>,
    /// `--api-audiences` (default: the issuers).
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration` in seconds (default 24 h).
    pub service_account_max_token_expiration: Option<i64>,
    /// `--audit-log-path` (`-` for stdout).
    pub audit_log_path: Option<PathBuf>,
    /// `--audit-policy-file` (default: everything at `Metadata`).
    pub audit_policy_file: Option<PathBuf>,
}

/// The default `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    /// The state behind `app`, for [`direct_read`].
    state: AppState,
    kubeconfig: PathBuf,
}

/// Namespaces that exist from the start (§9.1).
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Server {
    /// Generates what is missing, loads config, binds the port and writes the admin kubeconfig.
    pub async fn bind(options: ServeOptions) -> anyhow::Result<Server> {
        let generated = bootstrap::ensure(&options.data_dir)?;
        let cert_file = options
            .tls_cert_file
            .clone()
            .unwrap_or(generated.cert_file.clone());
        let key_file = options
            .tls_private_key_file
            .clone()
            .unwrap_or(generated.key_file.clone());
        let client_ca = options
            .client_ca_file
            .clone()
            .unwrap_or(generated.ca_file.clone());
        let token_file = options
            .token_auth_file
            .clone()
            .unwrap_or(generated.token_file.clone());
        let encryption = options
            .encryption_provider_config
            .clone()
            .unwrap_or(generated.encryption_config.clone());

        let tokens = TokenFile::load(&token_file)?;
        let service_accounts = service_accounts(&options.access, &options.data_dir)?;
        let audit = auditor(&options.access)?;
        let reload = options.encryption_provider_config_automatic_reload;
        let mode = match reload {
            Some(_) => LoadMode::AutomaticReload,
            None => LoadMode::Startup,
        };
        let config = EncryptionConfig::load(&encryption, mode)
            .with_context(|| format!("--encryption-provider-config {}", encryption.display()))?;
        for warning in config.warnings() {
            tracing::warn!(%warning, "encryption config");
        }
        // KMS v2 providers get their first seed from a Status call, then are probed in the
        // background (every 60 s while healthy, 10 s while failing), as kube-apiserver does.
        let transformers = ReloadingTransformers::start(&config, &GrpcKms).await?;
        if let Some(interval) = reload {
            let watcher = ConfigWatcher::new(&encryption, transformers.clone(), Arc::new(GrpcKms));
            tokio::spawn(watcher.run(interval));
        }
        let tls = tls_config(&cert_file, &key_file, &client_ca)?;

        let state = AppState::new(Inner {
            store: options.store,
            layout: options.layout,
            transformers,
            authn: Authenticator::new(tokens, Some(service_accounts.authenticator.clone())),
            rbac: RbacCache::default(),
            secret_list_policy: options.secret_list_policy,
            service_accounts,
            audit,
            objects: ObjectCache::new(options.object_cache_bytes),
        });
        for ns in SYSTEM_NAMESPACES {
            crate::resources::ensure_namespace(&state, ns)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot create namespace {ns}: {}", e.status()["message"])
                })?;
        }
        crate::rbac_cache::start(&state)
            .await
            .map_err(|e| anyhow::anyhow!("cannot load RBAC policy: {}", e.status()["message"]))?;
        crate::history::start(&state, options.secret_history);

        let listener =
            TcpListener::bind(SocketAddr::new(options.bind_address, options.secure_port))
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {}:{}",
                        options.bind_address, options.secure_port
                    )
                })?;
        let addr = listener.local_addr()?;
        let host = match addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let server = format!("https://{host}:{}", addr.port());
        if let Some(token) = bootstrap::admin_token(&token_file)? {
            bootstrap::write_kubeconfig(
                &generated.kubeconfig,
                &server,
                &generated.ca_file,
                &token,
            )?;
        }
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            app: app(state.clone()),
            state,
            kubeconfig: std::path::absolute(&generated.kubeconfig)?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The admin kubeconfig written at bind.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish (up to 5 s).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer_addr) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let acceptor = self.acceptor.clone();
            let app = self.app.clone();
            let state = self.state.clone();
            connections.spawn(async move {
                let _ = tcp.set_nodelay(true);
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer_addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let peer = PeerUser(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|c| user_from_certificate(c.as_ref()))
                        .map(Arc::new),
                );
                let service = Connection { app, state, peer };
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                    tracing::debug!(%peer_addr, error = %e, "connection ended with an error");
                }
            });
            while connections.try_join_next().is_some() {}
        }
        drop(self.listener);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            connections.abort_all();
        }
        Ok(())
    }
}

/// One connection's requests. Implemented directly on hyper's `Service` (no tower adapter,
/// whose `Oneshot` moves the request future once more), and a GET of one object is boxed
/// once, so what hyper moves is a pointer.
struct Connection {
    app: Router,
    state: AppState,
    peer: PeerUser,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
        tower::util::Oneshot<Router, Request>,
    >;

    fn call(&self, mut req: Request<hyper::body::Incoming>) -> Self::Future {
        // Token-authenticated connections carry no peer user; skipping the insert spares
        // every request the extensions map's allocation.
        if self.peer.0.is_some() {
            req.extensions_mut().insert(self.peer.clone());
        }
        match crate::resources::item_read_target(&req) {
            // A GET reads no body: an empty one is not even boxed.
            Some(target) => {
                let req = req.map(|_| axum::body::Body::empty());
                Either::Left(Box::pin(direct_read(self.state.clone(), req, target)))
            }
            None => Either::Right(self.app.clone().oneshot(req.map(axum::body::Body::new))),
        }
    }
}

/// The user named by the connection's verified client certificate, if any.
#[derive(Clone, Debug)]
pub struct PeerUser(pub Option<Arc<UserInfo>>);

/// The application: routes, then layers in DESIGN.md's pipeline order. The layer added last
/// runs first, so a request meets: authentication → audit → impersonation → authorization →
/// handler (kube-apiserver's order).
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(crate::discovery::router())
        .merge(crate::openapi::router())
        .merge(crate::resources::router())
        .fallback(|| async { ApiError::UnknownPath })
        .layer(middleware::from_fn_with_state(state.clone(), pipeline))
        .with_state(state)
}

/// The stages before the handler, as one layer (axum clones the rest of the chain in every
/// `from_fn` layer it passes).
async fn pipeline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    before_handler(&state, req, |req| next.run(req)).await
}

/// The stages of [`pipeline`], then `handler`: every request meets these, whether the router
/// or [`direct_read`] picks its handler. In kube-apiserver's order: authentication, audit,
/// impersonation, authorization, then the handler (in the version an `/apis/` path names).
///
/// Flat on purpose: only authentication (a ServiceAccount token may need storage) and audit
/// (it wraps the response) are async, and the rare paths (audit on, `/apis/` versions) are
/// boxed. When each stage awaited the next, each held the inner futures inside its own: the
/// future of a GET was ~20 KB, copied on every move (`docs/benchmarks.md`).
async fn before_handler<F, Fut>(state: &AppState, req: Request, handler: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let req = match authenticate(state, req).await {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    // Copied only when the line below will be written.
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        let user = req
            .extensions()
            .get::<Arc<UserInfo>>()
            .map(|u| u.name.clone());
        (req.method().clone(), req.uri().path().to_owned(), user)
    });
    let response = if state.audit.is_some() {
        Box::pin(crate::audit::audit(state, req, |req| {
            after_audit(state, req, handler)
        }))
        .await
    } else {
        after_audit(state, req, handler).await
    };
    if let Some((method, path, user)) = logged {
        let user = user.unwrap_or_default();
        tracing::debug!(%method, %path, %user, status = response.status().as_u16(), "request");
    }
    response
}

/// Impersonation and authorization (checks that hand the request on or answer it), then the
/// handler. Custom objects are answered in the version the request's path names
/// (`kinds::custom`); only `/apis/` paths name one, and the core group has no custom kinds.
async fn after_audit<F, Fut>(state: &AppState, req: Request, handler: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let req = match crate::authz::impersonate(state, req)
        .and_then(|req| crate::authz::authorize(state, req))
    {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    match req.uri().path().strip_prefix("/apis/") {
        Some(rest) => {
            let version = rest.split('/').nth(1).unwrap_or_default().to_owned();
            Box::pin(crate::kinds::served_version(version, handler(req))).await
        }
        None => handler(req).await,
    }
}

/// The most frequent request, GET of one object, dispatched without the router: the path is
/// parsed once ([`crate::resources::Target::parse`], which mirrors the routes), then the same
/// stages as every other request run before the same handler code. Saves axum's per-request
/// route matching, parameter map and boxed service clones (`docs/benchmarks.md`).
async fn direct_read(
    state: AppState,
    req: Request,
    target: crate::resources::Target,
) -> Result<Response, Infallible> {
    let handler = |req| crate::resources::read_item(state.clone(), target, req);
    Ok(before_handler(&state, req, handler).await)
}

/// Who is calling: the bearer token or the connection's client certificate. The request
/// goes on with the user in its extensions and without its `Authorization` header; `Err` is
/// the 401 (or the ServiceAccount lookup's error).
///
/// Synchronous for every credential but a ServiceAccount token, whose ServiceAccount is
/// looked up in storage in a boxed future of its own.
async fn authenticate(state: &AppState, mut req: Request) -> Result<Request, ApiError> {
    let peer = req.extensions().get::<PeerUser>().and_then(|p| p.0.clone());
    let user = match state.authn.authenticate(req.headers(), peer.as_ref()) {
        Ok(Credential::User(user)) => user,
        Ok(Credential::ServiceAccount(token)) => {
            Arc::new(Box::pin(crate::tokens::service_account_user(state, &token)).await?)
        }
        Err(e) => return Err(e),
    };
    req.headers_mut().remove(AUTHORIZATION);
    req.extensions_mut().insert(user);
    Ok(req)
}

/// Loads (or generates) the ServiceAccount signing key and builds the issuer and verifier.
fn service_accounts(options: &AccessOptions, data_dir: &Path) -> anyhow::Result<ServiceAccounts> {
    use coffer_access::serviceaccount::{load_or_generate_signing_key, load_public_key_files};
    let signing_file = options
        .service_account_signing_key_file
        .clone()
        .unwrap_or_else(|| data_dir.join("service-account.key"));
    let (key, generated) = load_or_generate_signing_key(&signing_file).with_context(|| {
        format!(
            "--service-account-signing-key-file {}",
            signing_file.display()
        )
    })?;
    if generated {
        tracing::info!(file = %signing_file.display(), "generated a ServiceAccount signing key");
    }
    let extra: Vec<&Path> = options
        .service_account_key_file
        .iter()
        .map(PathBuf::as_path)
        .collect();
    let mut keys = load_public_key_files(&extra).context("--service-account-key-file")?;
    keys.push(key.public_key().clone());
    let issuers = if options.service_account_issuer.is_empty() {
        vec![DEFAULT_ISSUER.to_owned()]
    } else {
        options.service_account_issuer.clone()
    };
    let api_audiences = if options.api_audiences.is_empty() {
        issuers.clone()
    } else {
        options.api_audiences.clone()
    };
    Ok(ServiceAccounts {
        issuer: TokenIssuer::new(issuers[0].clone(), key),
        authenticator: TokenAuthenticator::new(issuers, api_audiences.clone(), keys),
        api_audiences,
        max_expiration_seconds: options
            .service_account_max_token_expiration
            .unwrap_or(24 * 3600),
    })
}

/// Opens the audit log when `--audit-log-path` is given.
fn auditor(options: &AccessOptions) -> anyhow::Result<Option<Auditor>> {
    let Some(path) = &options.audit_log_path else {
        return Ok(None);
    };
    let policy = match &options.audit_policy_file {
        Some(file) => coffer_audit::Policy::from_file(file)
            .with_context(|| format!("--audit-policy-file {}", file.display()))?,
        None => coffer_audit::Policy::default_metadata(),
    };
    let log = coffer_audit::AuditLog::open(path)
        .with_context(|| format!("--audit-log-path {}", path.display()))?;
    Ok(Some(Auditor { log, policy }))
}

fn tls_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: &Path,
) -> anyhow::Result<rustls::ServerConfig> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut read(cert_file)?.as_slice())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--tls-cert-file {}", cert_file.display()))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(key_file)?.as_slice())
        .with_context(|| format!("--tls-private-key-file {}", key_file.display()))?
        .with_context(|| format!("no private key in {}", key_file.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut read(client_ca)?.as_slice()) {
        roots.add(ca.with_context(|| format!("--client-ca-file {}", client_ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns, from its type alone.
    fn future_size<F, A, B, C, R>(_: &F) -> usize
    where
        F: FnOnce(A, B, C) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// Every move of a request's future copies all of it. When each stage awaited the next,
    /// this future was 10,160 bytes (20,728 with the connection's async block around it);
    /// flat it is 3,448, in debug and release builds alike (`docs/benchmarks.md`). The bound
    /// leaves room to grow and fails if the stages nest again.
    #[test]
    fn the_future_of_a_direct_get_stays_small() {
        let size = future_size(&direct_read);
        println!("direct_read future: {size} bytes");
        assert!(size < 6 * 1024, "direct_read's future is {size} bytes");
    }
}
