//! Random bytes and key pairs. Ed25519 keys come from `ring` (through rcgen, already used by
//! the server for its certificates); RSA keys from RustCrypto's `rsa` 0.10 (constant-time
//! `crypto-bigint`), both seeded from the operating system's random source.

use base64::Engine as _;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use zeroize::Zeroizing;

use crate::error::GenerateError;
use crate::secret::{SecretData, SecretValue};
use crate::spec::{ByteEncoding, RandomBytesSpec};

/// The key type name of an OpenSSH Ed25519 public key (RFC 8709 §4).
const SSH_ED25519: &str = "ssh-ed25519";

/// `length` bytes from the OS random source, encoded as `spec.encoding` says.
pub fn random_bytes(spec: &RandomBytesSpec) -> Result<SecretValue, GenerateError> {
    let mut raw = Zeroizing::new(vec![0u8; spec.length as usize]);
    getrandom::fill(&mut raw).map_err(|e| GenerateError::Random(e.to_string()))?;
    let text = Zeroizing::new(match spec.encoding {
        ByteEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&*raw),
        ByteEncoding::Hex => hex::encode(&*raw),
    });
    Ok(SecretValue::from(text))
}

/// An Ed25519 key pair: `private.pem` (PKCS#8), `public.pem` (SPKI), `public.openssh`.
pub fn ed25519() -> Result<SecretData, GenerateError> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| GenerateError::Key {
            algorithm: "ed25519",
            reason: e.to_string(),
        })?;
    let mut data = SecretData::new();
    data.insert("private.pem", Zeroizing::new(key.serialize_pem()));
    data.insert("public.pem", key.public_key_pem().as_str());
    data.insert(
        "public.openssh",
        openssh_ed25519(key.public_key_raw()).as_str(),
    );
    Ok(data)
}

/// An RSA key pair of `bits`: `private.pem` (PKCS#8), `public.pem` (SPKI).
pub fn rsa(bits: u32) -> Result<SecretData, GenerateError> {
    let err = |reason: String| GenerateError::Key {
        algorithm: "rsa",
        reason,
    };
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits as usize)
        .map_err(|e| err(e.to_string()))?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    let mut data = SecretData::new();
    data.insert("private.pem", private);
    data.insert("public.pem", public.as_str());
    Ok(data)
}

/// `ssh-ed25519 <base64 of string "ssh-ed25519", string key>` (RFC 4253 §6.6, RFC 8709 §4).
fn openssh_ed25519(public: &[u8]) -> String {
    let mut blob = Vec::with_capacity(4 + SSH_ED25519.len() + 4 + public.len());
    for field in [SSH_ED25519.as_bytes(), public] {
        blob.extend_from_slice(&(field.len() as u32).to_be_bytes());
        blob.extend_from_slice(field);
    }
    format!(
        "{SSH_ED25519} {}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::traits::PublicKeyParts;

    #[test]
    fn random_bytes_encodings() {
        let b64 = random_bytes(&RandomBytesSpec::default()).expect("generates");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.expose_secret())
            .expect("base64");
        assert_eq!(raw.len(), 32);
        let hex_spec = RandomBytesSpec {
            length: 16,
            encoding: ByteEncoding::Hex,
            ..RandomBytesSpec::default()
        };
        let h = random_bytes(&hex_spec).expect("generates");
        assert_eq!(hex::decode(h.expose_secret()).expect("hex").len(), 16);
        assert_ne!(random_bytes(&hex_spec).expect("generates"), h);
    }

    #[test]
    fn ed25519_keys_parse_back_and_agree() {
        let data = ed25519().expect("generates");
        let private = data.get_str("private.pem").expect("private.pem");
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        let parsed = rcgen::KeyPair::from_pem(private).expect("PKCS#8 parses back");
        assert_eq!(
            data.get_str("public.pem").expect("public.pem"),
            parsed.public_key_pem()
        );
        // The OpenSSH line: type, then a blob of two length-prefixed strings.
        let line = data.get_str("public.openssh").expect("public.openssh");
        let (kind, b64) = line.split_once(' ').expect("two fields");
        assert_eq!(kind, "ssh-ed25519");
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(&blob[..4], &11u32.to_be_bytes());
        assert_eq!(&blob[4..15], b"ssh-ed25519");
        assert_eq!(&blob[15..19], &32u32.to_be_bytes());
        assert_eq!(&blob[19..], parsed.public_key_raw());
    }

    #[test]
    fn rsa_keys_parse_back() {
        let data = rsa(2048).expect("generates");
        let private =
            rsa::PrivateKey::from_pkcs8_pem(data.get_str("private.pem").expect("private.pem"))
                .expect("PKCS#8 parses back");
        let public =
            rsa::PublicKey::from_public_key_pem(data.get_str("public.pem").expect("public.pem"))
                .expect("SPKI parses back");
        assert_eq!(private.to_public_key(), public);
        assert_eq!(public.size() * 8, 2048);
        assert!(rsa(1000).is_err());
    }
}
