//! `coffer serve`: until the API server lands, this opens the chosen store and keeps it open,
//! so a fresh machine can check that storage works end to end.

use std::path::PathBuf;
use std::process::ExitCode;

use super::storage::StoreArgs;

/// Flags of `coffer serve`, named as kube-apiserver names them.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  coffer serve --data-dir ./coffer-data")]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `coffer serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (store, where_) = args.store.open().await?;
        let revision = store.current_revision().await?;
        println!("coffer: storage ready at {where_} (revision {revision})");
        println!(
            "coffer: the Kubernetes API server is not built yet; this process only holds the store open. Press Ctrl-C to stop."
        );
        tokio::signal::ctrl_c().await?;
        println!("coffer: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The default data directory, as documented in the README.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("coffer-data")
}
