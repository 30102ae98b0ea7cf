//! ServiceAccount tokens (`reference/k8s-api.md` §9.5 TokenRequest, §13.4 JWTs): the keys
//! that sign and verify them, issuing bound tokens, and authenticating them into a
//! [`UserInfo`](crate::UserInfo).
//!
//! * [`keys`]: PEM signing and verification keys, kube's `kid`, key generation. The three
//!   `load_*` functions are the only file I/O in this crate: they read (and, on first start,
//!   write with mode 0600) `--service-account-signing-key-file` and
//!   `--service-account-key-file`. Everything else works on bytes.
//! * [`TokenIssuer::issue`] signs a token (RS256 or ES256, with `kid`) carrying kube's claims.
//! * [`TokenAuthenticator::authenticate`] checks a bearer token: shape and issuer first (a
//!   token that is not ours gives [`TokenError::NotAServiceAccountToken`], so the next
//!   authenticator can try it), then signature, time (60 s leeway) and audience
//!   ([`TokenError::Invalid`]). [`user_info`] turns the result into the user. The caller must
//!   still check that the ServiceAccount and any bound object exist with the token's uids.
//!
//! Legacy secret-based tokens (issuer `kubernetes/serviceaccount`) are not accepted.

mod authenticator;
mod issuer;
pub mod keys;

pub use authenticator::{
    InvalidToken, LEEWAY_SECONDS, ServiceAccountToken, TokenAuthenticator, TokenError, user_info,
};
pub use issuer::{
    BearerToken, BoundKind, BoundObject, DEFAULT_EXPIRATION_SECONDS, IssueError, IssuedToken,
    MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, TokenIssuer, TokenSpec, validate_expiration,
    validate_expiration_capped,
};
pub use keys::{
    KeyAlgorithm, KeyError, PublicKey, SigningKey, kid_of_spki, load_or_generate_signing_key,
    load_public_key_files, load_signing_key_file,
};

#[cfg(test)]
mod tests;
