//! Types that hold secrets: key material and plaintext. Neither derives `Debug`, `Display` or
//! `Serialize`; `Debug` prints only a redaction and the length. Both zero their memory on drop
//! and are read only through `expose_secret()`, so every read is easy to find with grep.

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use crate::error::TransformError;

/// Key material: an AES or secretbox key, a KMS v2 seed or a DEK.
#[derive(Clone)]
pub struct KeyMaterial(Zeroizing<Vec<u8>>);

impl KeyMaterial {
    /// Wraps bytes that are a key. The caller's vector is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Decodes a key as kube-apiserver does (`reference/encryption.md` §1.3): Go's
    /// `base64.StdEncoding`, which skips `\r` and `\n`, needs `=` padding and accepts non-zero
    /// trailing bits. The error carries no part of the input.
    pub fn from_go_base64(text: &str) -> Result<Self, InvalidBase64> {
        let stripped: Zeroizing<Vec<u8>> = Zeroizing::new(
            text.bytes()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect(),
        );
        GO_STD_ENCODING
            .decode(stripped.as_slice())
            .map(Self::new)
            .map_err(|_| InvalidBase64)
    }

    /// `n` fresh random bytes from the operating system.
    pub fn random(n: usize) -> Result<Self, TransformError> {
        let mut bytes = Zeroizing::new(vec![0u8; n]);
        getrandom::fill(&mut bytes).map_err(|_| TransformError::Random)?;
        Ok(Self(bytes))
    }

    /// The key bytes. Call sites are the places where key material is used.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial([REDACTED; {} bytes])", self.0.len())
    }
}

/// A key did not decode as Go's standard base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("secrets must be base64 encoded")]
pub struct InvalidBase64;

/// Plaintext read from storage: an encoded object that may hold Secret data.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps plaintext bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The plaintext bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.0.len())
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), TransformError> {
    getrandom::fill(buf).map_err(|_| TransformError::Random)
}

/// Go's `base64.StdEncoding` decoding rules, see [`KeyMaterial::from_go_base64`].
const GO_STD_ENCODING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &[u8] = b"canary-key-material-0123456789ab";

    #[test]
    fn debug_omits_key_material() {
        let key = KeyMaterial::new(CANARY.to_vec());
        let shown = format!("{key:?} {:#?}", key);
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("REDACTED") && shown.contains("32 bytes"));
        let plain = SecretBytes::new(CANARY.to_vec());
        let shown = format!("{plain:?}");
        assert!(
            !shown.contains("canary") && !shown.contains("99"),
            "{shown}"
        );
    }

    #[test]
    fn go_base64_rules() {
        let k = KeyMaterial::from_go_base64("c2VjcmV0IGlzIHNlY3VyZQ==").expect("valid");
        assert_eq!(k.expose_secret(), b"secret is secure");
        // Go skips CR and LF anywhere.
        let k = KeyMaterial::from_go_base64("c2VjcmV0IGlz\r\nIHNlY3VyZQ==\n").expect("valid");
        assert_eq!(k.expose_secret(), b"secret is secure");
        // Padding is required.
        assert_eq!(
            KeyMaterial::from_go_base64("c2VjcmV0IGlzIHNlY3VyZQ").unwrap_err(),
            InvalidBase64
        );
        // URL alphabet is not standard.
        assert!(KeyMaterial::from_go_base64("-_-_").is_err());
        // Non-zero trailing bits are accepted, as Go does: "QR==" and "QQ==" both decode to "A".
        let k = KeyMaterial::from_go_base64("QR==").expect("trailing bits allowed");
        assert_eq!(k.expose_secret(), b"A");
        // Spaces are not skipped.
        assert!(KeyMaterial::from_go_base64("QQ= =").is_err());
    }

    #[test]
    fn random_keys_differ() {
        let a = KeyMaterial::random(32).expect("random");
        let b = KeyMaterial::random(32).expect("random");
        assert_eq!(a.len(), 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
