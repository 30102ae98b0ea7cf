//! What a scan reports: [`Finding`], its [`Severity`] and [`Location`].
//!
//! A finding never holds a secret value. It is built from the value by [`Finding::secret`], which
//! keeps only a [redacted prefix](redact) and a [fingerprint](fingerprint), and then the value is
//! dropped. Every output format is rendered from findings, so no output can carry a value.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How bad a finding is. Ordered: `Low < Medium < High`.
///
/// Exhaustive on purpose: three levels, matching SARIF's `note`, `warning` and `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Hardening advice (e.g. a Secret passed as an env var instead of a volume).
    Low,
    /// A weakness that widens exposure (e.g. `list` on secrets, `aescbc` first).
    Medium,
    /// A leak or an open door: every hardcoded secret, wildcard access to secrets,
    /// encryption at rest off for secrets.
    High,
}

impl Severity {
    /// Lower-case name, as used by `--fail-on` and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            other => Err(format!("unknown severity {other:?} (low, medium, high)")),
        }
    }
}

/// Which family of check produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A secret value written into a file (source code, config, a Secret manifest).
    Secret,
    /// A configuration weakness (RBAC, encryption config, Pod spec).
    Posture,
}

/// The commit a finding from Git history was first seen in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommitInfo {
    /// Full hex object id of the commit.
    pub id: String,
    /// Author name.
    pub author: String,
    /// Author email.
    pub email: String,
    /// Author time, seconds since the Unix epoch.
    pub time: i64,
}

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Location {
    /// Path relative to the scanned root (forward slashes), or the path inside the commit.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// Set when the finding comes from Git history.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub commit: Option<CommitInfo>,
}

/// One reported problem.
///
/// `Debug`, `Serialize` and every renderer only ever see the redacted form and the fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// Stable rule id, e.g. `aws-access-key-id` or `rbac-wildcard-secrets`.
    pub rule: String,
    /// Secret or posture.
    pub category: Category,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence saying what was found (never the value).
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// Where it is.
    pub location: Location,
    /// For secrets: the first few characters followed by `…` (see [`redact`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub redacted: Option<String>,
    /// Stable id used by baselines and SARIF `partialFingerprints` (see [`fingerprint`]).
    pub fingerprint: String,
}

impl Finding {
    /// A secret finding. `value` is used for the redacted form and the fingerprint, then dropped.
    pub(crate) fn secret(
        rule: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
        value: &str,
        location: Location,
    ) -> Self {
        Finding {
            rule: rule.to_string(),
            category: Category::Secret,
            severity: Severity::High,
            message: message.into(),
            fix: fix.into(),
            location,
            redacted: Some(redact(value)),
            fingerprint: fingerprint(rule, value),
        }
    }

    /// A posture finding. `identity` names the object and field (e.g. `ClusterRole/x rule 0`);
    /// with the path it makes the fingerprint, so line moves do not break a baseline.
    pub(crate) fn posture(
        rule: &str,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
        identity: &str,
        location: Location,
    ) -> Self {
        let fp = fingerprint(rule, &format!("{}\0{identity}", location.path));
        Finding {
            rule: rule.to_string(),
            category: Category::Posture,
            severity,
            message: message.into(),
            fix: fix.into(),
            location,
            redacted: None,
            fingerprint: fp,
        }
    }
}

/// The redacted form of a secret: a short prefix and `…`.
///
/// Values of 20+ characters keep 4 (enough to tell `AKIA…` from `ghp_…`), 10+ keep 2, shorter
/// ones keep nothing, so a short password is never half shown.
pub fn redact(value: &str) -> String {
    let n = value.chars().count();
    let keep = match n {
        20.. => 4,
        10.. => 2,
        _ => 0,
    };
    let mut out: String = value.chars().take(keep).collect();
    out.push('…');
    out
}

/// The fingerprint of a secret for `rule`: the first 16 hex digits of
/// SHA-256(`coffer-scan/v1` NUL rule NUL value).
///
/// The same secret found again (another line, another commit) has the same fingerprint, which is
/// what a baseline matches on. Limit: a fingerprint confirms a guess, so a dictionary word used
/// as a password can be recovered from it by brute force; it hides strong secrets, not weak ones.
pub fn fingerprint(rule: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"coffer-scan/v1\0");
    h.update(rule.as_bytes());
    h.update(b"\0");
    h.update(value.as_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Location {
        Location {
            path: "a.py".into(),
            line: 3,
            commit: None,
        }
    }

    #[test]
    fn redaction_keeps_a_short_prefix_only() {
        assert_eq!(redact("AKIAQWERTYUIOPASDFGH"), "AKIA…"); // coffer:ignore (test fixture)
        assert_eq!(redact("MyStrongPassword"), "My…");
        assert_eq!(redact("hunter2"), "…");
    }

    #[test]
    fn fingerprint_is_stable_and_rule_scoped() {
        let a = fingerprint("generic-password", "MyStrongPassword");
        assert_eq!(a.len(), 16);
        assert_eq!(a, fingerprint("generic-password", "MyStrongPassword"));
        assert_ne!(a, fingerprint("k8s-secret-data", "MyStrongPassword"));
        assert!(!a.contains("MyStrong"));
    }

    #[test]
    fn secret_finding_holds_no_value() {
        let f = Finding::secret("generic-password", "m", "f", "MyStrongPassword", loc());
        let debug = format!("{f:?}");
        let json = serde_json::to_string(&f).expect("BUG: findings serialize");
        assert!(!debug.contains("MyStrongPassword"));
        assert!(!json.contains("MyStrongPassword"));
        assert_eq!(f.severity, Severity::High);
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::High > Severity::Medium && Severity::Medium > Severity::Low);
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("urgent".parse::<Severity>().is_err());
    }
}
