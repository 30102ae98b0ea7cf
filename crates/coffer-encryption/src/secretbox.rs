//! The `secretbox` provider (`reference/encryption.md` §2.4; upstream
//! `encrypt/secretbox/secretbox.go`).
//!
//! NaCl `crypto_secretbox` (XSalsa20-Poly1305), 32-byte key, random 24-byte nonce per write.
//! Layout after the prefix: `nonce(24) || tag(16) || ciphertext`; the tag comes first, as NaCl
//! writes it. No AAD. The random 192-bit nonce makes collisions negligible, so there is no
//! practical write budget per key.

use async_trait::async_trait;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};

use crate::error::TransformError;
use crate::secret::{KeyMaterial, SecretBytes, fill_random};
use crate::transformer::{Freshness, ReadTransformer, Transformer};

const NONCE: usize = 24;
const TAG: usize = 16;

/// XSalsa20-Poly1305 with a random nonce per write.
pub struct Secretbox {
    cipher: XSalsa20Poly1305,
}

impl Secretbox {
    /// Builds the provider. Returns `None` unless the key is exactly 32 bytes.
    pub fn new(key: &KeyMaterial) -> Option<Self> {
        XSalsa20Poly1305::new_from_slice(key.expose_secret())
            .ok()
            .map(|cipher| Self { cipher })
    }
}

impl std::fmt::Debug for Secretbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secretbox([REDACTED])")
    }
}

#[async_trait]
impl ReadTransformer for Secretbox {
    async fn from_storage(
        &self,
        data: &[u8],
        _aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        if data.len() < NONCE + TAG {
            return Err(TransformError::TooShort);
        }
        let (nonce, body) = data.split_at(NONCE);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map(|p| (SecretBytes::new(p), Freshness::Current))
            .map_err(|_| TransformError::SecretboxAuthentication)
    }
}

#[async_trait]
impl Transformer for Secretbox {
    async fn to_storage(&self, plain: &[u8], _aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut nonce = [0u8; NONCE];
        fill_random(&mut nonce)?;
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            // Encryption fails only for inputs beyond XSalsa20's 256 GiB limit.
            .map_err(|_| TransformError::SecretboxAuthentication)?;
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn key_must_be_32_bytes() {
        assert!(Secretbox::new(&KeyMaterial::new(vec![1; 32])).is_some());
        assert!(Secretbox::new(&KeyMaterial::new(vec![1; 16])).is_none());
    }

    #[test]
    fn errors_use_upstream_text() {
        let t = Secretbox::new(&KeyMaterial::new(vec![1; 32])).expect("key");
        let err = block_on(t.from_storage(&[0; 39], b"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the stored data was shorter than the required size"
        );
        let mut out = block_on(t.to_storage(b"abc", b"")).expect("write");
        assert_eq!(out.len(), 24 + 16 + 3);
        out[30] ^= 1;
        let err = block_on(t.from_storage(&out, b"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "output array was not large enough for encryption"
        );
    }
}
