//! The `coffer` binary: parses flags and wires the crates together. No logic lives here.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc: per-thread free lists suit a server that allocates and frees small buffers on
/// every request from two or more worker threads (glibc malloc was ~12% of a GET's CPU;
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Coffer: Kubernetes-style secrets management in one binary.
#[derive(Parser)]
#[command(name = "coffer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server on the embedded store (or etcd with --etcd-servers).
    Serve(Box<cmd::serve::Args>),
    /// Start a process from a Pod manifest with its secrets as env vars and files.
    Run(cmd::run::Args),
    /// Find hardcoded secrets in code and Git history, and audit manifests, RBAC and encryption.
    Scan(cmd::scan::Args),
    /// Run a KMS v2 gRPC plugin (for coffer or a real kube-apiserver).
    KmsPlugin(cmd::kms_plugin::Args),
    /// A Secret's versions: history, rollback.
    #[command(subcommand)]
    Secret(cmd::secret::Command),
    /// Sync ExternalSecrets (External Secrets Operator manifests) into Secrets.
    Sync(cmd::sync::Args),
    /// Rotate Secrets: now, status, and the SecretRotation controller.
    #[command(subcommand)]
    Rotate(cmd::rotate::Command),
    /// Tools for a Coffer store: status, compaction, rewrap after key rotation, verify encryption.
    #[command(subcommand)]
    Storage(cmd::storage::Command),
    /// Tools for the audit log: verify its hash chain.
    #[command(subcommand)]
    Audit(cmd::audit::Command),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Run(args) => cmd::run::run(args),
        Command::Scan(args) => cmd::scan::run(args),
        Command::KmsPlugin(args) => cmd::kms_plugin::run(args),
        Command::Storage(command) => cmd::storage::run(command),
        Command::Secret(command) => cmd::secret::run(command),
        Command::Audit(command) => cmd::audit::run(command),
        Command::Sync(args) => cmd::sync::run(args),
        Command::Rotate(command) => cmd::rotate::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
