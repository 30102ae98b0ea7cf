//! Where volume files live and how they appear at their `mountPath`.
//!
//! Files live only in memory, in `coffer-run-<pid>-<n>/` under `/dev/shm`, with one
//! [`AtomicWriter`] directory per volume. Where a mount appears is `mountPath` as written,
//! or `DIR/<mountPath>` with `--mount-root DIR` (`/etc/secrets` becomes `DIR/etc/secrets`).
//! Two ways to get there:
//!
//! - **Private** (in a [`PrivateNamespace`]): a tmpfs of its own (mode 0700, size-limited) is
//!   mounted on that directory, and each volume directory is bind-mounted read-only at its
//!   mount path, as the kubelet mounts secret volumes. Only Coffer and its process see the
//!   mounts; an existing directory at the path is covered for them alone. A missing mount
//!   point directory is created (empty, visible on the host) and left in place: removing it
//!   would also unmount it from any other `coffer run` using the same path, since Linux
//!   detaches the mounts of other namespaces when their mount point is removed.
//! - **Fallback** (no private namespace): the directory is a plain 0700 directory on the
//!   `/dev/shm` tmpfs, and the mount path becomes a symlink to the volume directory (its
//!   parent directories are created; an existing empty directory is replaced for the run
//!   and restored afterwards; anything else there is an error that suggests `--mount-root`).
//!   Only symlinks are created outside `/dev/shm`.
//!
//! A `subPath` mount gets a private copy of that path made at start, not updated later (as
//! in Kubernetes, where a subPath bind mount keeps the file it was given).
//!
//! Dropping the [`Workspace`] removes the symlinks, the directories it created and the
//! in-memory files.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::AtomicWriter;
use crate::private_mount::PrivateNamespace;

/// The default base of the in-memory directory.
pub const SHM_DIR: &str = "/dev/shm";

/// Why the in-memory directory or a mount could not be set up.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The base directory is missing or not writable.
    #[error(
        "cannot create a private directory in {base} (memory-backed storage is needed so secrets never reach the disk): {source}"
    )]
    Base {
        /// The base directory.
        base: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A mount path could not be created.
    #[error(
        "cannot mount volume {volume:?} at {path}: {reason}; use --mount-root DIR to place mounts under DIR"
    )]
    Mount {
        /// The volume.
        volume: String,
        /// Where it was to appear.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A `subPath` names nothing in the volume.
    #[error("volume {volume:?}: subPath {sub_path:?} does not exist in the volume")]
    SubPath {
        /// The volume.
        volume: String,
        /// The subPath.
        sub_path: String,
    },
    /// Copying a `subPath` failed.
    #[error("copying subPath {path}: {source}")]
    Copy {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The private in-memory directory of one `coffer run`, and the mounts made from it.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    mount_root: Option<PathBuf>,
    /// Symlinks made at mount paths, to remove at the end.
    links: Vec<PathBuf>,
    /// Empty directories replaced by a mount symlink, to recreate at the end.
    replaced_dirs: Vec<PathBuf>,
    /// Directories created for mount paths, deepest last, removed at the end when empty.
    created_dirs: Vec<PathBuf>,
    subpaths: usize,
    /// Set when the files are on a private tmpfs and mounts are bind mounts.
    private: Option<PrivateNamespace>,
    /// Bind mounts made, to detach at the end.
    binds: Vec<PathBuf>,
}

impl Workspace {
    /// Creates `<base>/coffer-run-<pid>-<n>` with mode 0700. `mount_root` maps mount paths
    /// (made absolute here). With `private`, a tmpfs is mounted on the directory and mounts
    /// are read-only bind mounts; if the tmpfs cannot be mounted, Coffer says so (info) and
    /// falls back to the plain directory and symlinks.
    pub fn create(
        base: &Path,
        mount_root: Option<&Path>,
        private: Option<PrivateNamespace>,
    ) -> Result<Self, WorkspaceError> {
        let pid = std::process::id();
        remove_stale(base);
        let base_err = |source| WorkspaceError::Base {
            base: base.to_path_buf(),
            source,
        };
        let mut n = 0u32;
        let root = loop {
            let candidate = base.join(format!("coffer-run-{pid}-{n}"));
            match fs::DirBuilder::new().mode(0o700).create(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(base_err(e)),
            }
        };
        // The umask may have narrowed the mode; make sure it is exactly 0700.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(base_err)?;
        let mount_root = match mount_root {
            Some(r) if r.is_relative() => Some(std::env::current_dir().map_err(base_err)?.join(r)),
            other => other.map(Path::to_path_buf),
        };
        let private = private.and_then(|ns| match ns.mount_tmpfs(&root) {
            Ok(()) => Some(ns),
            Err(err) => {
                tracing::info!(
                    dir = %root.display(),
                    error = %err,
                    "cannot mount a private tmpfs; using the directory on /dev/shm and symlinks"
                );
                None
            }
        });
        Ok(Self {
            root,
            mount_root,
            links: Vec::new(),
            replaced_dirs: Vec::new(),
            created_dirs: Vec::new(),
            subpaths: 0,
            private,
            binds: Vec::new(),
        })
    }

    /// Whether the files are on a private tmpfs and mounts are read-only bind mounts.
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// The private directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `--mount-root`, absolute, if given.
    pub fn mount_root(&self) -> Option<&Path> {
        self.mount_root.as_deref()
    }

    /// The atomic writer of volume `name`.
    pub fn writer(&self, volume: &str) -> AtomicWriter {
        AtomicWriter::new(self.root.join("volumes").join(volume))
    }

    /// Where `mount_path` appears to the process: as written, or under `--mount-root`.
    pub fn visible_path(&self, mount_path: &str) -> PathBuf {
        match &self.mount_root {
            Some(root) => root.join(mount_path.trim_start_matches('/')),
            None => PathBuf::from(mount_path),
        }
    }

    /// Makes `mount_path` show volume `volume` (already written), or only its `sub_path` as
    /// a snapshot. Returns the visible path.
    pub fn mount(
        &mut self,
        volume: &str,
        mount_path: &str,
        sub_path: Option<&str>,
    ) -> Result<PathBuf, WorkspaceError> {
        let visible = self.visible_path(mount_path);
        let mount_err = |reason: String| WorkspaceError::Mount {
            volume: volume.to_owned(),
            path: visible.clone(),
            reason,
        };
        let source = self.writer(volume).target().to_path_buf();
        let target = match sub_path {
            None => source,
            Some(sub) => self.snapshot(volume, &source, sub)?,
        };
        if let Some(ns) = self.private {
            self.bind(ns, &target, &visible).map_err(mount_err)?;
            return Ok(visible);
        }

        match fs::symlink_metadata(&visible) {
            Ok(meta) if meta.is_dir() => {
                let empty = fs::read_dir(&visible)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if !empty {
                    return Err(mount_err("it is a directory that is not empty".into()));
                }
                fs::remove_dir(&visible).map_err(|e| mount_err(e.to_string()))?;
                self.replaced_dirs.push(visible.clone());
            }
            Ok(_) => return Err(mount_err("something already exists there".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(mount_err(e.to_string())),
        }
        if let Some(parent) = visible.parent() {
            let mut missing = Vec::new();
            let mut p = parent;
            while !p.exists() {
                missing.push(p.to_path_buf());
                match p.parent() {
                    Some(up) => p = up,
                    None => break,
                }
            }
            fs::create_dir_all(parent).map_err(|e| mount_err(e.to_string()))?;
            self.created_dirs.extend(missing.into_iter().rev());
        }
        symlink(&target, &visible).map_err(|e| mount_err(e.to_string()))?;
        self.links.push(visible.clone());
        Ok(visible)
    }

    /// Makes a mount point at `visible` (of `target`'s type) if there is none, and
    /// bind-mounts `target` on it read-only.
    fn bind(&mut self, ns: PrivateNamespace, target: &Path, visible: &Path) -> Result<(), String> {
        let is_dir = target.is_dir();
        match fs::metadata(visible) {
            Ok(meta) if meta.is_dir() != is_dir => {
                let what = if is_dir { "a directory" } else { "a file" };
                return Err(format!("{what} cannot be mounted over what is there"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Left in place at the end: see the module docs.
                let made = if is_dir {
                    fs::create_dir_all(visible)
                } else {
                    visible
                        .parent()
                        .map_or(Ok(()), fs::create_dir_all)
                        .and_then(|()| fs::File::create(visible).map(drop))
                };
                made.map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
        ns.bind_read_only(target, visible)
            .map_err(|e| format!("bind mount: {e}"))?;
        self.binds.push(visible.to_path_buf());
        Ok(())
    }

    /// Copies `source/sub` into a private directory and returns the copy's path.
    fn snapshot(
        &mut self,
        volume: &str,
        source: &Path,
        sub: &str,
    ) -> Result<PathBuf, WorkspaceError> {
        let from = source.join(sub);
        if crate::atomic_writer::check_path(sub).is_err() || !from.exists() {
            return Err(WorkspaceError::SubPath {
                volume: volume.to_owned(),
                sub_path: sub.to_owned(),
            });
        }
        self.subpaths += 1;
        let dir = self.root.join("subpaths").join(self.subpaths.to_string());
        let copy_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WorkspaceError::Copy { path, source }
        };
        fs::create_dir_all(&dir).map_err(copy_err(&dir))?;
        let name = Path::new(sub)
            .file_name()
            .map(Path::new)
            .unwrap_or(Path::new("subpath"));
        let to = dir.join(name);
        copy_recursive(&from, &to).map_err(copy_err(&from))?;
        Ok(to)
    }
}

/// Removes `coffer-run-<pid>-<n>` directories whose process is gone: a `coffer run` killed
/// with SIGKILL cannot remove its files, so the next one does. Another user's directories
/// cannot be removed (0700 in a sticky directory) and are left alone.
fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return; // no way to tell which processes are alive
    }
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("coffer-run-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            tracing::debug!(dir = %entry.path().display(), "removing a stale coffer run directory");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn copy_recursive(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_recursive(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        fs::copy(from, to)?;
    }
    fs::set_permissions(to, meta.permissions())
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(ns) = self.private {
            for bind in self.binds.drain(..).rev() {
                ns.unmount(&bind);
            }
            ns.unmount(&self.root);
        }
        for link in self.links.drain(..).rev() {
            let _ = fs::remove_file(&link);
        }
        for dir in self.replaced_dirs.drain(..) {
            let _ = fs::create_dir(&dir);
        }
        for dir in self.created_dirs.drain(..).rev() {
            let _ = fs::remove_dir(&dir);
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::{FileProjection, Payload};

    fn payload() -> Payload {
        [("username", "admin"), ("password", "pw")]
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    FileProjection {
                        data: v.into(),
                        mode: 0o644,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn mounts_under_a_mount_root_and_cleans_up() {
        let base = tempfile::tempdir().expect("base");
        let mroot = tempfile::tempdir().expect("mount root");
        let mut ws = Workspace::create(base.path(), Some(mroot.path()), None).expect("ws");
        let root = ws.root().to_path_buf();
        assert_eq!(
            fs::metadata(&root).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        ws.writer("secret-volume").write(&payload()).expect("write");
        let visible = ws
            .mount("secret-volume", "/etc/secrets", None)
            .expect("mount");
        assert_eq!(visible, mroot.path().join("etc/secrets"));
        assert_eq!(
            fs::read_to_string(visible.join("username")).expect("read"),
            "admin"
        );
        let single = ws
            .mount("secret-volume", "/etc/app/pw", Some("password"))
            .expect("subpath");
        assert_eq!(fs::read_to_string(&single).expect("read"), "pw");
        // Updates reach the full mount, not the subPath copy.
        let mut p = payload();
        p.insert(
            "password".into(),
            FileProjection {
                data: "pw2".into(),
                mode: 0o644,
            },
        );
        ws.writer("secret-volume").write(&p).expect("update");
        assert_eq!(
            fs::read_to_string(visible.join("password")).expect("read"),
            "pw2"
        );
        assert_eq!(fs::read_to_string(&single).expect("read"), "pw");
        drop(ws);
        assert!(!root.exists());
        assert!(!mroot.path().join("etc").exists(), "created dirs removed");
    }

    #[test]
    fn removes_directories_of_dead_runs() {
        let base = tempfile::tempdir().expect("base");
        let dead = base.path().join("coffer-run-999999999-0");
        let alive = base
            .path()
            .join(format!("coffer-run-{}-77", std::process::id()));
        let other = base.path().join("something-else");
        for d in [&dead, &alive, &other] {
            fs::create_dir(d).expect("mkdir");
        }
        let ws = Workspace::create(base.path(), None, None).expect("ws");
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
        drop(ws);
    }

    #[test]
    fn refuses_to_cover_existing_files() {
        let base = tempfile::tempdir().expect("base");
        let mroot = tempfile::tempdir().expect("mount root");
        fs::create_dir_all(mroot.path().join("full")).expect("mkdir");
        fs::write(mroot.path().join("full/x"), "x").expect("write");
        fs::create_dir_all(mroot.path().join("empty")).expect("mkdir");
        let mut ws = Workspace::create(base.path(), Some(mroot.path()), None).expect("ws");
        ws.writer("v").write(&payload()).expect("write");
        let err = ws.mount("v", "/full", None).expect_err("not empty");
        assert!(err.to_string().contains("--mount-root"), "{err}");
        ws.mount("v", "/empty", None)
            .expect("empty dir is replaced");
        assert!(ws.mount("v", "/nope", Some("missing")).is_err());
        drop(ws);
        assert!(mroot.path().join("empty").is_dir(), "empty dir restored");
    }
}
