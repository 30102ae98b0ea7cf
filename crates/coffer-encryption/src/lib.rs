//! Encryption at rest, byte-compatible with kube-apiserver.
//!
//! Coffer reads kube-apiserver's own `EncryptionConfiguration` file and stores the same bytes
//! kube-apiserver stores, so an operator's config works unchanged and a real cluster's etcd can
//! be read. `reference/encryption.md` (in the project's shared folder) pins every byte.
//!
//! Where to start:
//! - [`EncryptionConfig::load`] reads and validates a config file, with kube-apiserver's rules
//!   and messages; [`EncryptionConfig::build`] gives [`ResourceTransformers`], and
//!   [`ResourceTransformers::for_resource`] the transformer list for a resource.
//! - [`Transformer`] is the two-method contract storage calls: `from_storage(bytes, aad)`
//!   returns the plaintext and its [`Freshness`], `to_storage(plain, aad)` the bytes to store.
//!   The AAD is always the full storage key. A stale read must be rewritten on the next update.
//! - [`PrefixTransformers`] is the only place values are dispatched by prefix.
//! - [`ReloadingTransformers`] holds the transformers in force and [`ConfigWatcher`] replaces
//!   them when the file changes (kube-apiserver's
//!   `--encryption-provider-config-automatic-reload`).
//! - Providers: [`Identity`], [`AesCbc`], [`AesGcm`], [`Secretbox`], [`KmsV1Reader`] (read only)
//!   and [`KmsV2`]. KMS plugins are reached through [`KmsV2Service`] / [`KmsV1Service`];
//!   [`GrpcKms`] connects them over gRPC on a unix socket, [`probe_forever`] runs KMS v2's
//!   health and seed-rotation loop, and [`KmsV2Server`] serves the plugin side, with
//!   two key backends behind that same trait: [`LocalKekFile`] (a file of versioned
//!   key-encryption keys) and [`Pkcs11Kek`] (AES keys in a PKCS#11 token, e.g. an HSM).
//!
//! What this crate is not: it does not encode objects (see `coffer-api`'s codec) and does not
//! store anything. Key material lives in [`KeyMaterial`], plaintext in [`SecretBytes`]; neither
//! prints its bytes, and both are zeroized on drop.
#![forbid(unsafe_code)]

mod aescbc;
mod aesgcm;
mod config;
mod error;
mod identity;
mod kms_grpc;
mod kms_v1;
mod kms_v2;
mod reload;
mod secret;
mod secretbox;
mod transformer;

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

// The public interface.
pub use aescbc::AesCbc;
pub use aesgcm::{AESGCM_ROTATE_AFTER_WRITES, AesGcm, ExtendedNonceGcm};
pub use config::{
    EncryptionConfig, GroupResource, KmsApiVersion, KmsConnector, KmsEndpoint, KmsProvider,
    LoadMode, NamedKey, NoKms, PREFIX_AESCBC, PREFIX_AESGCM, PREFIX_KMS_V1, PREFIX_KMS_V2,
    PREFIX_SECRETBOX, ProviderConfig, ResourceEntry, ResourceTransformers,
};
pub use error::{
    ConfigError, DecodeError, Error, FieldError, FieldErrorKind, KmsError, NoMatch, Result,
    TransformError,
};
pub use identity::{ENCRYPTED_PREFIX, Identity};
pub use kms_grpc::{
    DEFAULT_PKCS11_KEY_LABEL, GrpcKms, GrpcKmsV1, GrpcKmsV2, KmsV2Server, LocalKekFile,
    PROBE_INTERVAL_FAILING, PROBE_INTERVAL_HEALTHY, Pkcs11Error, Pkcs11Kek, Pkcs11Options,
    TokenSelector, probe_forever, proto as kms_proto,
};
pub use kms_v1::{KmsV1Reader, KmsV1Service};
pub use kms_v2::{
    DekSourceType, EncryptedObject, HEALTHZ_CACHE_FAILED, HEALTHZ_CACHE_OK, KmsDecryptRequest,
    KmsEncrypted, KmsStatus, KmsV2, KmsV2Service, WRITE_STATE_TTL, hash_of,
};
pub use reload::{
    ConfigWatcher, DEFAULT_RELOAD_INTERVAL, ReloadCounts, ReloadError, ReloadOutcome,
    ReloadingTransformers,
};
pub use secret::{InvalidBase64, KeyMaterial, SecretBytes};
pub use secretbox::Secretbox;
pub use transformer::{Freshness, PrefixTransformers, ReadTransformer, Slot, Transformer};
