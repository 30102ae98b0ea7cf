//! Authenticating bound ServiceAccount tokens (`reference/k8s-api.md` §13.4), as
//! kube-apiserver's `pkg/serviceaccount/jwt.go` and `claims.go` do, minus the object lookups.
//!
//! **The caller must then look the objects up.** A token that passes [`TokenAuthenticator::
//! authenticate`] proves only that we signed it and it is in date. The server must check that
//! the ServiceAccount `namespace/name` still exists with [`ServiceAccountToken::uid`], and that
//! a bound Pod, Secret or Node still exists with the bound uid and is not being deleted;
//! otherwise the request is 401, as in kube-apiserver.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::issuer::{BoundKind, BoundObject, Claims, ObjectRef};
use super::keys::{KeyAlgorithm, PublicKey};
use crate::user::UserInfo;

/// Clock skew tolerated on `exp`, `nbf` and `iat` (go-jose's default leeway, used by kube).
pub const LEEWAY_SECONDS: i64 = 60;

/// Why a bearer token was not accepted as a ServiceAccount token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWS in compact form, or not issued by one of our issuers: the token belongs to
    /// another authenticator (token file, bootstrap tokens, OIDC, ...).
    #[error("not a service account token")]
    NotAServiceAccountToken,
    /// Our issuer, but the token is not valid: the request is 401 and no other authenticator
    /// should accept it.
    #[error("invalid service account token: {0}")]
    Invalid(#[from] InvalidToken),
}

/// What is wrong with a token of ours. Messages follow kube-apiserver's; none quotes the
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The payload or header is not the JSON a token carries.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than RS256 or ES256.
    #[error("unsupported signing algorithm")]
    UnsupportedAlgorithm,
    /// No configured key verifies the signature.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("service account token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("service account token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("service account token is issued in the future")]
    IssuedInTheFuture,
    /// No audience of the token is one the server accepts.
    #[error("token audiences {token:?} is invalid for the target audiences {target:?}")]
    AudienceMismatch {
        /// The token's `aud`.
        token: Vec<String>,
        /// The accepted audiences.
        target: Vec<String>,
    },
    /// The `kubernetes.io` claim is missing (e.g. a legacy secret-based token).
    #[error("token lacks the kubernetes.io claim")]
    MissingPrivateClaim,
    /// `sub` does not name the ServiceAccount of the `kubernetes.io` claim.
    #[error("sub does not match the kubernetes.io claim")]
    SubjectMismatch,
}

/// What an authenticated token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountToken {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// The ServiceAccount's uid (the caller must compare it with the stored object's).
    pub uid: String,
    /// The bound object, if any (Pod, or Secret, or Node alone).
    pub bound: Option<BoundObject>,
    /// The node of a Pod-bound token, when the token carries it.
    pub node: Option<BoundObject>,
    /// `jti`, if present.
    pub jti: Option<String>,
    /// The token's audiences that the server accepted (the intersection, for TokenReview's
    /// `status.audiences`).
    pub audiences: Vec<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
}

/// Verifies ServiceAccount JWTs against the configured issuers, audiences and public keys.
#[derive(Clone, Debug)]
pub struct TokenAuthenticator {
    issuers: Vec<String>,
    api_audiences: Vec<String>,
    keys: Vec<PublicKey>,
}

impl TokenAuthenticator {
    /// `issuers`: accepted `iss` values (`--service-account-issuer`, repeatable; the first is
    /// the one we issue as); `api_audiences`: `--api-audiences` (default: the issuers);
    /// `public_keys`: every key of `--service-account-key-file` and the signing key's public
    /// half.
    pub fn new(
        issuers: Vec<String>,
        api_audiences: Vec<String>,
        public_keys: Vec<PublicKey>,
    ) -> TokenAuthenticator {
        TokenAuthenticator {
            issuers,
            api_audiences,
            keys: public_keys,
        }
    }

    /// Authenticates `token` for the server's own audiences at the current time.
    pub fn authenticate(&self, token: &str) -> Result<ServiceAccountToken, TokenError> {
        self.authenticate_at(token, None, SystemTime::now())
    }

    /// Authenticates `token` for `audiences` instead of the server's when given (TokenReview's
    /// `spec.audiences`), at time `now`.
    pub fn authenticate_at(
        &self,
        token: &str,
        audiences: Option<&[String]>,
        now: SystemTime,
    ) -> Result<ServiceAccountToken, TokenError> {
        // 1. Cheap shape check: three base64url parts, the first two JSON.
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::NotAServiceAccountToken);
        };
        if signature_b64.is_empty() {
            return Err(TokenError::NotAServiceAccountToken);
        }
        let header: serde_json::Value =
            decode_part(header_b64).ok_or(TokenError::NotAServiceAccountToken)?;
        let claims_value: serde_json::Value =
            decode_part(payload_b64).ok_or(TokenError::NotAServiceAccountToken)?;
        // 2. Not our issuer: another authenticator's JWT (as kube's `hasCorrectIssuer`).
        let issuer = claims_value.get("iss").and_then(|i| i.as_str());
        if !issuer.is_some_and(|iss| self.issuers.iter().any(|ours| ours == iss)) {
            return Err(TokenError::NotAServiceAccountToken);
        }
        // 3. Signature with any configured key of the header's algorithm, kid first.
        let algorithm = match header.get("alg").and_then(|a| a.as_str()) {
            Some("RS256") => KeyAlgorithm::Rs256,
            Some("ES256") => KeyAlgorithm::Es256,
            _ => return Err(InvalidToken::UnsupportedAlgorithm.into()),
        };
        let kid = header.get("kid").and_then(|k| k.as_str());
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        let mut candidates: Vec<&PublicKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm() == algorithm)
            .collect();
        candidates.sort_by_key(|k| Some(k.kid()) != kid); // the kid's key first: a hint only
        let verified = candidates.iter().any(|key| {
            jsonwebtoken::crypto::verify(
                signature_b64,
                message.as_bytes(),
                &key.decoding,
                algorithm.jwt(),
            )
            .unwrap_or(false)
        });
        if !verified {
            return Err(InvalidToken::BadSignature.into());
        }
        // 4. Claims.
        let claims: Claims = serde_json::from_value(claims_value)
            .map_err(|_| InvalidToken::Malformed("claims of the wrong shape"))?;
        check_times(&claims, now)?;
        let target = audiences.unwrap_or(&self.api_audiences);
        let accepted: Vec<String> = claims
            .aud
            .0
            .iter()
            .filter(|a| target.contains(a))
            .cloned()
            .collect();
        if accepted.is_empty() {
            return Err(InvalidToken::AudienceMismatch {
                token: claims.aud.0.clone(),
                target: target.to_vec(),
            }
            .into());
        }
        let private = claims.kubernetes.ok_or(InvalidToken::MissingPrivateClaim)?;
        let sa = private.serviceaccount;
        if claims.sub != format!("system:serviceaccount:{}:{}", private.namespace, sa.name) {
            return Err(InvalidToken::SubjectMismatch.into());
        }
        let object = |kind, r: Option<ObjectRef>| {
            r.map(|r| BoundObject {
                kind,
                name: r.name,
                uid: r.uid,
            })
        };
        let node = object(BoundKind::Node, private.node);
        let bound = object(BoundKind::Pod, private.pod)
            .or_else(|| object(BoundKind::Secret, private.secret));
        let (bound, node) = match bound {
            Some(b) => (Some(b), node),
            None => (node, None),
        };
        Ok(ServiceAccountToken {
            namespace: private.namespace,
            name: sa.name,
            uid: sa.uid,
            bound,
            node,
            jti: claims.jti,
            audiences: accepted,
            expires_at: claims.exp,
        })
    }
}

/// The user a ServiceAccount token authenticates as (§13.4).
pub fn user_info(token: &ServiceAccountToken) -> UserInfo {
    let mut user = UserInfo::authenticated(
        format!("system:serviceaccount:{}:{}", token.namespace, token.name),
        token.uid.clone(),
        vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{}", token.namespace),
        ],
    );
    let mut extra = BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        extra.insert(
            format!("authentication.kubernetes.io/{key}"),
            vec![value.to_owned()],
        );
    };
    if let Some(jti) = &token.jti {
        put("credential-id", &format!("JTI={jti}"));
    }
    for object in token.bound.iter().chain(token.node.iter()) {
        match object.kind {
            BoundKind::Pod => {
                put("pod-name", &object.name);
                put("pod-uid", &object.uid);
            }
            BoundKind::Node => {
                put("node-name", &object.name);
                put("node-uid", &object.uid);
            }
            BoundKind::Secret => {}
        }
    }
    user.extra = extra;
    user
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn check_times(claims: &Claims, now: SystemTime) -> Result<(), InvalidToken> {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    if now > claims.exp.saturating_add(LEEWAY_SECONDS) {
        return Err(InvalidToken::Expired);
    }
    if now < claims.nbf.saturating_sub(LEEWAY_SECONDS) {
        return Err(InvalidToken::NotYetValid);
    }
    if now < claims.iat.saturating_sub(LEEWAY_SECONDS) {
        return Err(InvalidToken::IssuedInTheFuture);
    }
    Ok(())
}
