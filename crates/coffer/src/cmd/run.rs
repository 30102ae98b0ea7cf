//! `coffer run`: start a process from a Pod manifest as a kubelet starts a container, with its
//! Secrets as env vars and files, live-updated. The work is in `coffer-agent`; this module
//! only parses flags. See `docs/run.md`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use coffer_agent::{ClientOptions, OnChange, RunOptions, SHM_DIR};

const EXAMPLES: &str = "\
Examples:
  coffer run -f app-pod.yaml -- ./server           the container's env and secret volumes
  coffer run -f deploy.yaml -c web                 run the container's own command + args
  coffer run -f app-pod.yaml --mount-root /tmp/m -- sh -c 'cat $COFFER_MOUNT_ROOT/etc/secrets/username'
  coffer run -f app-pod.yaml --on-change signal:HUP -- nginx -g 'daemon off;'
  coffer run -f app-pod.yaml --on-change restart -- ./server   (new env values need a restart)

The server is found as kubectl finds it: --kubeconfig, then $KUBECONFIG, then ~/.kube/config.
Files live in a private directory under /dev/shm and are removed when the process ends.
Exit status: the process's own (128 + N when signal N ended it); 1 when it could not start.";

/// Flags of `coffer run`.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The manifest: a Pod, or a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
    /// CronJob (its pod template is used).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    filename: PathBuf,

    /// The container to run (default: the first).
    #[arg(short = 'c', long, value_name = "NAME")]
    container: Option<String>,

    /// The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,

    /// The kubeconfig context (default: its current-context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,

    /// The namespace (default: the manifest's, else the context's, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    namespace: Option<String>,

    /// Place each mountPath under DIR (`/etc/secrets` -> DIR/etc/secrets) instead of at the
    /// path as written; the process gets DIR in $COFFER_MOUNT_ROOT.
    #[arg(long, value_name = "DIR")]
    mount_root: Option<PathBuf>,

    /// What happens to the process when a watched Secret changes: none (files only),
    /// signal:NAME (e.g. signal:HUP), or restart (the only way to pass new env values).
    #[arg(long, value_name = "ACTION", default_value = "none")]
    on_change: OnChange,

    /// Pass coffer's whole environment to the process under the container's env (default:
    /// only PATH and HOME).
    #[arg(long)]
    inherit_env: bool,

    /// The memory-backed directory for volume files.
    #[arg(long, value_name = "DIR", default_value = SHM_DIR)]
    shm_dir: PathBuf,

    /// The command to run instead of the container's command and args.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Runs `coffer run`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = RunOptions {
        manifest: args.filename,
        container: args.container,
        command: args.command,
        client: ClientOptions {
            kubeconfig: args.kubeconfig,
            context: args.context,
        },
        namespace: args.namespace,
        mount_root: args.mount_root,
        shm_dir: args.shm_dir,
        on_change: args.on_change,
        inherit_env: args.inherit_env,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    // Each coffer-agent message already ends with its cause; `anyhow!` keeps the one line so
    // `{:#}` does not repeat the chain.
    let code = runtime
        .block_on(coffer_agent::run(options))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
