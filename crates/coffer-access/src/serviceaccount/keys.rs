//! ServiceAccount token keys: the signing key (`--service-account-signing-key-file`) and the
//! verification keys (`--service-account-key-file`, repeatable), read from PEM.
//!
//! Accepted PEM blocks, as kube-apiserver's `keyutil` accepts them: `RSA PRIVATE KEY`
//! (PKCS#1), `PRIVATE KEY` (PKCS#8, RSA or EC P-256), `EC PRIVATE KEY` (SEC1, P-256),
//! `PUBLIC KEY` (PKIX, RSA or EC P-256) and `RSA PUBLIC KEY` (PKCS#1); `EC PARAMETERS` blocks
//! (which `openssl ecparam -genkey` writes) are skipped. RSA keys shorter than 2048 bits are
//! refused. Certificates are not read (yet).
//!
//! The key id (`kid`) is kube's: base64url without padding of the SHA-256 of the PKIX
//! (`SubjectPublicKeyInfo`) DER public key (`pkg/serviceaccount/jwt.go`, `keyIDFromPublicKey`).
//!
//! Private key bytes live in [`zeroize::Zeroizing`] buffers and in `jsonwebtoken`'s
//! `EncodingKey` (zeroized on drop); neither [`SigningKey`] nor [`PublicKey`] prints key bytes
//! in `Debug`, and no error quotes them.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rsa::pkcs1::{
    DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey,
};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Size of a generated RSA key, in bits (what kube users expect).
pub const GENERATED_RSA_BITS: usize = 2048;

/// Why a key could not be read, parsed or generated. Never holds key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data is not PEM.
    #[error("{source_name}: not PEM: {reason}")]
    NotPem {
        /// The file or name of the data.
        source_name: String,
        /// The PEM decoder's message.
        reason: String,
    },
    /// No usable key block was found.
    #[error("{source_name}: no {wanted} found")]
    NoKey {
        /// The file or name of the data.
        source_name: String,
        /// What was looked for (`private key`, `public key`).
        wanted: &'static str,
    },
    /// A block could not be decoded as a key of the kind its label says, or the key is of an
    /// unsupported kind (curve other than P-256, RSA below 2048 bits).
    #[error("{source_name}: PEM block {block} ({label}): {reason}")]
    BadKey {
        /// The file or name of the data.
        source_name: String,
        /// The block's index, from 0.
        block: usize,
        /// The block's label.
        label: String,
        /// What is wrong (no key material).
        reason: String,
    },
    /// Key generation failed.
    #[error("generating a signing key failed: {0}")]
    Generate(String),
}

/// The signature algorithm of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (kube's usual choice).
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl KeyAlgorithm {
    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            KeyAlgorithm::Rs256 => Algorithm::RS256,
            KeyAlgorithm::Es256 => Algorithm::ES256,
        }
    }
}

/// A private key that signs tokens. No `Debug` of key bytes, zeroized on drop.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    /// The private key as written to a PEM file: PKCS#1 for RSA, PKCS#8 for EC.
    der: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

/// A public key that verifies tokens.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    kid: String,
    pub(crate) decoding: DecodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.public.algorithm)
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The first private key in PEM data (other blocks are ignored); `source_name` names the
    /// data in errors.
    pub fn from_pem(pem_data: &[u8], source_name: &str) -> Result<SigningKey, KeyError> {
        for (index, block) in parse_blocks(pem_data, source_name)?.into_iter().enumerate() {
            let bad = |reason: String| KeyError::BadKey {
                source_name: source_name.to_owned(),
                block: index,
                label: block.label.clone(),
                reason,
            };
            if let Some(key) = signing_key_from_block(&block.label, &block.der) {
                return key.map_err(bad);
            }
        }
        Err(KeyError::NoKey {
            source_name: source_name.to_owned(),
            wanted: "private key",
        })
    }

    /// A fresh RSA key of [`GENERATED_RSA_BITS`] from the operating system's RNG.
    pub fn generate_rsa() -> Result<SigningKey, KeyError> {
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, GENERATED_RSA_BITS)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        SigningKey::from_rsa(&key).map_err(KeyError::Generate)
    }

    /// The key as PEM (`RSA PRIVATE KEY` or `PRIVATE KEY`), in a zeroizing buffer.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let label = match self.public.algorithm {
            KeyAlgorithm::Rs256 => "RSA PRIVATE KEY",
            KeyAlgorithm::Es256 => "PRIVATE KEY",
        };
        let block = pem::Pem::new(label, self.der.to_vec());
        let text = Zeroizing::new(pem::encode(&block));
        // Zeroized on drop, like every other copy of the key bytes.
        drop(Zeroizing::new(block.into_contents()));
        text
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    fn from_rsa(key: &rsa::PrivateKey) -> Result<SigningKey, String> {
        let public = PublicKey::from_rsa(&key.to_public_key())?;
        let der = key.to_pkcs1_der().map_err(|e| e.to_string())?;
        let der = Zeroizing::new(der.as_bytes().to_vec());
        Ok(SigningKey {
            encoding: EncodingKey::from_rsa_der(&der),
            der,
            public,
        })
    }

    fn from_p256(key: &p256::SecretKey) -> Result<SigningKey, String> {
        let public = PublicKey::from_p256(&key.public_key())?;
        let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let der = Zeroizing::new(der.as_bytes().to_vec());
        Ok(SigningKey {
            encoding: EncodingKey::from_ec_der(&der),
            der,
            public,
        })
    }
}

impl PublicKey {
    /// Every key in PEM data: public keys, and the public half of private keys (as
    /// `--service-account-key-file` accepts both). At least one is required.
    pub fn all_from_pem(pem_data: &[u8], source_name: &str) -> Result<Vec<PublicKey>, KeyError> {
        let mut keys = Vec::new();
        for (index, block) in parse_blocks(pem_data, source_name)?.into_iter().enumerate() {
            let bad = |reason: String| KeyError::BadKey {
                source_name: source_name.to_owned(),
                block: index,
                label: block.label.clone(),
                reason,
            };
            let der = &block.der[..];
            let key = match block.label.as_str() {
                "PUBLIC KEY" => match rsa::PublicKey::from_public_key_der(der) {
                    Ok(k) => PublicKey::from_rsa(&k).map_err(bad)?,
                    Err(_) => p256::PublicKey::from_public_key_der(der)
                        .map_err(|_| bad("neither an RSA nor a P-256 public key".to_owned()))
                        .and_then(|k| PublicKey::from_p256(&k).map_err(bad))?,
                },
                "RSA PUBLIC KEY" => rsa::PublicKey::from_pkcs1_der(der)
                    .map_err(|e| bad(e.to_string()))
                    .and_then(|k| PublicKey::from_rsa(&k).map_err(bad))?,
                label => match signing_key_from_block(label, der) {
                    Some(private) => private.map_err(bad)?.public,
                    None => continue,
                },
            };
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKey {
                source_name: source_name.to_owned(),
                wanted: "public key",
            });
        }
        Ok(keys)
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// kube's key id: base64url (no padding) of SHA-256 over the PKIX DER public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn from_rsa(key: &rsa::PublicKey) -> Result<PublicKey, String> {
        let bits = key.n().bit_width() as usize;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
            ));
        }
        let spki = key.to_public_key_der().map_err(|e| e.to_string())?;
        let pkcs1 = key.to_pkcs1_der().map_err(|e| e.to_string())?;
        Ok(PublicKey {
            algorithm: KeyAlgorithm::Rs256,
            kid: kid_of_spki(spki.as_bytes()),
            decoding: DecodingKey::from_rsa_der(pkcs1.as_bytes()),
        })
    }

    fn from_p256(key: &p256::PublicKey) -> Result<PublicKey, String> {
        let spki = key.to_public_key_der().map_err(|e| e.to_string())?;
        Ok(PublicKey {
            algorithm: KeyAlgorithm::Es256,
            kid: kid_of_spki(spki.as_bytes()),
            decoding: DecodingKey::from_ec_der(&key.to_sec1_bytes()),
        })
    }
}

/// The key of a private-key PEM block, or `None` for other labels.
fn signing_key_from_block(label: &str, der: &[u8]) -> Option<Result<SigningKey, String>> {
    let key = match label {
        "RSA PRIVATE KEY" => rsa::PrivateKey::from_pkcs1_der(der)
            .map_err(|e| e.to_string())
            .and_then(|k| SigningKey::from_rsa(&k)),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(der)
            .map_err(|_| "not a SEC1 P-256 private key".to_owned())
            .and_then(|k| SigningKey::from_p256(&k)),
        "PRIVATE KEY" => match rsa::PrivateKey::from_pkcs8_der(der) {
            Ok(k) => SigningKey::from_rsa(&k),
            Err(_) => p256::SecretKey::from_pkcs8_der(der)
                .map_err(|_| "neither an RSA nor a P-256 PKCS#8 key".to_owned())
                .and_then(|k| SigningKey::from_p256(&k)),
        },
        _ => return None,
    };
    Some(key)
}

/// kube's `kid` for a PKIX `SubjectPublicKeyInfo` DER.
pub fn kid_of_spki(spki_der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(spki_der))
}

/// Reads `--service-account-signing-key-file`.
pub fn load_signing_key_file(path: &Path) -> Result<SigningKey, KeyError> {
    let data = read(path)?;
    SigningKey::from_pem(&data, &path.display().to_string())
}

/// Reads the signing key at `path`, or, when the file does not exist, generates an RSA key
/// and writes it there as PEM with mode 0600 (the file must not exist: it is created
/// exclusively). Returns the key and whether it was generated.
pub fn load_or_generate_signing_key(path: &Path) -> Result<(SigningKey, bool), KeyError> {
    if path.exists() {
        return load_signing_key_file(path).map(|k| (k, false));
    }
    let key = SigningKey::generate_rsa()?;
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(key.to_pem().as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok((key, true))
}

/// Reads every `--service-account-key-file`; all their keys verify tokens.
pub fn load_public_key_files(paths: &[&Path]) -> Result<Vec<PublicKey>, KeyError> {
    let mut keys = Vec::new();
    for path in paths {
        let data = read(path)?;
        keys.extend(PublicKey::all_from_pem(&data, &path.display().to_string())?);
    }
    Ok(keys)
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })
}

struct Block {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

fn parse_blocks(data: &[u8], source_name: &str) -> Result<Vec<Block>, KeyError> {
    let blocks = pem::parse_many(data).map_err(|e| KeyError::NotPem {
        source_name: source_name.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(blocks
        .into_iter()
        .map(|p| Block {
            label: p.tag().to_owned(),
            der: Zeroizing::new(p.into_contents()),
        })
        .collect())
}
