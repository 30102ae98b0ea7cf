//! A private mount namespace, so volume files can live on a tmpfs of their own and appear at
//! each `mountPath` as a read-only bind mount that only the process (and Coffer) can see.
//!
//! `unshare(CLONE_NEWNS)` moves only the *calling thread* into the new namespace (with the
//! threads it creates afterwards; `unshare(2)`), so [`PrivateNamespace::enter`] must run on
//! the thread that later builds the async runtime and before it does: then every runtime
//! thread, every mount Coffer makes and every process it spawns are inside. Right after the
//! unshare, `/` is made recursively private (`MS_REC | MS_PRIVATE`); without that, mounts
//! on shared mounts (systemd makes `/` shared) would propagate back to the host, so if it
//! fails nothing is mounted and Coffer falls back to the `/dev/shm` directory.
//!
//! The namespace ends with its last process: the tmpfs and the bind mounts vanish with
//! Coffer and its process, even after a SIGKILL.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// The size limit of the private tmpfs that holds the volume files. Secrets and ConfigMaps
/// are at most 1 MiB each; the atomic writer holds two versions of a volume for a moment.
pub const TMPFS_SIZE: &str = "64m";

/// Proof that this thread (and the threads it starts from now on) runs in a private mount
/// namespace whose mounts do not propagate to the host. Only [`PrivateNamespace::enter`]
/// makes one.
#[derive(Clone, Copy, Debug)]
pub struct PrivateNamespace {
    _private: (),
}

/// Why no private mount namespace could be made (Coffer then uses a `/dev/shm` directory).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateMountError {
    /// `unshare(CLONE_NEWNS)` was refused (not root and no CAP_SYS_ADMIN, or a seccomp
    /// filter).
    #[error("unshare(CLONE_NEWNS): {0}")]
    Unshare(#[source] nix::Error),
    /// `/` could not be made private, so mounts could leak to the host.
    #[error("making / a private mount: {0}")]
    MakePrivate(#[source] nix::Error),
}

impl PrivateNamespace {
    /// Moves the calling thread into a new mount namespace and makes every mount in it
    /// private. Call it on the main thread before any other thread (the async runtime) is
    /// started; threads started earlier stay in the host's namespace.
    pub fn enter() -> Result<Self, PrivateMountError> {
        unshare(CloneFlags::CLONE_NEWNS).map_err(PrivateMountError::Unshare)?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(PrivateMountError::MakePrivate)?;
        Ok(Self { _private: () })
    }

    /// Mounts a tmpfs (mode 0700, [`TMPFS_SIZE`], no devices, no setuid) on `dir`.
    pub(crate) fn mount_tmpfs(self, dir: &Path) -> nix::Result<()> {
        let options = format!("mode=0700,size={TMPFS_SIZE}");
        mount(
            Some("coffer"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
    }

    /// Bind-mounts `source` (a directory or a file) on `target` read-only, as the kubelet
    /// mounts secret, configMap, downwardAPI and projected volumes.
    pub(crate) fn bind_read_only(self, source: &Path, target: &Path) -> nix::Result<()> {
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        // A bind mount takes MS_RDONLY only through a remount.
        let remounted = mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        );
        if let Err(err) = remounted {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(err);
        }
        Ok(())
    }

    /// Detaches the mount at `target` (lazily, so a process still using it is not broken).
    pub(crate) fn unmount(self, target: &Path) {
        if let Err(err) = umount2(target, MntFlags::MNT_DETACH) {
            tracing::debug!(path = %target.display(), error = %err, "unmount failed");
        }
    }
}
