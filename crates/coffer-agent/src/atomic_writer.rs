//! The kubelet's atomic writer (`pkg/volume/util/atomic_writer.go`), so that a reader of a
//! volume never sees a half-updated set of files.
//!
//! Layout of a volume directory after a write:
//!
//! ```text
//! ..2026_11_28_22_40_01.000012345/   the files of this version (dir 0755, files their mode)
//! ..data -> ..2026_11_28_22_40_01.000012345
//! username -> ..data/username        one user-visible symlink per top-level path
//! password -> ..data/password
//! ```
//!
//! A write puts the whole new payload in a fresh timestamped directory, points a temporary
//! `..data_tmp` symlink at it, and renames that over `..data`: one `rename(2)`, so every
//! path resolves through the old set or the new set, never a mix. Then it adds symlinks for
//! new top-level names, removes those no longer in the payload, and removes the old
//! directory. A payload equal to what is on disk (contents and modes) writes nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::volumes::Payload;

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// Why a volume could not be written.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A payload path is absolute, empty, has a `..` element or starts with `..`.
    #[error("invalid file path {0:?} in volume payload")]
    InvalidPath(String),
    /// A file system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Writes payloads into one volume directory atomically.
#[derive(Clone, Debug)]
pub struct AtomicWriter {
    target: PathBuf,
}

impl AtomicWriter {
    /// A writer for the volume directory `target` (created on first write).
    pub fn new(target: impl Into<PathBuf>) -> Self {
        Self {
            target: target.into(),
        }
    }

    /// The volume directory.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Makes the directory hold exactly `payload`. Returns `false` when it already did (and
    /// nothing was written).
    pub fn write(&self, payload: &Payload) -> Result<bool, WriteError> {
        for path in payload.keys() {
            check_path(path)?;
        }
        let target = &self.target;
        fs::create_dir_all(target).map_err(io_err("create", target))?;

        let old_dir = fs::read_link(target.join(DATA_DIR)).ok();
        let old_paths = match &old_dir {
            Some(old) => {
                let old = target.join(old);
                if same_contents(&old, payload)? {
                    return Ok(false);
                }
                list_files(&old)?
            }
            None => BTreeSet::new(),
        };

        let ts_name = self.new_timestamp_dir()?;
        let ts_dir = target.join(&ts_name);
        for (path, file) in payload {
            let dest = ts_dir.join(path);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io_err("create", parent))?;
            }
            fs::write(&dest, file.data.expose_secret()).map_err(io_err("write", &dest))?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(file.mode))
                .map_err(io_err("chmod", &dest))?;
        }

        let tmp = target.join(DATA_DIR_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &tmp)(e)),
        }
        symlink(&ts_name, &tmp).map_err(io_err("symlink", &tmp))?;
        let data = target.join(DATA_DIR);
        fs::rename(&tmp, &data).map_err(io_err("rename", &data))?;

        let new_top: BTreeSet<String> = payload.keys().map(|p| top_level(p)).collect();
        for name in &new_top {
            let link = target.join(name);
            if fs::symlink_metadata(&link).is_err() {
                symlink(Path::new(DATA_DIR).join(name), &link).map_err(io_err("symlink", &link))?;
            }
        }
        for name in old_paths.iter().map(|p| top_level(p)) {
            if !new_top.contains(&name) {
                let link = target.join(&name);
                match fs::remove_file(&link) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove", &link)(e)),
                }
            }
        }
        if let Some(old) = old_dir {
            let old = target.join(old);
            fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
        }
        Ok(true)
    }

    /// Creates `..<UTC timestamp>.<nanoseconds>` (0755) and returns its name.
    fn new_timestamp_dir(&self) -> Result<String, WriteError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for attempt in 0..1000u32 {
            let name = format!(
                "..{}.{:09}",
                utc_timestamp(now.as_secs()),
                now.subsec_nanos().wrapping_add(attempt)
            );
            let dir = self.target.join(&name);
            match fs::create_dir(&dir) {
                Ok(()) => {
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                        .map_err(io_err("chmod", &dir))?;
                    return Ok(name);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &dir)(e)),
            }
        }
        Err(io_err("create", &self.target)(io::Error::other(
            "no free timestamped directory name",
        )))
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io { op, path, source }
}

/// The kubelet's `validatePath`: relative, non-empty, no `..` element, not starting `..`.
pub(crate) fn check_path(path: &str) -> Result<(), WriteError> {
    let p = Path::new(path);
    let bad = path.is_empty()
        || path.starts_with("..")
        || p.is_absolute()
        || p.components().any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(WriteError::InvalidPath(path.to_owned()));
    }
    Ok(())
}

fn top_level(path: &str) -> String {
    path.split('/').next().unwrap_or(path).to_owned()
}

/// Every regular file under `dir`, as paths relative to it.
fn list_files(dir: &Path) -> Result<BTreeSet<String>, WriteError> {
    fn walk(base: &Path, rel: &str, out: &mut BTreeSet<String>) -> Result<(), WriteError> {
        let dir = base.join(rel);
        for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
            let entry = entry.map_err(io_err("read", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry.file_type().map_err(io_err("stat", &entry.path()))?;
            if kind.is_dir() {
                walk(base, &rel, out)?;
            } else {
                out.insert(rel);
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    match fs::metadata(dir) {
        Ok(_) => walk(dir, "", &mut out)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("stat", dir)(e)),
    }
    Ok(out)
}

/// Whether `dir` holds exactly `payload`, with the same bytes and modes.
fn same_contents(dir: &Path, payload: &Payload) -> Result<bool, WriteError> {
    if list_files(dir)? != payload.keys().cloned().collect() {
        return Ok(false);
    }
    for (path, file) in payload {
        let p = dir.join(path);
        let meta = fs::metadata(&p).map_err(io_err("stat", &p))?;
        if meta.permissions().mode() & 0o7777 != file.mode {
            return Ok(false);
        }
        let bytes = zeroize::Zeroizing::new(fs::read(&p).map_err(io_err("read", &p))?);
        if bytes.as_slice() != file.data.expose_secret() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `2006_01_02_15_04_05` (Go layout) for `secs` since the epoch, in UTC.
fn utc_timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::FileProjection;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, v, m)| {
                (
                    (*p).to_owned(),
                    FileProjection {
                        data: (*v).into(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("read")
    }

    fn ts_dirs(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_DIR)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_timestamped_dir_data_link_and_user_links() {
        let tmp = tempfile::tempdir().expect("tmp");
        let w = AtomicWriter::new(tmp.path().join("vol"));
        let p = payload(&[
            ("username", "admin", 0o644),
            ("password", "pw1", 0o400),
            ("nested/dir/file", "n", 0o600),
        ]);
        assert!(w.write(&p).expect("write"));
        let vol = w.target();
        let dirs = ts_dirs(vol);
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        assert_eq!(
            fs::read_link(vol.join("..data")).expect("link"),
            Path::new(&dirs[0])
        );
        assert_eq!(
            fs::read_link(vol.join("username")).expect("link"),
            Path::new("..data/username")
        );
        assert_eq!(
            fs::read_link(vol.join("nested")).expect("link"),
            Path::new("..data/nested")
        );
        assert_eq!(read(&vol.join("username")), "admin");
        assert_eq!(read(&vol.join("nested/dir/file")), "n");
        let mode = |p: &str| {
            fs::metadata(vol.join(p))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("username"), 0o644);
        assert_eq!(mode("password"), 0o400);
        assert_eq!(mode("nested/dir/file"), 0o600);
        assert_eq!(mode(&dirs[0]), 0o755);
        // Same payload: nothing is written.
        assert!(!w.write(&p).expect("rewrite"));
        assert_eq!(ts_dirs(vol), dirs);
    }

    #[test]
    fn an_update_replaces_all_files_at_once_and_removes_the_old_dir() {
        let tmp = tempfile::tempdir().expect("tmp");
        let w = AtomicWriter::new(tmp.path().join("vol"));
        w.write(&payload(&[("a", "1", 0o644), ("b", "1", 0o644)]))
            .expect("first");
        let vol = w.target();
        let first = ts_dirs(vol);
        w.write(&payload(&[("a", "2", 0o644), ("c", "2", 0o644)]))
            .expect("second");
        let second = ts_dirs(vol);
        assert_eq!(second.len(), 1);
        assert_ne!(first, second, "a new timestamped directory");
        assert_eq!(read(&vol.join("a")), "2");
        assert_eq!(read(&vol.join("c")), "2");
        assert!(fs::symlink_metadata(vol.join("b")).is_err(), "b removed");
        assert!(!vol.join(&first[0]).exists(), "old directory removed");
        // A mode change alone is a change.
        assert!(
            w.write(&payload(&[("a", "2", 0o600), ("c", "2", 0o644)]))
                .expect("third")
        );
        // An empty payload leaves an empty volume.
        assert!(w.write(&Payload::new()).expect("empty"));
        assert!(fs::symlink_metadata(vol.join("a")).is_err());
        assert_eq!(fs::read_dir(vol.join("..data")).expect("data").count(), 0);
    }

    #[test]
    fn readers_never_see_a_mix() {
        let tmp = tempfile::tempdir().expect("tmp");
        let w = AtomicWriter::new(tmp.path().join("vol"));
        w.write(&payload(&[("a", "0", 0o644), ("b", "0", 0o644)]))
            .expect("first");
        let data = w.target().join("..data");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Resolve `..data` once, then read both files of that one version, as a
                    // reader that opens the directory does.
                    let Ok(dir) = fs::canonicalize(&data) else {
                        continue;
                    };
                    let (Ok(a), Ok(b)) = (
                        fs::read_to_string(dir.join("a")),
                        fs::read_to_string(dir.join("b")),
                    ) else {
                        continue; // the old version was removed under us
                    };
                    assert_eq!(a, b, "mixed set");
                    reads += 1;
                }
                reads
            })
        };
        for i in 1..=1000 {
            let v = i.to_string();
            w.write(&payload(&[("a", &v, 0o644), ("b", &v, 0o644)]))
                .expect("update");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
    }

    #[test]
    fn rejects_bad_paths() {
        let tmp = tempfile::tempdir().expect("tmp");
        let w = AtomicWriter::new(tmp.path().join("vol"));
        for bad in ["", "/abs", "../up", "a/../b", "..hidden", "./a"] {
            let err = w.write(&payload(&[(bad, "x", 0o644)])).expect_err(bad);
            assert!(matches!(err, WriteError::InvalidPath(_)), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970_01_01_00_00_00");
        assert_eq!(utc_timestamp(1_709_251_199), "2024_02_29_23_59_59");
        assert_eq!(utc_timestamp(1_798_761_600), "2027_01_01_00_00_00");
    }
}
