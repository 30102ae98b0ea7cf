//! AWS Secrets Manager through `aws-sdk-secretsmanager`.
//!
//! Credentials: `auth.secretRef` (static keys from Secrets) or, when absent, the SDK's
//! default chain (environment, profile, web identity, IMDS). The endpoint follows the SDK's
//! standard variables `AWS_ENDPOINT_URL_SECRETS_MANAGER` and `AWS_ENDPOINT_URL` (how the
//! tests reach moto). Versions as ESO reads them (`GetSecret` in
//! `providers/v1/aws/secretsmanager`): `uuid/<id>` is a VersionId, anything else a
//! VersionStage, default `AWSCURRENT`. The SDK's HTTPS client is built on rustls + ring.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::{CredentialScope, CredentialSource, Fetched, Provider, ProviderError, SecretValue};
use crate::types::{AwsProvider, FindSpec};

const NAME: &str = "aws";

/// An AWS Secrets Manager provider for one store.
pub struct AwsSecretsManager {
    client: Client,
    prefix: String,
}

impl std::fmt::Debug for AwsSecretsManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSecretsManager")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AwsSecretsManager {
    /// Reads static credentials (if configured) and builds the SDK client.
    pub async fn new(
        cfg: &AwsProvider,
        scope: CredentialScope<'_>,
        creds: &dyn CredentialSource,
    ) -> Result<Self, ProviderError> {
        if cfg.service != "SecretsManager" {
            return Err(ProviderError::Config(format!(
                "aws.service {:?} is not supported by coffer sync; use SecretsManager",
                cfg.service
            )));
        }
        if cfg.role.as_deref().is_some_and(|r| !r.is_empty()) {
            tracing::warn!(
                "aws.role is not assumed by coffer sync; the store's own credentials are used"
            );
        }
        if cfg.auth.jwt.is_some() {
            return Err(ProviderError::Config(
                "aws.auth.jwt is not supported by coffer sync; use auth.secretRef or the default credential chain".into(),
            ));
        }
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            );
        if !cfg.region.is_empty() {
            loader = loader.region(aws_config::Region::new(cfg.region.clone()));
        }
        if let Some(sr) = &cfg.auth.secret_ref {
            let id = read_key(creds, scope, &sr.access_key_id).await?;
            let secret = read_key(creds, scope, &sr.secret_access_key_secret_ref).await?;
            let token = match &sr.session_token_secret_ref {
                Some(sel) => Some(
                    read_key(creds, scope, sel)
                        .await?
                        .expose_str_lossy()
                        .to_string(),
                ),
                None => None,
            };
            loader = loader.credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                id.expose_str_lossy().to_string(),
                secret.expose_str_lossy().to_string(),
                token,
                None,
                "coffer-secretref",
            ));
        }
        let conf = loader.load().await;
        Ok(Self {
            client: Client::new(&conf),
            prefix: cfg.prefix.clone().unwrap_or_default(),
        })
    }
}

async fn read_key(
    creds: &dyn CredentialSource,
    scope: CredentialScope<'_>,
    sel: &crate::types::SecretKeySelector,
) -> Result<SecretValue, ProviderError> {
    creds
        .secret_key(scope.namespace_for(sel.namespace.as_deref()), sel)
        .await
}

fn map_err<E, R>(err: SdkError<E, R>, key: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            ProviderError::Unavailable {
                provider: NAME,
                detail: format!("{key:?}: {}", describe(&err)),
            }
        }
        _ => {
            let code = err.code().unwrap_or("").to_owned();
            // AWS messages name the secret and the request, not the value.
            let msg: String = err.message().unwrap_or("").chars().take(200).collect();
            match code.as_str() {
                "ResourceNotFoundException" => ProviderError::NotFound {
                    provider: NAME,
                    key: key.to_owned(),
                },
                "InvalidRequestException" | "InvalidParameterException"
                    if msg.contains("marked for deletion") =>
                {
                    ProviderError::NotFound {
                        provider: NAME,
                        key: key.to_owned(),
                    }
                }
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "IncompleteSignature" => ProviderError::Denied {
                    provider: NAME,
                    key: key.to_owned(),
                    detail: format!("{code}: {msg}"),
                },
                "ThrottlingException" | "TooManyRequestsException" => {
                    ProviderError::Throttled { provider: NAME }
                }
                "InternalServiceError" => ProviderError::Unavailable {
                    provider: NAME,
                    detail: format!("{code}: {msg}"),
                },
                _ => ProviderError::Protocol {
                    provider: NAME,
                    detail: format!("{key:?}: {code} {msg}").trim_end().to_owned(),
                },
            }
        }
    }
}

fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

#[async_trait]
impl Provider for AwsSecretsManager {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get_secret(&self, key: &str, version: Option<&str>) -> Result<Fetched, ProviderError> {
        let id = format!("{}{key}", self.prefix);
        let mut req = self.client.get_secret_value().secret_id(&id);
        let version = version.filter(|v| !v.is_empty()).unwrap_or("AWSCURRENT");
        req = match version.strip_prefix("uuid/") {
            Some(vid) => req.version_id(vid),
            None => req.version_stage(version),
        };
        let out = req.send().await.map_err(|e| map_err(e, key))?;
        let value = if let Some(s) = out.secret_string() {
            SecretValue::new(s.as_bytes().to_vec())
        } else if let Some(b) = out.secret_binary() {
            SecretValue::new(b.as_ref().to_vec())
        } else {
            return Err(ProviderError::Protocol {
                provider: NAME,
                detail: format!("no secret string nor binary for key {key:?}"),
            });
        };
        Ok(Fetched {
            value,
            version: out.version_id().map(str::to_owned),
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
        let mut filters = Vec::new();
        for (k, v) in &find.tags {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(k)
                    .build(),
            );
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagValue)
                    .values(v)
                    .build(),
            );
        }
        if let Some(p) = find.path.as_ref().filter(|p| !p.is_empty()) {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(p)
                    .build(),
            );
        }
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .client
                .list_secrets()
                .set_filters((!filters.is_empty()).then(|| filters.clone()));
            if let Some(t) = &token {
                req = req.next_token(t);
            }
            let out = req.send().await.map_err(|e| map_err(e, "ListSecrets"))?;
            for s in out.secret_list() {
                let Some(name) = s.name() else { continue };
                let in_path = find
                    .path
                    .as_ref()
                    .is_none_or(|p| name.starts_with(p.as_str()));
                let tags_ok = find.tags.iter().all(|(k, v)| {
                    s.tags()
                        .iter()
                        .any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str()))
                });
                if in_path && tags_ok && re.as_ref().is_none_or(|r| r.is_match(name)) {
                    names.push(name.to_owned());
                }
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut out = BTreeMap::new();
        for name in names {
            out.insert(name.clone(), self.get_secret(&name, None).await?.value);
        }
        Ok(out)
    }
}
