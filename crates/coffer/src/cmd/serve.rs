//! `coffer serve`: the Kubernetes Secrets API over HTTPS on the embedded store (or etcd).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use coffer_encryption::DEFAULT_RELOAD_INTERVAL;
use coffer_server::{SecretListPolicy, ServeOptions, Server};
use coffer_storage::KeyLayout;

use super::storage::StoreArgs;

/// Flags of `coffer serve`, named as kube-apiserver names them.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  coffer serve --data-dir ./coffer-data\n  export KUBECONFIG=$PWD/coffer-data/admin.kubeconfig\n  kubectl create secret generic db-secret --from-literal=username=admin --from-literal=password=MyStrongPassword"
)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on. The generated serving certificate covers localhost, 127.0.0.1
    /// and ::1; give --tls-cert-file for other names.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Serving certificate (PEM); generated under --data-dir when absent.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// CA bundle that client certificates must chain to (CN = user, O = groups).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Static token file, kube-apiserver's CSV format: token,user,uid[,"group1,group2"].
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// EncryptionConfiguration for data at rest; generated (secretbox) when absent.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Re-read the encryption config when its content changes, without a restart: a valid
    /// new file is used for later reads and writes; a bad one is logged and the old one kept.
    #[arg(long)]
    encryption_provider_config_automatic_reload: bool,
    /// How often the automatic reload checks the file (`500ms`, `10s`, `1m`); kube-apiserver's
    /// fixed 1m by default.
    #[arg(long, requires = "encryption_provider_config_automatic_reload", value_parser = parse_interval)]
    encryption_provider_config_automatic_reload_interval: Option<Duration>,
    /// What `list`/`watch` of Secrets shows to a caller who may not `get` a Secret:
    /// `withhold` empties its values (keys kept, annotation and Warning added);
    /// `kubernetes` reveals them, as upstream does.
    #[arg(long, value_enum, default_value_t = ListPolicy::Withhold)]
    secret_list_policy: ListPolicy,
}

/// `--secret-list-policy` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ListPolicy {
    /// Values of Secrets the caller may not `get` are withheld.
    Withhold,
    /// Upstream Kubernetes: listing reveals every value.
    Kubernetes,
}

/// Runs `coffer serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (store, where_) = args.store.open().await?;
        let server = Server::bind(ServeOptions {
            data_dir: args.store.data_dir.clone(),
            bind_address: args.bind_address,
            secure_port: args.secure_port,
            tls_cert_file: args.tls_cert_file,
            tls_private_key_file: args.tls_private_key_file,
            client_ca_file: args.client_ca_file,
            token_auth_file: args.token_auth_file,
            encryption_provider_config: args.encryption_provider_config,
            encryption_provider_config_automatic_reload: args
                .encryption_provider_config_automatic_reload
                .then(|| {
                    args.encryption_provider_config_automatic_reload_interval
                        .unwrap_or(DEFAULT_RELOAD_INTERVAL)
                }),
            store,
            layout: KeyLayout::new(&args.store.etcd_prefix),
            secret_list_policy: match args.secret_list_policy {
                ListPolicy::Withhold => SecretListPolicy::Withhold,
                ListPolicy::Kubernetes => SecretListPolicy::Kubernetes,
            },
        })
        .await?;
        let addr = server.local_addr()?;
        eprintln!("coffer: serving the Kubernetes API on https://{addr} (storage: {where_})");
        println!("export KUBECONFIG={}", server.kubeconfig().display());
        server.run(shutdown_signal()).await?;
        eprintln!("coffer: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Parses `--encryption-provider-config-automatic-reload-interval`: a whole number of `ms`, `s`
/// or `m`, more than zero.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 500ms, 10s or 1m");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let interval = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if interval.is_zero() {
        return Err("the reload interval must be more than zero".into());
    }
    Ok(interval)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The default data directory, as documented in the README.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("coffer-data")
}
