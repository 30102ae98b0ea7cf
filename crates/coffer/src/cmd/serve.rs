//! `coffer serve`: the Kubernetes Secrets API over HTTPS on the embedded store (or etcd).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use coffer_encryption::DEFAULT_RELOAD_INTERVAL;
use coffer_server::{AccessOptions, HistoryOptions, SecretListPolicy, ServeOptions, Server};
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
    /// MiB of encoded objects kept in memory by revision, so reading an unchanged object
    /// skips decryption and encoding. Decrypted Secret values then stay in memory (zeroized
    /// on eviction) as in kube-apiserver's watch cache; 0 keeps nothing past its request.
    #[arg(long, default_value_t = coffer_server::DEFAULT_OBJECT_CACHE_BYTES >> 20)]
    object_cache_size: usize,
    /// Issuer of ServiceAccount tokens (repeatable; the first signs new tokens, all are
    /// accepted). Default: https://kubernetes.default.svc.cluster.local
    #[arg(long)]
    service_account_issuer: Vec<String>,
    /// PEM file of extra public (or private) keys that verify ServiceAccount tokens
    /// (repeatable).
    #[arg(long)]
    service_account_key_file: Vec<PathBuf>,
    /// PEM private key (RSA or EC P-256) that signs ServiceAccount tokens; generated under
    /// --data-dir when absent.
    #[arg(long)]
    service_account_signing_key_file: Option<PathBuf>,
    /// Audiences the API accepts in ServiceAccount tokens (comma-separated; default: the
    /// issuers).
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// Longest token TokenRequest issues, e.g. 24h, 90m, 3600s (longer requests are
    /// shortened).
    #[arg(long, value_parser = parse_duration)]
    service_account_max_token_expiration: Option<i64>,
    /// Write the audit log (audit.k8s.io/v1 Events, one JSON line each, hash-chained) here;
    /// `-` for stdout. Check it with `coffer audit verify FILE`.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// audit.k8s.io/v1 Policy (default: every request at Metadata). Secrets, ConfigMaps and
    /// tokens are never recorded above Metadata.
    #[arg(long, requires = "audit_log_path")]
    audit_policy_file: Option<PathBuf>,
    /// Versions kept per Secret (`coffer secret history`, `rollback`); 0 keeps none.
    #[arg(long, default_value_t = 10)]
    secret_history: usize,
    /// Compact storage history this often, keeping at least one interval of it for watches
    /// and paginated lists (kube-apiserver's flag and default); `0` never compacts.
    #[arg(long, default_value = "5m", value_parser = parse_compaction_interval)]
    etcd_compaction_interval: Duration,
    /// How long a deleted Secret's versions are kept so it can be restored, e.g. 168h.
    #[arg(long, value_parser = parse_duration, default_value = "168h")]
    secret_recovery_window: i64,
    #[command(flatten)]
    sync: Box<super::sync::ServeArgs>,
    #[command(flatten)]
    rotation: Box<super::rotate::RotationServeArgs>,
}

/// `90s`, `15m`, `24h` or plain seconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 3600s, 90m or 24h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    Ok(n * scale)
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
            store: store.clone(),
            layout: KeyLayout::new(&args.store.etcd_prefix),
            secret_list_policy: match args.secret_list_policy {
                ListPolicy::Withhold => SecretListPolicy::Withhold,
                ListPolicy::Kubernetes => SecretListPolicy::Kubernetes,
            },
            object_cache_bytes: args.object_cache_size.saturating_mul(1 << 20),
            access: AccessOptions {
                service_account_issuer: args.service_account_issuer,
                service_account_key_file: args.service_account_key_file,
                service_account_signing_key_file: args.service_account_signing_key_file,
                api_audiences: args.api_audiences,
                service_account_max_token_expiration: args.service_account_max_token_expiration,
                audit_log_path: args.audit_log_path,
                audit_policy_file: args.audit_policy_file,
            },
            secret_history: HistoryOptions {
                limit: args.secret_history,
                recovery_window: std::time::Duration::from_secs(
                    u64::try_from(args.secret_recovery_window).unwrap_or(0),
                ),
            },
        })
        .await?;
        let addr = server.local_addr()?;
        eprintln!("coffer: serving the Kubernetes API on https://{addr} (storage: {where_})");
        println!("export KUBECONFIG={}", server.kubeconfig().display());
        let sync = super::sync::Builtin::start(&args.sync, server.kubeconfig()).await;
        let rotation = super::rotate::Builtin::start(&args.rotation, server.kubeconfig()).await;
        let interval = args.etcd_compaction_interval;
        let compactor = (!interval.is_zero())
            .then(|| tokio::spawn(coffer_storage::run_compactor(store, interval)));
        server
            .run(async move {
                shutdown_signal().await;
                sync.stop().await;
                rotation.stop().await;
            })
            .await?;
        if let Some(compactor) = compactor {
            compactor.abort();
        }
        eprintln!("coffer: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Parses `--etcd-compaction-interval`: `0`, or a duration such as `30s` or `5m`.
fn parse_compaction_interval(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    parse_interval(text)
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
pub(crate) async fn shutdown_signal() {
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
