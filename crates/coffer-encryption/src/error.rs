//! Errors of this crate: one top-level [`Error`] wrapping the narrower [`ConfigError`] (a bad
//! `EncryptionConfiguration`) and [`TransformError`] (a value that cannot be read or written).
//!
//! Messages copy kube-apiserver's text where operators or tests may match on it
//! (`reference/encryption.md` §1.3, §2). No message ever carries key material or plaintext: key
//! secrets appear as `"REDACTED"`, KMS key ids only as `sha256:` hashes.

use std::fmt;
use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything this crate can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The encryption configuration file could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A value could not be transformed from or to storage.
    #[error(transparent)]
    Transform(#[from] TransformError),
}

/// Why an `EncryptionConfiguration` file was refused. Display texts follow kube-apiserver's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("error reading encryption provider configuration file {path:?}: {source}")]
    Read {
        /// The file named by `--encryption-provider-config`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("encryption provider configuration file {path:?} is empty")]
    Empty {
        /// The file named by `--encryption-provider-config`.
        path: PathBuf,
    },
    /// The file could not be decoded as an `EncryptionConfiguration`.
    #[error(
        "error while parsing file: error decoding encryption provider configuration file {path:?}: {reason}"
    )]
    Decode {
        /// The file (or the name given to in-memory bytes).
        path: PathBuf,
        /// Why.
        reason: DecodeError,
    },
    /// Validation failed; one entry per field error, in kube-apiserver's order.
    #[error("error while parsing file: {}", Aggregate(.0))]
    Invalid(Vec<FieldError>),
    /// A resource named after a wildcard of an earlier entry would never be used.
    #[error("resource {resource:?} is masked by earlier rule {rule:?}")]
    Masked {
        /// The resource as written.
        resource: String,
        /// The earlier wildcard (`*.` for the core group).
        rule: String,
    },
    /// The client for a KMS provider could not be made.
    #[error("KMS provider {name:?}: {source}")]
    KmsClient {
        /// The provider's name.
        name: String,
        /// Why.
        source: KmsError,
    },
    /// A KMS provider is configured but no KMS client was supplied to build it.
    #[error("KMS provider {name:?} ({api_version}) needs a KMS client, and none was supplied")]
    NoKmsClient {
        /// The provider's name.
        name: String,
        /// `v1` or `v2`.
        api_version: &'static str,
    },
}

/// Why the bytes are not an `EncryptionConfiguration` (before validation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not YAML or JSON, or a field has the wrong type. The text is the decoder's message with
    /// the field path; it never quotes values.
    #[error("{0}")]
    Syntax(String),
    /// Strict decoding found unknown fields; each entry is a full field path such as
    /// `resources[0].providers[3].kms.pandas`.
    #[error("strict decoding error: {}", UnknownFields(.0))]
    UnknownFields(Vec<String>),
    /// `kind` is absent.
    #[error("Object 'Kind' is missing")]
    MissingKind,
    /// `apiVersion`/`kind` name no registered type.
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind {
        /// The `kind` found.
        kind: String,
        /// The `apiVersion` found.
        api_version: String,
    },
}

/// One validation error, shaped like Go's `field.Error`: `<path>: <type>: <value>: <detail>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `resources[0].providers[0].aesgcm.keys[0].secret`.
    pub field: String,
    /// What kind of error it is.
    pub kind: FieldErrorKind,
    /// The offending value as Go prints it (strings quoted; key secrets as `"REDACTED"`).
    pub value: Option<String>,
    /// kube-apiserver's detail text.
    pub detail: String,
}

/// The kinds of field error kube-apiserver's validation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FieldErrorKind::Required => {
                write!(f, "{}: Required value: {}", self.field, self.detail)
            }
            FieldErrorKind::Invalid => {
                write!(f, "{}: Invalid value: ", self.field)?;
                write!(f, "{}", self.value.as_deref().unwrap_or("\"\""))?;
                if !self.detail.is_empty() {
                    write!(f, ": {}", self.detail)?;
                }
                Ok(())
            }
        }
    }
}

/// Why a value could not be read from or written to storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// The identity provider refuses values carrying the reserved `k8s:enc:` prefix.
    #[error("identity transformer tried to read encrypted data")]
    IdentityEncrypted,
    /// The stored body is shorter than the provider's fixed header.
    #[error("the stored data was shorter than the required size")]
    TooShort,
    /// An AES-CBC body is not whole blocks.
    #[error("the stored data is not a multiple of the block size")]
    NotBlockMultiple,
    /// AES-CBC padding byte is 0 or larger than the data.
    #[error("invalid PKCS7 data (empty or not padded)")]
    InvalidPkcs7,
    /// AES-CBC padding bytes disagree.
    #[error("invalid padding on input")]
    InvalidPadding,
    /// AES-GCM authentication failed: wrong key, wrong AAD or tampered data.
    #[error("cipher: message authentication failed")]
    GcmAuthentication,
    /// Secretbox authentication failed (upstream's misleading text, kept for compatibility).
    #[error("output array was not large enough for encryption")]
    SecretboxAuthentication,
    /// A key-derivation seed shorter than 32 bytes.
    #[error("invalid seed length {0} used for key generation")]
    SeedLength(usize),
    /// No entry of a prefix list matched the value.
    #[error("{0}")]
    NoMatch(NoMatch),
    /// Several candidates matched the prefix and all failed.
    #[error("{}", Aggregate(.0))]
    Aggregate(Vec<TransformError>),
    /// The first provider of this resource can only read (KMS v1, or a retired key).
    #[error("the first provider for this resource is read-only and cannot write new values")]
    ReadOnly,
    /// The operating system's random number generator failed.
    #[error("failed to read random bytes from the operating system")]
    Random,
    /// A KMS provider failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
}

/// The list-level error when no entry's prefix matched (`reference/encryption.md` §1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoMatch {
    /// The per-resource provider list.
    Prefix,
    /// The keys of an `aescbc` or `aesgcm` provider.
    AesKey,
    /// The keys of a `secretbox` provider.
    SecretboxKey,
}

impl fmt::Display for NoMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoMatch::Prefix => "no matching prefix found",
            NoMatch::AesKey => "no matching key was found for the provided AES transformer",
            NoMatch::SecretboxKey => {
                "no matching key was found for the provided Secretbox transformer"
            }
        })
    }
}

/// KMS v1 and v2 failures (`reference/encryption.md` §2.5, §2.6, §3.4). Key ids appear only as
/// `sha256:` hashes.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The KMS v1 length-prefixed DEK could not be split off.
    #[error(
        "invalid data encountered by envelope transformer: failed to read uint16 length prefixed data"
    )]
    V1Envelope,
    /// The stored KMS v2 `EncryptedObject` is not valid protobuf.
    #[error("failed to unmarshal encrypted object: {0}")]
    Unmarshal(String),
    /// The `EncryptedObject` failed `ValidateEncryptedObject`; the text is upstream's.
    #[error("{0}")]
    InvalidObject(String),
    /// The plugin has not yet answered a healthy `Status`, so there is no seed to use.
    #[error("KMSv2 provider has no encryption state yet: the plugin has not reported healthy")]
    NotReady,
    /// The write state outlived its TTL without a successful `Status`.
    #[error("encryptedDEKSource with keyID hash {key_id_hash:?} expired {seconds_ago}s ago")]
    Expired {
        /// `sha256:` hash of the key id.
        key_id_hash: String,
        /// How long ago it expired.
        seconds_ago: u64,
    },
    /// `Status` reported the plugin unhealthy or invalid.
    #[error("kmsv2 Provider is not healthy, error: {0}")]
    Unhealthy(String),
    /// An `Encrypt` response was unusable (wrong key id, empty or oversized ciphertext).
    #[error("KMSv2 Encrypt response is invalid: {0}")]
    InvalidEncryptResponse(String),
    /// The plugin call failed (gRPC status, timeout, socket). Never contains plaintext.
    #[error("KMS plugin call failed: {0}")]
    Service(String),
}

/// Go's `utilerrors.Aggregate` formatting: one error alone, several as `[a, b]`.
struct Aggregate<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for Aggregate<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("[")?;
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// `unknown field "a", unknown field "b"`, as Go's strict decoder joins them.
struct UnknownFields<'a>(&'a [String]);

impl fmt::Display for UnknownFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, path) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "unknown field {path:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_formats_like_go() {
        let one = TransformError::Aggregate(vec![TransformError::TooShort]);
        assert_eq!(
            one.to_string(),
            "the stored data was shorter than the required size"
        );
        let two = TransformError::Aggregate(vec![
            TransformError::GcmAuthentication,
            TransformError::IdentityEncrypted,
        ]);
        assert_eq!(
            two.to_string(),
            "[cipher: message authentication failed, identity transformer tried to read encrypted data]"
        );
    }

    #[test]
    fn field_error_formats_like_go() {
        let e = FieldError {
            field: "resources[0].providers[0].kms.apiVersion".into(),
            kind: FieldErrorKind::Invalid,
            value: Some("\"v3\"".into()),
            detail:
                "unsupported apiVersion apiVersion for KMS provider, only v1 and v2 are supported"
                    .into(),
        };
        assert_eq!(
            e.to_string(),
            "resources[0].providers[0].kms.apiVersion: Invalid value: \"v3\": unsupported apiVersion apiVersion for KMS provider, only v1 and v2 are supported"
        );
        let r = FieldError {
            field: "resources".into(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: "at least one resources is required".into(),
        };
        assert_eq!(
            r.to_string(),
            "resources: Required value: at least one resources is required"
        );
    }
}
