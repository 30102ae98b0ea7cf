//! `RotationSpec`: what the future `SecretRotation.spec` (group `coffer.dev`) holds, as serde
//! types in the API's camelCase, and [`RotationSpec::validate`], which names the bad field.
//!
//! ```yaml
//! secretName: orders-db
//! schedule: {interval: 24h}            # or {cron: "0 3 * * *"}
//! generator:
//!   password: {length: 32, symbols: "-_.", minimum: {digits: 2}}
//! gracePeriod: 1h
//! target:
//!   postgres:
//!     adminSecretName: pg-admin
//!     host: 127.0.0.1
//!     database: orders
//!     mode: alternatingUsers
//!     usernames: [orders_a, orders_b]
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::SpecError;

/// The spec of one rotation.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// The Secret (same namespace) whose value is rotated.
    pub secret_name: String,
    /// When to rotate.
    pub schedule: Schedule,
    /// What makes the new value.
    pub generator: Generator,
    /// How long the previous value stays valid after a rotation (default `0s`). The next
    /// rotation waits until it has run out, so paired credentials never rotate together.
    #[serde(default)]
    pub grace_period: GoDuration,
    /// Where the value must also change (default `none`: only the Secret is rewritten).
    #[serde(default)]
    pub target: TargetSpec,
    /// Who to tell about a new value; free-form for now (the server will define the shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<serde_json::Value>,
}

/// When a rotation is due: every `interval` after the last one, or at each `cron` time (UTC).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Schedule {
    /// A fixed interval such as `30s`, `24h`, `1h30m`.
    Interval(GoDuration),
    /// A five-field cron expression (`minute hour day-of-month month day-of-week`), in UTC.
    Cron(String),
}

/// The generator of new values; exactly one field is set.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Generator {
    /// A password from character classes.
    Password(PasswordSpec),
    /// Random bytes, encoded as text.
    RandomBytes(RandomBytesSpec),
    /// An Ed25519 key pair: `private.pem`, `public.pem`, `public.openssh`.
    Ed25519(Ed25519Spec),
    /// An RSA key pair: `private.pem`, `public.pem`.
    Rsa(RsaSpec),
    /// A TLS certificate signed by a CA kept in a Secret: `tls.crt`, `tls.key`, `ca.crt`.
    TlsCertificate(TlsCertificateSpec),
}

/// `generator.password`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordSpec {
    /// Length in characters (default 32, 8..=1024).
    pub length: u32,
    /// Use `a-z` (default true).
    pub lowercase: bool,
    /// Use `A-Z` (default true).
    pub uppercase: bool,
    /// Use `0-9` (default true).
    pub digits: bool,
    /// `true` for the default symbol set, `false` for none, or a string of the symbols to use.
    pub symbols: Symbols,
    /// The least number of characters from each class; an enabled class defaults to 1.
    pub minimum: ClassMinimums,
    /// The Secret key the password is written to (default `password`).
    pub key: String,
}

impl Default for PasswordSpec {
    fn default() -> Self {
        Self {
            length: 32,
            lowercase: true,
            uppercase: true,
            digits: true,
            symbols: Symbols::Enabled(true),
            minimum: ClassMinimums::default(),
            key: "password".into(),
        }
    }
}

/// `password.symbols`: a flag or an explicit set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Symbols {
    /// `true`: the default set ([`crate::DEFAULT_SYMBOLS`]); `false`: no symbols.
    Enabled(bool),
    /// The symbols to use (ASCII punctuation, no spaces).
    Set(String),
}

/// `password.minimum`: per-class lower bounds.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClassMinimums {
    /// At least this many of `a-z`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lowercase: Option<u32>,
    /// At least this many of `A-Z`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uppercase: Option<u32>,
    /// At least this many of `0-9`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<u32>,
    /// At least this many symbols.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols: Option<u32>,
}

/// `generator.randomBytes`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RandomBytesSpec {
    /// How many random bytes (default 32, 16..=4096).
    pub length: u32,
    /// How they are written (default `base64`).
    pub encoding: ByteEncoding,
    /// The Secret key they are written to (default `value`).
    pub key: String,
}

impl Default for RandomBytesSpec {
    fn default() -> Self {
        Self {
            length: 32,
            encoding: ByteEncoding::Base64,
            key: "value".into(),
        }
    }
}

/// `randomBytes.encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ByteEncoding {
    /// Standard base64 with padding (RFC 4648 §4).
    Base64,
    /// Lowercase hexadecimal.
    Hex,
}

/// `generator.ed25519` (no options).
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ed25519Spec {}

/// `generator.rsa`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RsaSpec {
    /// Modulus size: 2048, 3072 (default) or 4096.
    pub bits: u32,
}

impl Default for RsaSpec {
    fn default() -> Self {
        Self { bits: 3072 }
    }
}

/// `generator.tlsCertificate`: an ECDSA P-256 key and a certificate signed by the CA whose
/// `tls.crt` / `tls.key` are in `caSecretName`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificateSpec {
    /// The Secret holding the CA (`tls.crt`, `tls.key`).
    pub ca_secret_name: String,
    /// The subject common name.
    pub common_name: String,
    /// Subject alternative DNS names.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// How long the certificate is valid (default `2160h`, 90 days).
    #[serde(default = "default_validity")]
    pub validity: GoDuration,
}

fn default_validity() -> GoDuration {
    GoDuration::from_secs(90 * 24 * 3600)
}

/// Where the new value must be applied besides the Secret.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetSpec {
    /// Only the Secret is rewritten.
    #[default]
    None,
    /// A PostgreSQL role's password.
    Postgres(PostgresTarget),
}

/// `target.postgres`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresTarget {
    /// The Secret with the admin credential (`username`, `password`): a role that may
    /// `ALTER ROLE` the rotated roles (CREATEROLE or superuser).
    pub admin_secret_name: String,
    /// Server host name or address.
    pub host: String,
    /// Server port (default 5432).
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// The database the applications use (and the test connects to).
    pub database: String,
    /// One role whose password changes, or two roles that take turns.
    pub mode: PostgresMode,
    /// The role for `singleUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The two roles for `alternatingUsers`; the second is created (with the first's role
    /// memberships) when missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usernames: Vec<String>,
    /// libpq's `sslmode`; only `disable` is implemented yet (loopback or a trusted network).
    #[serde(default)]
    pub sslmode: SslMode,
}

fn default_pg_port() -> u16 {
    5432
}

/// `postgres.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PostgresMode {
    /// `ALTER ROLE .. PASSWORD` on one role: new connections fail until consumers re-read.
    SingleUser,
    /// Two roles take turns: the idle one gets the new password and becomes current; the
    /// previous one stays valid through the grace period.
    AlternatingUsers,
}

/// `postgres.sslmode`, as libpq names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    #[default]
    Disable,
    /// TLS without certificate checks (not implemented yet).
    Require,
    /// TLS with full verification (not implemented yet).
    VerifyFull,
}

impl SslMode {
    /// libpq's spelling, for the `uri` key.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A duration written as Go and Kubernetes write them (`30s`, `24h`, `1h30m`), kept as
/// written so it round-trips.
#[derive(Clone, PartialEq, Eq)]
pub struct GoDuration {
    text: String,
    value: std::time::Duration,
}

impl GoDuration {
    /// A duration of `secs` seconds, written `{secs}s`.
    pub fn from_secs(secs: u64) -> Self {
        Self {
            text: format!("{secs}s"),
            value: std::time::Duration::from_secs(secs),
        }
    }

    /// The duration.
    pub fn get(&self) -> std::time::Duration {
        self.value
    }
}

impl Default for GoDuration {
    fn default() -> Self {
        Self::from_secs(0)
    }
}

impl FromStr for GoDuration {
    type Err = SpecError;

    /// Parses `[0-9]+(\.[0-9]+)?(h|m|s|ms)` repeated, as Go's `time.ParseDuration` (no sign:
    /// a negative duration has no meaning here).
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Duration(s.to_owned());
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        if rest == "0" {
            return Ok(Self::from_secs(0).with_text(s));
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let factor = match &rest[..unit_len] {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total += number * factor;
        }
        let value = std::time::Duration::try_from_secs_f64(total).map_err(|_| bad())?;
        Ok(Self {
            text: s.to_owned(),
            value,
        })
    }
}

impl GoDuration {
    fn with_text(mut self, text: &str) -> Self {
        self.text = text.to_owned();
        self
    }
}

impl fmt::Debug for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
