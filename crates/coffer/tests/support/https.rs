//! Real HTTPS requests to a running `coffer serve` as any user of a static token file: a
//! hyper client (rustls, trusting the server's generated CA) that keeps connections alive, so
//! hundreds of requests can run concurrently in a few seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Coffer;

/// A `--token-auth-file` written for a test: one token per user, the first one an admin in
/// `system:masters`. Kept in its own directory, removed on drop.
pub struct Tokens {
    dir: tempfile::TempDir,
    by_user: BTreeMap<String, String>,
}

impl Tokens {
    /// The admin's user name in every token file written here.
    pub const ADMIN: &'static str = "admin";

    /// A token file with the admin plus `users` (name, groups; `system:authenticated` is
    /// added by the server).
    pub fn new<'a>(users: impl IntoIterator<Item = (&'a str, Vec<String>)>) -> Tokens {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut by_user = BTreeMap::new();
        let mut text = String::new();
        let admin = format!("admin-{}", unique());
        text.push_str(&format!("{admin},admin,uid-admin,\"system:masters\"\n"));
        by_user.insert(Self::ADMIN.to_owned(), admin);
        for (n, (user, groups)) in users.into_iter().enumerate() {
            if user == Self::ADMIN {
                continue;
            }
            let token = format!("t{n}-{}", unique());
            let groups: Vec<_> = groups
                .into_iter()
                .filter(|g| g != "system:authenticated")
                .collect();
            text.push_str(&format!(
                "{token},{user},uid-{n},\"{}\"\n",
                groups.join(",")
            ));
            by_user.insert(user.to_owned(), token);
        }
        std::fs::write(dir.path().join("tokens.csv"), text).expect("write token file");
        Tokens { dir, by_user }
    }

    /// The file, for `--token-auth-file`.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("tokens.csv")
    }

    /// `--token-auth-file <path>` as flags.
    pub fn flags(&self) -> [String; 2] {
        [
            "--token-auth-file".to_owned(),
            self.path().display().to_string(),
        ]
    }

    /// The token of `user` (panics for a user not in the file).
    pub fn token(&self, user: &str) -> &str {
        self.by_user
            .get(user)
            .unwrap_or_else(|| panic!("no token for {user:?}"))
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}{:x}{:x}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Coffer {
    /// Starts `coffer serve` with `tokens` as its `--token-auth-file` plus `extra` flags.
    pub fn start_with_tokens(tokens: &Tokens, extra: &[&str]) -> Coffer {
        let flags = tokens.flags();
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        Coffer::start(&all)
    }

    /// The server URL from the admin kubeconfig (`https://127.0.0.1:<port>`).
    pub fn server_url(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("read kubeconfig");
        text.lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("server: in the admin kubeconfig")
            .trim()
            .to_owned()
    }

    /// A kubeconfig like the admin's but authenticating with `token`, written next to it.
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("read kubeconfig");
        let swapped: Vec<String> = text
            .lines()
            .map(|l| match l.trim_start().strip_prefix("token: ") {
                Some(_) => format!("{}token: {token}", &l[..l.len() - l.trim_start().len()]),
                None => l.to_owned(),
            })
            .collect();
        let file = self
            .data_dir()
            .join(format!("{}.kubeconfig", user.replace(':', "_")));
        std::fs::write(&file, swapped.join("\n") + "\n").expect("write kubeconfig");
        file
    }

    /// An HTTPS client for this server.
    pub fn https(&self) -> Https {
        Https::new(&self.server_url(), &self.data_dir().join("pki/ca.crt"))
    }
}

/// A response: status, `Warning` headers and the body.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Every `Warning` header, in order.
    pub warnings: Vec<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `message` of a `Status` body (empty when there is none).
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// An HTTPS client to one server.
#[derive(Clone)]
pub struct Https {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Https {
    /// A client for `base` (`https://host:port`) trusting the CA in `ca_file`.
    pub fn new(base: &str, ca_file: &Path) -> Https {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut std::fs::read(ca_file).expect("CA").as_slice()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Https {
            base: base.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `method path_and_query` with `token` as bearer (none: anonymous) and an
    /// optional body of `content_type`; reads the whole body.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        self.send_with(method, path_and_query, token, &[], body)
            .await
    }

    /// Like [`Https::send`] with extra headers.
    pub async fn send_with(
        &self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(format!("{}{path_and_query}", self.base));
        if let Some(token) = token {
            request = request.header(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}")).expect("token header"),
            );
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (content_type, bytes) = body.unwrap_or(("", Vec::new()));
        if !content_type.is_empty() {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(bytes)))
            .expect("request");
        let response = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {path_and_query}: {e}"));
        let status = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        Reply {
            status,
            warnings,
            body,
        }
    }

    /// GET as `token`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None).await
    }

    /// POST a JSON object as `token`.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Reply {
        self.send(
            "POST",
            path,
            token,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// PUT a JSON object as `token`.
    pub async fn put(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Reply {
        self.send(
            "PUT",
            path,
            token,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// POST `body` as `token` and assert 201 (or 200), returning the reply.
    pub async fn create(&self, path: &str, token: &str, body: &serde_json::Value) -> Reply {
        let reply = self.post(path, Some(token), body).await;
        assert!(
            matches!(reply.status, 200 | 201),
            "POST {path} {body}: {} {}",
            reply.status,
            reply.text()
        );
        reply
    }
}

/// The collection path of an object given as JSON (`apiVersion`, `kind`, `metadata.namespace`).
pub fn collection_of(object: &serde_json::Value) -> String {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let resource = match kind {
        "Secret" => "secrets",
        "ConfigMap" => "configmaps",
        "ServiceAccount" => "serviceaccounts",
        "Namespace" => "namespaces",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        other => panic!("no collection known for kind {other}"),
    };
    let root = if api_version == "v1" {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{api_version}")
    };
    match object["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{root}/namespaces/{ns}/{resource}"),
        _ => format!("{root}/{resource}"),
    }
}
