//! Azure Key Vault secrets over the REST API (learn.microsoft.com/rest/api/keyvault/secrets:
//! Get Secret, Get Secrets) with a Microsoft Entra ID client-credentials token
//! (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
//!
//! `api-version=7.0`: ESO's default Key Vault client is the SDK package
//! `services/keyvault/v7.0/keyvault` (`useAzureSDK: true` switches ESO to the newer
//! `azsecrets`). The authority host comes from `AZURE_AUTHORITY_HOST` when set (as the Azure
//! SDKs allow), else from `environmentType`. Keys are `name` or `secret/name`; ESO's
//! `cert/` and `key/` objects are refused by name. A 401 gets one fresh token and a retry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::Mutex;

use super::http::{HttpClient, Response, header};
use super::{CredentialScope, CredentialSource, Fetched, Provider, ProviderError, SecretValue};
use crate::types::{AzureKvProvider, FindSpec};

const NAME: &str = "azurekv";
/// The Key Vault REST API version ESO's default client speaks.
pub const API_VERSION: &str = "7.0";

/// An Azure Key Vault provider for one store.
pub struct AzureKeyVault {
    http: HttpClient,
    vault_url: String,
    token_url: String,
    /// The urlencoded client-credentials form.
    form: SecretValue,
    token: Mutex<Option<(SecretValue, Instant)>>,
}

impl std::fmt::Debug for AzureKeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVault")
            .field("vault_url", &self.vault_url)
            .finish_non_exhaustive()
    }
}

fn cloud(env_type: Option<&str>) -> Result<(&'static str, &'static str), ProviderError> {
    Ok(match env_type.unwrap_or("PublicCloud") {
        "PublicCloud" => (
            "https://login.microsoftonline.com",
            "https://vault.azure.net",
        ),
        "USGovernmentCloud" => (
            "https://login.microsoftonline.us",
            "https://vault.usgovcloudapi.net",
        ),
        "ChinaCloud" => ("https://login.chinacloudapi.cn", "https://vault.azure.cn"),
        "GermanCloud" => (
            "https://login.microsoftonline.de",
            "https://vault.microsoftazure.de",
        ),
        other => {
            return Err(ProviderError::Config(format!(
                "azurekv.environmentType {other:?} is not supported; use PublicCloud, USGovernmentCloud, ChinaCloud or GermanCloud"
            )));
        }
    })
}

impl AzureKeyVault {
    /// Reads the service principal's credentials (no request yet).
    pub async fn new(
        cfg: &AzureKvProvider,
        scope: CredentialScope<'_>,
        creds: &dyn CredentialSource,
    ) -> Result<Self, ProviderError> {
        if let Some(t) = cfg
            .auth_type
            .as_deref()
            .filter(|t| *t != "ServicePrincipal")
        {
            return Err(ProviderError::Config(format!(
                "azurekv.authType {t} is not supported by coffer sync; use ServicePrincipal"
            )));
        }
        let auth = cfg.auth_secret_ref.clone().ok_or_else(|| {
            ProviderError::Config(
                "azurekv.authSecretRef (clientId, clientSecret) is required".into(),
            )
        })?;
        let read = |sel: Option<crate::types::SecretKeySelector>, what: &str| {
            let what = what.to_owned();
            async move {
                let sel = sel.ok_or_else(|| {
                    ProviderError::Config(format!("azurekv.authSecretRef.{what} is required"))
                })?;
                creds
                    .secret_key(scope.namespace_for(sel.namespace.as_deref()), &sel)
                    .await
            }
        };
        let client_id = read(auth.client_id, "clientId").await?;
        let client_secret = read(auth.client_secret, "clientSecret").await?;
        let tenant = match (&cfg.tenant_id, auth.tenant_id) {
            (Some(t), _) => t.clone(),
            (None, Some(sel)) => read(Some(sel), "tenantId")
                .await?
                .expose_str_lossy()
                .to_string(),
            (None, None) => {
                return Err(ProviderError::Config("azurekv.tenantId is required".into()));
            }
        };
        let (authority, resource) = cloud(cfg.environment_type.as_deref())?;
        let authority =
            std::env::var("AZURE_AUTHORITY_HOST").unwrap_or_else(|_| authority.to_owned());
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            urlencode(&client_id.expose_str_lossy()),
            urlencode(&client_secret.expose_str_lossy()),
            urlencode(&format!("{resource}/.default")),
        );
        Ok(Self {
            http: HttpClient::new(NAME, None)?,
            vault_url: cfg.vault_url.trim_end_matches('/').to_owned(),
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                authority.trim_end_matches('/'),
                urlencode(&tenant)
            ),
            form: SecretValue::new(form.into_bytes()),
            token: Mutex::new(None),
        })
    }

    async fn token(&self, force: bool) -> Result<SecretValue, ProviderError> {
        let mut slot = self.token.lock().await;
        if let Some((t, until)) = slot.as_ref()
            && !force
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let headers = [header("content-type", "application/x-www-form-urlencoded")?];
        let resp = self
            .http
            .send(
                Method::POST,
                &self.token_url,
                &headers,
                Some(Bytes::copy_from_slice(self.form.expose_secret())),
            )
            .await?;
        check(&resp, "token endpoint")?;
        #[derive(serde::Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Option<serde_json::Value>,
        }
        let t: Token = serde_json::from_slice(&resp.body).map_err(|_| ProviderError::Protocol {
            provider: NAME,
            detail: "token endpoint answer has no access_token".into(),
        })?;
        let secs = match t.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(300),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(300),
            _ => 300,
        };
        let until = Instant::now() + Duration::from_secs(secs.saturating_sub(60).max(1));
        let tok = SecretValue::new(t.access_token.into_bytes());
        *slot = Some((tok.clone(), until));
        Ok(tok)
    }

    async fn get(&self, url: &str, key: &str) -> Result<Response, ProviderError> {
        let mut retried = false;
        loop {
            let tok = self.token(retried).await?;
            let headers = [header(
                "authorization",
                &format!("Bearer {}", &*tok.expose_str_lossy()),
            )?];
            let resp = self.http.send(Method::GET, url, &headers, None).await?;
            if resp.status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
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

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn check(resp: &Response, what: &str) -> Result<(), ProviderError> {
    let s = resp.status;
    if s.is_success() {
        return Ok(());
    }
    // Key Vault: {"error":{"code":"Forbidden","message":"..."}}; Entra: {"error":"invalid_client",...}.
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    let code = body
        .pointer("/error/code")
        .or_else(|| body.get("error"))
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .chars()
        .take(80)
        .collect::<String>();
    let detail = format!("HTTP {} {code}", s.as_u16()).trim_end().to_owned();
    let denied = matches!(s, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        || (s == StatusCode::BAD_REQUEST && what == "token endpoint");
    Err(match s {
        _ if denied => ProviderError::Denied {
            provider: NAME,
            key: what.to_owned(),
            detail,
        },
        s if s.is_server_error() => ProviderError::Unavailable {
            provider: NAME,
            detail: format!("{detail} for {what}"),
        },
        _ => ProviderError::Protocol {
            provider: NAME,
            detail: format!("{detail} for {what}"),
        },
    })
}

/// `name` or `secret/name`; ESO's `cert/` and `key/` prefixes are refused.
fn secret_name(key: &str) -> Result<&str, ProviderError> {
    match key.split_once('/') {
        None => Ok(key),
        Some(("secret", name)) => Ok(name),
        Some((kind, _)) => Err(ProviderError::Config(format!(
            "Azure Key Vault object type {kind:?} is not supported by coffer sync; use secret/<name>"
        ))),
    }
}

#[async_trait]
impl Provider for AzureKeyVault {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get_secret(&self, key: &str, version: Option<&str>) -> Result<Fetched, ProviderError> {
        let name = secret_name(key)?;
        let url = format!(
            "{}/secrets/{}/{}?api-version={API_VERSION}",
            self.vault_url,
            urlencode(name),
            urlencode(version.unwrap_or(""))
        );
        let resp = self.get(&url, key).await?;
        #[derive(serde::Deserialize)]
        struct Bundle {
            value: Option<String>,
            id: Option<String>,
        }
        let b: Bundle =
            serde_json::from_slice(&resp.body).map_err(|_| ProviderError::Protocol {
                provider: NAME,
                detail: format!("answer for {key:?} is not a SecretBundle"),
            })?;
        let value = b.value.ok_or_else(|| ProviderError::NotFound {
            provider: NAME,
            key: key.to_owned(),
        })?;
        Ok(Fetched {
            value: SecretValue::new(value.into_bytes()),
            version: b.id.and_then(|id| id.rsplit('/').next().map(str::to_owned)),
        })
    }

    async fn get_all(
        &self,
        find: &FindSpec,
    ) -> Result<BTreeMap<String, SecretValue>, ProviderError> {
        let re = match &find.name {
            Some(n) => Some(regex::Regex::new(&n.regexp).map_err(|_| {
                ProviderError::Config(format!(
                    "find.name.regexp {:?} is not a valid regular expression",
                    n.regexp
                ))
            })?),
            None => None,
        };
        let mut url = Some(format!(
            "{}/secrets?api-version={API_VERSION}",
            self.vault_url
        ));
        let mut names = Vec::new();
        let mut pages = 0;
        while let Some(u) = url.take() {
            pages += 1;
            if pages > 1000 {
                break;
            }
            let resp = self.get(&u, "secrets list").await?;
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            for item in body
                .get("value")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let enabled = item
                    .pointer("/attributes/enabled")
                    .and_then(|e| e.as_bool())
                    .unwrap_or(true);
                let Some(name) = item
                    .get("id")
                    .and_then(|i| i.as_str())
                    .and_then(|i| i.rsplit('/').next())
                else {
                    continue;
                };
                let tags_ok = find.tags.iter().all(|(k, v)| {
                    item.pointer(&format!("/tags/{k}")).and_then(|t| t.as_str()) == Some(v.as_str())
                });
                if enabled && tags_ok && re.as_ref().is_none_or(|r| r.is_match(name)) {
                    names.push(name.to_owned());
                }
            }
            url = body
                .get("nextLink")
                .and_then(|n| n.as_str())
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
        }
        let mut out = BTreeMap::new();
        for name in names {
            out.insert(name.clone(), self.get_secret(&name, None).await?.value);
        }
        Ok(out)
    }
}
