//! `coffer sync`: the ExternalSecret controller against any API server (`coffer sync
//! --kubeconfig FILE`), `coffer sync status`, and the built-in controller `coffer serve`
//! runs (the same `coffer_sync::controller::run`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{ArgAction, Subcommand};
use coffer_sync::controller::{
    self, API_VERSION, ControllerOptions, StatusRow, bind_metrics, render_table, serve_metrics,
};
use coffer_sync::sync::Metrics;
use coffer_sync::types::ExternalSecret;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

/// Flags of `coffer sync`.
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  coffer sync --kubeconfig ~/.kube/config --metrics-address 127.0.0.1:9090\n  coffer sync status --kubeconfig ~/.kube/config"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    client: ClientArgs,
    /// Serve Prometheus metrics on http://ADDRESS/metrics (for example 127.0.0.1:9090).
    #[arg(long, value_name = "ADDRESS")]
    metrics_address: Option<SocketAddr>,
    /// ExternalSecrets synced at once.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
}

#[derive(Subcommand)]
enum Command {
    /// A table of every ExternalSecret: store, ready, last sync, next sync, error.
    Status(ClientArgs),
}

/// How to find the API server, as kubectl's flags say.
#[derive(clap::Args)]
struct ClientArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig.
    #[arg(long)]
    context: Option<String>,
    /// Only this namespace (default: all namespaces; cluster-scoped kinds need all).
    #[arg(short, long)]
    namespace: Option<String>,
}

/// Runs `coffer sync` or `coffer sync status`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match args.command {
            Some(Command::Status(client)) => status(&client).await,
            None => controller_until_signal(args).await,
        }
    })
}

async fn controller_until_signal(args: Args) -> anyhow::Result<ExitCode> {
    let c = &args.client;
    let client = controller::connect(c.kubeconfig.as_deref(), c.context.as_deref()).await?;
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(address) = args.metrics_address {
        start_metrics("coffer sync: metrics", address, metrics.clone(), stop_rx).await?;
    }
    let options = ControllerOptions {
        namespace: c.namespace.clone(),
        metrics,
        concurrency: args.concurrency.max(1),
    };
    let shutdown = async move {
        super::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    eprintln!("coffer sync: syncing ExternalSecrets (stop with Ctrl-C)");
    controller::run(client, options, shutdown).await?;
    eprintln!("coffer sync: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Binds `address`, says on stderr where `what` is served, and serves `metrics` there until
/// `stop` says stop.
async fn start_metrics(
    what: &str,
    address: SocketAddr,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = bind_metrics(address).await?;
    eprintln!("{what} on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(serve_metrics(listener, metrics, stopped(stop)));
    Ok(())
}

/// Completes when `rx` says stop (or its sender is gone).
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn status(c: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = controller::connect(c.kubeconfig.as_deref(), c.context.as_deref()).await?;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret"),
        "externalsecrets",
    );
    let api: Api<DynamicObject> = match &c.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    let list = api.list(&ListParams::default()).await.context(
        "listing ExternalSecrets (is external-secrets.io/v1 served, and may you list it?)",
    )?;
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for obj in list.items {
        let mut value = serde_json::to_value(&obj)?;
        value["apiVersion"] = API_VERSION.into();
        value["kind"] = "ExternalSecret".into();
        match serde_json::from_value::<ExternalSecret>(value) {
            Ok(es) => rows.push(StatusRow::new(&es, now)),
            Err(e) => eprintln!(
                "coffer sync status: skipping ExternalSecret {}/{}: {e}",
                obj.metadata.namespace.unwrap_or_default(),
                obj.metadata.name.unwrap_or_default()
            ),
        }
    }
    if rows.is_empty() {
        eprintln!("No ExternalSecrets found.");
        return Ok(ExitCode::SUCCESS);
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    print!("{}", render_table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// `coffer serve`'s flags for the built-in controller. The group id is explicit because
/// other commands' flattened `ServeArgs` would otherwise share clap's default (the name).
#[derive(clap::Args)]
#[group(id = "sync-serve-args")]
pub struct ServeArgs {
    /// Do not run the built-in ExternalSecret controller (same as --sync=false); run
    /// `coffer sync --kubeconfig` elsewhere instead.
    #[arg(long)]
    disable_sync: bool,
    /// Run the built-in ExternalSecret controller, which syncs ExternalSecrets into Secrets
    /// through this server's own API.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    sync: bool,
    /// Serve the built-in controller's Prometheus metrics (the same as `coffer sync
    /// --metrics-address`) on http://ADDRESS/metrics, e.g. 127.0.0.1:9090.
    #[arg(long, value_name = "ADDRESS")]
    sync_metrics_address: Option<SocketAddr>,
}

/// The controller running inside `coffer serve`.
pub struct Builtin {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Builtin {
    /// Starts the controller against the server through its admin `kubeconfig`, unless the
    /// flags disable it. Failing to start is logged, never fatal to the server.
    pub async fn start(args: &ServeArgs, kubeconfig: &Path) -> Builtin {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = if args.sync && !args.disable_sync {
            match controller::connect(Some(kubeconfig), None).await {
                Ok(client) => {
                    let options = ControllerOptions::default();
                    if let Some(address) = args.sync_metrics_address
                        && let Err(e) = start_metrics(
                            "coffer: sync metrics",
                            address,
                            options.metrics.clone(),
                            rx.clone(),
                        )
                        .await
                    {
                        tracing::error!(error = %e, "sync metrics are not served");
                    }
                    Some(tokio::spawn(async move {
                        if let Err(e) = controller::run(client, options, stopped(rx)).await {
                            tracing::error!(error = %e, "the built-in sync controller did not start");
                        }
                    }))
                }
                Err(e) => {
                    tracing::error!(error = %e, "the built-in sync controller did not start");
                    None
                }
            }
        } else {
            None
        };
        if task.is_some() {
            eprintln!("coffer: syncing ExternalSecrets (disable with --disable-sync)");
        }
        Builtin { stop, task }
    }

    /// Stops the controller and waits (at most 10 s) for running syncs to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}
