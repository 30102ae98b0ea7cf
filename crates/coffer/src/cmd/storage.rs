//! `coffer storage`: offline tools for a Coffer store, and the store flags shared with
//! `coffer serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use coffer_storage::{EmbeddedStore, EtcdConfig, EtcdStore, EtcdTls, KeyLayout, Revision, Store};

/// Where the store is: the embedded file under `--data-dir`, or etcd with `--etcd-servers`.
#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// Directory holding the embedded store (and, later, keys and certificates).
    #[arg(long, default_value_os_t = super::serve::default_data_dir())]
    pub data_dir: PathBuf,
    /// Use etcd instead of the embedded store: comma-separated client URLs.
    #[arg(long)]
    pub etcd_servers: Option<String>,
    /// Key prefix in storage, as kube-apiserver's --etcd-prefix.
    #[arg(long, default_value = coffer_storage::DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// CA bundle for etcd's serving certificates.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
}

impl StoreArgs {
    /// The embedded store file under the data directory.
    pub fn store_file(&self) -> PathBuf {
        self.data_dir.join("coffer.redb")
    }

    /// Opens the selected store; returns it and a description of where it is.
    pub async fn open(&self) -> anyhow::Result<(Arc<dyn Store>, String)> {
        match &self.etcd_servers {
            Some(servers) => {
                let mut config = EtcdConfig::from_servers(servers);
                if self.etcd_cafile.is_some()
                    || self.etcd_certfile.is_some()
                    || self.etcd_keyfile.is_some()
                {
                    config.tls = Some(EtcdTls {
                        ca_file: self.etcd_cafile.clone(),
                        cert_file: self.etcd_certfile.clone(),
                        key_file: self.etcd_keyfile.clone(),
                    });
                }
                let store = EtcdStore::connect(&config).await?;
                store.current_revision().await.with_context(|| {
                    format!("etcd at {servers} does not answer; check --etcd-servers")
                })?;
                Ok((Arc::new(store), format!("etcd {servers}")))
            }
            None => {
                let file = self.store_file();
                let store = EmbeddedStore::open(&file)?;
                Ok((Arc::new(store), file.display().to_string()))
            }
        }
    }
}

/// `coffer storage` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the store's revision and how many objects it holds.
    #[command(after_help = "Example:\n  coffer storage status --data-dir ./coffer-data")]
    Status(StoreArgs),
    /// Discard history older than a revision (default: the current one).
    #[command(after_help = "Example:\n  coffer storage compact --data-dir ./coffer-data")]
    Compact {
        #[command(flatten)]
        store: StoreArgs,
        /// Compact up to this revision.
        #[arg(long)]
        revision: Option<u64>,
    },
}

/// Runs a `coffer storage` subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match command {
            Command::Status(args) => {
                let (store, where_) = args.open().await?;
                let layout = KeyLayout::new(&args.etcd_prefix);
                let revision = store.current_revision().await?;
                let mut prefix = layout.prefix().as_bytes().to_vec();
                prefix.push(b'/');
                let objects = store.range(&prefix, None, 0).await?.kvs.len();
                println!("store:     {where_}");
                println!("revision:  {revision}");
                println!("objects:   {objects} under {}/", layout.prefix());
                Ok(ExitCode::SUCCESS)
            }
            Command::Compact { store, revision } => {
                let (store, where_) = store.open().await?;
                let target = match revision {
                    Some(r) => Revision::new(r),
                    None => store.current_revision().await?,
                };
                store.compact(target).await?;
                println!("compacted {where_} up to revision {target}");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
