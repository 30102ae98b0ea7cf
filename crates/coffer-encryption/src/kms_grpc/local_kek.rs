//! A KMS v2 key backend kept in a local file of versioned key-encryption keys: the default
//! backend of `coffer kms-plugin`.
//!
//! The file is JSON, mode 0600: `{"keys": [{"version": 1, "key": "<base64 of 32 bytes>"}, ...]}`.
//! The highest version encrypts; every version decrypts. [`LocalKekFile::rotate`] appends a
//! fresh version, which changes the `key_id` that `Status` reports, so kube-apiserver (or
//! Coffer) makes a new seed and marks data under the old key id stale. The file is re-read on
//! every `Status`, so a rotation takes effect without restarting the plugin.
//!
//! **Key ids** are `v<version>-<8 hex digits>`, the digits taken from SHA-256 of a label and the
//! key, so a recreated file never reuses an old id for a different key. Key ids are public.
//!
//! **Wrapping.** A seed is sealed with AES-256-GCM under the KEK, with a random nonce and the
//! key id as AAD: `nonce(12) || ciphertext || tag(16)`. The plugin declines key ids it did not
//! issue. Threat model: whoever reads this file can unwrap every seed, so it protects etcd
//! backups and snapshots, not a compromised host; use an HSM backend for that.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::aesgcm::Gcm;
use crate::error::KmsError;
use crate::kms_v2::{KmsDecryptRequest, KmsEncrypted, KmsStatus, KmsV2Service};
use crate::secret::KeyMaterial;

const KEK_LEN: usize = 32;
const KEY_ID_LABEL: &[u8] = b"coffer local KEK id v1\0";

/// A local file of versioned KEKs, serving as a [`KmsV2Service`].
pub struct LocalKekFile {
    path: PathBuf,
    /// The keys as last read, by key id, and the current key id. Never held across an await.
    keys: Mutex<Keys>,
}

struct Keys {
    by_id: BTreeMap<String, KeyMaterial>,
    current: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    keys: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    version: u32,
    key: String,
}

impl Drop for FileKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl LocalKekFile {
    /// Creates a new file with one fresh key (version 1). Refuses to overwrite.
    pub fn create(path: &Path) -> Result<Self, KmsError> {
        let key =
            KeyMaterial::random(KEK_LEN).map_err(|_| KmsError::Service("no randomness".into()))?;
        write_new(
            path,
            &[FileKey {
                version: 1,
                key: STANDARD.encode(key.expose_secret()),
            }],
            false,
        )?;
        Self::open(path)
    }

    /// Opens an existing file.
    pub fn open(path: &Path) -> Result<Self, KmsError> {
        let keys = read(path)?;
        Ok(Self {
            path: path.into(),
            keys: Mutex::new(keys),
        })
    }

    /// Adds a fresh key as the next version and returns its key id. Old versions still
    /// decrypt. The file is replaced atomically.
    pub fn rotate(path: &Path) -> Result<String, KmsError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| file_error(path, &e))?);
        let mut file: FileFormat =
            serde_json::from_slice(&bytes).map_err(|e| bad_file(path, &e))?;
        let next = file.keys.iter().map(|k| k.version).max().unwrap_or(0) + 1;
        let key =
            KeyMaterial::random(KEK_LEN).map_err(|_| KmsError::Service("no randomness".into()))?;
        file.keys.push(FileKey {
            version: next,
            key: STANDARD.encode(key.expose_secret()),
        });
        write_new(path, &file.keys, true)?;
        Ok(key_id(next, &key))
    }

    /// The key id new seeds are wrapped under.
    pub fn current_key_id(&self) -> String {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone()
    }

    fn kek(&self, key_id: &str) -> Option<Gcm> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.by_id
            .get(key_id)
            .and_then(|k| Gcm::new(k.expose_secret()))
    }
}

impl std::fmt::Debug for LocalKekFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKekFile")
            .field("path", &self.path)
            .field("current_key_id", &self.current_key_id())
            .finish()
    }
}

#[async_trait]
impl KmsV2Service for LocalKekFile {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        // Re-read so that `rotate` from another process takes effect.
        let keys = read(&self.path)?;
        let key_id = keys.current.clone();
        *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(KmsStatus {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id,
        })
    }

    async fn encrypt(&self, _uid: &str, plaintext: &KeyMaterial) -> Result<KmsEncrypted, KmsError> {
        let key_id = self.current_key_id();
        let kek = self
            .kek(&key_id)
            .ok_or_else(|| KmsError::Service("no current key".into()))?;
        let ciphertext = kek
            .seal(plaintext.expose_secret(), key_id.as_bytes())
            .map_err(|e| KmsError::Service(e.to_string()))?;
        Ok(KmsEncrypted {
            ciphertext,
            key_id,
            annotations: BTreeMap::new(),
        })
    }

    async fn decrypt(&self, _uid: &str, req: &KmsDecryptRequest) -> Result<KeyMaterial, KmsError> {
        let kek = self.kek(&req.key_id).ok_or_else(|| {
            KmsError::Service(format!(
                "key id hash {:?} was not issued by this key file",
                crate::kms_v2::hash_of(req.key_id.as_bytes())
            ))
        })?;
        let plain = kek
            .open(&req.ciphertext, req.key_id.as_bytes())
            .map_err(|e| KmsError::Service(e.to_string()))?;
        Ok(KeyMaterial::new(plain.expose_secret().to_vec()))
    }
}

/// `v<version>-<8 hex>`; see the module docs.
fn key_id(version: u32, key: &KeyMaterial) -> String {
    let digest = Sha256::new()
        .chain_update(KEY_ID_LABEL)
        .chain_update(key.expose_secret())
        .finalize();
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("v{version}-{tag}")
}

fn read(path: &Path) -> Result<Keys, KmsError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| file_error(path, &e))?);
    let file: FileFormat = serde_json::from_slice(&bytes).map_err(|e| bad_file(path, &e))?;
    let mut by_id = BTreeMap::new();
    let mut current = (0, String::new());
    for k in &file.keys {
        let key = KeyMaterial::from_go_base64(&k.key)
            .ok()
            .filter(|key| key.len() == KEK_LEN)
            .ok_or_else(|| {
                KmsError::Service(format!(
                    "{}: key version {} is not 32 base64 bytes",
                    path.display(),
                    k.version
                ))
            })?;
        let id = key_id(k.version, &key);
        if k.version >= current.0 {
            current = (k.version, id.clone());
        }
        by_id.insert(id, key);
    }
    if by_id.is_empty() {
        return Err(KmsError::Service(format!(
            "{}: the key file holds no keys",
            path.display()
        )));
    }
    Ok(Keys {
        by_id,
        current: current.1,
    })
}

/// Writes the key file with mode 0600 through a temporary file and a rename.
fn write_new(path: &Path, keys: &[FileKey], replace: bool) -> Result<(), KmsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if !replace && path.exists() {
        return Err(KmsError::Service(format!(
            "{} already exists",
            path.display()
        )));
    }
    let json = Zeroizing::new(
        serde_json::to_vec_pretty(&serde_json::json!({ "keys": keys }))
            .map_err(|e| KmsError::Service(e.to_string()))?,
    );
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_error(&tmp, &e))?;
    f.write_all(&json)
        .and_then(|_| f.sync_all())
        .map_err(|e| file_error(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_error(path, &e))
}

fn file_error(path: &Path, e: &std::io::Error) -> KmsError {
    KmsError::Service(format!("{}: {e}", path.display()))
}

/// A malformed key file; only the position is reported, never the text.
fn bad_file(path: &Path, e: &serde_json::Error) -> KmsError {
    KmsError::Service(format!(
        "{}: not a key file (line {}, column {})",
        path.display(),
        e.line(),
        e.column()
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use futures::executor::block_on;

    use super::*;

    #[test]
    fn create_rotate_and_decrypt_old_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek.json");
        let kek = LocalKekFile::create(&path).expect("create");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert!(LocalKekFile::create(&path).is_err(), "never overwrites");
        let first = block_on(kek.status()).expect("status").key_id;
        assert!(first.starts_with("v1-") && first.len() == 11, "{first}");
        let seed = KeyMaterial::new(vec![7; 32]);
        let wrapped = block_on(kek.encrypt("u", &seed)).expect("encrypt");
        assert_eq!(wrapped.key_id, first);
        assert_eq!(wrapped.ciphertext.len(), 12 + 32 + 16);

        let second = LocalKekFile::rotate(&path).expect("rotate");
        assert!(second.starts_with("v2-"));
        assert_eq!(
            block_on(kek.status()).expect("status").key_id,
            second,
            "re-read on Status"
        );
        let req = KmsDecryptRequest {
            ciphertext: wrapped.ciphertext.clone(),
            key_id: first.clone(),
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            block_on(kek.decrypt("u", &req))
                .expect("old version")
                .expose_secret(),
            &[7; 32]
        );
        // A key id this file did not issue, or a ciphertext moved to another key id, fails.
        let foreign = KmsDecryptRequest {
            key_id: "v9-00000000".into(),
            ..req.clone()
        };
        assert!(block_on(kek.decrypt("u", &foreign)).is_err());
        let moved = KmsDecryptRequest {
            key_id: second.clone(),
            ..req
        };
        assert!(block_on(kek.decrypt("u", &moved)).is_err());
        let shown = format!("{kek:?}");
        let file = std::fs::read_to_string(&path).expect("read");
        let first_key = file
            .split("\"key\": \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("key");
        assert!(!shown.contains(first_key), "{shown}");
    }

    #[test]
    fn bad_files_do_not_echo_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek.json");
        std::fs::write(
            &path,
            r#"{"keys": [{"version": 1, "key": "c2VjcmV0LWtleS1ieXRlcw=="}]}"#,
        )
        .expect("write");
        let err = LocalKekFile::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("is not 32 base64 bytes") && !err.contains("c2Vj"),
            "{err}"
        );
        std::fs::write(&path, r#"{"keys": "c2VjcmV0LWtleS1ieXRlcw=="}"#).expect("write");
        let err = LocalKekFile::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("not a key file") && !err.contains("c2Vj"),
            "{err}"
        );
    }
}
