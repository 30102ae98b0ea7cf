//! The rule catalog: every check the scanner can report, and the compiled credential rules.
//!
//! All patterns are written for Coffer from the issuers' published token formats; none is copied
//! from another scanner. Each credential rule has a named group `secret` (the value that is
//! redacted and fingerprinted) and, for the generic rules, a group `key` (the variable name,
//! which must pass [`is_sensitive_name`](crate::heuristics::is_sensitive_name)).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use crate::finding::{Category, Severity};

/// Description of one rule, for `--help`-style listings and SARIF `tool.driver.rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleInfo {
    /// Stable id used in findings, allowlists and SARIF.
    pub id: &'static str,
    /// Secret or posture.
    pub category: Category,
    /// Default severity of its findings.
    pub severity: Severity,
    /// What the rule finds, one sentence.
    pub title: &'static str,
    /// What to do about a finding.
    pub fix: &'static str,
}

const ROTATE: &str = "Remove the value from the file (and from Git history), rotate it at the issuer, \
and load it at run time from a Secret mounted as a file or from a secret manager.";
const MANIFEST: &str = "Do not commit Secret values, base64 is an encoding, not encryption. Rotate the \
value and commit a SealedSecret, a SOPS-encrypted file or an ExternalSecret instead.";

macro_rules! info {
    ($id:literal, $cat:ident, $sev:ident, $title:literal, $fix:expr) => {
        RuleInfo {
            id: $id,
            category: Category::$cat,
            severity: Severity::$sev,
            title: $title,
            fix: $fix,
        }
    };
}

/// Every rule, credential rules first (in matching priority order), then Kubernetes value
/// rules, then posture rules.
pub static CATALOG: &[RuleInfo] = &[
    info!(
        "aws-access-key-id",
        Secret, High, "AWS access key id", ROTATE
    ),
    info!(
        "aws-secret-access-key",
        Secret, High, "AWS secret access key", ROTATE
    ),
    info!(
        "github-token",
        Secret, High, "GitHub token (ghp_, gho_, ghu_, ghs_, ghr_)", ROTATE
    ),
    info!(
        "github-fine-grained-pat",
        Secret, High, "GitHub fine-grained personal access token", ROTATE
    ),
    info!(
        "gitlab-token",
        Secret, High, "GitLab token (glpat-, gldt-, glrt-, ...)", ROTATE
    ),
    info!(
        "slack-token",
        Secret, High, "Slack token (xoxb-, xoxp-, ...)", ROTATE
    ),
    info!(
        "slack-webhook",
        Secret, High, "Slack incoming webhook URL", ROTATE
    ),
    info!(
        "stripe-live-key",
        Secret, High, "Stripe live secret or restricted key", ROTATE
    ),
    info!("google-api-key", Secret, High, "Google API key", ROTATE),
    info!("npm-token", Secret, High, "npm access token", ROTATE),
    info!("pypi-token", Secret, High, "PyPI upload token", ROTATE),
    info!("sendgrid-api-key", Secret, High, "SendGrid API key", ROTATE),
    info!("openai-api-key", Secret, High, "OpenAI API key", ROTATE),
    info!(
        "azure-storage-key",
        Secret, High, "Azure storage account key in a connection string", ROTATE
    ),
    info!(
        "private-key",
        Secret, High, "Private key block (PEM / OpenSSH / PGP)", ROTATE
    ),
    info!("jwt", Secret, High, "Signed JSON Web Token", ROTATE),
    info!(
        "connection-string-url",
        Secret, High, "Password in a connection URL (scheme://user:password@host)", ROTATE
    ),
    info!(
        "connection-string-kv",
        Secret, High, "Password in a key=value connection string (Server=...;Password=...)", ROTATE
    ),
    info!(
        "generic-password",
        Secret, High, "Hardcoded password, token or key assigned to a sensitive name", ROTATE
    ),
    info!(
        "k8s-secret-data",
        Secret, High, "Secret manifest committed with base64 data", MANIFEST
    ),
    info!(
        "k8s-secret-stringdata",
        Secret, High, "Secret manifest committed with plain stringData", MANIFEST
    ),
    info!(
        "k8s-configmap-secret",
        Secret,
        High,
        "Secret-looking value in a ConfigMap",
        "ConfigMaps are not meant for secrets: move the value into a Secret (mounted as a file) and rotate it."
    ),
    info!(
        "k8s-env-literal-secret",
        Secret,
        High,
        "Literal secret in a container env value",
        "Reference a Secret with valueFrom.secretKeyRef (better: mount it as a volume) instead of a literal value, and rotate it."
    ),
    info!(
        "k8s-encryption-key",
        Secret,
        High,
        "Encryption-at-rest key committed in an EncryptionConfiguration",
        "Keep EncryptionConfiguration on the control plane only (or use a KMS provider); rotate the key."
    ),
    info!(
        "encryption-secrets-not-covered",
        Posture,
        High,
        "EncryptionConfiguration does not encrypt secrets",
        "Add an entry whose resources include `secrets` with aesgcm, secretbox or kms first."
    ),
    info!(
        "encryption-identity-first",
        Posture,
        High,
        "Secrets are written unencrypted: `identity` is the first provider",
        "Put kms (v2), secretbox or aesgcm first; keep identity last only while migrating, then rewrite all secrets."
    ),
    info!(
        "encryption-aescbc-first",
        Posture,
        Medium,
        "`aescbc` is the write provider (vulnerable to padding-oracle attacks)",
        "Prefer kms v2, secretbox or aesgcm as the first provider and rewrite all secrets."
    ),
    info!(
        "encryption-weak-key",
        Posture,
        Medium,
        "Encryption key is not valid base64 or is shorter than 32 bytes",
        "Generate 32 random bytes: head -c 32 /dev/urandom | base64."
    ),
    info!(
        "encryption-key-reused",
        Posture,
        Medium,
        "The same key appears more than once in the EncryptionConfiguration",
        "Give every provider entry its own freshly generated key."
    ),
    info!(
        "rbac-wildcard-secrets",
        Posture,
        High,
        "Role grants `*` verbs or `*` resources covering secrets",
        "List the exact resources and verbs; grant `get` on named secrets (resourceNames) only."
    ),
    info!(
        "rbac-list-watch-secrets",
        Posture,
        Medium,
        "Role grants list or watch on secrets (these return every value)",
        "Grant `get` on named secrets (resourceNames) instead of list/watch."
    ),
    info!(
        "rbac-cluster-wide-secret-binding",
        Posture,
        High,
        "ClusterRoleBinding grants secret access in every namespace",
        "Bind the role with a RoleBinding in the namespaces that need it."
    ),
    info!(
        "rbac-broad-subject-secrets",
        Posture,
        High,
        "Secret access bound to every user or every ServiceAccount",
        "Bind to named ServiceAccounts or users, never system:authenticated, system:unauthenticated or system:serviceaccounts."
    ),
    info!(
        "pod-secret-env",
        Posture,
        Low,
        "Secret exposed as an environment variable",
        "Mount the Secret as a volume: env vars leak into crash dumps, child processes and logs, and do not update on rotation."
    ),
    info!(
        "pod-automount-token",
        Posture,
        Low,
        "ServiceAccount token is mounted automatically",
        "Set automountServiceAccountToken: false unless the Pod talks to the API server."
    ),
];

/// The catalog entry for `id`.
///
/// # Panics
/// If `id` is not in [`CATALOG`]; every id passed in this crate is a literal from it.
pub(crate) fn info(id: &str) -> &'static RuleInfo {
    CATALOG
        .iter()
        .find(|r| r.id == id)
        .expect("BUG: every rule id used in the crate is listed in CATALOG")
}

/// Which files a credential rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Files {
    /// Every text file.
    Any,
    /// Config-style files only (.env, .properties, .ini, .yaml, shell, Dockerfile, ...), where an
    /// unquoted value is a literal; in code it would be an expression.
    Config,
}

/// A compiled credential rule.
pub(crate) struct Rule {
    pub id: &'static str,
    /// Lower-case literals, one of which must occur in the lower-cased file (cheap prefilter).
    pub keywords: &'static [&'static str],
    pub regex: Regex,
    /// Minimum Shannon entropy (bits/char) of the secret.
    pub min_entropy: f64,
    pub files: Files,
    /// Generic rule: the `key` group must be a sensitive name.
    pub keyed: bool,
}

struct Spec(
    &'static str,
    Cow<'static, str>,
    &'static [&'static str],
    f64,
    Files,
    bool,
);

const ASSIGNED_KEY: &str = r"(?P<key>[A-Za-z0-9_.\-]*(?i:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|credentials?|auth_?key|_pass)[A-Za-z0-9_.\-]*)";

static SPECS: LazyLock<Vec<Spec>> = LazyLock::new(|| {
    use Files::{Any, Config};
    vec![
        Spec("aws-access-key-id", r"\b(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b".into(), &["akia", "asia", "abia", "acca"], 3.0, Any, false),
        Spec("aws-secret-access-key", r#"(?i)aws_?secret_?(?:access_?)?key["']?\s*(?::|=>|=)\s*["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#.into(), &["aws"], 4.0, Any, false),
        Spec("github-token", r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,251})\b".into(), &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], 3.0, Any, false),
        Spec("github-fine-grained-pat", r"\b(?P<secret>github_pat_[A-Za-z0-9_]{60,255})\b".into(), &["github_pat_"], 3.0, Any, false),
        Spec("gitlab-token", r"\b(?P<secret>gl(?:pat|dt|rt|ptt|oas|cbt)-[A-Za-z0-9_\-]{20,64})(?:[^A-Za-z0-9_\-]|$)".into(), &["glpat-", "gldt-", "glrt-", "glptt-", "gloas-", "glcbt-"], 3.0, Any, false),
        Spec("slack-token", r"\b(?P<secret>xox[abposre]-[0-9A-Za-z]+-[0-9A-Za-z\-]{8,})".into(), &["xox"], 3.0, Any, false),
        Spec("slack-webhook", r"(?P<secret>https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/]{30,})".into(), &["hooks.slack.com"], 3.0, Any, false),
        Spec("stripe-live-key", r"\b(?P<secret>(?:sk|rk)_live_[0-9A-Za-z]{24,99})\b".into(), &["_live_"], 3.0, Any, false),
        Spec("google-api-key", r"\b(?P<secret>AIza[0-9A-Za-z_\-]{35})(?:[^0-9A-Za-z_\-]|$)".into(), &["aiza"], 3.0, Any, false),
        Spec("npm-token", r"\b(?P<secret>npm_[A-Za-z0-9]{36})\b".into(), &["npm_"], 3.0, Any, false),
        Spec("pypi-token", r"\b(?P<secret>pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,})".into(), &["pypi-ageichlwas5vcmc"], 3.0, Any, false),
        Spec("sendgrid-api-key", r"\b(?P<secret>SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})(?:[^A-Za-z0-9_\-]|$)".into(), &["sg."], 3.0, Any, false),
        Spec("openai-api-key", r"\b(?P<secret>sk-(?:proj-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,})".into(), &["t3blbkfj"], 3.0, Any, false),
        Spec("azure-storage-key", r"(?i)AccountKey=(?P<secret>[A-Za-z0-9+/]{86}==)".into(), &["accountkey="], 4.0, Any, false),
        Spec("private-key", r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:\\r|\\n|\s)*(?P<secret>(?:[A-Za-z0-9+/=:,\-]|\\r|\\n|\s){40,}?)(?:\\r|\\n|\s)*-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----".into(), &["private key"], 3.0, Any, false),
        Spec("jwt", r"\b(?P<secret>eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{16,})".into(), &["eyj"], 3.5, Any, false),
        Spec("connection-string-url", r#"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|https?|ftps?|smtps?|ldaps?)://[^:@/\s'"]+:(?P<secret>[^@/\s'"]{3,})@[^\s'"]+"#.into(), &["://"], 2.0, Any, false),
        Spec("connection-string-kv", r#"(?i)(?:server|data source|host|uid|user id)\s*=[^;"'\n]*;[^"'\n]*?\b(?:password|pwd)\s*=\s*(?P<secret>[^;"'\s]{3,})"#.into(), &["password", "pwd"], 2.0, Any, false),
        Spec("generic-password", format!(r#"{ASSIGNED_KEY}["']?[ \t]*(?::=|=>|=|:)[ \t]*(?:new\s+String\(\s*)?[@rbfu]?["'](?P<secret>[^"'\r\n]{{6,200}})["']"#).into(), &["pass", "pwd", "secret", "token", "key", "credential"], 2.5, Any, true),
        Spec("generic-password", format!(r#"(?m)^[ \t]*(?:export[ \t]+|ENV[ \t]+|-[ \t]+)?{ASSIGNED_KEY}[ \t]*(?:=|:)[ \t]*(?P<secret>[^\s"'#`{{}}\[\]|>&*!][^\s"'#`]{{5,199}})[ \t]*(?:#[^\n]*)?\r?$"#).into(), &["pass", "pwd", "secret", "token", "key", "credential"], 2.5, Config, true),
    ]
});

/// The built-in credential rules, compiled once.
pub(crate) static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    SPECS
        .iter()
        .map(|Spec(id, pattern, keywords, min_entropy, files, keyed)| {
            let _ = info(id);
            Rule {
                id,
                keywords,
                regex: Regex::new(pattern.as_ref()).expect("BUG: built-in rule patterns are valid"),
                min_entropy: *min_entropy,
                files: *files,
                keyed: *keyed,
            }
        })
        .collect()
});

/// True for files whose unquoted `key = value` lines hold literal values.
pub(crate) fn is_config_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    const EXT: &[&str] = &[
        ".properties",
        ".ini",
        ".cfg",
        ".conf",
        ".yaml",
        ".yml",
        ".toml",
        ".sh",
        ".bash",
        ".zsh",
        ".env",
        ".envrc",
        ".tfvars",
        ".npmrc",
        ".pypirc",
    ];
    name.starts_with(".env")
        || name.starts_with("dockerfile")
        || name.ends_with(".dockerfile")
        || EXT.iter().any(|e| name.ends_with(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles_and_is_cataloged() {
        assert!(RULES.len() >= 19);
        for r in RULES.iter() {
            assert!(
                r.regex.capture_names().any(|n| n == Some("secret")),
                "{}",
                r.id
            );
            assert_eq!(
                r.keyed,
                r.regex.capture_names().any(|n| n == Some("key")),
                "{}",
                r.id
            );
            assert!(
                r.keywords.iter().all(|k| k.to_ascii_lowercase() == *k),
                "{}",
                r.id
            );
        }
    }

    #[test]
    fn catalog_ids_are_unique() {
        let mut ids: Vec<_> = CATALOG.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn config_files() {
        assert!(is_config_file("app/.env.production"));
        assert!(is_config_file("deploy/values.yaml"));
        assert!(is_config_file("Dockerfile"));
        assert!(!is_config_file("src/main.py"));
    }
}
