//! `coffer scan`: hardcoded secrets in a tree or Git history, and posture checks of manifests.
//!
//! Exit codes: 0 when nothing at or above `--fail-on` was found, 1 when something was, 2 when
//! the scan could not run (bad flag value, unreadable path, not a Git repository).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use coffer_scan::{
    Allowlist, Baseline, CATALOG, DEFAULT_ALLOWLIST, DEFAULT_MAX_FILE_SIZE, Format, Progress,
    ScanOptions, Scanner, Severity, parse_objects, render_readers, secret_readers,
};

const EXAMPLES: &str = "\
Examples:
  coffer scan                               scan the current directory (secrets + posture)
  coffer scan --git .                       scan every commit of the repository's history
  coffer scan --format sarif -o scan.sarif  write SARIF 2.1.0 for GitHub code scanning
  coffer scan --format json -o base.json    save a baseline, then later:
  coffer scan --baseline base.json          report only findings that are new since then
  coffer scan --fail-on medium deploy/      fail CI on medium findings too
  coffer scan --list-rules                  show every rule id

Live cluster (coffer serve or any API server):
  coffer scan --cluster                     audit the cluster of $KUBECONFIG (RBAC, Pods, ConfigMaps)
  coffer scan --cluster --who-can-read      who can read each Secret
or with objects listed by kubectl:
  kubectl get roles,clusterroles,rolebindings,clusterrolebindings,configmaps,pods,deployments \
      -A -o json | coffer scan --objects -
  kubectl get secrets,roles,clusterroles,rolebindings,clusterrolebindings -A -o json \
      | coffer scan --objects - --who-can-read

Suppress a finding with a `coffer:ignore` comment on its line, or list paths, rule ids,
fingerprints or value regexes in .coffer-scan.yaml at the scanned root (see --allowlist).

Exit status: 0 clean, 1 findings at or above --fail-on, 2 the scan could not run.";

/// Flags of `coffer scan`.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Directory, file or Git repository to scan.
    #[arg(default_value = ".")]
    path: PathBuf,

    /// Scan every commit reachable from any ref of the Git repository at PATH (instead of the
    /// work tree). Findings name the commit and author; posture checks use HEAD's tree.
    #[arg(long)]
    git: bool,

    /// Output format: text, json or sarif.
    #[arg(long, default_value = "text", value_parser = parse_format)]
    format: Format,

    /// Write the report to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Exit with status 1 when a finding of this severity or higher exists: low, medium, high,
    /// or never. Every hardcoded secret is high.
    #[arg(long, default_value = "high", value_name = "SEVERITY", value_parser = parse_fail_on)]
    fail_on: FailOn,

    /// Report only findings whose fingerprint is not in this earlier JSON report.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,

    /// Allowlist file (YAML: paths, rules, fingerprints, values). Default: .coffer-scan.yaml in
    /// PATH, when it exists.
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,

    /// Skip the posture checks (RBAC, EncryptionConfiguration, Pod specs).
    #[arg(long)]
    no_posture: bool,

    /// Also scan files that .gitignore / .ignore exclude.
    #[arg(long)]
    no_ignore: bool,

    /// Skip files (and Git blobs) larger than this many bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_SIZE, value_name = "BYTES")]
    max_file_size: u64,

    /// Audit objects listed from a cluster (JSON or YAML, a List or documents; `-` reads
    /// standard input) instead of PATH: RBAC and Pod checks, secret-looking ConfigMap values,
    /// literal env secrets. Secrets are not reported for holding values.
    #[arg(long, value_name = "FILE", conflicts_with = "git")]
    objects: Option<PathBuf>,

    /// Audit the live cluster instead of PATH: list RBAC objects, Pods and workloads,
    /// ConfigMaps and Secret names from the API server of the kubeconfig (`--kubeconfig`, else
    /// $KUBECONFIG, else ~/.kube/config), `coffer serve` or any Kubernetes. Secret values are
    /// dropped as they arrive. Kinds the server does not serve are skipped with a note.
    #[arg(long, conflicts_with_all = ["git", "objects"])]
    cluster: bool,

    /// With --cluster: the kubeconfig file (implies --cluster).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["git", "objects"])]
    kubeconfig: Option<PathBuf>,

    /// With --cluster: the kubeconfig context (implies --cluster).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["git", "objects"])]
    context: Option<String>,

    /// With --objects or --cluster: print who can get, list or watch each Secret (reverse
    /// RBAC) and exit.
    #[arg(long)]
    who_can_read: bool,

    /// Print every rule (id, severity, what it finds) and exit.
    #[arg(long)]
    list_rules: bool,
}

/// `--fail-on`: a severity threshold, or never.
#[derive(Clone, Copy)]
struct FailOn(Option<Severity>);

fn parse_fail_on(s: &str) -> Result<FailOn, String> {
    if s.eq_ignore_ascii_case("never") {
        return Ok(FailOn(None));
    }
    s.parse::<Severity>()
        .map(|s| FailOn(Some(s)))
        .map_err(|e| format!("{e}, or never"))
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Runs `coffer scan`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match scan(args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn scan(args: Args) -> anyhow::Result<ExitCode> {
    if args.list_rules {
        for r in CATALOG {
            println!("{:<34} {:<7} {}", r.id, r.severity, r.title);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = ScanOptions {
        allowlist: allowlist(&args)?,
        baseline: match &args.baseline {
            Some(path) => Some(Baseline::load(path)?),
            None => None,
        },
        max_file_size: args.max_file_size,
        respect_gitignore: !args.no_ignore,
        posture: !args.no_posture,
    };
    let scanner = Scanner::new(options);
    let mut bar = ProgressLine::new();
    let live = args.cluster || args.kubeconfig.is_some() || args.context.is_some();
    if args.who_can_read && !live && args.objects.is_none() {
        anyhow::bail!("--who-can-read needs --objects FILE or --cluster");
    }
    let report = if live || args.objects.is_some() {
        let objects = match &args.objects {
            Some(source) => parse_objects(&read_objects(source)?)?,
            None => list_cluster(&args)?,
        };
        if args.who_can_read {
            let table = render_readers(&secret_readers(&objects), args.format);
            write_out(&args, table)?;
            return Ok(ExitCode::SUCCESS);
        }
        scanner.scan_objects("cluster", objects)
    } else if args.git {
        scanner
            .scan_git(&args.path, &mut |p| bar.update(p))
            .with_context(|| "run with a path inside a Git work tree, or drop --git")?
    } else {
        scanner.scan_dir(&args.path, &mut |p| bar.update(p))?
    };
    bar.clear();

    write_out(&args, report.render(args.format))?;
    let failing = args.fail_on.0.map_or(0, |s| report.count_at_least(s));
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes to `--output`, or standard output, ending with a newline.
fn write_out(args: &Args, mut rendered: String) -> anyhow::Result<()> {
    if !rendered.ends_with('\n') {
        rendered.push('\n');
    }
    match &args.output {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }
    Ok(())
}

/// The kinds a live audit lists: `(group, version, kind, plural)`.
const LIVE_KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Pod", "pods"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
    ),
];

/// Lists the objects of a live audit from the kubeconfig's API server.
fn list_cluster(args: &Args) -> anyhow::Result<Vec<serde_json::Value>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let options = coffer_agent::ClientOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        };
        let cluster = coffer_agent::Cluster::connect(&options).await?;
        let mut objects = Vec::new();
        for (group, version, kind, plural) in LIVE_KINDS {
            match cluster.list_all(group, version, kind, plural).await? {
                Some(items) => objects.extend(items),
                None => eprintln!("coffer scan: the server does not serve {plural}; skipped"),
            }
        }
        Ok(objects)
    })
}

/// The text of `--objects`: a file, or standard input for `-`.
fn read_objects(source: &Path) -> anyhow::Result<String> {
    if source == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read objects from standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(source).with_context(|| format!("cannot read {}", source.display()))
    }
}

/// `--allowlist`, else `.coffer-scan.yaml` in the scanned directory when present.
fn allowlist(args: &Args) -> anyhow::Result<Allowlist> {
    if let Some(path) = &args.allowlist {
        return Ok(Allowlist::load(path)?);
    }
    let dir = if args.path.is_dir() {
        args.path.clone()
    } else {
        args.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let default = dir.join(DEFAULT_ALLOWLIST);
    if default.is_file() {
        Ok(Allowlist::load(&default)?)
    } else {
        Ok(Allowlist::default())
    }
}

/// A one-line progress display on stderr, drawn only when stderr is a terminal and at most
/// five times a second.
struct ProgressLine {
    enabled: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl ProgressLine {
    fn new() -> Self {
        ProgressLine {
            enabled: std::io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    fn update(&mut self, p: Progress<'_>) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let mib = p.bytes as f64 / (1024.0 * 1024.0);
        let line = if p.commits_total > 0 {
            format!(
                "scanning history: commit {}/{} ({} files, {mib:.1} MiB)",
                p.commits_done, p.commits_total, p.files
            )
        } else {
            format!("scanning: {} files, {mib:.1} MiB  {}", p.files, p.current)
        };
        let line: String = line.chars().take(100).collect();
        eprint!("\r\x1b[2K{line}");
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}
