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

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::data::{ConfigMapData, References};
use crate::downward::{LocalFacts, PodInfo};
use crate::manifest::PodTemplate;
use crate::schedule::Schedule;
use crate::service_account::{
    MAX_TOKEN_AGE, ROOT_CA_CONFIG_MAP, SERVICE_ACCOUNT_MOUNT_PATH, SERVICE_ACCOUNT_VOLUME,
    add_service_account_volume, automount_token_spec,
};
use crate::workspace::SHM_DIR;
use crate::{
    ClientOptions, Cluster, Environment, Error, MountPlan, PrivateNamespace, Result, SourceUpdate,
    Sources, Workspace, build_env, env_references, expand_command, mount_plans, parse_manifest,
    volume_payload, volume_references,
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
    /// The private mount namespace this thread entered before the runtime started, if any
    /// (`None`: `--no-private-mount`, or not permitted): volume files then go on a private
    /// tmpfs and appear at their mount paths as read-only bind mounts.
    pub private_namespace: Option<PrivateNamespace>,
    /// ServiceAccount tokens are replaced at 80 % of their lifetime, or at the latest when
    /// this old (the kubelet's 24 h).
    pub token_max_age: Duration,
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
            private_namespace: None,
            token_max_age: MAX_TOKEN_AGE,
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
    let mut container = pod.container(options.container.as_deref())?.clone();
    let mut spec = pod.spec.clone();
    let automount = add_service_account_volume(&mut spec, &mut container);
    let cluster = Cluster::connect(&options.client).await?;
    let namespace = namespace(&pod, options.namespace.as_deref(), &cluster)?;
    let info = PodInfo::new(&pod, &namespace, LocalFacts::detect());

    let (mut plans, warnings) = mount_plans(&spec, &container)?;
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    let mut tokens = BTreeMap::new();
    if automount {
        // The automatic token is a convenience: without it (no ServiceAccount, no right to
        // request tokens) the process still starts, as before ServiceAccounts existed.
        let spec = automount_token_spec();
        match cluster
            .request_token(
                &namespace,
                &info.service_account,
                &spec,
                options.token_max_age,
            )
            .await
        {
            Ok(issued) => {
                tokens.insert(spec, issued);
            }
            Err(err) => {
                tracing::warn!(
                    "{err}; {SERVICE_ACCOUNT_MOUNT_PATH} is not mounted (set \
                     automountServiceAccountToken: false to skip it)"
                );
                plans.retain(|p| p.volume != SERVICE_ACCOUNT_VOLUME);
            }
        }
    }
    let mut refs = env_references(&container);
    refs.extend(volume_references(&spec, &plans));
    let mut sources = cluster.fetch(&namespace, &refs).await?;
    let root_ca = root_ca_fallback(&cluster, &refs);
    if let Some(ca) = &root_ca
        && sources.config_map(ROOT_CA_CONFIG_MAP).is_none()
    {
        sources.set_config_map(ROOT_CA_CONFIG_MAP, Some(ca.clone()));
    }
    for token_spec in &refs.tokens {
        if !tokens.contains_key(token_spec) {
            let issued = cluster
                .request_token(
                    &namespace,
                    &info.service_account,
                    token_spec,
                    options.token_max_age,
                )
                .await?;
            tokens.insert(token_spec.clone(), issued);
        }
    }
    let mut refresh_at = BTreeMap::new();
    for (token_spec, issued) in tokens {
        sources.set_token(token_spec.clone(), issued.token);
        refresh_at.insert(token_spec, issued.refresh_at);
    }

    let outcome = build_env(&container, &info, &sources)?;
    outcome.warnings.iter().for_each(|w| tracing::warn!("{w}"));
    let mut env = outcome.env;

    let mut workspace = Workspace::create(
        &options.shm_dir,
        options.mount_root.as_deref(),
        options.private_namespace,
    )?;
    let state = PodState {
        spec: &spec,
        container: &container,
        info: &info,
        plans: &plans,
    };
    state.write_volumes(&workspace, &sources, true)?;
    for plan in &plans {
        match workspace.mount(&plan.volume, &plan.mount_path, plan.sub_path.as_deref()) {
            Ok(at) => tracing::debug!(volume = %plan.volume, path = %at.display(), "mounted"),
            Err(err) if plan.volume == SERVICE_ACCOUNT_VOLUME => tracing::warn!(
                "{err}; the serviceaccount token is not mounted (set \
                 automountServiceAccountToken: false to skip it)"
            ),
            Err(err) => return Err(err.into()),
        }
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
    for name in &refs.config_maps {
        let watch =
            cluster
                .clone()
                .watch_config_map(namespace.clone(), name.clone(), update_tx.clone());
        tokio::spawn(watch);
    }
    for (token_spec, first) in refresh_at {
        let refresh = cluster.clone().refresh_token(
            namespace.clone(),
            info.service_account.clone(),
            token_spec,
            first,
            options.token_max_age,
            update_tx.clone(),
        );
        tokio::spawn(refresh);
    }
    drop(update_tx);
    // Whether the pending burst changed a Secret or ConfigMap (a token refresh alone
    // rewrites files but does not signal or restart the process: the kubelet never does).
    let mut objects_changed = false;
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
                let (changed, object) = match update {
                    SourceUpdate::Secret { name, data } => (sources.set_secret(&name, data), true),
                    SourceUpdate::ConfigMap { name, data } => {
                        // The kubeconfig's CA stands in for a missing kube-root-ca.crt.
                        let data = data.or_else(|| {
                            root_ca.clone().filter(|_| name == ROOT_CA_CONFIG_MAP)
                        });
                        (sources.set_config_map(&name, data), true)
                    }
                    SourceUpdate::Token { spec, token } => (sources.set_token(spec, token), false),
                };
                if changed {
                    objects_changed |= object;
                    schedule.changed(Instant::now());
                }
            }
            () = tokio::time::sleep_until(apply_at.unwrap_or_else(far)), if apply_at.is_some() => {
                let files_changed = state.write_volumes(&workspace, &sources, false)?;
                let env_changed = match build_env(&container, &info, &sources) {
                    Ok(new) if new.env != env => { env = new.env; true }
                    Ok(_) => false,
                    Err(err) => {
                        tracing::warn!("{err}; the process keeps its environment");
                        false
                    }
                };
                let changed = files_changed || env_changed;
                let react = (files_changed && objects_changed) || env_changed;
                objects_changed = false;
                schedule.applied(Instant::now(), react && options.on_change != OnChange::None);
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
    spec: &'a PodSpec,
    container: &'a Container,
    info: &'a PodInfo,
    plans: &'a [MountPlan],
}

impl PodState<'_> {
    /// Writes every mounted volume from `sources`. At start an error stops the run; later it
    /// is logged and the volume keeps its last good files. Returns whether a file changed.
    fn write_volumes(&self, workspace: &Workspace, sources: &Sources, start: bool) -> Result<bool> {
        let volumes: BTreeSet<&str> = self.plans.iter().map(|p| p.volume.as_str()).collect();
        let mut changed = false;
        for volume in volumes {
            let payload =
                volume_payload(self.spec, volume, &self.container.name, self.info, sources);
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

/// The `kube-root-ca.crt` ConfigMap made from the kubeconfig's CA, when the volumes read
/// that ConfigMap and the kubeconfig names a CA.
fn root_ca_fallback(cluster: &Cluster, refs: &References) -> Option<ConfigMapData> {
    let pem = cluster.root_ca_pem()?;
    refs.config_maps
        .contains(ROOT_CA_CONFIG_MAP)
        .then(|| ConfigMapData::from_data([("ca.crt".to_owned(), pem.to_owned())].into()))
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
