//! Coffer's leak scanner and posture checker, the engine of `coffer scan`.
//!
//! It finds, without running anything or calling any issuer:
//!
//! - **hardcoded secrets** in a directory tree ([`Scanner::scan_dir`]) or in every commit of a
//!   Git history ([`Scanner::scan_git`], a pure-Rust reader, no `git` binary): well-known
//!   credential formats (AWS, GitHub, GitLab, Slack, Stripe, Google, npm, PyPI, SendGrid,
//!   OpenAI, Azure storage), private key blocks, JWTs, passwords in connection strings, and
//!   generic `password = "..."` assignments in common languages, filtered by entropy,
//!   stop-words and placeholder detection (the rules are listed on [`is_placeholder`]);
//!   [`CATALOG`] lists every rule id;
//! - **Kubernetes values**: decoded `data` and `stringData` of Secret manifests (YAML
//!   multi-document, JSON, `List`), secret-looking ConfigMap values, literal `env[].value`
//!   secrets in Pods and workload templates, committed EncryptionConfiguration keys.
//!   SealedSecret, ExternalSecret and SOPS-encrypted documents are treated as safe;
//! - **posture** problems: EncryptionConfiguration (identity first, secrets not covered,
//!   aescbc first, short or reused keys), RBAC (wildcards and list/watch on secrets,
//!   cluster-wide and everyone-wide bindings of secret access), Pods (secrets as env vars,
//!   automounted ServiceAccount tokens).
//!
//! A [`Finding`] never contains a secret value: only a [redacted](redact) prefix and a
//! [fingerprint]. Suppression: an [`Allowlist`] file, the inline [`INLINE_IGNORE`] comment, and a
//! [`Baseline`] (an earlier JSON report; only new findings are reported). Output: [`Format`].
//!
//! For a live cluster, [`Scanner::scan_objects`] runs the same checks on objects listed from an
//! API server, and [`secret_readers`] answers who can read each Secret (reverse RBAC); fetching
//! the objects (kubeconfig, HTTP) is the caller's job. Not here: live verification of
//! credentials with their issuers.
//!
//! Start with [`Scanner::new`] and [`Report::render`].
#![forbid(unsafe_code)]

mod access;
mod detect;
mod error;
mod finding;
mod git;
mod heuristics;
mod kube;
mod posture;
mod report;
mod rules;
mod scanner;
mod suppress;
mod walk;

// The public interface.
pub use access::{Reader, SecretAccess, parse_objects, render_readers, secret_readers};
pub use error::{Error, Result};
pub use finding::{Category, CommitInfo, Finding, Location, Severity, fingerprint, redact};
pub use heuristics::{is_placeholder, is_sensitive_name, shannon_entropy};
pub use report::{Format, JSON_VERSION};
pub use rules::{CATALOG, RuleInfo};
pub use scanner::{DEFAULT_MAX_FILE_SIZE, Progress, Report, ScanOptions, ScanStats, Scanner};
pub use suppress::{Allowlist, Baseline, DEFAULT_ALLOWLIST, INLINE_IGNORE};
