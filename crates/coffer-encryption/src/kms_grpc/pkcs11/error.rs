//! [`Pkcs11Error`]: why the PKCS#11 key backend failed, with what to do next.

use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};

use crate::error::KmsError;

/// Why the PKCS#11 backend failed. No message carries the PIN, key material or plaintext; key
/// ids appear only as `sha256:` hashes where they come from a caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialized.
    #[error(
        "cannot load the PKCS#11 module {path}: {reason}; check --pkcs11-module (SoftHSM2 installs /usr/lib/softhsm/libsofthsm2.so)"
    )]
    Module {
        /// The module path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No initialized token matches the selector.
    #[error(
        "no initialized PKCS#11 {token} (tokens present: {present}); check --pkcs11-token-label / --pkcs11-slot, or initialize a token (softhsm2-util --init-token --free --label ...)"
    )]
    NoToken {
        /// The selector, as text.
        token: String,
        /// The labels and slots of the tokens present.
        present: String,
    },
    /// Several tokens carry the label.
    #[error(
        "several PKCS#11 tokens are labelled {label:?} (slots {slots:?}); choose one with --pkcs11-slot"
    )]
    AmbiguousToken {
        /// The label.
        label: String,
        /// Their slots.
        slots: Vec<u64>,
    },
    /// The PIN file could not be read.
    #[error("cannot read the PKCS#11 PIN file {path}: {source}; check --pkcs11-pin-file")]
    PinFile {
        /// The PIN file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PIN file is empty or not UTF-8.
    #[error("the PKCS#11 PIN file {path} is empty or not text; write the user PIN into it")]
    BadPinFile {
        /// The PIN file.
        path: PathBuf,
    },
    /// The token refused the PIN.
    #[error(
        "the PIN in {pin_file} is not the user PIN of PKCS#11 {token} (CKR_PIN_INCORRECT); fix the PIN file — repeated failures may lock the token"
    )]
    PinIncorrect {
        /// The token.
        token: String,
        /// The PIN file.
        pin_file: PathBuf,
    },
    /// The token's user PIN is locked.
    #[error(
        "the user PIN of PKCS#11 {token} is locked (CKR_PIN_LOCKED); the token's security officer must reset it"
    )]
    PinLocked {
        /// The token.
        token: String,
    },
    /// The key label is not usable in a key id.
    #[error(
        "--pkcs11-key-label {label:?} is not usable: use 1 to 64 characters from A-Z a-z 0-9 . _ -"
    )]
    BadLabel {
        /// The label.
        label: String,
    },
    /// The token holds no key with the label.
    #[error(
        "PKCS#11 {token} holds no AES key labelled {label:?}; start `coffer kms-plugin` (which creates the first one) or run `coffer kms-plugin rotate` with the same --pkcs11-* flags"
    )]
    NoKey {
        /// The token.
        token: String,
        /// The key label.
        label: String,
    },
    /// A key under the label could leave the token, or is not a 256-bit AES key.
    #[error(
        "PKCS#11 key {key_id} is refused: {reason}; generate a proper one with `coffer kms-plugin rotate`, and remove this one from the token"
    )]
    UnsafeKey {
        /// Its key id (public).
        key_id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A decrypt request named a key id this token did not issue.
    #[error(
        "key id hash {key_id_hash} was not issued by this PKCS#11 token under label {label:?}; was the value written with another key or plugin?"
    )]
    UnknownKeyId {
        /// `sha256:` hash of the requested key id.
        key_id_hash: String,
        /// The key label served.
        label: String,
    },
    /// The ciphertext is too short to hold an IV and a tag.
    #[error(
        "a PKCS#11-wrapped ciphertext is at least {min} bytes, got {got}; the stored value is damaged"
    )]
    ShortCiphertext {
        /// Minimum length.
        min: usize,
        /// Length received.
        got: usize,
    },
    /// The token could not open the ciphertext under the key.
    #[error(
        "the ciphertext does not open under key id hash {key_id_hash} ({rv:?}); it is damaged, or was stored under another key id"
    )]
    Decrypt {
        /// `sha256:` hash of the key id.
        key_id_hash: String,
        /// What the token answered.
        rv: Option<RvError>,
    },
    /// The `Status` round trip gave back different bytes.
    #[error("the HSM round trip under {key_id} returned different bytes; the token is not healthy")]
    RoundTrip {
        /// The current key id.
        key_id: String,
    },
    /// Randomness for an IV or key id was unavailable.
    #[error("no randomness from the operating system")]
    Random,
    /// Any other PKCS#11 failure.
    #[error("PKCS#11 {op} failed: {source}")]
    Device {
        /// What was being done.
        op: &'static str,
        /// The module's answer.
        source: CkError,
    },
}

impl Pkcs11Error {
    /// The PKCS#11 return value, when the token gave one.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Self::Device {
                source: CkError::Pkcs11(rv, _),
                ..
            } => Some(*rv),
            Self::Decrypt { rv, .. } => *rv,
            _ => None,
        }
    }
}

impl From<Pkcs11Error> for KmsError {
    fn from(e: Pkcs11Error) -> Self {
        KmsError::Service(e.to_string())
    }
}
