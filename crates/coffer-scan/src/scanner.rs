//! The scanner: runs the credential rules, the manifest pass and the posture checks over a
//! directory tree, a Git history or a single text, and applies suppression.
//!
//! Order per file: path allowlist → size and binary checks → manifest pass (Kubernetes values,
//! safe documents) → credential rules (minus safe lines) → de-duplication (same value on the same
//! line is one finding; the manifest rule wins) → inline `coffer:ignore` → value and
//! rule/fingerprint allowlist → finding. At the end: RBAC binding checks, then the baseline.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use crate::detect::{Candidate, LineIndex, detect};
use crate::error::Result;
use crate::finding::{CommitInfo, Finding, Location, Severity};
use crate::git::{GitEvent, walk_history};
use crate::kube::{live_candidates, live_objects, scan_manifests};
use crate::posture::Posture;
use crate::rules::info;
use crate::suppress::{Allowlist, Baseline, INLINE_IGNORE};
use crate::walk::{is_binary, walk_dir};

/// Files larger than this are skipped by default (10 MiB).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// How to scan. Build it with struct update syntax from [`ScanOptions::default`]
/// (exhaustive on purpose, so callers see every knob).
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// What not to report.
    pub allowlist: Allowlist,
    /// Findings already known; only new ones are reported.
    pub baseline: Option<Baseline>,
    /// Files (and blobs) larger than this are skipped.
    pub max_file_size: u64,
    /// Honour `.gitignore` / `.ignore` files when walking a directory.
    pub respect_gitignore: bool,
    /// Run the posture checks (RBAC, EncryptionConfiguration, Pods).
    pub posture: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            allowlist: Allowlist::default(),
            baseline: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            respect_gitignore: true,
            posture: true,
        }
    }
}

/// Counters of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ScanStats {
    /// Text files (or blobs) scanned.
    pub files_scanned: u64,
    /// Bytes of those files.
    pub bytes_scanned: u64,
    /// Files skipped: binary, too large, allowlisted path, or unreadable.
    pub skipped_files: u64,
    /// Commits visited (Git mode).
    pub commits_scanned: u64,
    /// Findings dropped by the allowlist or an inline `coffer:ignore`.
    pub suppressed: u64,
    /// Findings dropped because the baseline has them.
    pub baselined: u64,
}

/// The result of a scan: findings sorted by severity (highest first), path and line.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// What was found.
    pub findings: Vec<Finding>,
    /// Counters.
    pub stats: ScanStats,
}

impl Report {
    /// Number of findings at or above `severity`.
    pub fn count_at_least(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity >= severity)
            .count()
    }
}

/// Progress of a running scan, passed to the caller's callback.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// Files scanned so far.
    pub files: u64,
    /// Bytes scanned so far.
    pub bytes: u64,
    /// Commits done (Git mode).
    pub commits_done: u64,
    /// Commits in total (Git mode; 0 in directory mode).
    pub commits_total: u64,
    /// The path being scanned.
    pub current: &'a str,
}

/// Scans trees, histories and texts with one set of options.
///
/// Holds no state between scans; one scanner can run many.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    options: ScanOptions,
}

impl Scanner {
    /// A scanner with `options`.
    pub fn new(options: ScanOptions) -> Self {
        Scanner { options }
    }

    /// Scans one text as if it were the file `path` (secrets and, if enabled, posture).
    pub fn scan_text(&self, path: &str, text: &str) -> Report {
        let mut s = Session::new(self);
        s.file(path, text.as_bytes(), None, true, self.options.posture);
        s.finish(false)
    }

    /// Scans a directory tree (or one file).
    pub fn scan_dir(&self, root: &Path, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Report> {
        let mut s = Session::new(self);
        let errors = walk_dir(root, self.options.respect_gitignore, |entry| {
            if self.options.allowlist.allows_path(&entry.rel)
                || entry.size > self.options.max_file_size
            {
                s.stats.skipped_files += 1;
                return;
            }
            match std::fs::read(entry.path) {
                Ok(bytes) => s.file(&entry.rel, &bytes, None, true, self.options.posture),
                Err(_) => s.stats.skipped_files += 1,
            }
            progress(s.progress(&entry.rel, 0));
        })?;
        s.stats.skipped_files += errors;
        Ok(s.finish(false))
    }

    /// Scans every commit reachable from any ref of the Git repository at `repo`.
    ///
    /// Secret findings carry the commit (id, author, time) of the oldest commit holding the
    /// blob, and each (fingerprint, path) pair is reported once. Posture checks run on the
    /// manifests of HEAD's tree only, so a fixed RBAC mistake is not reported again.
    pub fn scan_git(&self, repo: &Path, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Report> {
        let mut s = Session::new(self);
        let mut total = 0;
        walk_history(repo, self.options.max_file_size, |event| match event {
            GitEvent::Commits(n) => total = n,
            GitEvent::Blob { path, data, commit } => {
                if self.options.allowlist.allows_path(path) {
                    s.stats.skipped_files += 1;
                } else {
                    s.file(path, data, Some(commit), true, false);
                }
            }
            GitEvent::Skipped => s.stats.skipped_files += 1,
            GitEvent::CommitDone => {
                s.stats.commits_scanned += 1;
                progress(s.progress("", total));
            }
            GitEvent::Head { path, data } => {
                if self.options.posture && !self.options.allowlist.allows_path(path) {
                    s.file(path, data, None, false, true);
                }
            }
        })?;
        Ok(s.finish(true))
    }
}

impl Scanner {
    /// Audits objects listed from a live cluster (e.g. `kubectl get roles,clusterroles,
    /// rolebindings,clusterrolebindings,configmaps,pods,deployments -A -o json`): the RBAC and Pod
    /// posture checks, secret-looking ConfigMap values and literal env secrets. Secret objects
    /// are not reported for holding values. Findings are located at
    /// `{source}:{Kind}/{namespace}/{name}`, line 1.
    pub fn scan_objects(&self, source: &str, objects: Vec<serde_json::Value>) -> Report {
        let mut s = Session::new(self);
        for obj in live_objects(objects) {
            let path = format!("{source}:{}/{}/{}", obj.kind(), obj.namespace(), obj.name());
            let at = |line: usize| Location {
                path: path.clone(),
                line,
                commit: None,
            };
            for c in live_candidates(&obj) {
                if self.options.allowlist.allows_value(&c.value) {
                    s.stats.suppressed += 1;
                    continue;
                }
                s.push(secret_finding(&c, at(c.line)));
            }
            if self.options.posture {
                for f in s.posture.check(&obj, &at) {
                    s.push(f);
                }
            }
        }
        s.finish(false)
    }
}

fn secret_finding(c: &Candidate, location: Location) -> Finding {
    let rule = info(c.rule);
    let message = match &c.detail {
        Some(d) => format!("{}: {d}", rule.title),
        None => rule.title.to_string(),
    };
    Finding::secret(c.rule, message, rule.fix, &c.value, location)
}

/// State of one scan.
struct Session<'s> {
    options: &'s ScanOptions,
    findings: Vec<Finding>,
    posture: Posture,
    stats: ScanStats,
}

impl<'s> Session<'s> {
    fn new(scanner: &'s Scanner) -> Self {
        Session {
            options: &scanner.options,
            findings: Vec::new(),
            posture: Posture::default(),
            stats: ScanStats::default(),
        }
    }

    fn progress<'p>(&self, current: &'p str, commits_total: u64) -> Progress<'p> {
        Progress {
            files: self.stats.files_scanned,
            bytes: self.stats.bytes_scanned,
            commits_done: self.stats.commits_scanned,
            commits_total,
            current,
        }
    }

    fn file(
        &mut self,
        path: &str,
        bytes: &[u8],
        commit: Option<&CommitInfo>,
        secrets: bool,
        posture: bool,
    ) {
        if bytes.len() as u64 > self.options.max_file_size || is_binary(bytes) {
            self.stats.skipped_files += 1;
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        if secrets {
            self.stats.files_scanned += 1;
            self.stats.bytes_scanned += bytes.len() as u64;
        }
        let lines = LineIndex::new(&text);
        let manifests = scan_manifests(path, &text);
        let at = |line: usize| Location {
            path: path.to_string(),
            line,
            commit: commit.cloned(),
        };
        let ignored = |line: usize| lines.line_text(&text, line).contains(INLINE_IGNORE);
        if secrets {
            let safe = |line: usize| manifests.safe_lines.iter().any(|r| r.contains(&line));
            // A line that a manifest rule reported is not reported again by a text rule.
            let mut candidates: Vec<Candidate> = manifests.candidates;
            let manifest_lines: HashSet<usize> = candidates.iter().map(|c| c.line).collect();
            candidates.extend(
                detect(path, &text, &lines)
                    .into_iter()
                    .filter(|c| !safe(c.line) && !manifest_lines.contains(&c.line)),
            );
            for c in candidates {
                if ignored(c.line) || self.options.allowlist.allows_value(&c.value) {
                    self.stats.suppressed += 1;
                    continue;
                }
                self.push(secret_finding(&c, at(c.line)));
            }
        }
        if posture {
            for obj in &manifests.objects {
                for f in self.posture.check(obj, &at) {
                    if ignored(f.location.line) {
                        self.stats.suppressed += 1;
                    } else {
                        self.push(f);
                    }
                }
            }
        }
    }

    fn push(&mut self, f: Finding) {
        if self.options.allowlist.allows(&f) {
            self.stats.suppressed += 1;
        } else {
            self.findings.push(f);
        }
    }

    fn finish(mut self, history: bool) -> Report {
        let bindings = std::mem::take(&mut self.posture).finish();
        for f in bindings {
            self.push(f);
        }
        let mut findings = Vec::new();
        let mut seen = HashSet::new();
        for f in self.findings {
            if history && !seen.insert((f.fingerprint.clone(), f.location.path.clone())) {
                continue;
            }
            if self
                .options
                .baseline
                .as_ref()
                .is_some_and(|b| b.contains(&f))
            {
                self.stats.baselined += 1;
                continue;
            }
            findings.push(f);
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.location.path.cmp(&b.location.path))
                .then_with(|| a.location.line.cmp(&b.location.line))
        });
        Report {
            findings,
            stats: self.stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(r: &Report) -> Vec<(&str, usize)> {
        r.findings
            .iter()
            .map(|f| (f.rule.as_str(), f.location.line))
            .collect()
    }

    #[test]
    fn inline_ignore_suppresses_only_its_line() {
        let text = "password = \"Kx9pL2mQ7rT4\"  # coffer:ignore\npassword = \"Zq8Xk2m9Qp4Lr7\"\n";
        let r = Scanner::default().scan_text("a.py", text);
        assert_eq!(rules(&r), vec![("generic-password", 2)]);
        assert_eq!(r.stats.suppressed, 1);
    }

    #[test]
    fn manifest_value_wins_over_generic_rule_on_the_same_line() {
        let y = "kind: Secret\nmetadata:\n  name: s\nstringData:\n  password: Kx9pL2mQ7rT4\n";
        let r = Scanner::default().scan_text("s.yaml", y);
        assert_eq!(rules(&r), vec![("k8s-secret-stringdata", 5)]);
    }

    #[test]
    fn sealed_secret_is_safe() {
        let y = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: s\nspec:\n  encryptedData:\n    password: AgBy3i4OJSWK+PiTySYZZA9rO43cGDEq\n";
        assert!(
            Scanner::default()
                .scan_text("s.yaml", y)
                .findings
                .is_empty()
        );
    }

    #[test]
    fn allowlist_and_baseline_drop_findings() {
        let text = "token = \"Kx9pL2mQ7rT4\"\npassword = \"test-Zq8Xk2m9\"\n";
        let first = Scanner::default().scan_text("a.py", text);
        assert_eq!(first.findings.len(), 2);
        let options = ScanOptions {
            allowlist: Allowlist::from_yaml("values: ['^test-']").expect("valid"),
            ..ScanOptions::default()
        };
        let r = Scanner::new(options).scan_text("a.py", text);
        assert_eq!(rules(&r), vec![("generic-password", 1)]);
        let json = format!(
            "{{\"findings\":[{{\"fingerprint\":\"{}\"}}]}}",
            first.findings[0].fingerprint
        );
        let options = ScanOptions {
            baseline: Some(Baseline::from_json(&json).expect("valid")),
            ..ScanOptions::default()
        };
        let r =
            Scanner::new(options).scan_text("a.py", &format!("{text}api_key = \"Lr7Tz1Vb8Nw3\"\n"));
        assert_eq!(
            rules(&r),
            vec![("generic-password", 2), ("generic-password", 3)]
        );
        assert_eq!(r.stats.baselined, 1);
    }

    #[test]
    fn live_objects_get_posture_and_configmap_checks_but_secrets_are_not_findings() {
        let list: serde_json::Value = serde_json::from_str(
            r#"{"kind": "List", "items": [
              {"kind": "Secret", "metadata": {"name": "db", "namespace": "prod"},
               "data": {"password": "S3gtQ2x1c3Rlci1WNGx1ZQ=="}},
              {"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "prod"},
               "data": {"API_TOKEN": "Lv-Cm-T0ken-9x"}},
              {"kind": "ClusterRole", "metadata": {"name": "all"},
               "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
            ]}"#,
        )
        .expect("json");
        let r = Scanner::default().scan_objects("live", vec![list]);
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.location.path.as_str(), f.location.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("rbac-wildcard-secrets", "live:ClusterRole//all", 1),
                ("k8s-configmap-secret", "live:ConfigMap/prod/cfg", 1),
            ]
        );
    }

    #[test]
    fn count_at_least_uses_severity_order() {
        let y = "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n";
        let r = Scanner::default().scan_text("p.yaml", y);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.count_at_least(Severity::Low), 1);
        assert_eq!(r.count_at_least(Severity::High), 0);
    }
}
