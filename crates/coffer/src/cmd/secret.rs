//! `coffer secret history|rollback`: the versions `coffer serve` keeps of every Secret
//! (`GET .../secrets/{name}/versions`, `POST .../secrets/{name}/rollback`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use coffer_agent::{ClientOptions, Cluster};
use serde_json::{Value, json};

/// `coffer secret` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List a Secret's versions, newest first, with their stages (current, previous).
    #[command(after_help = "Example:\n  coffer secret history db-secret -n default")]
    History {
        /// The Secret.
        name: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Make an earlier version of a Secret current again (or restore a deleted Secret).
    #[command(after_help = "Example:\n  coffer secret rollback db-secret --to 3")]
    Rollback {
        /// The Secret.
        name: String,
        /// The version to restore (see `coffer secret history`).
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// How to reach the server, as kubectl's flags say.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long)]
    context: Option<String>,
    /// Namespace (default: the context's).
    #[arg(short, long)]
    namespace: Option<String>,
}

/// Runs `coffer secret ...`.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new()?.block_on(async {
        match command {
            Command::History { name, cluster } => {
                let (client, ns) = connect(&cluster).await?;
                let path = format!("/api/v1/namespaces/{ns}/secrets/{name}/versions");
                let list = request(&client, http::Method::GET, &path, None).await?;
                print_history(&list);
            }
            Command::Rollback { name, to, cluster } => {
                let (client, ns) = connect(&cluster).await?;
                let path = format!("/api/v1/namespaces/{ns}/secrets/{name}/rollback");
                let body = json!({"version": to}).to_string().into_bytes();
                request(&client, http::Method::POST, &path, Some(body)).await?;
                println!("secret/{name} rolled back to version {to}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn connect(args: &ClusterArgs) -> anyhow::Result<(kube::Client, String)> {
    let cluster = Cluster::connect(&ClientOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    })
    .await
    .context("cannot load the kubeconfig (give --kubeconfig or set KUBECONFIG)")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace().to_owned());
    Ok((cluster.kube_client().clone(), namespace))
}

async fn request(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Value> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.unwrap_or_default())
        .context("building the request")?;
    let text = client.request_text(request).await.map_err(|e| match e {
        kube::Error::Api(status) => anyhow::anyhow!("{}", status.message),
        other => anyhow::anyhow!("cannot reach the server: {other}"),
    })?;
    serde_json::from_str(&text).context("the server's answer is not JSON")
}

/// Prints `VERSION  STAGES  CREATED  KEYS` (never values).
fn print_history(list: &Value) {
    if let Some(deleted) = list["metadata"]["deleted"].as_str() {
        println!("deleted at {deleted}; `coffer secret rollback NAME --to N` restores it");
    }
    println!("{:<8} {:<10} {:<22} KEYS", "VERSION", "STAGES", "CREATED");
    for item in list["items"].as_array().into_iter().flatten() {
        let stages: Vec<&str> = item["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let keys: Vec<&str> = item["data"]
            .as_object()
            .map(|d| d.keys().map(String::as_str).collect())
            .unwrap_or_default();
        println!(
            "{:<8} {:<10} {:<22} {}",
            item["version"],
            if stages.is_empty() {
                "-".to_owned()
            } else {
                stages.join(",")
            },
            item["created"].as_str().unwrap_or(""),
            keys.join(",")
        );
    }
}
