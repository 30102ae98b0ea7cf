//! `coffer kms-plugin`: a KMS v2 gRPC plugin on a unix socket (`reference/encryption.md` §3),
//! for Coffer or a real kube-apiserver, with one of two key backends behind
//! `coffer_encryption::KmsV2Service`: a local file of versioned key-encryption keys
//! (`LocalKekFile`, `--key-file`) or AES keys in a PKCS#11 token (`Pkcs11Kek`,
//! `--pkcs11-module ...`).
//!
//! `coffer kms-plugin --listen unix:///run/kms.sock --key-file kek.json` serves until SIGINT
//! or SIGTERM and removes its socket file on the way out; `coffer kms-plugin rotate` (with the
//! same backend flags) adds a key version. The running plugin looks again at its keys on every
//! `Status`, so the new `key_id` shows up without a restart and old versions keep decrypting.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use coffer_encryption::{
    DEFAULT_PKCS11_KEY_LABEL, KmsV2Server, KmsV2Service, LocalKekFile, Pkcs11Kek, Pkcs11Options,
    TokenSelector,
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

/// How long in-flight calls may take to finish after a shutdown signal. Clients such as
/// kube-apiserver keep their connection open, so the wait usually ends here.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Flags of `coffer kms-plugin`.
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  \
        coffer kms-plugin --listen unix:///var/run/coffer-kms.sock --key-file /etc/coffer/kek.json\n  \
        coffer kms-plugin rotate --key-file /etc/coffer/kek.json\n  \
        coffer kms-plugin --listen unix:///var/run/coffer-kms.sock \\\n    \
        --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token-label kms \\\n    \
        --pkcs11-pin-file /etc/coffer/hsm-pin --pkcs11-key-label coffer-kek\n\n\
        Point an EncryptionConfiguration at it:\n  \
        - kms: {apiVersion: v2, name: coffer-kms, endpoint: unix:///var/run/coffer-kms.sock}\n\n\
        The key file is created with a first key (mode 0600) when missing; in a PKCS#11 token a\n\
        first AES-256 key (sensitive, never extractable) is generated when none has the label.\n\
        `rotate` adds a key version: the running plugin reports the new key_id at its next\n\
        Status call, and every older version still decrypts."
)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// What `coffer kms-plugin` does besides serving.
#[derive(clap::Subcommand)]
enum Action {
    /// Add a fresh key version (to the key file, or in the PKCS#11 token); new seeds are
    /// wrapped under it.
    #[command(after_help = "Examples:\n  \
        coffer kms-plugin rotate --key-file /etc/coffer/kek.json\n  \
        coffer kms-plugin rotate --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \\\n    \
        --pkcs11-token-label kms --pkcs11-pin-file /etc/coffer/hsm-pin")]
    Rotate {
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Print the key_id that Status reports (key ids are public).
    #[command(after_help = "Example:\n  coffer kms-plugin key-id --key-file /etc/coffer/kek.json")]
    KeyId {
        #[command(flatten)]
        backend: BackendArgs,
    },
}

/// Where the key-encryption keys are: a key file, or a PKCS#11 token.
#[derive(clap::Args)]
struct BackendArgs {
    /// The key file of versioned key-encryption keys (JSON, mode 0600); created with one key
    /// when the plugin starts and it is missing.
    #[arg(long, conflicts_with = "pkcs11_module")]
    key_file: Option<PathBuf>,
    /// The PKCS#11 module of the HSM, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long)]
    pkcs11_module: Option<PathBuf>,
    /// The label of the token holding the keys.
    #[arg(long, conflicts_with = "pkcs11_slot")]
    pkcs11_token_label: Option<String>,
    /// The slot of the token holding the keys (instead of --pkcs11-token-label).
    #[arg(long)]
    pkcs11_slot: Option<u64>,
    /// A file holding the token's user PIN (one trailing newline is ignored).
    #[arg(long)]
    pkcs11_pin_file: Option<PathBuf>,
    /// The label of the AES key objects; each version is one object under it.
    #[arg(long, default_value = DEFAULT_PKCS11_KEY_LABEL)]
    pkcs11_key_label: String,
}

/// The backend chosen by [`BackendArgs`].
enum BackendChoice {
    File(PathBuf),
    Pkcs11(Pkcs11Options),
}

impl BackendArgs {
    fn choice(self) -> anyhow::Result<BackendChoice> {
        if let Some(path) = self.key_file {
            return Ok(BackendChoice::File(path));
        }
        let Some(module) = self.pkcs11_module else {
            anyhow::bail!(
                "choose a key backend: --key-file FILE, or --pkcs11-module with --pkcs11-token-label (or --pkcs11-slot) and --pkcs11-pin-file; see coffer kms-plugin --help"
            );
        };
        let token = match (self.pkcs11_token_label, self.pkcs11_slot) {
            (Some(label), _) => TokenSelector::Label(label),
            (None, Some(slot)) => TokenSelector::Slot(slot),
            (None, None) => {
                anyhow::bail!("--pkcs11-module needs --pkcs11-token-label or --pkcs11-slot")
            }
        };
        let Some(pin_file) = self.pkcs11_pin_file else {
            anyhow::bail!(
                "--pkcs11-module needs --pkcs11-pin-file, a file holding the token's user PIN"
            );
        };
        let mut options = Pkcs11Options::new(module, token, pin_file);
        options.key_label = self.pkcs11_key_label;
        Ok(BackendChoice::Pkcs11(options))
    }
}

/// Flags of the serving mode.
#[derive(clap::Args)]
struct ServeArgs {
    /// Unix socket to serve on: `unix:///path/kms.sock`, `unix:///@name` (a Linux abstract
    /// socket), or a plain path.
    #[arg(long, required = true)]
    listen: Option<String>,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Runs `coffer kms-plugin`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(Action::Rotate { backend }) => {
            let (key_id, place) = match backend.choice()? {
                BackendChoice::File(key_file) => (
                    LocalKekFile::rotate(&key_file)
                        .with_context(|| format!("cannot rotate {}", key_file.display()))?,
                    key_file.display().to_string(),
                ),
                BackendChoice::Pkcs11(options) => (
                    Pkcs11Kek::open(&options)?.rotate()?,
                    format!("PKCS#11 {}", options.token),
                ),
            };
            println!("{key_id}");
            eprintln!(
                "coffer kms-plugin: {place} now encrypts new seeds with key_id {key_id}; older versions still decrypt"
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Action::KeyId { backend }) => {
            let key_id = match backend.choice()? {
                BackendChoice::File(key_file) => LocalKekFile::open(&key_file)?.current_key_id(),
                BackendChoice::Pkcs11(options) => Pkcs11Kek::open(&options)?.current_key_id()?,
            };
            println!("{key_id}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let Some(listen) = args.serve.listen else {
                anyhow::bail!("--listen is required; see coffer kms-plugin --help");
            };
            let backend = args.serve.backend.choice()?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(&listen, backend))
        }
    }
}

/// Where to listen.
enum Socket {
    /// A socket file, removed on exit.
    Path(PathBuf),
    /// A Linux abstract socket name (no file).
    Abstract(String),
}

/// Parses `--listen` as kube-apiserver parses a KMS endpoint (§3.3: scheme `unix`, only the
/// URL path counts, `/@name` is abstract), also accepting a plain path.
fn parse_listen(text: &str) -> anyhow::Result<Socket> {
    let path = if let Some(rest) = text.strip_prefix("unix://") {
        rest.find('/').map_or("", |i| &rest[i..])
    } else if let Some(rest) = text.strip_prefix("unix:") {
        rest
    } else if text.contains("://") {
        anyhow::bail!("--listen {text:?}: only unix:// sockets are supported");
    } else {
        text
    };
    if path.is_empty() {
        anyhow::bail!("--listen {text:?} names no socket; use unix:///path/kms.sock");
    }
    Ok(match path.strip_prefix("/@") {
        Some(name) if !name.is_empty() => Socket::Abstract(name.to_owned()),
        _ => Socket::Path(PathBuf::from(path)),
    })
}

/// Opens the key file (creating it when missing), or logs in to the PKCS#11 token (making a
/// first key when none has the label).
fn open_backend(backend: BackendChoice) -> anyhow::Result<(Arc<dyn KmsV2Service>, String)> {
    match backend {
        BackendChoice::File(key_file) => {
            let kek = if key_file.exists() {
                LocalKekFile::open(&key_file)?
            } else {
                let kek = LocalKekFile::create(&key_file).with_context(|| {
                    format!("cannot create the key file {}", key_file.display())
                })?;
                eprintln!(
                    "coffer kms-plugin: created {} with a fresh key (mode 0600); back it up: data encrypted under it cannot be read without it",
                    key_file.display()
                );
                kek
            };
            Ok((Arc::new(kek), key_file.display().to_string()))
        }
        BackendChoice::Pkcs11(options) => {
            let kek = Pkcs11Kek::open(&options)?;
            let place = format!(
                "PKCS#11 {} (key label {:?})",
                options.token, options.key_label
            );
            if let Some(key_id) = kek.create_first_key()? {
                eprintln!(
                    "coffer kms-plugin: generated the first AES-256 key {key_id} in {place}; it never leaves the token: back the token up"
                );
            }
            Ok((Arc::new(kek), place))
        }
    }
}

/// Opens the key backend, binds the socket and serves until SIGINT or SIGTERM.
async fn serve(listen: &str, backend: BackendChoice) -> anyhow::Result<ExitCode> {
    let socket = parse_listen(listen)?;
    let (kek, place) = open_backend(backend)?;
    // Check the backend now (a key file is re-read, a token does a round trip), so a bad
    // one fails at start.
    let status = kek.status().await?;
    let listener = bind(&socket)?;
    let _cleanup = match &socket {
        Socket::Path(p) => Some(RemoveOnDrop(p.clone())),
        Socket::Abstract(_) => None,
    };
    eprintln!(
        "coffer kms-plugin: serving KMS v2 on {listen} with {place} (key_id {})",
        status.key_id
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder().serve_with_incoming_shutdown(
        KmsV2Server::new(kek),
        UnixListenerStream::new(listener),
        async {
            let _ = stop_rx.await;
        },
    );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            result.context("the gRPC server failed")?;
            return Ok(ExitCode::FAILURE);
        }
        () = shutdown_signal() => {}
    }
    let _ = stop_tx.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut server)
        .await
        .is_err()
    {
        eprintln!("coffer kms-plugin: closing connections still open after {DRAIN_TIMEOUT:?}");
    }
    eprintln!("coffer kms-plugin: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Binds the socket. An existing socket file nobody answers on (left by a killed plugin) is
/// replaced; a live one, or a file that is not a socket, is refused. The file is mode 0600.
fn bind(socket: &Socket) -> anyhow::Result<UnixListener> {
    match socket {
        Socket::Path(path) => {
            use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    anyhow::bail!(
                        "{} exists and is not a socket; choose another --listen path",
                        path.display()
                    );
                }
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    anyhow::bail!(
                        "another process is serving on {}; stop it or choose another --listen path",
                        path.display()
                    );
                }
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale socket {}", path.display())
                })?;
            }
            let listener = UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {} to mode 0600", path.display()))?;
            Ok(listener)
        }
        Socket::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            let std_listener = std::os::unix::net::UnixListener::bind_addr(&addr)
                .with_context(|| format!("cannot listen on abstract socket @{name}"))?;
            std_listener.set_nonblocking(true)?;
            Ok(UnixListener::from_std(std_listener)?)
        }
    }
}

/// Removes the socket file when serving ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let path = |t: &str| match parse_listen(t).expect("parses") {
            Socket::Path(p) => p.display().to_string(),
            Socket::Abstract(n) => format!("@{n}"),
        };
        assert_eq!(path("unix:///run/kms.sock"), "/run/kms.sock");
        assert_eq!(path("unix://host/x"), "/x");
        assert_eq!(path("unix:/x"), "/x");
        assert_eq!(path("unix:///@kms"), "@kms");
        assert_eq!(path("./kms.sock"), "./kms.sock");
        assert!(parse_listen("http://x/y").is_err());
        assert!(parse_listen("unix://host").is_err());
    }
}
