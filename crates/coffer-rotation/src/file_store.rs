//! [`FileStore`]: a [`RotationStore`] in one JSON file, for tests (the crash test kills a
//! process that uses it) and single-machine use.
//!
//! Durability: every write serializes the whole store, writes it to `<file>.tmp` (mode 0600),
//! `fsync`s it, renames it over the file and `fsync`s the directory, so after a crash the file
//! is the last acknowledged state. Every call re-reads the file, so a second process (one that
//! resumes after a crash) sees what the first wrote. A mutex orders the calls of one process;
//! two processes must not write at once (the crash test runs one at a time).
//!
//! Secret values are stored base64-encoded, NOT encrypted: this store is for tests and lives
//! in a private (0700) directory. The server's store keeps them as Secrets, encrypted at rest.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::secret::{SecretData, SecretValue};
use crate::state::RotationStatus;
use crate::store::{Revision, RotationStore, StagedSecret, StagedValue, Versioned, check_revision};

/// A [`RotationStore`] in one JSON file (see the module docs for its guarantees).
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    // Orders this process's read-modify-write cycles on the file.
    lock: Mutex<()>,
}

#[derive(Default, Serialize, Deserialize)]
struct Doc {
    revision: Revision,
    statuses: BTreeMap<String, StoredStatus>,
    secrets: BTreeMap<String, StoredSecret>,
}

#[derive(Serialize, Deserialize)]
struct StoredStatus {
    revision: Revision,
    status: RotationStatus,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSecret {
    revision: Revision,
    #[serde(rename = "type")]
    secret_type: Option<String>,
    current: BTreeMap<String, String>,
    current_version: u64,
    pending: Option<StoredStage>,
    previous: Option<StoredStage>,
}

#[derive(Serialize, Deserialize)]
struct StoredStage {
    version: u64,
    data: BTreeMap<String, String>,
}

impl FileStore {
    /// A store in `path` (created on first write; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn backend(&self, op: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(format!("{op} {}: {e}", self.path.display()))
    }

    fn read_doc(&self) -> Result<Doc, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                serde_json::from_slice(&bytes).map_err(|e| self.backend("parse", e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Doc::default()),
            Err(e) => Err(self.backend("read", e)),
        }
    }

    fn write_doc(&self, doc: &Doc) -> Result<(), StoreError> {
        let bytes = Zeroizing::new(serde_json::to_vec(doc).map_err(|e| self.backend("encode", e))?);
        let tmp = self.path.with_extension("tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.backend("create", e))?;
        file.write_all(&bytes)
            .map_err(|e| self.backend("write", e))?;
        file.sync_all().map_err(|e| self.backend("fsync", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.backend("rename", e))?;
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = fs::File::open(dir.unwrap_or(Path::new(".")))
            .map_err(|e| self.backend("open directory of", e))?;
        dir.sync_all()
            .map_err(|e| self.backend("fsync directory of", e))
    }

    fn locked<T>(
        &self,
        f: impl FnOnce(&mut Doc) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut doc = self.read_doc()?;
        let (out, dirty) = f(&mut doc)?;
        if dirty {
            self.write_doc(&doc)?;
        }
        Ok(out)
    }
}

fn encode(data: &SecretData) -> BTreeMap<String, String> {
    data.iter()
        .map(|(k, v)| {
            (
                k.to_owned(),
                base64::engine::general_purpose::STANDARD.encode(v.expose_secret()),
            )
        })
        .collect()
}

fn decode(data: &BTreeMap<String, String>) -> Result<SecretData, StoreError> {
    data.iter()
        .map(|(k, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map(|bytes| (k.clone(), SecretValue::new(bytes)))
                .map_err(|_| {
                    StoreError::Backend(format!("key {k:?} is not base64 in the store file"))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|pairs| pairs.into_iter().collect())
}

fn decode_stage(stage: &Option<StoredStage>) -> Result<Option<StagedValue>, StoreError> {
    stage
        .as_ref()
        .map(|s| {
            Ok(StagedValue {
                version: s.version,
                data: decode(&s.data)?,
            })
        })
        .transpose()
}

fn encode_stage(stage: &Option<StagedValue>) -> Option<StoredStage> {
    stage.as_ref().map(|s| StoredStage {
        version: s.version,
        data: encode(&s.data),
    })
}

#[async_trait]
impl RotationStore for FileStore {
    async fn load_status(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<RotationStatus>>, StoreError> {
        self.locked(|doc| {
            let found = doc.statuses.get(name).map(|s| Versioned {
                value: s.status.clone(),
                revision: s.revision,
            });
            Ok((found, false))
        })
    }

    async fn save_status(
        &self,
        name: &str,
        status: &RotationStatus,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        self.locked(|doc| {
            let found = doc.statuses.get(name).map(|s| s.revision);
            check_revision(|| format!("rotation {name:?}"), found, expected)?;
            doc.revision += 1;
            let revision = doc.revision;
            doc.statuses.insert(
                name.to_owned(),
                StoredStatus {
                    revision,
                    status: status.clone(),
                },
            );
            Ok((revision, true))
        })
    }

    async fn read_secret(&self, name: &str) -> Result<Option<Versioned<StagedSecret>>, StoreError> {
        self.locked(|doc| {
            let Some(s) = doc.secrets.get(name) else {
                return Ok((None, false));
            };
            let value = StagedSecret {
                secret_type: s.secret_type.clone(),
                current: decode(&s.current)?,
                current_version: s.current_version,
                pending: decode_stage(&s.pending)?,
                previous: decode_stage(&s.previous)?,
            };
            Ok((
                Some(Versioned {
                    value,
                    revision: s.revision,
                }),
                false,
            ))
        })
    }

    async fn write_secret(
        &self,
        name: &str,
        secret: &StagedSecret,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        self.locked(|doc| {
            let found = doc.secrets.get(name).map(|s| s.revision);
            check_revision(|| format!("secret {name:?}"), found, expected)?;
            doc.revision += 1;
            let revision = doc.revision;
            doc.secrets.insert(
                name.to_owned(),
                StoredSecret {
                    revision,
                    secret_type: secret.secret_type.clone(),
                    current: encode(&secret.current),
                    current_version: secret.current_version,
                    pending: encode_stage(&secret.pending),
                    previous: encode_stage(&secret.previous),
                },
            );
            Ok((revision, true))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::store::check_store_conformance;

    #[tokio::test]
    async fn file_store_conforms_and_persists_privately() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.json");
        check_store_conformance(&FileStore::new(&path))
            .await
            .expect("conforms");
        let mode = fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second instance (another process after a crash) sees the same state.
        let again = FileStore::new(&path);
        let s = again
            .read_secret("s")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(s.value.current.get_str("k"), Some("v"));
        assert_eq!(
            s.value.pending.expect("pending").data.get_str("k"),
            Some("p")
        );
        assert!(!path.with_extension("tmp").exists());
    }

    #[tokio::test]
    async fn a_damaged_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.json");
        fs::write(&path, b"{not json").expect("write");
        let err = FileStore::new(&path)
            .load_status("r")
            .await
            .expect_err("damaged");
        assert!(err.to_string().contains("parse"), "{err}");
    }
}
