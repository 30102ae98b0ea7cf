//! HashiCorp Vault: KV v1 and v2 over Vault's HTTP API
//! (developer.hashicorp.com/vault/api-docs/secret/kv/kv-v1, …/kv-v2, …/auth/approle,
//! …/auth/kubernetes). Paths are built as ESO's `buildPath` builds them. Auth: a static token
//! (`tokenSecretRef`), AppRole, or Kubernetes (a ServiceAccount JWT posted to
//! `auth/<mountPath>/login`). A login token is kept until its lease ends; a 403 with a login
//! method logs in again once (an expired or revoked token), then reports the denial.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use tokio::sync::Mutex;

use super::http::{HttpClient, Response, header};
use super::{CredentialScope, CredentialSource, Fetched, Provider, ProviderError, SecretValue};
use crate::types::{FindSpec, VaultKvVersion, VaultProvider};

const NAME: &str = "vault";

/// How this store logs in.
enum Login {
    /// A fixed token.
    Token(SecretValue),
    /// `POST auth/<path>/login` with this JSON body.
    Method { path: String, body: SecretValue },
}

/// A Vault KV provider for one store.
pub struct Vault {
    http: HttpClient,
    server: String,
    mount: Option<String>,
    version: VaultKvVersion,
    namespace: Option<String>,
    auth_namespace: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    login: Login,
    /// The current token and when its lease ends. Held across a login so concurrent
    /// fetches wait for one login instead of each logging in.
    token: Mutex<Option<(SecretValue, Option<Instant>)>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("server", &self.server)
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Reads the store's credentials and prepares the client (no request yet).
    pub async fn new(
        cfg: &VaultProvider,
        scope: CredentialScope<'_>,
        creds: &dyn CredentialSource,
    ) -> Result<Self, ProviderError> {
        let ca = match (&cfg.ca_bundle, &cfg.ca_provider) {
            (Some(b64), _) => {
                use base64::Engine as _;
                Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|_| {
                            ProviderError::Config(
                                "vault.caBundle is not base64 (it is a []byte field)".into(),
                            )
                        })?,
                )
            }
            (None, Some(p)) if p.type_ == "Secret" => {
                let sel = crate::types::SecretKeySelector {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    key: p.key.clone(),
                };
                let ns = scope.namespace_for(p.namespace.as_deref());
                Some(creds.secret_key(ns, &sel).await?.expose_secret().to_vec())
            }
            (None, Some(p)) => {
                return Err(ProviderError::Config(format!(
                    "vault.caProvider type {:?} is not supported; use Secret or caBundle",
                    p.type_
                )));
            }
            (None, None) => None,
        };
        let auth = cfg.auth.clone().unwrap_or_default();
        let login = if let Some(sel) = &auth.token_secret_ref {
            Login::Token(
                creds
                    .secret_key(scope.namespace_for(sel.namespace.as_deref()), sel)
                    .await?,
            )
        } else if let Some(ar) = &auth.app_role {
            let role_id = match (&ar.role_id, &ar.role_ref) {
                (Some(id), _) => id.clone(),
                (None, Some(sel)) => creds
                    .secret_key(scope.namespace_for(sel.namespace.as_deref()), sel)
                    .await?
                    .expose_str_lossy()
                    .to_string(),
                (None, None) => {
                    return Err(ProviderError::Config(
                        "vault.auth.appRole needs roleId or roleRef".into(),
                    ));
                }
            };
            let sel = &ar.secret_ref;
            let secret_id = creds
                .secret_key(scope.namespace_for(sel.namespace.as_deref()), sel)
                .await?;
            let body = serde_json::json!({"role_id": role_id, "secret_id": &*secret_id.expose_str_lossy()});
            Login::Method {
                path: ar.path.clone(),
                body: SecretValue::new(body.to_string().into_bytes()),
            }
        } else if let Some(k) = &auth.kubernetes {
            let jwt = match (&k.secret_ref, &k.service_account_ref) {
                (Some(sel), _) => {
                    creds
                        .secret_key(scope.namespace_for(sel.namespace.as_deref()), sel)
                        .await?
                }
                (None, Some(sa)) => {
                    creds
                        .service_account_token(scope.namespace_for(sa.namespace.as_deref()), sa)
                        .await?
                }
                (None, None) => {
                    return Err(ProviderError::Config(
                        "vault.auth.kubernetes needs serviceAccountRef or secretRef".into(),
                    ));
                }
            };
            let body = serde_json::json!({"role": k.role, "jwt": &*jwt.expose_str_lossy()});
            Login::Method {
                path: k.mount_path.clone(),
                body: SecretValue::new(body.to_string().into_bytes()),
            }
        } else if let Some(other) = auth.other.keys().next() {
            return Err(ProviderError::Config(format!(
                "vault.auth.{other} is not supported by coffer sync; use tokenSecretRef, appRole or kubernetes"
            )));
        } else {
            return Err(ProviderError::Config(
                "vault.auth is missing; set tokenSecretRef, appRole or kubernetes".into(),
            ));
        };
        let mut headers = Vec::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ProviderError::Config(format!("vault.headers: {k:?} is not a header name"))
            })?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                ProviderError::Config(format!(
                    "vault.headers: value of {k:?} is not a header value"
                ))
            })?;
            headers.push((name, value));
        }
        Ok(Self {
            http: HttpClient::new(NAME, ca.as_deref())?,
            server: cfg.server.trim_end_matches('/').to_owned(),
            mount: cfg.path.clone().map(|p| p.trim_matches('/').to_owned()),
            version: cfg.version,
            namespace: cfg.namespace.clone(),
            auth_namespace: auth.namespace.clone(),
            headers,
            login,
            token: Mutex::new(None),
        })
    }

    /// ESO's `buildPath`: the API path for a key, mount and KV version.
    pub fn build_path(&self, key: &str) -> String {
        build_path(self.mount.as_deref(), self.version, key)
    }

    async fn token(&self, force: bool) -> Result<SecretValue, ProviderError> {
        let mut slot = self.token.lock().await;
        if let Some((tok, until)) = slot.as_ref()
            && !force
            && until.is_none_or(|u| Instant::now() < u)
        {
            return Ok(tok.clone());
        }
        let (tok, until) = match &self.login {
            Login::Token(t) => (t.clone(), None),
            Login::Method { path, body } => self.login(path, body).await?,
        };
        *slot = Some((tok.clone(), until));
        Ok(tok)
    }

    async fn login(
        &self,
        path: &str,
        body: &SecretValue,
    ) -> Result<(SecretValue, Option<Instant>), ProviderError> {
        let url = format!("{}/v1/auth/{}/login", self.server, path.trim_matches('/'));
        let mut headers = self.headers.clone();
        headers.push(header("content-type", "application/json")?);
        if let Some(ns) = self.auth_namespace.as_ref().or(self.namespace.as_ref()) {
            headers.push(header("x-vault-namespace", ns)?);
        }
        let resp = self
            .http
            .send(
                Method::POST,
                &url,
                &headers,
                Some(Bytes::copy_from_slice(body.expose_secret())),
            )
            .await?;
        check(&resp, &format!("auth/{path}/login"))?;
        #[derive(serde::Deserialize)]
        struct Auth {
            client_token: String,
            #[serde(default)]
            lease_duration: u64,
        }
        #[derive(serde::Deserialize)]
        struct LoginResp {
            auth: Auth,
        }
        let parsed: LoginResp =
            serde_json::from_slice(&resp.body).map_err(|_| ProviderError::Protocol {
                provider: NAME,
                detail: format!("auth/{path}/login answer has no auth.client_token"),
            })?;
        // Renew a little before the lease ends.
        let until = (parsed.auth.lease_duration > 0)
            .then(|| Instant::now() + Duration::from_secs(parsed.auth.lease_duration).mul_f64(0.9));
        Ok((
            SecretValue::new(parsed.auth.client_token.into_bytes()),
            until,
        ))
    }

    /// A GET (or LIST) with the token, logging in again once on 403 for login methods.
    async fn read(
        &self,
        method: Method,
        api_path: &str,
        key: &str,
    ) -> Result<Response, ProviderError> {
        let url = format!("{}/v1/{}", self.server, api_path);
        let mut relogged = false;
        loop {
            let tok = self.token(false).await?;
            let mut headers = self.headers.clone();
            headers.push(header("x-vault-token", &tok.expose_str_lossy())?);
            if let Some(ns) = &self.namespace {
                headers.push(header("x-vault-namespace", ns)?);
            }
            let resp = self.http.send(method.clone(), &url, &headers, None).await?;
            if resp.status == StatusCode::FORBIDDEN
                && !relogged
                && matches!(self.login, Login::Method { .. })
            {
                tracing::info!(server = %self.server, "vault token refused; logging in again");
                self.token(true).await?;
                relogged = true;
                continue;
            }
            if resp.status == StatusCode::NOT_FOUND {
                return Err(ProviderError::NotFound {
                    provider: NAME,
                    key: key.to_owned(),
                });
            }
            check(&resp, key)?;
            return Ok(resp);
        }
    }
}

/// ESO's `buildPath` (`providers/v1/vault/client_get.go`).
pub fn build_path(mount: Option<&str>, version: VaultKvVersion, key: &str) -> String {
    let v2 = version == VaultKvVersion::V2;
    match mount {
        Some(mount) => {
            let mut out = key;
            let cut = format!("{mount}/");
            if let Some(rest) = out.strip_prefix(&cut) {
                out = rest;
                if v2 && let Some(rest) = out.strip_prefix("data/") {
                    out = rest;
                }
            }
            if v2 {
                format!("{mount}/data/{out}")
            } else {
                format!("{mount}/{out}")
            }
        }
        None if v2 && !key.contains("/data/") => match key.split_once('/') {
            Some((first, rest)) => format!("{first}/data/{rest}"),
            None => format!("{key}/data"),
        },
        None => key.to_owned(),
    }
}

fn check(resp: &Response, what: &str) -> Result<(), ProviderError> {
    let s = resp.status;
    if s.is_success() {
        return Ok(());
    }
    // Vault errors are {"errors": ["..."]}; they name paths and reasons, not values.
    let detail = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| {
            v.get("errors")?
                .as_array()?
                .first()?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| s.to_string());
    let detail = detail.chars().take(200).collect::<String>();
    Err(match s {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Denied {
            provider: NAME,
            key: what.to_owned(),
            detail: format!("HTTP {}: {detail}", s.as_u16()),
        },
        s if s.is_server_error() => ProviderError::Unavailable {
            provider: NAME,
            detail: format!("HTTP {} for {what}: {detail}", s.as_u16()),
        },
        _ => ProviderError::Protocol {
            provider: NAME,
            detail: format!("HTTP {} for {what}: {detail}", s.as_u16()),
        },
    })
}

#[async_trait]
impl Provider for Vault {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get_secret(&self, key: &str, version: Option<&str>) -> Result<Fetched, ProviderError> {
        let mut path = self.build_path(key);
        if let (Some(v), VaultKvVersion::V2) = (version, self.version) {
            path = format!("{path}?version={v}");
        }
        let resp = self.read(Method::GET, &path, key).await?;
        let body: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|_| ProviderError::Protocol {
                provider: NAME,
                detail: format!("answer for {key:?} is not JSON"),
            })?;
        let (data, ver) = match self.version {
            VaultKvVersion::V1 => (body.get("data"), None),
            VaultKvVersion::V2 => {
                let inner = body.get("data");
                let ver = inner
                    .and_then(|d| d.get("metadata")?.get("version")?.as_u64())
                    .map(|v| v.to_string());
                (inner.and_then(|d| d.get("data")), ver)
            }
        };
        match data {
            Some(d @ serde_json::Value::Object(_)) => Ok(Fetched {
                value: SecretValue::new(serde_json::to_vec(d).unwrap_or_default()),
                version: ver,
            }),
            // KV v2 answers `data: null` for a deleted or destroyed version.
            _ => Err(ProviderError::NotFound {
                provider: NAME,
                key: key.to_owned(),
            }),
        }
    }

    async fn get_all(
        &self,
        find: &FindSpec,
    ) -> Result<BTreeMap<String, SecretValue>, ProviderError> {
        if self.version != VaultKvVersion::V2 {
            return Err(ProviderError::Config(
                "dataFrom.find needs a KV v2 store (version: v2)".into(),
            ));
        }
        if !find.tags.is_empty() {
            return Err(ProviderError::Config(
                "dataFrom.find.tags is not supported for vault by coffer sync".into(),
            ));
        }
        let Some(mount) = &self.mount else {
            return Err(ProviderError::Config(
                "dataFrom.find needs vault.path (the mount)".into(),
            ));
        };
        let re = match &find.name {
            Some(n) => Some(regex::Regex::new(&n.regexp).map_err(|_| {
                ProviderError::Config(format!(
                    "find.name.regexp {:?} is not a valid regular expression",
                    n.regexp
                ))
            })?),
            None => None,
        };
        let base = find
            .path
            .clone()
            .unwrap_or_default()
            .trim_matches('/')
            .to_owned();
        let mut pending = vec![base];
        let mut names = Vec::new();
        while let Some(dir) = pending.pop() {
            let list_path = if dir.is_empty() {
                format!("{mount}/metadata/?list=true")
            } else {
                format!("{mount}/metadata/{dir}/?list=true")
            };
            let resp = match self.read(Method::GET, &list_path, &dir).await {
                Err(ProviderError::NotFound { .. }) => continue,
                other => other?,
            };
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            let keys = body
                .pointer("/data/keys")
                .and_then(|k| k.as_array())
                .cloned()
                .unwrap_or_default();
            for k in keys.iter().filter_map(|k| k.as_str()) {
                let full = if dir.is_empty() {
                    k.to_owned()
                } else {
                    format!("{dir}/{k}")
                };
                if let Some(sub) = full.strip_suffix('/') {
                    pending.push(sub.to_owned());
                } else if re.as_ref().is_none_or(|r| r.is_match(&full)) {
                    names.push(full);
                }
            }
        }
        let mut out = BTreeMap::new();
        for name in names {
            let fetched = self.get_secret(&format!("{mount}/{name}"), None).await?;
            out.insert(name, fetched.value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_path_matches_esos_table() {
        use VaultKvVersion::{V1, V2};
        let cases = [
            (Some("secret/path"), V2, "foo", "secret/path/data/foo"),
            (Some("secret/path"), V1, "foo", "secret/path/foo"),
            (
                Some("secret/path"),
                V2,
                "secret/path/foo",
                "secret/path/data/foo",
            ),
            (
                Some("secret/path"),
                V2,
                "secret/path/data/foo",
                "secret/path/data/foo",
            ),
            (
                Some("secret/path"),
                V1,
                "secret/path/foo",
                "secret/path/foo",
            ),
            (None, V2, "secret/path/foo", "secret/data/path/foo"),
            (None, V2, "secret/path/data/foo", "secret/path/data/foo"),
            (None, V1, "secret/path/foo", "secret/path/foo"),
        ];
        for (mount, v, key, want) in cases {
            assert_eq!(build_path(mount, v, key), want, "{mount:?} {v:?} {key}");
        }
    }
}
