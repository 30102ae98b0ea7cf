//! Issuing bound ServiceAccount tokens (TokenRequest, `reference/k8s-api.md` §9.5 and §13.4):
//! the claims kube-apiserver puts in them (`pkg/serviceaccount/claims.go`), signed RS256 or
//! ES256 with the `kid` header.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Header;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::SigningKey;

/// `expirationSeconds` when a TokenRequest gives none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime a TokenRequest may ask for (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Checks and defaults `spec.expirationSeconds` of a TokenRequest with kube-apiserver's
/// messages: absent → 3600; below 600 → `may not specify a duration less than 10 minutes`;
/// above 2^32 → `may not specify a duration larger than 2^32 seconds`. The caller reports
/// an error as `spec.expirationSeconds: Invalid value: N: <message>` (422).
pub fn validate_expiration(seconds: Option<i64>) -> Result<i64, String> {
    let seconds = seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err("may not specify a duration less than 10 minutes".to_owned());
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err("may not specify a duration larger than 2^32 seconds".to_owned());
    }
    Ok(seconds)
}

/// [`validate_expiration`], then capped at the server's maximum
/// (`--service-account-max-token-expiration`): a longer request is silently shortened, as
/// kube-apiserver does.
pub fn validate_expiration_capped(seconds: Option<i64>, max_seconds: i64) -> Result<i64, String> {
    validate_expiration(seconds).map(|s| s.min(max_seconds.max(MIN_EXPIRATION_SECONDS)))
}

/// The kinds of object a token can be bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BoundKind {
    /// A Pod in the ServiceAccount's namespace.
    Pod,
    /// A Secret in the ServiceAccount's namespace.
    Secret,
    /// A Node (cluster-scoped).
    Node,
}

impl BoundKind {
    /// Parses `boundObjectRef.kind`; `None` for kinds kube cannot bind to (the caller answers
    /// 400 `cannot bind token to object of type <kind>`).
    pub fn parse(kind: &str) -> Option<BoundKind> {
        match kind {
            "Pod" => Some(BoundKind::Pod),
            "Secret" => Some(BoundKind::Secret),
            "Node" => Some(BoundKind::Node),
            _ => None,
        }
    }

    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BoundKind::Pod => "Pod",
            BoundKind::Secret => "Secret",
            BoundKind::Node => "Node",
        }
    }
}

/// The object a token is bound to: the token is valid only while it exists with this uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundObject {
    /// Its kind.
    pub kind: BoundKind,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// What a token is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub sa_name: String,
    /// The ServiceAccount's uid (checked again at authentication).
    pub sa_uid: String,
    /// `aud`; must not be empty (the server defaults it to `--api-audiences`).
    pub audiences: Vec<String>,
    /// Lifetime in seconds, already checked with [`validate_expiration`].
    pub expiration_seconds: i64,
    /// The object the token is bound to, if any.
    pub bound_object: Option<BoundObject>,
    /// The issue time (`iat`, `nbf`).
    pub now: SystemTime,
}

/// A bearer token. Its value shows only through [`BearerToken::expose_secret`]; `Debug`
/// prints its length, and there is no `Display` or `Serialize`. Zeroized on drop.
#[derive(Clone)]
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// Wraps a token value.
    pub fn new(value: String) -> BearerToken {
        BearerToken(Zeroizing::new(value))
    }

    /// The token value, for the one place that must send it (the TokenRequest response).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(<redacted, {} bytes>)", self.0.len())
    }
}

/// A token and when it expires (`status.expirationTimestamp`).
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The signed JWT.
    pub token: BearerToken,
    /// `exp`.
    pub expires_at: SystemTime,
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// `audiences` was empty.
    #[error("a token needs at least one audience")]
    NoAudience,
    /// The lifetime is not positive or the time is out of range.
    #[error("invalid token lifetime or issue time")]
    BadTime,
    /// Signing failed (a key the crypto backend refused).
    #[error("signing the token failed: {0}")]
    Signing(String),
}

/// Signs tokens with one key for one issuer (`--service-account-issuer`).
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    issuer: String,
    key: SigningKey,
}

impl TokenIssuer {
    /// An issuer named `issuer` (the `iss` claim) signing with `key`.
    pub fn new(issuer: impl Into<String>, key: SigningKey) -> TokenIssuer {
        TokenIssuer {
            issuer: issuer.into(),
            key,
        }
    }

    /// The `iss` claim this issuer writes.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing key (its public half verifies the tokens).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a token for `spec`: header `{"alg","kid"}`, claims `iss`, `sub`, `aud`, `exp`,
    /// `iat`, `nbf`, `jti` (a random UUID) and `kubernetes.io` (§13.4).
    pub fn issue(&self, spec: &TokenSpec) -> Result<IssuedToken, IssueError> {
        if spec.audiences.is_empty() {
            return Err(IssueError::NoAudience);
        }
        let lifetime = u64::try_from(spec.expiration_seconds)
            .ok()
            .filter(|s| *s > 0)
            .ok_or(IssueError::BadTime)?;
        let expires_at = spec
            .now
            .checked_add(Duration::from_secs(lifetime))
            .ok_or(IssueError::BadTime)?;
        let iat = unix_seconds(spec.now)?;
        let exp = unix_seconds(expires_at)?;
        let reference = |name: &str, uid: &str| ObjectRef {
            name: name.to_owned(),
            uid: uid.to_owned(),
        };
        let bound = |kind| {
            spec.bound_object
                .as_ref()
                .filter(|b| b.kind == kind)
                .map(|b| reference(&b.name, &b.uid))
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: format!("system:serviceaccount:{}:{}", spec.namespace, spec.sa_name),
            aud: Audiences(spec.audiences.clone()),
            exp,
            iat,
            nbf: iat,
            jti: Some(uuid::Uuid::new_v4().to_string()),
            kubernetes: Some(KubernetesClaims {
                namespace: spec.namespace.clone(),
                serviceaccount: reference(&spec.sa_name, &spec.sa_uid),
                pod: bound(BoundKind::Pod),
                secret: bound(BoundKind::Secret),
                node: bound(BoundKind::Node),
                warnafter: None,
            }),
        };
        let public = self.key.public_key();
        let mut header = Header::new(public.algorithm().jwt());
        header.typ = None; // kube's header is exactly {"alg":...,"kid":...}
        header.kid = Some(public.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, self.key.encoding())
            .map_err(|e| IssueError::Signing(e.to_string()))?;
        Ok(IssuedToken {
            token: BearerToken::new(token),
            expires_at,
        })
    }
}

fn unix_seconds(t: SystemTime) -> Result<i64, IssueError> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or(IssueError::BadTime)
}

/// The claims of a bound token (kube's `privateClaims` + registered claims).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Audiences,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(
        rename = "kubernetes.io",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes: Option<KubernetesClaims>,
}

/// The private `kubernetes.io` claim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// `{name, uid}` inside the `kubernetes.io` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// `aud`: written as a list (as kube does), read as a list or a single string (RFC 7519).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Audiences(pub Vec<String>);

impl<'de> Deserialize<'de> for Audiences {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Audiences, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => Audiences(vec![a]),
            OneOrMany::Many(v) => Audiences(v),
        })
    }
}
