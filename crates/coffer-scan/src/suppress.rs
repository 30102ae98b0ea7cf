//! Suppression: the allowlist file and the baseline file.
//!
//! (The third mechanism, the inline `coffer:ignore` comment, is applied by the scanner on the
//! finding's line.)

use std::collections::HashSet;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::finding::Finding;

/// The marker that suppresses every finding on its line, in any comment syntax:
/// `password = "x"  # coffer:ignore`.
pub const INLINE_IGNORE: &str = "coffer:ignore";

/// The allowlist file read from the scanned root when `--allowlist` is not given.
pub const DEFAULT_ALLOWLIST: &str = ".coffer-scan.yaml";

/// What not to report, read from a YAML file:
///
/// ```yaml
/// paths: ['^vendor/', '_test\.go$']   # regexes on the file path
/// rules: [pod-automount-token]         # rule ids to turn off
/// fingerprints: [3f2a9c0d1e2b4a5c]     # single findings (from a report)
/// values: ['^test-']                   # regexes on the secret value itself
/// ```
#[derive(Debug, Default, Clone)]
pub struct Allowlist {
    paths: Vec<Regex>,
    rules: HashSet<String>,
    fingerprints: HashSet<String>,
    values: Vec<Regex>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistFile {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    fingerprints: Vec<String>,
    #[serde(default)]
    values: Vec<String>,
}

impl Allowlist {
    /// Reads an allowlist file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_yaml(&text).map_err(|reason| Error::Allowlist {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses allowlist YAML; the error names the bad field or regex.
    pub fn from_yaml(text: &str) -> std::result::Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let file: AllowlistFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let compile = |list: Vec<String>| {
            list.iter()
                .map(|r| Regex::new(r).map_err(|e| format!("regex {r:?}: {e}")))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        Ok(Allowlist {
            paths: compile(file.paths)?,
            rules: file.rules.into_iter().collect(),
            fingerprints: file.fingerprints.into_iter().collect(),
            values: compile(file.values)?,
        })
    }

    /// True when files at `path` are not scanned at all.
    pub fn allows_path(&self, path: &str) -> bool {
        self.paths.iter().any(|r| r.is_match(path))
    }

    /// True when `value` (a secret before redaction) is allowed.
    pub(crate) fn allows_value(&self, value: &str) -> bool {
        self.values.iter().any(|r| r.is_match(value))
    }

    /// True when the finding is allowed by rule id, fingerprint or path.
    pub fn allows(&self, f: &Finding) -> bool {
        self.rules.contains(&f.rule)
            || self.fingerprints.contains(&f.fingerprint)
            || self.allows_path(&f.location.path)
    }
}

/// Fingerprints of findings already known: a JSON report from an earlier
/// `coffer scan --format json`. Only findings whose fingerprint is not in it are reported.
#[derive(Debug, Default, Clone)]
pub struct Baseline {
    fingerprints: HashSet<String>,
}

#[derive(Deserialize)]
struct BaselineFile {
    findings: Vec<BaselineFinding>,
}

#[derive(Deserialize)]
struct BaselineFinding {
    fingerprint: String,
}

impl Baseline {
    /// Reads a baseline (a JSON report).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|reason| Error::Baseline {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a JSON report; only `findings[].fingerprint` is read.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let file: BaselineFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Baseline {
            fingerprints: file.findings.into_iter().map(|f| f.fingerprint).collect(),
        })
    }

    /// True when the finding was already in the baseline.
    pub fn contains(&self, f: &Finding) -> bool {
        self.fingerprints.contains(&f.fingerprint)
    }

    /// Number of fingerprints in the baseline.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// True when the baseline holds no fingerprints.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Location;

    fn finding(rule: &str, path: &str) -> Finding {
        let loc = Location {
            path: path.into(),
            line: 1,
            commit: None,
        };
        Finding::secret(rule, "m", "f", "Zq8Xk2m9Qp4Lr7", loc)
    }

    #[test]
    fn allowlist_by_path_rule_fingerprint_and_value() {
        let f = finding("generic-password", "src/a.py");
        let a = Allowlist::from_yaml(&format!(
            "paths: ['^vendor/']\nrules: [jwt]\nfingerprints: [{}]\nvalues: ['^test-']\n",
            f.fingerprint
        ))
        .expect("valid allowlist");
        assert!(a.allows(&f));
        assert!(a.allows(&finding("jwt", "x")));
        assert!(a.allows_path("vendor/lib.go"));
        assert!(!a.allows(&finding("github-token", "src/b.py")));
        assert!(a.allows_value("test-123"));
        assert!(!a.allows_value("prod-123"));
    }

    #[test]
    fn allowlist_errors_name_the_problem() {
        let err = Allowlist::from_yaml("paths: ['(']\n").expect_err("bad regex");
        assert!(err.contains("regex \"(\""), "{err}");
        assert!(Allowlist::from_yaml("colour: red\n").is_err());
        assert!(Allowlist::from_yaml("").is_ok());
    }

    #[test]
    fn baseline_reads_fingerprints_from_a_report() {
        let f = finding("generic-password", "a.py");
        let json = format!(
            "{{\"version\":1,\"findings\":[{{\"fingerprint\":\"{}\",\"rule\":\"x\"}}]}}",
            f.fingerprint
        );
        let b = Baseline::from_json(&json).expect("valid baseline");
        assert_eq!(b.len(), 1);
        assert!(b.contains(&f));
        assert!(!b.contains(&finding("jwt", "a.py")));
        assert!(Baseline::from_json("[]").is_err());
    }
}
