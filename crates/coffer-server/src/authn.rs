//! Authentication as kube-apiserver does it (`reference/k8s-api.md` §13): x509 client
//! certificates verified against the client CA during the TLS handshake, then bearer tokens
//! from the static token file, then anonymous.
//!
//! Tokens are never kept in the clear: the token file is indexed by the SHA-256 of each token,
//! and an incoming token is hashed and looked up, so no comparison ever runs over token bytes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::status::ApiError;

pub use coffer_access::UserInfo;
use coffer_access::{ServiceAccountToken, TokenAuthenticator};

/// A problem with `--token-auth-file`.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read token file '{path}': {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A record has fewer than 3 columns (kube-apiserver's message).
    #[error(
        "token file '{path}' must have at least 3 columns (token, user name, user uid), found {found}"
    )]
    Columns {
        /// The file.
        path: String,
        /// How many columns the bad record has.
        found: usize,
    },
    /// A quoted field is not closed.
    #[error("token file '{path}' line {line}: unterminated quoted field")]
    Quote {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
}

/// The static token file: `token,user,uid[,"group1,group2"]` per line.
#[derive(Default)]
pub struct TokenFile {
    by_hash: HashMap<[u8; 32], Arc<UserInfo>, BuildHasherDefault<DigestHasher>>,
}

impl TokenFile {
    /// Reads and parses a token file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| TokenFileError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            );
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses token file text (`path` only names the file in errors).
    pub fn parse(path: &str, text: &str) -> Result<Self, TokenFileError> {
        let mut by_hash = HashMap::default();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let fields = split_csv(line).ok_or_else(|| TokenFileError::Quote {
                path: path.to_owned(),
                line: n + 1,
            })?;
            if fields.len() < 3 {
                return Err(TokenFileError::Columns {
                    path: path.to_owned(),
                    found: fields.len(),
                });
            }
            let token = Zeroizing::new(fields[0].clone());
            if token.is_empty() {
                tracing::warn!(
                    file = path,
                    line = n + 1,
                    "token file: empty token, line skipped"
                );
                continue;
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo::authenticated(fields[1].clone(), fields[2].clone(), groups);
            if by_hash.insert(hash(&token), Arc::new(user)).is_some() {
                tracing::warn!(
                    file = path,
                    line = n + 1,
                    "token file: duplicate token, later line wins"
                );
            }
        }
        Ok(TokenFile { by_hash })
    }

    /// The user a token belongs to.
    pub fn user(&self, token: &str) -> Option<&Arc<UserInfo>> {
        self.by_hash.get(&hash(token))
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Hashes a map key that is already a SHA-256 digest by taking eight of its bytes: the digest
/// is uniform, so hashing it again (SipHash, on every request) buys nothing.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length, then its bytes: the bytes set the hash.
        if let Some(first) = bytes.first_chunk::<8>() {
            self.0 = u64::from_ne_bytes(*first);
        }
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Splits one CSV record (RFC 4180 quoting: `"a,b"`, `""` for a quote).
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '"') if field.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

/// Authenticates requests: client certificate first, then bearer token (the token file, then
/// ServiceAccount JWTs), then anonymous.
pub struct Authenticator {
    tokens: TokenFile,
    service_accounts: Option<TokenAuthenticator>,
}

/// Who a request's credential names. A ServiceAccount token still needs its ServiceAccount
/// checked in storage (`tokens::service_account_user`) before it is a user.
pub enum Credential {
    /// A user from the certificate, the token file, or anonymous.
    User(Arc<UserInfo>),
    /// A verified ServiceAccount JWT.
    ServiceAccount(Box<ServiceAccountToken>),
}

impl Authenticator {
    /// An authenticator over a token file and, when given, ServiceAccount JWTs.
    pub fn new(tokens: TokenFile, service_accounts: Option<TokenAuthenticator>) -> Self {
        Authenticator {
            tokens,
            service_accounts,
        }
    }

    /// The user of a token in the token file.
    pub fn static_user(&self, token: &str) -> Option<&Arc<UserInfo>> {
        self.tokens.user(token)
    }

    /// Who sent a request with these headers over a connection whose verified client
    /// certificate (if any) is `peer`. A presented but unknown token is 401, never anonymous.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<&Arc<UserInfo>>,
    ) -> Result<Credential, ApiError> {
        if let Some(user) = peer {
            return Ok(Credential::User(Arc::clone(user)));
        }
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(Credential::User(Arc::new(UserInfo::anonymous())));
        };
        let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
        let Some((scheme, token)) = value.split_once(' ') else {
            return Err(ApiError::Unauthorized);
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        let token = token.trim();
        if token.is_empty() {
            return Ok(Credential::User(Arc::new(UserInfo::anonymous())));
        }
        if let Some(user) = self.tokens.user(token) {
            return Ok(Credential::User(Arc::clone(user)));
        }
        match &self.service_accounts {
            Some(sa) => sa
                .authenticate(token)
                .map(|token| Credential::ServiceAccount(Box::new(token)))
                .map_err(|_| ApiError::Unauthorized),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// The user named by a verified client certificate: CN is the name, each O a group.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(UserInfo::authenticated(name, String::new(), groups))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn token_file_format() {
        let file = TokenFile::parse(
            "t.csv",
            "admintoken,admin,uid-admin,\"system:masters\"\nt0k3n,bob,1001,\"devs,ops\"\n,empty,1\nplain,carol,7\n",
        )
        .expect("parse");
        assert_eq!(file.len(), 3);
        let bob = file.user("t0k3n").expect("bob");
        assert_eq!(bob.groups, ["devs", "ops", "system:authenticated"]);
        assert_eq!(
            file.user("plain").expect("carol").groups,
            ["system:authenticated"]
        );
        assert!(file.user("nope").is_none());
    }

    #[test]
    fn short_records_are_refused_with_kube_apiserver_text() {
        let err = TokenFile::parse("/etc/t.csv", "tok,user\n")
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "token file '/etc/t.csv' must have at least 3 columns (token, user name, user uid), found 2"
        );
    }

    #[test]
    fn unknown_token_is_401_not_anonymous() {
        let auth = Authenticator::new(
            TokenFile::parse("t", "good,alice,1\n").expect("parse"),
            None,
        );
        let user = |c: Result<Credential, ApiError>| match c {
            Ok(Credential::User(u)) => u,
            _ => panic!("expected a user"),
        };
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer bad"));
        assert!(matches!(
            auth.authenticate(&h, None),
            Err(ApiError::Unauthorized)
        ));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer good"));
        assert_eq!(user(auth.authenticate(&h, None)).name, "alice");
        assert!(user(auth.authenticate(&HeaderMap::new(), None)).is_anonymous());
    }
}
