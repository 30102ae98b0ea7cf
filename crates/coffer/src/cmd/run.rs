//! `coffer run`: start a process from a Pod manifest as a kubelet starts a container, with its
//! Secrets as env vars and files, live-updated. The work is in `coffer-agent`; this module
//! only parses flags. See `docs/run.md`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use coffer_agent::{ClientOptions, OnChange, PrivateNamespace, RunOptions, SHM_DIR};

const EXAMPLES: &str = "\
Examples:
  coffer run -f app-pod.yaml -- ./server           the container's env and secret volumes
  coffer run -f deploy.yaml -c web                 run the container's own command + args
  coffer run -f app-pod.yaml --mount-root /tmp/m -- sh -c 'cat $COFFER_MOUNT_ROOT/etc/secrets/username'
  coffer run -f app-pod.yaml --on-change signal:HUP -- nginx -g 'daemon off;'
  coffer run -f app-pod.yaml --on-change restart -- ./server   (new env values need a restart)

The server is found as kubectl finds it: --kubeconfig, then $KUBECONFIG, then ~/.kube/config.
Files live in memory only: as root (or with CAP_SYS_ADMIN), on a private tmpfs in a private
mount namespace, bind-mounted read-only at each mountPath for the process alone; otherwise in a
0700 directory under /dev/shm, with a symlink at each mountPath. They are removed when the
process ends.
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

    /// Do not make a private mount namespace even where permitted: keep the files in a
    /// directory under --shm-dir and make each mountPath a symlink to it.
    #[arg(long)]
    no_private_mount: bool,

    /// Replace ServiceAccount tokens at the latest when they are this old (they are replaced
    /// anyway at 80% of their lifetime), like 90s, 10m or 24h.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    token_max_age: Duration,

    /// The memory-backed directory for volume files.
    #[arg(long, value_name = "DIR", default_value = SHM_DIR)]
    shm_dir: PathBuf,

    /// The command to run instead of the container's command and args.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Runs `coffer run`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = RunOptions {
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
        private_namespace: None,
        token_max_age: args.token_max_age,
    };
    // unshare(CLONE_NEWNS) moves only the calling thread: this must happen here, on the main
    // thread, before the runtime starts its threads (they then inherit the namespace).
    if !args.no_private_mount {
        match PrivateNamespace::enter() {
            Ok(ns) => options.private_namespace = Some(ns),
            Err(err) => tracing::info!(
                "no private mount namespace ({err}); volume files go in a directory under {} \
                 and mount paths become symlinks",
                options.shm_dir.display()
            ),
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    // Each coffer-agent message already ends with its cause; `anyhow!` keeps the one line so
    // `{:#}` does not repeat the chain.
    let code = runtime
        .block_on(coffer_agent::run(options))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `90s`, `10m`, `24h` or plain seconds; at least one second.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m or 24h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?} is not a duration like 90s, 10m or 24h")),
    };
    if seconds == 0 {
        return Err("the duration must be at least 1s".to_owned());
    }
    Ok(Duration::from_secs(seconds))
}
