//! The `aescbc` provider (`reference/encryption.md` §2.2; upstream `encrypt/aes/aes.go`).
//!
//! Layout after the prefix: `IV(16) || AES-CBC(key, IV, PKCS7(plaintext))`. There is no MAC and
//! no AAD: a wrong key gives garbage that passes the padding check about once in 256 tries, and
//! the format is exposed to padding-oracle attacks. kube-apiserver's docs call it weak; Coffer
//! supports it to read and write what existing clusters have.

use aes::{Aes128, Aes192, Aes256};
use async_trait::async_trait;
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use zeroize::Zeroizing;

use crate::error::TransformError;
use crate::secret::{KeyMaterial, SecretBytes, fill_random};
use crate::transformer::{Freshness, ReadTransformer, Transformer};

const BLOCK: usize = 16;

/// AES-CBC with PKCS#7 padding and a random IV per write. Keys are 16, 24 or 32 bytes.
#[derive(Debug)]
pub struct AesCbc {
    key: KeyMaterial,
}

impl AesCbc {
    /// Builds the provider. Returns `None` unless the key is 16, 24 or 32 bytes.
    pub fn new(key: KeyMaterial) -> Option<Self> {
        matches!(key.len(), 16 | 24 | 32).then_some(Self { key })
    }

    fn encrypt(&self, iv: &[u8; BLOCK], plain: &[u8]) -> Vec<u8> {
        let key = self.key.expose_secret();
        let result = match key.len() {
            16 => cbc::Encryptor::<Aes128>::new_from_slices(key, iv)
                .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
            24 => cbc::Encryptor::<Aes192>::new_from_slices(key, iv)
                .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
            _ => cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
                .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
        };
        result.expect("BUG: AesCbc::new admits only 16, 24 and 32 byte keys, and the IV is 16")
    }

    fn decrypt_blocks(&self, iv: &[u8], body: &[u8]) -> Zeroizing<Vec<u8>> {
        let key = self.key.expose_secret();
        let result = match key.len() {
            16 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
                .map(|c| c.decrypt_padded_vec_mut::<NoPadding>(body)),
            24 => cbc::Decryptor::<Aes192>::new_from_slices(key, iv)
                .map(|c| c.decrypt_padded_vec_mut::<NoPadding>(body)),
            _ => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
                .map(|c| c.decrypt_padded_vec_mut::<NoPadding>(body)),
        };
        let blocks = result
            .expect("BUG: AesCbc::new admits only 16, 24 and 32 byte keys, and the IV is 16")
            .expect("BUG: the caller checked that the body is whole blocks");
        Zeroizing::new(blocks)
    }
}

/// Opens an `IV || ciphertext` body, with upstream's checks in upstream's order. Shared with the
/// KMS v1 legacy CBC path.
pub(crate) fn open(cipher: &AesCbc, data: &[u8]) -> Result<SecretBytes, TransformError> {
    if data.len() < BLOCK {
        return Err(TransformError::TooShort);
    }
    let (iv, body) = data.split_at(BLOCK);
    if body.len() % BLOCK != 0 {
        return Err(TransformError::NotBlockMultiple);
    }
    // Go indexes out of range on an empty body; we answer with the padding error instead.
    let mut plain = cipher.decrypt_blocks(iv, body);
    let pad = usize::from(*plain.last().ok_or(TransformError::InvalidPkcs7)?);
    if pad == 0 || pad > plain.len() {
        return Err(TransformError::InvalidPkcs7);
    }
    // Like Go, accept any pad length up to the data length when every pad byte matches.
    if plain[plain.len() - pad..]
        .iter()
        .any(|b| usize::from(*b) != pad)
    {
        return Err(TransformError::InvalidPadding);
    }
    let keep = plain.len() - pad;
    plain.truncate(keep);
    Ok(SecretBytes::new(std::mem::take(&mut *plain)))
}

#[async_trait]
impl ReadTransformer for AesCbc {
    async fn from_storage(
        &self,
        data: &[u8],
        _aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        Ok((open(self, data)?, Freshness::Current))
    }
}

#[async_trait]
impl Transformer for AesCbc {
    async fn to_storage(&self, plain: &[u8], _aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut iv = [0u8; BLOCK];
        fill_random(&mut iv)?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&self.encrypt(&iv, plain));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    fn cbc(key: &[u8]) -> AesCbc {
        AesCbc::new(KeyMaterial::new(key.to_vec())).expect("valid key length")
    }

    #[test]
    fn key_lengths() {
        for n in [16, 24, 32] {
            assert!(AesCbc::new(KeyMaterial::new(vec![7; n])).is_some());
        }
        for n in [0, 15, 31, 33] {
            assert!(AesCbc::new(KeyMaterial::new(vec![7; n])).is_none());
        }
    }

    #[test]
    fn ciphertext_length_is_whole_blocks_plus_iv() {
        let c = cbc(&[1; 32]);
        for len in [0usize, 1, 15, 16, 17, 32] {
            let out = block_on(c.to_storage(&vec![9; len], b"")).expect("write");
            assert_eq!(out.len(), 16 + 16 * (len / 16 + 1), "len {len}");
        }
    }

    #[test]
    fn read_errors_in_upstream_order() {
        let c = cbc(&[1; 16]);
        let read = |d: &[u8]| block_on(c.from_storage(d, b"")).unwrap_err().to_string();
        assert_eq!(
            read(&[0; 15]),
            "the stored data was shorter than the required size"
        );
        assert_eq!(
            read(&[0; 20]),
            "the stored data is not a multiple of the block size"
        );
        assert_eq!(read(&[0; 16]), "invalid PKCS7 data (empty or not padded)");
        // CBC: the last plaintext byte is D(C2)[15] ^ C1[15], so flipping bits of C1[15] sets it.
        // Encrypting 16 zero bytes under IV 0 gives C1 (the zeros) and C2 (sixteen 0x10 of padding).
        let mut stored = vec![0u8; 16];
        stored.extend_from_slice(&c.encrypt(&[0u8; 16], &[0u8; 16]));
        assert_eq!(stored.len(), 48);
        let mut zero_pad = stored.clone();
        zero_pad[31] ^= 0x10; // last byte becomes 0x00
        assert_eq!(read(&zero_pad), "invalid PKCS7 data (empty or not padded)");
        let mut bad_pad = stored.clone();
        bad_pad[31] ^= 0x10 ^ 0x02; // last byte 0x02, the one before it still 0x10
        assert_eq!(read(&bad_pad), "invalid padding on input");
        let (plain, _) = block_on(c.from_storage(&stored, b"")).expect("intact");
        assert_eq!(plain.expose_secret(), &[0u8; 16]);
    }
}
