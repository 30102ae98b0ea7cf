//! A small HTTPS client for the Vault and Azure providers: hyper 1 + rustls (ring), the
//! stack kube already brings. Trusts the Mozilla roots, or only a store's `caBundle` when
//! one is given. Honours `429 Too Many Requests` + `Retry-After` (seconds) up to three
//! times, waiting at most 30 s each; other statuses are returned to the provider.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::ProviderError;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const THROTTLE_RETRIES: usize = 3;

/// An HTTP(S) client bound to one trust configuration.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    provider: &'static str,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (may hold secret values: never log it).
    pub body: Bytes,
}

impl HttpClient {
    /// A client trusting `ca_pem` only (when given) or the Mozilla roots.
    pub fn new(provider: &'static str, ca_pem: Option<&[u8]>) -> Result<Self, ProviderError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                use rustls_pki_types::pem::PemObject as _;
                let mut n = 0;
                for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|_| {
                        ProviderError::Config("caBundle is not PEM certificates".to_owned())
                    })?;
                    roots.add(cert).map_err(|_| {
                        ProviderError::Config("caBundle holds an unusable certificate".to_owned())
                    })?;
                    n += 1;
                }
                if n == 0 {
                    return Err(ProviderError::Config(
                        "caBundle holds no certificate".to_owned(),
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider_crypto = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider_crypto)
            .with_safe_default_protocol_versions()
            .map_err(|_| ProviderError::Config("TLS setup failed".to_owned()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { client, provider })
    }

    /// Sends a request, retrying on 429 as the server's `Retry-After` says.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<Response, ProviderError> {
        let mut attempt = 0;
        loop {
            let resp = self
                .send_once(method.clone(), url, headers, body.clone())
                .await?;
            if resp.status != StatusCode::TOO_MANY_REQUESTS {
                return Ok(resp);
            }
            attempt += 1;
            if attempt > THROTTLE_RETRIES {
                return Err(ProviderError::Throttled {
                    provider: self.provider,
                });
            }
            let wait = retry_after(&resp.headers).unwrap_or(Duration::from_secs(1 << attempt));
            tracing::info!(
                provider = self.provider,
                wait_ms = wait.as_millis() as u64,
                "throttled; waiting as Retry-After says"
            );
            tokio::time::sleep(wait.min(MAX_RETRY_AFTER)).await;
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<Response, ProviderError> {
        let unavailable = |detail: String| ProviderError::Unavailable {
            provider: self.provider,
            detail,
        };
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| ProviderError::Config(format!("invalid URL {url:?}")))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unavailable(format!("{url}: {}", error_chain(&e))))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| unavailable(format!("{url}: reading the answer: {e}")))?
                .to_bytes();
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| unavailable(format!("{url}: no answer within {}s", TIMEOUT.as_secs())))?
    }
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// Builds a header pair from static name and a value (values with invalid bytes are dropped
/// with a config error, never echoed).
pub fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), ProviderError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        ProviderError::Config(format!("header {name} has characters HTTP cannot carry"))
    })?;
    v.set_sensitive(true);
    Ok((HeaderName::from_static(name), v))
}
