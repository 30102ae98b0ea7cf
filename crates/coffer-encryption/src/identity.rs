//! The `identity` provider: no encryption (`reference/encryption.md` §2.1; upstream
//! `encrypt/identity/identity.go`).
//!
//! It fails closed: a value starting with the reserved `k8s:enc:` prefix is encrypted data that
//! no configured provider could read, and handing it out as plaintext would be wrong.

use async_trait::async_trait;

use crate::error::TransformError;
use crate::secret::SecretBytes;
use crate::transformer::{Freshness, ReadTransformer, Transformer};

/// The reserved prefix of every encrypted value.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// Passes plaintext through; refuses `k8s:enc:` values on read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

#[async_trait]
impl ReadTransformer for Identity {
    async fn from_storage(
        &self,
        data: &[u8],
        _aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        if data.starts_with(ENCRYPTED_PREFIX) {
            return Err(TransformError::IdentityEncrypted);
        }
        Ok((SecretBytes::new(data.to_vec()), Freshness::Current))
    }
}

#[async_trait]
impl Transformer for Identity {
    async fn to_storage(&self, plain: &[u8], _aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn refuses_encrypted_data() {
        let err = block_on(Identity.from_storage(b"k8s:enc:aescbc:v1:a:xxxx", b"k")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "identity transformer tried to read encrypted data"
        );
        let (p, f) = block_on(Identity.from_storage(b"k8s\0plain", b"k")).expect("plain");
        assert_eq!(
            (p.expose_secret(), f),
            (&b"k8s\0plain"[..], Freshness::Current)
        );
        assert_eq!(
            block_on(Identity.to_storage(b"abc", b"k")).expect("write"),
            b"abc"
        );
    }
}
