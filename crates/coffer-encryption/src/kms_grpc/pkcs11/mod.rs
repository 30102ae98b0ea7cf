//! A KMS v2 key backend in a PKCS#11 token (an HSM, or SoftHSM2 for tests): the second backend
//! of `coffer kms-plugin`, beside [`LocalKekFile`](super::LocalKekFile).
//!
//! **Keys.** Each key-encryption key is an AES-256 secret key object in the token
//! (`CKK_AES`, `CKA_VALUE_LEN` 32, `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`,
//! `CKA_EXTRACTABLE` false), labelled with `--pkcs11-key-label`. Its `CKA_ID` is the ASCII
//! text `v<version>-<8 hex digits>`, the digits random, so a re-initialized token never reuses
//! an old key id for a different key. The key id reported by `Status` is
//! `<label>/<CKA_ID>`, for example `coffer-kek/v2-9f31c0aa`. Key ids are public.
//!
//! **Versions.** [`Pkcs11Kek::rotate`] generates a new key object with the next version; the
//! highest version encrypts, every version decrypts. `Status` re-reads the token's key list, so
//! a `coffer kms-plugin rotate` run by another process shows up at the next `Status`, as with
//! the key file.
//!
//! **Wrapping.** A seed is encrypted inside the token with `CKM_AES_GCM`, a random 12-byte IV
//! and the key id as additional authenticated data (so a ciphertext moved to another key id
//! does not open); the stored ciphertext is `iv(12) || ciphertext || tag(16)`. The key never
//! leaves the token, and a key that could (extractable or not sensitive) is refused.
//!
//! **Sessions.** One read-write session, logged in once as the user, behind a mutex; calls run
//! on Tokio's blocking pool. A call that fails with `CKR_USER_NOT_LOGGED_IN` logs in again and
//! is retried once; one that finds its session closed or its key handle gone reopens or
//! re-finds and is retried once. The PIN is read from a file, kept only in a zeroizing
//! `SecretString` and never printed.
//!
//! **The module.** A PKCS#11 library may be initialized once per process; modules are loaded
//! and `C_Initialize`d once and kept for the life of the process.

mod error;
mod token;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use cryptoki::context::{Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub use error::Pkcs11Error;
use token::{check_label, context, find_slot, hex, parse_cka_id, read_pin};

use crate::error::KmsError;
use crate::kms_v2::{KmsDecryptRequest, KmsEncrypted, KmsStatus, KmsV2Service, hash_of};
use crate::secret::KeyMaterial;

/// The label used when none is given.
pub const DEFAULT_PKCS11_KEY_LABEL: &str = "coffer-kek";

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEK_LEN: u64 = 32;
/// AAD of the `Status` round trip, distinct from every key id (which contain a `/`).
const HEALTHZ_AAD: &[u8] = b"coffer kms-plugin healthz";

/// Which token holds the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSelector {
    /// The one initialized token with this label (`--pkcs11-token-label`).
    Label(String),
    /// The token in this slot (`--pkcs11-slot`).
    Slot(u64),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Label(l) => write!(f, "token {l:?}"),
            Self::Slot(s) => write!(f, "the token in slot {s}"),
        }
    }
}

/// Where the keys are: the flags of `coffer kms-plugin`'s PKCS#11 backend.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Pkcs11Options {
    /// The PKCS#11 module (`--pkcs11-module`), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token (`--pkcs11-token-label` or `--pkcs11-slot`).
    pub token: TokenSelector,
    /// A file holding the user PIN (`--pkcs11-pin-file`); one trailing newline is ignored.
    pub pin_file: PathBuf,
    /// The label of the key objects (`--pkcs11-key-label`).
    pub key_label: String,
}

impl Pkcs11Options {
    /// Options with the default key label.
    pub fn new(module: PathBuf, token: TokenSelector, pin_file: PathBuf) -> Self {
        Self {
            module,
            token,
            pin_file,
            key_label: DEFAULT_PKCS11_KEY_LABEL.to_owned(),
        }
    }
}
/// KEKs in a PKCS#11 token, serving as a [`KmsV2Service`]. See the module docs.
pub struct Pkcs11Kek {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    /// `token "label"` or `the token in slot N`, for messages.
    token: String,
    pin_file: PathBuf,
    pin: AuthPin,
    label: String,
    /// The session and the keys found through it. The only lock; held for whole PKCS#11
    /// operations (a session must not be used by two threads at once), never across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `None` before the first call and after the session was found closed.
    session: Option<Session>,
    /// Key id → handle, as last listed.
    keys: BTreeMap<String, Key>,
    /// The key id of the highest version, as last listed.
    current: Option<String>,
}

#[derive(Clone, Copy)]
struct Key {
    version: u32,
    handle: ObjectHandle,
}

impl Pkcs11Kek {
    /// Loads the module, finds the token, reads the PIN and logs in. Does not create a key:
    /// see [`Pkcs11Kek::create_first_key`].
    pub fn open(options: &Pkcs11Options) -> Result<Self, Pkcs11Error> {
        check_label(&options.key_label)?;
        let pin = read_pin(&options.pin_file)?;
        let ctx = context(&options.module)?;
        let slot = find_slot(&ctx, &options.token)?;
        let inner = Inner {
            ctx,
            slot,
            token: options.token.to_string(),
            pin_file: options.pin_file.clone(),
            pin,
            label: options.key_label.clone(),
            state: Mutex::new(State::default()),
        };
        inner.run(|_, _| Ok(()))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Generates version 1 when the token holds no key under the label; returns its key id,
    /// or `None` when a key was already there.
    pub fn create_first_key(&self) -> Result<Option<String>, Pkcs11Error> {
        self.inner.run(|inner, st| {
            inner.list(st)?;
            if st.current.is_some() {
                return Ok(None);
            }
            inner.generate(st, 1).map(Some)
        })
    }

    /// Generates the next key version in the token and returns its key id; it becomes the
    /// current key. Older versions keep decrypting. Two rotations at the same moment from
    /// different processes may both make the same version number; both keys then work, and the
    /// one listed last is current.
    pub fn rotate(&self) -> Result<String, Pkcs11Error> {
        self.inner.run(|inner, st| {
            inner.list(st)?;
            let next = st
                .keys
                .values()
                .map(|k| k.version)
                .max()
                .unwrap_or(0)
                .saturating_add(1);
            inner.generate(st, next)
        })
    }

    /// The current key id, listed fresh from the token.
    pub fn current_key_id(&self) -> Result<String, Pkcs11Error> {
        self.inner.run(|inner, st| {
            inner.list(st)?;
            inner.current(st).map(|(id, _)| id)
        })
    }

    /// Lists the keys and runs an encrypt/decrypt round trip in the token under the current
    /// key: what `Status` reports as healthz. Returns the current key id.
    pub fn health_check(&self) -> Result<String, Pkcs11Error> {
        self.inner.health_check()
    }
}

impl std::fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Kek")
            .field("token", &self.inner.token)
            .field("key_label", &self.inner.label)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KmsV2Service for Pkcs11Kek {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        let inner = Arc::clone(&self.inner);
        let key_id = blocking(move || inner.health_check()).await?;
        Ok(KmsStatus {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id,
        })
    }

    async fn encrypt(&self, _uid: &str, plaintext: &KeyMaterial) -> Result<KmsEncrypted, KmsError> {
        let inner = Arc::clone(&self.inner);
        let plain = plaintext.clone();
        let (key_id, ciphertext) = blocking(move || {
            inner.run(|inner, st| {
                // The key id of the last Status, as kube-apiserver requires; list only if none.
                if st.current.is_none() {
                    inner.list(st)?;
                }
                let (key_id, key) = inner.current(st)?;
                let sealed = seal(st, key.handle, key_id.as_bytes(), plain.expose_secret())?;
                Ok((key_id, sealed))
            })
        })
        .await?;
        Ok(KmsEncrypted {
            ciphertext,
            key_id,
            annotations: BTreeMap::new(),
        })
    }

    async fn decrypt(&self, _uid: &str, req: &KmsDecryptRequest) -> Result<KeyMaterial, KmsError> {
        let inner = Arc::clone(&self.inner);
        let req = req.clone();
        let plain = blocking(move || {
            inner.run(|inner, st| {
                let key = inner.key(st, &req.key_id)?;
                open(st, key.handle, req.key_id.as_bytes(), &req.ciphertext)
            })
        })
        .await?;
        Ok(plain)
    }
}

impl Inner {
    /// Runs `f` with a logged-in session. After `CKR_USER_NOT_LOGGED_IN` it logs in again,
    /// after a closed or invalid session it opens a new one, after an invalid handle it lists
    /// the keys again; then `f` is retried, at most twice in all.
    fn run<T>(
        &self,
        mut f: impl FnMut(&Self, &mut State) -> Result<T, Pkcs11Error>,
    ) -> Result<T, Pkcs11Error> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut retries = 0;
        loop {
            if st.session.is_none() {
                let session =
                    self.ctx
                        .open_rw_session(self.slot)
                        .map_err(|source| Pkcs11Error::Device {
                            op: "opening a session",
                            source,
                        })?;
                self.login(&session)?;
                st.session = Some(session);
            }
            let result = f(self, &mut st);
            let Some(rv) = result.as_ref().err().and_then(Pkcs11Error::rv) else {
                return result;
            };
            if retries == 2 || !retryable(rv) {
                return result;
            }
            retries += 1;
            if matches!(
                rv,
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::TokenNotPresent
            ) {
                st.session = None;
            } else if let Some(session) = &st.session {
                // Not logged in, or a handle that vanished (private objects do when the
                // process is logged out): log in if needed, and list the keys again.
                if !logged_in(session) {
                    self.login(session)?;
                }
            }
            st.keys.clear();
            st.current = None;
        }
    }

    fn login(&self, session: &Session) -> Result<(), Pkcs11Error> {
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(Pkcs11Error::PinIncorrect {
                token: self.token.clone(),
                pin_file: self.pin_file.clone(),
            }),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
                token: self.token.clone(),
            }),
            Err(source) => Err(Pkcs11Error::Device {
                op: "logging in",
                source,
            }),
        }
    }

    /// Lists the AES keys under the label and picks the highest version as current.
    fn list(&self, st: &mut State) -> Result<(), Pkcs11Error> {
        let session = session(st);
        let dev = |op| move |source| Pkcs11Error::Device { op, source };
        // A logged-out session finds no private objects and no error: say why instead.
        if !logged_in(session) {
            return Err(dev("listing keys")(CkError::Pkcs11(
                RvError::UserNotLoggedIn,
                Function::FindObjectsInit,
            )));
        }
        let handles = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(self.label.as_bytes().to_vec()),
            ])
            .map_err(dev("listing keys"))?;
        let mut keys = BTreeMap::new();
        let mut current: Option<(u32, String)> = None;
        for handle in handles {
            let attrs = session
                .get_attributes(handle, &[AttributeType::Id])
                .map_err(dev("reading a key's CKA_ID"))?;
            let Some(id) = attrs.iter().find_map(|a| match a {
                Attribute::Id(id) => Some(id.as_slice()),
                _ => None,
            }) else {
                continue;
            };
            // Objects under the label that we did not make (no `v<n>-<hex>` id) are ignored.
            let Some(version) = parse_cka_id(id) else {
                continue;
            };
            let key_id = format!("{}/{}", self.label, String::from_utf8_lossy(id));
            if current.as_ref().is_none_or(|(v, _)| version >= *v) {
                current = Some((version, key_id.clone()));
            }
            keys.insert(key_id, Key { version, handle });
        }
        st.keys = keys;
        st.current = current.map(|(_, id)| id);
        Ok(())
    }

    /// The current key, checked to be one that cannot leave the token.
    fn current(&self, st: &State) -> Result<(String, Key), Pkcs11Error> {
        let no_key = || Pkcs11Error::NoKey {
            token: self.token.clone(),
            label: self.label.clone(),
        };
        let key_id = st.current.clone().ok_or_else(no_key)?;
        let key = *st.keys.get(&key_id).ok_or_else(no_key)?;
        check_key(session(st), &key_id, key.handle)?;
        Ok((key_id, key))
    }

    /// The key a stored value names; lists again once when it is not known (a rotation by
    /// another process).
    fn key(&self, st: &mut State, key_id: &str) -> Result<Key, Pkcs11Error> {
        let unknown = || Pkcs11Error::UnknownKeyId {
            key_id_hash: hash_of(key_id.as_bytes()),
            label: self.label.clone(),
        };
        if !key_id.starts_with(&format!("{}/", self.label)) {
            return Err(unknown());
        }
        if !st.keys.contains_key(key_id) {
            self.list(st)?;
        }
        st.keys.get(key_id).copied().ok_or_else(unknown)
    }

    /// Generates key `version` and makes it current; returns its key id.
    fn generate(&self, st: &mut State, version: u32) -> Result<String, Pkcs11Error> {
        let mut tag = [0u8; 4];
        getrandom::fill(&mut tag).map_err(|_| Pkcs11Error::Random)?;
        let id = format!("v{version}-{}", hex(&tag));
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(KEK_LEN.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Label(self.label.as_bytes().to_vec()),
            Attribute::Id(id.clone().into_bytes()),
        ];
        session(st)
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|source| Pkcs11Error::Device {
                op: "generating an AES-256 key",
                source,
            })?;
        self.list(st)?;
        let key_id = format!("{}/{id}", self.label);
        if !st.keys.contains_key(&key_id) {
            return Err(Pkcs11Error::NoKey {
                token: self.token.clone(),
                label: self.label.clone(),
            });
        }
        Ok(key_id)
    }

    fn health_check(&self) -> Result<String, Pkcs11Error> {
        self.run(|inner, st| {
            inner.list(st)?;
            let (key_id, key) = inner.current(st)?;
            let probe = KeyMaterial::random(32).map_err(|_| Pkcs11Error::Random)?;
            let sealed = seal(st, key.handle, HEALTHZ_AAD, probe.expose_secret())?;
            let back = open(st, key.handle, HEALTHZ_AAD, &sealed)?;
            if back.expose_secret() != probe.expose_secret() {
                return Err(Pkcs11Error::RoundTrip { key_id });
            }
            Ok(key_id)
        })
    }
}

/// The session of a state inside [`Inner::run`].
fn session(st: &State) -> &Session {
    st.session
        .as_ref()
        .expect("BUG: Inner::run opens the session before calling its closure")
}

/// `iv || AES-GCM(plain, aad)` computed in the token; the AAD of a seed is its key id.
fn seal(
    st: &State,
    handle: ObjectHandle,
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, Pkcs11Error> {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|_| Pkcs11Error::Random)?;
    let mut iv_param = iv;
    let params =
        GcmParams::new(&mut iv_param, aad, (TAG_LEN as u64 * 8).into()).map_err(|source| {
            Pkcs11Error::Device {
                op: "setting up AES-GCM",
                source,
            }
        })?;
    let sealed = session(st)
        .encrypt(&Mechanism::AesGcm(params), handle, plain)
        .map_err(|source| Pkcs11Error::Device {
            op: "encrypting",
            source,
        })?;
    let mut out = Vec::with_capacity(IV_LEN + sealed.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens `iv || ciphertext || tag` in the token. Any refusal of the data itself is
/// [`Pkcs11Error::Decrypt`]; session and login failures stay `Device` so that they are retried.
fn open(
    st: &State,
    handle: ObjectHandle,
    aad: &[u8],
    data: &[u8],
) -> Result<KeyMaterial, Pkcs11Error> {
    if data.len() < IV_LEN + TAG_LEN {
        return Err(Pkcs11Error::ShortCiphertext {
            min: IV_LEN + TAG_LEN,
            got: data.len(),
        });
    }
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&data[..IV_LEN]);
    let params = GcmParams::new(&mut iv, aad, (TAG_LEN as u64 * 8).into()).map_err(|source| {
        Pkcs11Error::Device {
            op: "setting up AES-GCM",
            source,
        }
    })?;
    match session(st).decrypt(&Mechanism::AesGcm(params), handle, &data[IV_LEN..]) {
        Ok(plain) => Ok(KeyMaterial::new(plain)),
        Err(CkError::Pkcs11(rv, f)) if retryable(rv) => Err(Pkcs11Error::Device {
            op: "decrypting",
            source: CkError::Pkcs11(rv, f),
        }),
        Err(e) => Err(Pkcs11Error::Decrypt {
            key_id_hash: hash_of(aad),
            rv: match e {
                CkError::Pkcs11(rv, _) => Some(rv),
                _ => None,
            },
        }),
    }
}

/// Whether the session is logged in as the user (a failed query counts as no).
fn logged_in(session: &Session) -> bool {
    session.get_session_info().is_ok_and(|info| {
        matches!(
            info.session_state(),
            SessionState::RwUser | SessionState::RoUser
        )
    })
}

/// Return values [`Inner::run`] recovers from.
fn retryable(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::UserNotLoggedIn
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::KeyHandleInvalid
            | RvError::ObjectHandleInvalid
    )
}

/// Refuses keys that could leave the token or are not AES-256.
fn check_key(session: &Session, key_id: &str, handle: ObjectHandle) -> Result<(), Pkcs11Error> {
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::ValueLen,
            ],
        )
        .map_err(|source| Pkcs11Error::Device {
            op: "reading a key's attributes",
            source,
        })?;
    let refuse = |reason| {
        Err(Pkcs11Error::UnsafeKey {
            key_id: key_id.to_owned(),
            reason,
        })
    };
    for a in &attrs {
        match a {
            Attribute::Sensitive(false) => return refuse("it is not CKA_SENSITIVE"),
            Attribute::Extractable(true) => return refuse("it is CKA_EXTRACTABLE"),
            Attribute::ValueLen(len) if u64::from(*len) != KEK_LEN => {
                return refuse("it is not a 256-bit AES key");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs a PKCS#11 call on Tokio's blocking pool (inline outside a runtime).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Pkcs11Error> + Send + 'static,
) -> Result<T, KmsError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f().map_err(KmsError::from);
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| KmsError::Service("the PKCS#11 call panicked".into()))?
        .map_err(KmsError::from)
}
