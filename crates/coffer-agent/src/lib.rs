//! `coffer run`: start a process the way a kubelet starts a container, for a plain process on
//! any machine.
//!
//! Coffer reads a Pod manifest (or a workload's pod template), picks a container, fetches the
//! Secrets and ConfigMaps it names from an API server (Coffer's or any Kubernetes one, found
//! through a kubeconfig as kubectl finds it), and starts the process with:
//!
//! - the container's environment, built with the kubelet's rules ([`build_env`]);
//! - its secret and projected volumes as files in memory-backed storage, written with the
//!   kubelet's atomic writer ([`AtomicWriter`]) and placed at each `mountPath` (or under
//!   `--mount-root`, see [`Workspace`]): read-only bind mounts of a private tmpfs in a
//!   private mount namespace where Coffer may make one ([`PrivateNamespace`]), otherwise
//!   symlinks to a 0700 directory under `/dev/shm`;
//! - its configMap, downwardAPI ([`PodInfo`]) and projected volumes, including
//!   ServiceAccount tokens requested through TokenRequest and refreshed as the kubelet
//!   does, and the automatic `/var/run/secrets/kubernetes.io/serviceaccount` volume;
//! - live updates: the referenced Secrets and ConfigMaps are watched and the files
//!   rewritten within a second of a change; the process can be signalled or restarted
//!   ([`OnChange`]).
//!
//! Where to start: [`run`] with [`RunOptions`] is the whole command. The Kubernetes semantics
//! ([`parse_manifest`], [`build_env`], [`volume_payload`]) do no I/O and are tested alone;
//! [`AtomicWriter`] and [`Workspace`] touch only the file system; [`Cluster`] is the only
//! part that talks to the API.
//!
//! Secret values are held in [`SecretValue`] (zeroized on drop, redacted in `Debug`) and never
//! appear in errors, warnings or logs.
#![forbid(unsafe_code)]

mod atomic_writer;
mod client;
mod data;
mod downward;
mod env;
mod error;
mod manifest;
mod private_mount;
mod runner;
mod schedule;
mod service_account;
mod volumes;
mod workspace;

// The public interface.
pub use atomic_writer::{AtomicWriter, WriteError};
pub use client::{ClientError, ClientOptions, Cluster, IssuedToken, SourceUpdate};
pub use data::{ConfigMapData, References, SecretData, SecretValue, Sources, TokenSpec};
pub use downward::{
    DownwardError, LocalFacts, PodInfo, format_map, parse_quantity, service_account_name,
};
pub use env::{
    EnvError, EnvOutcome, Environment, build_env, env_references, expand, expand_command,
    is_env_var_name,
};
pub use error::{Error, Result};
pub use manifest::{ManifestError, PodTemplate, parse_manifest};
pub use private_mount::{PrivateMountError, PrivateNamespace, TMPFS_SIZE};
pub use runner::{MOUNT_ROOT_VAR, OnChange, OnChangeParseError, RunOptions, run};
pub use service_account::{
    AUTOMOUNT_EXPIRATION_SECONDS, DEFAULT_EXPIRATION_SECONDS, MAX_TOKEN_AGE,
    MIN_EXPIRATION_SECONDS, ROOT_CA_CONFIG_MAP, SERVICE_ACCOUNT_MOUNT_PATH, SERVICE_ACCOUNT_VOLUME,
    add_service_account_volume, automount_token_spec, refresh_delay, token_spec,
};
pub use volumes::{
    DEFAULT_MODE, FileProjection, MountPlan, Payload, VolumeError, mount_plans, volume_payload,
    volume_references,
};
pub use workspace::{SHM_DIR, Workspace, WorkspaceError};
