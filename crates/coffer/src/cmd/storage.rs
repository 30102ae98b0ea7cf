//! `coffer storage`: offline tools for a Coffer store (status, compact, rewrap, verify), and
//! the store flags shared with `coffer serve`.
//!
//! `rewrap` and `verify` read every value of the chosen resources with the transformer the
//! `EncryptionConfiguration` assigns to that resource, the full storage key being the AAD, as
//! kube-apiserver reads them (`reference/encryption.md` §1.5, §6). `rewrap` writes back only
//! stale values (read by a provider or key other than the current first one), each with a
//! compare-and-swap on its `mod_revision`, so a concurrent update is never overwritten; running
//! it again is safe and picks up where it stopped. Neither prints a value or a key.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use coffer_encryption::{
    EncryptedObject, EncryptionConfig, GrpcKms, LoadMode, PREFIX_KMS_V2, PrefixTransformers,
    ReadTransformer as _, Transformer as _,
};
use coffer_storage::{
    EmbeddedStore, EtcdConfig, EtcdStore, EtcdTls, KeyLayout, KeyValue, Revision, Store, Txn,
    TxnOutcome,
};

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

    /// Like [`StoreArgs::open`], for the `coffer storage` tools: a locked embedded store means
    /// a running `coffer serve`, and the error says to stop it.
    async fn open_offline(&self, tool: &str) -> anyhow::Result<(Arc<dyn Store>, String)> {
        if self.etcd_servers.is_some() {
            return self.open().await;
        }
        let file = self.store_file();
        if !file.exists() {
            anyhow::bail!(
                "no Coffer store at {}; check --data-dir (or give --etcd-servers)",
                file.display()
            );
        }
        match EmbeddedStore::open(&file) {
            Ok(store) => Ok((Arc::new(store), file.display().to_string())),
            Err(coffer_storage::Error::InUse { .. }) => anyhow::bail!(
                "{} is locked by a running `coffer serve` (the embedded store allows one \
                 process at a time); stop the server, then run `coffer storage {tool}` again",
                file.display()
            ),
            Err(e) => Err(e.into()),
        }
    }
}

/// Flags of `rewrap` and `verify`: the store, the encryption config and the resources.
#[derive(clap::Args, Clone)]
pub struct EncryptionArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// kube-apiserver's EncryptionConfiguration file. Default: encryption-config.yaml in
    /// --data-dir (the file `coffer serve` generates); required with --etcd-servers.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Resources to process, comma-separated: core resources by name (`secrets`,
    /// `configmaps`), others as `resource.group` (stored under `<prefix>/<group>/<resource>/`).
    #[arg(long, value_delimiter = ',', default_value = "secrets")]
    resources: Vec<String>,
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
    /// Re-encrypt every stale value with the current first provider and key.
    #[command(
        after_help = "Example (after putting a new key first in the config; stop `coffer serve` first for the embedded store):\n  \
            coffer storage rewrap --data-dir ./coffer-data --encryption-provider-config ./coffer-data/encryption-config.yaml\n\n\
            Values read by the first provider and key are left alone; each stale value is written back\n\
            with a compare-and-swap on its revision, so a concurrent update is never overwritten (it is\n\
            skipped and reported). Safe to run again. Exit status 1 if any value could not be read or\n\
            was skipped."
    )]
    Rewrap {
        #[command(flatten)]
        args: EncryptionArgs,
        /// Report what would be rewritten without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Count values per provider and key, stale values, plaintext values and unreadable values.
    #[command(after_help = "Example:\n  \
            coffer storage verify --data-dir ./coffer-data --require-encrypted\n\n\
            Exit status 1 if any value fails to decrypt, or (with --require-encrypted) any is plaintext.\n\
            Unreadable values are named by key, never printed.")]
    Verify {
        #[command(flatten)]
        args: EncryptionArgs,
        /// Fail when any value is stored in plaintext (identity).
        #[arg(long)]
        require_encrypted: bool,
    },
}

/// Runs a `coffer storage` subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match command {
            Command::Status(args) => {
                let (store, where_) = args.open_offline("status").await?;
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
                let (store, where_) = store.open_offline("compact").await?;
                let target = match revision {
                    Some(r) => Revision::new(r),
                    None => store.current_revision().await?,
                };
                store.compact(target).await?;
                println!("compacted {where_} up to revision {target}");
                Ok(ExitCode::SUCCESS)
            }
            Command::Rewrap { args, dry_run } => {
                let mode = if dry_run { Mode::DryRun } else { Mode::Rewrap };
                walk(&args, mode).await
            }
            Command::Verify {
                args,
                require_encrypted,
            } => walk(&args, Mode::Verify { require_encrypted }).await,
        }
    })
}

/// What [`walk`] does with each value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Count only.
    Verify {
        /// Plaintext values make the exit status 1.
        require_encrypted: bool,
    },
    /// Count what would be rewritten.
    DryRun,
    /// Rewrite stale values.
    Rewrap,
}

/// Values read per range call.
const PAGE: usize = 500;

/// The tally of one run. Holds key names and provider labels, never values.
#[derive(Default)]
struct Tally {
    /// Values per origin label (provider, key name, KMS key id), read successfully.
    by_origin: BTreeMap<String, u64>,
    values: u64,
    stale: u64,
    plaintext: u64,
    rewritten: u64,
    /// Keys that changed between our read and our write: skipped.
    changed: Vec<String>,
    /// Keys that could not be read or rewritten, with the reason (never the value).
    failed: Vec<(String, String)>,
}

/// Reads every value of the chosen resources, counts it, and in [`Mode::Rewrap`] writes the
/// stale ones back under the current key.
async fn walk(args: &EncryptionArgs, mode: Mode) -> anyhow::Result<ExitCode> {
    let tool = match mode {
        Mode::Rewrap | Mode::DryRun => "rewrap",
        Mode::Verify { .. } => "verify",
    };
    let config_path = match (&args.encryption_provider_config, &args.store.etcd_servers) {
        (Some(p), _) => p.clone(),
        (None, None) => args.store.data_dir.join("encryption-config.yaml"),
        (None, Some(_)) => anyhow::bail!(
            "give --encryption-provider-config: the EncryptionConfiguration the API servers use"
        ),
    };
    let config = EncryptionConfig::load(&config_path, LoadMode::Startup)
        .with_context(|| format!("--encryption-provider-config {}", config_path.display()))?;
    for warning in config.warnings() {
        eprintln!("warning: {}: {warning}", config_path.display());
    }
    let transformers = config.build(&GrpcKms)?;
    for (name, kms) in transformers.kms_v2() {
        kms.probe().await.with_context(|| {
            format!("KMS v2 provider {name:?} does not answer; start its plugin first")
        })?;
    }
    let (store, where_) = args.store.open_offline(tool).await?;
    let layout = KeyLayout::new(&args.store.etcd_prefix);
    println!("store:     {where_}");
    println!("config:    {}", config_path.display());

    let mut tally = Tally::default();
    let mut progress = Progress::new(mode);
    for resource in &args.resources {
        let (group, name) = match resource.split_once('.') {
            Some((r, g)) => (g, r),
            None => ("", resource.as_str()),
        };
        let prefix = if group.is_empty() {
            format!("{}/{name}/", layout.prefix())
        } else {
            format!("{}/{group}/{name}/", layout.prefix())
        };
        let transformer = transformers.for_resource(group, name);
        let before = tally.values;
        let mut after: Option<bytes::Bytes> = None;
        loop {
            let page = store
                .range(prefix.as_bytes(), after.as_deref(), PAGE)
                .await
                .with_context(|| format!("cannot read {prefix}"))?;
            for kv in &page.kvs {
                visit(store.as_ref(), &transformer, kv, mode, &mut tally).await?;
                progress.tick(&tally);
            }
            match page.kvs.last() {
                Some(last) if page.more => after = Some(last.key.clone()),
                _ => break,
            }
        }
        progress.clear();
        println!(
            "{resource}: {} values under {prefix}",
            tally.values - before
        );
    }
    report(&tally, mode);
    let failed = !tally.failed.is_empty()
        || !tally.changed.is_empty()
        || matches!(mode, Mode::Verify { require_encrypted: true } if tally.plaintext > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads one value and, in [`Mode::Rewrap`], writes it back under the current key when stale.
/// Errors name the key, never the value; only a store failure stops the run.
async fn visit(
    store: &dyn Store,
    transformer: &PrefixTransformers,
    kv: &KeyValue,
    mode: Mode,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let key = String::from_utf8_lossy(&kv.key).into_owned();
    tally.values += 1;
    // The full storage key is the AAD, as kube-apiserver's etcd3 store passes it.
    let (plain, freshness) = match transformer.from_storage(&kv.value, &kv.key).await {
        Ok(read) => read,
        Err(e) => {
            tally.failed.push((key, format!("cannot decrypt: {e}")));
            return Ok(());
        }
    };
    let origin = origin(&kv.value);
    if !kv.value.starts_with(b"k8s:enc:") {
        tally.plaintext += 1;
    }
    *tally.by_origin.entry(origin).or_default() += 1;
    if !freshness.is_stale() {
        return Ok(());
    }
    tally.stale += 1;
    match mode {
        Mode::Verify { .. } => Ok(()),
        Mode::DryRun => {
            tally.rewritten += 1;
            Ok(())
        }
        Mode::Rewrap => {
            let stored = match transformer.to_storage(plain.expose_secret(), &kv.key).await {
                Ok(s) => s,
                Err(e) => {
                    tally.failed.push((key, format!("cannot encrypt: {e}")));
                    return Ok(());
                }
            };
            let txn = Txn::update(kv.key.clone(), kv.mod_revision, stored);
            match store
                .txn(txn)
                .await
                .with_context(|| format!("cannot write {key}"))?
            {
                TxnOutcome::Committed { .. } => tally.rewritten += 1,
                TxnOutcome::Failed { .. } => tally.changed.push(key),
            }
            Ok(())
        }
    }
}

/// Who wrote a stored value, from its prefix: `secretbox key key1`, `kms v2 name key_id v2-ab`,
/// or `identity (plaintext)`. Key names and KMS key ids are public; nothing else is shown.
fn origin(value: &[u8]) -> String {
    let Some(rest) = value.strip_prefix(b"k8s:enc:") else {
        return "identity (plaintext)".to_owned();
    };
    let mut parts = rest.splitn(4, |b| *b == b':');
    let mut next = || {
        let part = parts.next().unwrap_or_default();
        String::from_utf8_lossy(&part[..part.len().min(64)]).into_owned()
    };
    let (provider, version, name) = (next(), next(), next());
    if let Some(body) = value.strip_prefix(format!("{PREFIX_KMS_V2}{name}:").as_bytes()) {
        return match EncryptedObject::decode_validated(body) {
            Ok(eo) => format!("kms v2 {name} key_id {}", eo.key_id),
            Err(_) => format!("kms v2 {name} (unreadable envelope)"),
        };
    }
    match provider.as_str() {
        "kms" => format!("kms {version} {name}"),
        _ => format!("{provider} key {name}"),
    }
}

/// Prints the summary. The lines `stale:`, `plaintext:` and `failed:` are stable for scripts.
fn report(t: &Tally, mode: Mode) {
    println!("values:    {}", t.values);
    for (origin, n) in &t.by_origin {
        println!("  {n:>7}  {origin}");
    }
    println!("stale:     {}", t.stale);
    println!("plaintext: {}", t.plaintext);
    println!("failed:    {}", t.failed.len());
    match mode {
        Mode::Verify { .. } => {}
        Mode::DryRun => println!("would rewrap: {}", t.rewritten),
        Mode::Rewrap => {
            println!("rewrapped: {}", t.rewritten);
            println!("skipped:   {} (changed while rewrap ran)", t.changed.len());
        }
    }
    for (key, why) in &t.failed {
        eprintln!("failed: {key}: {why}");
    }
    for key in &t.changed {
        eprintln!("skipped: {key} changed after it was read; run `coffer storage rewrap` again");
    }
    if let Mode::Verify {
        require_encrypted: true,
    } = mode
        && t.plaintext > 0
    {
        eprintln!(
            "error: {} values are stored in plaintext; put an encrypting provider first and run `coffer storage rewrap`",
            t.plaintext
        );
    }
}

/// A counter on stderr: redrawn in place at most five times a second on a terminal, a line
/// every five seconds otherwise.
struct Progress {
    verb: &'static str,
    tty: bool,
    last: Instant,
    drawn: bool,
}

impl Progress {
    fn new(mode: Mode) -> Self {
        Progress {
            verb: match mode {
                Mode::Rewrap => "rewrap",
                Mode::DryRun => "rewrap --dry-run",
                Mode::Verify { .. } => "verify",
            },
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
            drawn: false,
        }
    }

    fn tick(&mut self, t: &Tally) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let line = format!(
            "{}: {} values read, {} stale, {} rewrapped, {} failed",
            self.verb,
            t.values,
            t.stale,
            t.rewritten,
            t.failed.len()
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            eprintln!("{line}");
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use coffer_encryption::NoKms;

    use super::*;

    /// Secrets encrypted with secretbox keys named `names`, in order (32-byte test keys).
    fn secrets_transformer(names: &[&str]) -> Arc<PrefixTransformers> {
        let keys: String = names
            .iter()
            .map(|n| {
                format!(
                    "      - name: {n}\n        secret: {}\n",
                    if *n == "key1" {
                        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
                    } else {
                        "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU="
                    }
                )
            })
            .collect();
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n{keys}"
        );
        EncryptionConfig::parse(yaml.as_bytes(), Path::new("test"), LoadMode::Startup)
            .expect("valid config")
            .build(&NoKms)
            .expect("builds")
            .for_resource("", "secrets")
    }

    #[tokio::test]
    async fn rewrap_skips_a_value_changed_after_it_was_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("coffer.redb")).expect("store");
        let (old, new) = (
            secrets_transformer(&["key1"]),
            secrets_transformer(&["key2", "key1"]),
        );
        let key: &'static [u8] = b"/registry/secrets/default/s";
        let stored = old.to_storage(b"k8s\0v1", key).await.expect("encrypt");
        store.txn(Txn::create(key, stored)).await.expect("create");
        let read = store.get(key).await.expect("get").kv.expect("exists");

        // Someone updates the object between our read and our write.
        let stored = old.to_storage(b"k8s\0v2", key).await.expect("encrypt");
        store.txn(Txn::put(key, stored)).await.expect("put");
        let mut tally = Tally::default();
        visit(&store, &new, &read, Mode::Rewrap, &mut tally)
            .await
            .expect("visit");
        assert_eq!((tally.stale, tally.rewritten), (1, 0));
        assert_eq!(tally.changed, ["/registry/secrets/default/s"]);
        let kept = store.get(key).await.expect("get").kv.expect("exists");
        let (plain, _) = new.from_storage(&kept.value, key).await.expect("read");
        assert_eq!(
            plain.expose_secret(),
            b"k8s\0v2",
            "the newer write survives"
        );

        // Read again: now it is rewrapped under key2 and reads as current.
        let mut tally = Tally::default();
        visit(&store, &new, &kept, Mode::Rewrap, &mut tally)
            .await
            .expect("visit");
        assert_eq!((tally.rewritten, tally.changed.len()), (1, 0));
        let now = store.get(key).await.expect("get").kv.expect("exists");
        assert!(now.value.starts_with(b"k8s:enc:secretbox:v1:key2:"));
        let (plain, fresh) = new.from_storage(&now.value, key).await.expect("read");
        assert_eq!(plain.expose_secret(), b"k8s\0v2");
        assert!(!fresh.is_stale());
    }

    #[test]
    fn origins_show_provider_and_key_only() {
        assert_eq!(origin(b"k8s\0plain"), "identity (plaintext)");
        assert_eq!(
            origin(b"k8s:enc:secretbox:v1:key1:\x01\x02"),
            "secretbox key key1"
        );
        assert_eq!(origin(b"k8s:enc:aescbc:v1:k2:zz"), "aescbc key k2");
        assert_eq!(origin(b"k8s:enc:kms:v1:old:zz"), "kms v1 old");
        assert_eq!(
            origin(b"k8s:enc:kms:v2:p:garbage"),
            "kms v2 p (unreadable envelope)"
        );
    }
}
