//! `coffer rotate`: `now NAME` (sets the `coffer.dev/rotate-now` annotation), `status` (a
//! table of every SecretRotation, overdue first), `controller` (the rotation controller
//! against any API server), and the built-in controller `coffer serve` runs (the same
//! `coffer_rotation::run`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use coffer_rotation::{
    ControllerOptions, ROTATE_NOW_ANNOTATION, RotationStatus, prometheus_text, rotation_resource,
};
use kube::ResourceExt as _;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `coffer rotate` subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Rotate a SecretRotation now (sets the coffer.dev/rotate-now annotation; the
    /// controller rotates within a second, after the previous value's grace period).
    Now {
        /// The SecretRotation.
        name: String,
        /// Its namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A table of every SecretRotation: secret, last and next rotation, version, state;
    /// overdue ones first.
    Status {
        /// Only this namespace (default: all namespaces).
        #[arg(short, long)]
        namespace: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run the rotation controller against an API server (coffer serve runs it built in).
    Controller {
        /// Only this namespace (default: all namespaces).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Serve Prometheus metrics on http://ADDRESS/metrics (for example 127.0.0.1:9091).
        #[arg(long, value_name = "ADDRESS")]
        metrics_address: Option<SocketAddr>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How to find the API server.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

/// Flags `coffer serve` takes for the built-in rotation controller.
#[derive(clap::Args)]
pub struct RotationServeArgs {
    /// Do not run the built-in SecretRotation controller (run `coffer rotate controller`
    /// elsewhere, or rotate nothing).
    #[arg(long)]
    disable_rotation: bool,
    /// Serve the rotation controller's Prometheus metrics on http://ADDRESS/metrics.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "disable_rotation")]
    rotation_metrics_address: Option<SocketAddr>,
}

/// Runs a `coffer rotate` subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match command {
            Command::Now {
                name,
                namespace,
                client,
            } => now(&client, &namespace, &name).await,
            Command::Status { namespace, client } => status(&client, namespace.as_deref()).await,
            Command::Controller {
                namespace,
                metrics_address,
                client,
            } => {
                let kube = coffer_rotation::connect(client.kubeconfig.as_deref()).await?;
                let options = ControllerOptions {
                    namespace,
                    ..ControllerOptions::default()
                };
                if let Some(address) = metrics_address {
                    start_metrics(address, &options).await?;
                }
                eprintln!("coffer: rotating SecretRotations (stop with Ctrl-C)");
                coffer_rotation::run(kube, options, super::serve::shutdown_signal()).await;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn client(args: &ClientArgs) -> anyhow::Result<kube::Client> {
    coffer_rotation::connect(args.kubeconfig.as_deref())
        .await
        .context("cannot reach the API server (give --kubeconfig or set KUBECONFIG)")
}

async fn now(args: &ClientArgs, namespace: &str, name: &str) -> anyhow::Result<ExitCode> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client(args).await?, namespace, &rotation_resource());
    let stamp = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {ROTATE_NOW_ANNOTATION: stamp}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| {
            format!("cannot annotate SecretRotation {namespace}/{name} (does it exist? `coffer rotate status` lists them)")
        })?;
    println!("secretrotation.coffer.dev/{name} rotation requested");
    Ok(ExitCode::SUCCESS)
}

/// One row of `coffer rotate status`.
struct Row {
    namespace: String,
    name: String,
    secret: String,
    last: Option<jiff::Timestamp>,
    next: Option<jiff::Timestamp>,
    version: u64,
    state: String,
}

async fn status(args: &ClientArgs, namespace: Option<&str>) -> anyhow::Result<ExitCode> {
    let kube = client(args).await?;
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(kube, ns, &rotation_resource()),
        None => Api::all_with(kube, &rotation_resource()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .context("cannot list SecretRotations")?;
    let now = jiff::Timestamp::now();
    let mut rows: Vec<Row> = list
        .items
        .iter()
        .map(|object| {
            let status: RotationStatus = object
                .data
                .get("status")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            let overdue =
                status.next_rotation_time.is_some_and(|n| n <= now) && status.step.is_none();
            let state = if overdue {
                "Overdue".to_owned()
            } else {
                format!("{:?}", status.phase)
            };
            Row {
                namespace: object.namespace().unwrap_or_default(),
                name: object.name_any(),
                secret: object.data["spec"]["secretName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                last: status.last_rotation_time,
                next: status.next_rotation_time,
                version: status.current_version,
                state,
            }
        })
        .collect();
    sort_rows(&mut rows);
    print!("{}", render(&rows, now));
    Ok(ExitCode::SUCCESS)
}

/// Overdue first (the most overdue first), then the soonest due; never-scheduled last.
fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (a.next.is_none(), a.next, &a.namespace, &a.name).cmp(&(
            b.next.is_none(),
            b.next,
            &b.namespace,
            &b.name,
        ))
    });
}

fn render(rows: &[Row], now: jiff::Timestamp) -> String {
    let when = |t: Option<jiff::Timestamp>| match t {
        None => "-".to_owned(),
        Some(t) => {
            let d = now.duration_since(t);
            let secs = d.as_secs();
            if secs >= 0 {
                format!("{}s ago", secs)
            } else {
                format!("in {}s", -secs)
            }
        }
    };
    let mut table = vec![[
        "NAMESPACE".to_owned(),
        "NAME".to_owned(),
        "SECRET".to_owned(),
        "LAST".to_owned(),
        "NEXT".to_owned(),
        "VERSION".to_owned(),
        "STATE".to_owned(),
    ]];
    for r in rows {
        table.push([
            r.namespace.clone(),
            r.name.clone(),
            r.secret.clone(),
            when(r.last),
            when(r.next),
            r.version.to_string(),
            r.state.clone(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The rotation controller `coffer serve` runs.
pub struct Builtin {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Builtin {
    /// Starts the controller against the server through its admin `kubeconfig`, unless
    /// `--disable-rotation`. Failing to start is logged, never fatal to the server.
    pub async fn start(args: &RotationServeArgs, kubeconfig: &Path) -> Builtin {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let task = if args.disable_rotation {
            None
        } else {
            match coffer_rotation::connect(Some(kubeconfig)).await {
                Ok(client) => {
                    let options = ControllerOptions::default();
                    if let Some(address) = args.rotation_metrics_address
                        && let Err(e) = start_metrics(address, &options).await
                    {
                        tracing::error!(error = %e, "rotation metrics are not served");
                    }
                    Some(tokio::spawn(async move {
                        let stopped = async move {
                            let _ = rx.wait_for(|s| *s).await;
                        };
                        coffer_rotation::run(client, options, stopped).await;
                    }))
                }
                Err(e) => {
                    tracing::error!(error = %e, "the built-in rotation controller did not start");
                    None
                }
            }
        };
        if task.is_some() {
            eprintln!("coffer: rotating SecretRotations (disable with --disable-rotation)");
        }
        Builtin { stop, task }
    }

    /// Stops the controller and waits (at most 10 s) for running rotations to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// Serves `GET /metrics` (Prometheus text) on `address` for the controller of `options`.
async fn start_metrics(address: SocketAddr, options: &ControllerOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for metrics; pick a free address"))?;
    let (metrics, ages) = (options.metrics.clone(), options.ages.clone());
    eprintln!(
        "coffer: rotation metrics on http://{}/metrics",
        listener.local_addr()?
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let (metrics, ages) = (metrics.clone(), ages.clone());
            tokio::spawn(async move {
                // Read the request head (up to 1 KiB): it may arrive in pieces.
                let mut request = [0u8; 1024];
                let mut n = 0;
                while n < request.len() && !request[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut request[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => n += read,
                    }
                }
                let response = if request[..n].starts_with(b"GET /metrics ") {
                    let body = prometheus_text(&metrics, &ages);
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, next: Option<&str>, state: &str) -> Row {
        Row {
            namespace: "ns".into(),
            name: name.into(),
            secret: format!("{name}-secret"),
            last: None,
            next: next.map(|t| t.parse().expect("timestamp")),
            version: 3,
            state: state.into(),
        }
    }

    #[test]
    fn overdue_first_then_soonest_then_unscheduled() {
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().expect("now");
        let mut rows = vec![
            row("later", Some("2026-01-01T12:05:00Z"), "Succeeded"),
            row("never", None, "Pending"),
            row("late", Some("2026-01-01T11:59:00Z"), "Overdue"),
            row("very-late", Some("2026-01-01T10:00:00Z"), "Overdue"),
        ];
        sort_rows(&mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["very-late", "late", "later", "never"]);
        let table = render(&rows, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE   NAME"), "{table}");
        assert!(
            lines[1].contains("7200s ago") && lines[1].ends_with("Overdue"),
            "{table}"
        );
        assert!(lines[3].contains("in 300s"), "{table}");
        assert!(
            lines[4].contains(" - ") || lines[4].contains("-   "),
            "{table}"
        );
    }
}
