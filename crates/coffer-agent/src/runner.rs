//! `coffer run` end to end: read the manifest, fetch, build env and volumes, start the
//! process, forward signals, apply live updates, clean up.
//!
//! The child's environment is the container's env (as built by [`crate::build_env`]) on top
//! of `PATH` and `HOME` from Coffer's own environment (the kubelet gives a container only its
//! env plus the image's; there is no image here, so the host's `PATH`/`HOME` stand in), plus
//! [`MOUNT_ROOT_VAR`] when `--mount-root` is used. `--inherit-env` passes Coffer's whole
//! environment underneath instead.
//!
//! Live updates: every referenced Secret is watched. Changes are debounced (applied 100 ms
//! after the last change of a burst, at most 500 ms after its first), then each volume is
//! rewritten atomically (unchanged volumes are not touched) and, if a file or the env
//! changed, [`OnChange`] says what happens to the process, at most once per second.
//! Environment variables of a running process cannot change (as in Kubernetes): only
//! `restart` gives the process the new values. `subPath` mounts are snapshots and are not
//! updated. If a Secret disappears or loses a key, the last good files and env are kept and
//! a warning is logged.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::manifest::PodTemplate;
use crate::schedule::Schedule;
use crate::workspace::SHM_DIR;
use crate::{
    ClientOptions, Cluster, Environment, Error, MountPlan, Result, Sources, Workspace, build_env,
    env_references, expand_command, mount_plans, parse_manifest, volume_payload, volume_references,
};

/// The variable that tells the process where `--mount-root` put its mounts: a `mountPath`
/// of `/etc/secrets` is then at `$COFFER_MOUNT_ROOT/etc/secrets`. Unset without
/// `--mount-root`.
pub const MOUNT_ROOT_VAR: &str = "COFFER_MOUNT_ROOT";

/// `PATH` for the child when Coffer itself has none (the kubelet's default for containers).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a restarted process has to exit after SIGTERM before it gets SIGKILL.
const RESTART_GRACE: Duration = Duration::from_secs(10);
/// Signals Coffer passes on to the process.
const FORWARDED: [(SignalKind, Signal); 6] = [
    (SignalKind::interrupt(), Signal::INT),
    (SignalKind::terminate(), Signal::TERM),
    (SignalKind::hangup(), Signal::HUP),
    (SignalKind::quit(), Signal::QUIT),
    (SignalKind::user_defined1(), Signal::USR1),
    (SignalKind::user_defined2(), Signal::USR2),
];

/// What happens to the process when a watched Secret changes its files or env.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnChange {
    /// Only the files change (the default; env keeps its start values).
    #[default]
    None,
    /// The process gets this signal (`signal:HUP`).
    Signal(Signal),
    /// The process is stopped (SIGTERM, SIGKILL after 10 s) and started again with the new
    /// env.
    Restart,
}

/// Why an `--on-change` value was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid --on-change {0:?}: use none, restart or signal:NAME (NAME one of HUP, INT, QUIT, TERM, USR1, USR2, WINCH)"
)]
pub struct OnChangeParseError(String);

impl FromStr for OnChange {
    type Err = OnChangeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || OnChangeParseError(s.to_owned());
        match s {
            "none" => Ok(Self::None),
            "restart" => Ok(Self::Restart),
            _ => {
                let name = s.strip_prefix("signal:").ok_or_else(err)?;
                let name = name.strip_prefix("SIG").unwrap_or(name);
                let sig = match name.to_ascii_uppercase().as_str() {
                    "HUP" => Signal::HUP,
                    "INT" => Signal::INT,
                    "QUIT" => Signal::QUIT,
                    "TERM" => Signal::TERM,
                    "USR1" => Signal::USR1,
                    "USR2" => Signal::USR2,
                    "WINCH" => Signal::WINCH,
                    _ => return Err(err()),
                };
                Ok(Self::Signal(sig))
            }
        }
    }
}

/// Everything `coffer run` is told.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `-f`: the manifest file.
    pub manifest: PathBuf,
    /// `--container`: the container (default the first).
    pub container: Option<String>,
    /// The command after `--`; empty: the container's `command` + `args`.
    pub command: Vec<OsString>,
    /// `--kubeconfig`, `--context`.
    pub client: ClientOptions,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
    /// `--mount-root`.
    pub mount_root: Option<PathBuf>,
    /// Where the private in-memory directory is made (`/dev/shm`).
    pub shm_dir: PathBuf,
    /// `--on-change`.
    pub on_change: OnChange,
    /// `--inherit-env`: pass Coffer's whole environment under the container's.
    pub inherit_env: bool,
}

impl RunOptions {
    /// Options for `manifest` with every other setting at its default.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            container: None,
            command: Vec::new(),
            client: ClientOptions::default(),
            namespace: None,
            mount_root: None,
            shm_dir: PathBuf::from(SHM_DIR),
            on_change: OnChange::None,
            inherit_env: false,
        }
    }
}

/// Runs the process until it exits and returns its exit code (128 + signal number when a
/// signal ended it, as shells report). The in-memory files are removed before returning.
pub async fn run(options: RunOptions) -> Result<i32> {
    let text =
        std::fs::read_to_string(&options.manifest).map_err(|source| Error::ReadManifest {
            path: options.manifest.display().to_string(),
            source,
        })?;
    let pod = parse_manifest(&text)?;
    let container = pod.container(options.container.as_deref())?.clone();
    let cluster = Cluster::connect(&options.client).await?;
    let namespace = namespace(&pod, options.namespace.as_deref(), &cluster)?;

    let (plans, warnings) = mount_plans(&pod.spec, &container)?;
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    let mut refs = env_references(&container);
    refs.secrets
        .extend(volume_references(&pod.spec, &plans).secrets);
    let mut sources = cluster.fetch(&namespace, &refs).await?;

    let outcome = build_env(&container, &namespace, &sources)?;
    outcome.warnings.iter().for_each(|w| tracing::warn!("{w}"));
    let mut env = outcome.env;

    let mut workspace = Workspace::create(&options.shm_dir, options.mount_root.as_deref())?;
    let state = PodState {
        pod: &pod,
        container: &container,
        namespace: &namespace,
        plans: &plans,
    };
    state.write_volumes(&workspace, &sources, true)?;
    for plan in &plans {
        let at = workspace.mount(&plan.volume, &plan.mount_path, plan.sub_path.as_deref())?;
        tracing::debug!(volume = %plan.volume, path = %at.display(), "mounted");
    }

    let argv: Vec<OsString> = if options.command.is_empty() {
        expand_command(&container, &env)
            .into_iter()
            .map(|a| OsStr::from_bytes(&a).to_owned())
            .collect()
    } else {
        options.command.clone()
    };
    if argv.is_empty() {
        return Err(Error::NoCommand(container.name.clone()));
    }
    let spawn = |env: &Environment| spawn(&argv, env, &workspace, options.inherit_env);
    let mut child = spawn(&env)?;

    let (update_tx, mut updates) = mpsc::channel(64);
    for name in &refs.secrets {
        let watch =
            cluster
                .clone()
                .watch_secret(namespace.clone(), name.clone(), update_tx.clone());
        tokio::spawn(watch);
    }
    drop(update_tx);
    let mut signals = forward_signals()?;

    let mut schedule = Schedule::default();
    let far = || Instant::now() + Duration::from_secs(86_400);
    let status = loop {
        let apply_at = schedule.apply_at();
        let reaction_at = schedule.reaction_at();
        tokio::select! {
            status = child.wait() => break status.map_err(Error::Process)?,
            Some(sig) = signals.recv() => signal_child(&child, sig),
            Some(update) = updates.recv() => {
                if sources.set_secret(&update.name, update.data) {
                    schedule.changed(Instant::now());
                }
            }
            () = tokio::time::sleep_until(apply_at.unwrap_or_else(far)), if apply_at.is_some() => {
                let files_changed = state.write_volumes(&workspace, &sources, false)?;
                let env_changed = match build_env(&container, &namespace, &sources) {
                    Ok(new) if new.env != env => { env = new.env; true }
                    Ok(_) => false,
                    Err(err) => {
                        tracing::warn!("{err}; the process keeps its environment");
                        false
                    }
                };
                let changed = files_changed || env_changed;
                schedule.applied(Instant::now(), changed && options.on_change != OnChange::None);
                if changed {
                    tracing::info!(files_changed, env_changed, "secrets changed");
                    if env_changed && options.on_change != OnChange::Restart {
                        tracing::info!("the environment changed; the running process keeps \
                            its start values (use --on-change=restart to pass them on)");
                    }
                }
            }
            () = tokio::time::sleep_until(reaction_at.unwrap_or_else(far)), if reaction_at.is_some() => {
                schedule.reacted(Instant::now());
                match options.on_change {
                    OnChange::None => {}
                    OnChange::Signal(sig) => signal_child(&child, sig),
                    OnChange::Restart => {
                        stop(&mut child).await?;
                        tracing::info!("restarting the process with the new environment");
                        child = spawn(&env)?;
                    }
                }
            }
        }
    };
    drop(workspace);
    Ok(exit_code(status))
}

/// The pieces of the pod the update loop reads.
struct PodState<'a> {
    pod: &'a PodTemplate,
    container: &'a Container,
    namespace: &'a str,
    plans: &'a [MountPlan],
}

impl PodState<'_> {
    /// Writes every mounted volume from `sources`. At start an error stops the run; later it
    /// is logged and the volume keeps its last good files. Returns whether a file changed.
    fn write_volumes(&self, workspace: &Workspace, sources: &Sources, start: bool) -> Result<bool> {
        let volumes: BTreeSet<&str> = self.plans.iter().map(|p| p.volume.as_str()).collect();
        let mut changed = false;
        for volume in volumes {
            let payload = volume_payload(
                &self.pod.spec,
                volume,
                &self.container.name,
                self.namespace,
                sources,
            );
            let payload = match payload {
                Ok((payload, warnings)) => {
                    if start {
                        warnings.iter().for_each(|w| tracing::warn!("{w}"));
                    }
                    payload
                }
                Err(err) if !start => {
                    tracing::warn!("{err}; keeping the last good files");
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            match workspace.writer(volume).write(&payload) {
                Ok(wrote) => changed |= wrote,
                Err(err) if !start => tracing::warn!("{err}; keeping the last good files"),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(changed)
    }
}

/// The manifest's namespace, `--namespace`, or the kubeconfig's, as `kubectl apply -f` picks.
fn namespace(pod: &PodTemplate, flag: Option<&str>, cluster: &Cluster) -> Result<String> {
    match (pod.namespace.as_deref(), flag) {
        (Some(m), Some(f)) if m != f => Err(Error::NamespaceMismatch {
            manifest: m.to_owned(),
            flag: f.to_owned(),
        }),
        (Some(ns), _) | (None, Some(ns)) => Ok(ns.to_owned()),
        (None, None) => Ok(cluster.default_namespace().to_owned()),
    }
}

fn spawn(
    argv: &[OsString],
    env: &Environment,
    workspace: &Workspace,
    inherit: bool,
) -> Result<Child> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).kill_on_drop(true);
    if !inherit {
        cmd.env_clear();
        cmd.env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        );
        if let Some(home) = std::env::var_os("HOME") {
            cmd.env("HOME", home);
        }
    }
    if let Some(root) = workspace.mount_root() {
        cmd.env(MOUNT_ROOT_VAR, root);
    }
    for (name, value) in env.expose_all() {
        cmd.env(name, OsStr::from_bytes(value));
    }
    cmd.spawn().map_err(|source| Error::Spawn {
        program: argv[0].to_string_lossy().into_owned(),
        source,
    })
}

/// Listens for the signals Coffer forwards; each arrives on the returned channel.
fn forward_signals() -> Result<mpsc::UnboundedReceiver<Signal>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (kind, sig) in FORWARDED {
        let mut stream = signal(kind).map_err(Error::Process)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    return;
                }
            }
        });
    }
    Ok(rx)
}

fn signal_child(child: &Child, sig: Signal) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid
        && let Err(err) = kill_process(pid, sig)
    {
        tracing::warn!(signal = sig.as_raw(), error = %err, "signalling the process failed");
    }
}

/// SIGTERM, then SIGKILL after [`RESTART_GRACE`]; waits for the exit.
async fn stop(child: &mut Child) -> Result<()> {
    signal_child(child, Signal::TERM);
    match tokio::time::timeout(RESTART_GRACE, child.wait()).await {
        Ok(status) => status.map(drop).map_err(Error::Process),
        Err(_) => child.kill().await.map_err(Error::Process),
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_change_values() {
        assert_eq!("none".parse::<OnChange>().ok(), Some(OnChange::None));
        assert_eq!("restart".parse::<OnChange>().ok(), Some(OnChange::Restart));
        assert_eq!(
            "signal:HUP".parse::<OnChange>().ok(),
            Some(OnChange::Signal(Signal::HUP))
        );
        assert_eq!(
            "signal:SIGUSR1".parse::<OnChange>().ok(),
            Some(OnChange::Signal(Signal::USR1))
        );
        assert!("signal:KILLALL".parse::<OnChange>().is_err());
        assert!("reload".parse::<OnChange>().is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }
}
