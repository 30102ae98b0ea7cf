//! PostgreSQL rotators over `tokio-postgres`.
//!
//! **Passwords never reach the server in clear.** `setSecret` computes a SCRAM-SHA-256
//! verifier on the client (RFC 5802/7677, 4096 iterations, random 16-byte salt, SASLprep;
//! see `scram.rs`, checked against RFC 7677's test vector and by logging in to a real server)
//! and sends `ALTER ROLE .. PASSWORD 'SCRAM-SHA-256$4096:..'`; PostgreSQL stores a verifier
//! as given. So the cleartext appears in no server log (`log_statement = ddl` would log the
//! verifier, which is why verifiers are still treated as secrets here).
//!
//! **Quoting.** Role names and literals go through [`quote_ident`] / [`quote_literal`], which
//! follow the server's own rules; lookups use bind parameters.
//!
//! **Modes.**
//! - `singleUser`: `ALTER ROLE user PASSWORD ..`. Between `setSecret` and the consumers
//!   re-reading the Secret, new connections with the old password fail (AWS's documented
//!   limitation of this strategy); rollback sets the old password back.
//! - `alternatingUsers`: two roles, the idle one gets the new password (and
//!   `VALID UNTIL 'infinity'`) and becomes current; at `finishSecret` the previous role gets
//!   `VALID UNTIL <now + gracePeriod>`, so the server itself ends its validity even if Coffer
//!   is down. A missing second role is created with the first one's role memberships: keep
//!   privileges on a group role both belong to.
//!
//! TLS to the server is not implemented yet (`sslmode: disable` only).

mod scram;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio_postgres::{Client, NoTls};
use zeroize::Zeroizing;

use crate::error::TargetError;
use crate::rotation::{StepContext, Target};
use crate::secret::{SecretData, SecretValue};
use crate::spec::{PostgresMode, PostgresTarget};
use crate::store::RotationStore;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Rotates a PostgreSQL role's password ([`PostgresTarget`] says how).
pub struct PostgresRotator {
    spec: PostgresTarget,
    store: Arc<dyn RotationStore>,
}

impl std::fmt::Debug for PostgresRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRotator")
            .field("host", &self.spec.host)
            .field("port", &self.spec.port)
            .field("mode", &self.spec.mode)
            .finish_non_exhaustive()
    }
}

impl PostgresRotator {
    /// A rotator for `spec`; the admin credential is read from `store` at each step.
    pub fn new(spec: PostgresTarget, store: Arc<dyn RotationStore>) -> Self {
        Self { spec, store }
    }

    /// The role that takes the new password, given the Secret's current data.
    fn role_for(&self, current: &SecretData) -> Result<String, TargetError> {
        match self.spec.mode {
            PostgresMode::SingleUser => self.spec.username.clone().ok_or_else(|| {
                TargetError::Invalid("spec.target.postgres.username is not set".into())
            }),
            PostgresMode::AlternatingUsers => {
                let current_user = current.get_str("username");
                self.spec
                    .usernames
                    .iter()
                    .find(|u| Some(u.as_str()) != current_user)
                    .cloned()
                    .ok_or_else(|| {
                        TargetError::Invalid(
                            "spec.target.postgres.usernames needs two roles".into(),
                        )
                    })
            }
        }
    }

    /// The DSN consumers can use as is (user and password percent-encoded).
    fn uri(&self, user: &str, password: &[u8]) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
        let host = if self.spec.host.contains(':') {
            format!("[{}]", self.spec.host)
        } else {
            self.spec.host.clone()
        };
        format!(
            "postgresql://{}:{}@{}:{}/{}?sslmode={}",
            percent_encode(user.as_bytes(), NON_ALPHANUMERIC),
            percent_encode(password, NON_ALPHANUMERIC),
            host,
            self.spec.port,
            percent_encode(self.spec.database.as_bytes(), NON_ALPHANUMERIC),
            self.spec.sslmode.as_str()
        )
    }

    async fn connect(
        &self,
        what: &str,
        user: &str,
        password: &[u8],
    ) -> Result<Client, TargetError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.spec.host)
            .port(self.spec.port)
            .dbname(&self.spec.database)
            .user(user)
            .password(password)
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("coffer-rotation");
        let (client, connection) = cfg
            .connect(NoTls)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => TargetError::Login {
                    user: user.to_owned(),
                    reason: db.message().to_owned(),
                },
                None => TargetError::Connect {
                    what: what.to_owned(),
                    reason: e.to_string(),
                },
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        Ok(client)
    }

    async fn admin(&self) -> Result<Client, TargetError> {
        let name = &self.spec.admin_secret_name;
        let secret = self.store.read_secret(name).await?.ok_or_else(|| {
            TargetError::Invalid(format!(
                "admin Secret {name:?} not found; create it with username and password"
            ))
        })?;
        let data = secret.value.current;
        let user = data.get_str("username").ok_or(TargetError::AdminSecret {
            secret: name.clone(),
            key: "username",
        })?;
        let password = data.get("password").ok_or(TargetError::AdminSecret {
            secret: name.clone(),
            key: "password",
        })?;
        self.connect("admin", user, password.expose_secret()).await
    }

    /// Creates `role` when missing, with the role memberships of `model`.
    async fn ensure_role(
        &self,
        admin: &Client,
        role: &str,
        model: Option<&str>,
    ) -> Result<(), TargetError> {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(stmt("look up role"))?
            .is_some();
        if exists {
            return Ok(());
        }
        let model = model.ok_or_else(|| {
            TargetError::Invalid(format!(
                "role {role:?} does not exist and there is no other role to copy; create it"
            ))
        })?;
        let groups = admin
            .query(
                "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
                 JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
                &[&model],
            )
            .await
            .map_err(stmt("read role memberships"))?;
        let mut sql = format!("BEGIN; CREATE ROLE {} LOGIN;", ident(role)?);
        for row in groups {
            let group: String = row.get(0);
            sql.push_str(&format!(" GRANT {} TO {};", ident(&group)?, ident(role)?));
        }
        sql.push_str(" COMMIT;");
        admin
            .batch_execute(&sql)
            .await
            .map_err(stmt("create role"))?;
        tracing::info!(
            role,
            model,
            "created the second role of an alternating pair"
        );
        Ok(())
    }
}

/// `(username, password)` of a stage's data.
fn credentials(data: &SecretData) -> Result<(&str, &SecretValue), TargetError> {
    let user = data
        .get_str("username")
        .ok_or_else(|| TargetError::Invalid("the staged value has no username".into()))?;
    let password = data
        .get("password")
        .ok_or_else(|| TargetError::Invalid("the staged value has no password".into()))?;
    Ok((user, password))
}

fn ident(name: &str) -> Result<String, TargetError> {
    quote_ident(name).ok_or_else(|| TargetError::Invalid("a role name contains a NUL byte".into()))
}

/// `PASSWORD '<SCRAM-SHA-256 verifier>'`.
fn password_clause(password: &SecretValue) -> Result<Zeroizing<String>, TargetError> {
    let verifier = scram::verifier(password.expose_secret()).map_err(|e| {
        TargetError::Invalid(format!(
            "the operating system's random number generator failed: {e}"
        ))
    })?;
    let literal = quote_literal(&verifier)
        .ok_or_else(|| TargetError::Invalid("verifier has a NUL byte".into()))?;
    Ok(Zeroizing::new(format!("PASSWORD {literal}")))
}

/// A `VALID UNTIL` literal, in microseconds (PostgreSQL's precision), UTC.
fn valid_until(t: Timestamp) -> String {
    let t = Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t);
    format!("VALID UNTIL '{t}'")
}

fn stmt(what: &'static str) -> impl Fn(tokio_postgres::Error) -> TargetError {
    move |e| TargetError::Statement {
        statement: what.to_owned(),
        reason: e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string()),
    }
}

#[async_trait]
impl Target for PostgresRotator {
    async fn prepare(
        &self,
        current: &SecretData,
        generated: &SecretData,
    ) -> Result<SecretData, TargetError> {
        let user = self.role_for(current)?;
        let password = generated
            .get("password")
            .ok_or_else(|| TargetError::Invalid("the generator made no password".into()))?;
        let mut data = current.clone();
        data.merge(generated);
        data.insert("username", user.as_str());
        data.insert("host", self.spec.host.as_str());
        data.insert("port", self.spec.port.to_string().as_str());
        data.insert("database", self.spec.database.as_str());
        data.insert(
            "uri",
            Zeroizing::new(self.uri(&user, password.expose_secret())),
        );
        Ok(data)
    }

    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let (user, password) = credentials(&ctx.pending.data)?;
        let admin = self.admin().await?;
        let sql = match self.spec.mode {
            PostgresMode::SingleUser => Zeroizing::new(format!(
                "ALTER ROLE {} WITH LOGIN {}",
                ident(user)?,
                *password_clause(password)?
            )),
            PostgresMode::AlternatingUsers => {
                let current_user = ctx.current.get_str("username");
                if current_user == Some(user) {
                    return Err(TargetError::Invalid(format!(
                        "role {user:?} is the current one; alternatingUsers only changes the idle role"
                    )));
                }
                let model = current_user.or_else(|| {
                    self.spec
                        .usernames
                        .iter()
                        .map(String::as_str)
                        .find(|u| *u != user)
                });
                self.ensure_role(&admin, user, model).await?;
                Zeroizing::new(format!(
                    "ALTER ROLE {} WITH LOGIN {} VALID UNTIL 'infinity'",
                    ident(user)?,
                    *password_clause(password)?
                ))
            }
        };
        admin
            .batch_execute(&sql)
            .await
            .map_err(stmt("ALTER ROLE .. PASSWORD"))
    }

    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let (user, password) = credentials(&ctx.pending.data)?;
        let client = self
            .connect(
                &format!("test login as {user}"),
                user,
                password.expose_secret(),
            )
            .await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(stmt("SELECT 1 as the new role"))?;
        Ok(())
    }

    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        if self.spec.mode != PostgresMode::AlternatingUsers {
            return Ok(());
        }
        let (Some(previous), Some(until)) =
            (ctx.current.get_str("username"), ctx.previous_valid_until)
        else {
            return Ok(()); // first rotation: nothing was current before
        };
        let (new_user, _) = credentials(&ctx.pending.data)?;
        if previous == new_user || !self.spec.usernames.iter().any(|u| u == previous) {
            return Ok(());
        }
        let admin = self.admin().await?;
        let sql = format!("ALTER ROLE {} {}", ident(previous)?, valid_until(until));
        admin
            .batch_execute(&sql)
            .await
            .map_err(stmt("ALTER ROLE .. VALID UNTIL"))
    }

    async fn rollback(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let (user, _) = credentials(&ctx.pending.data)?;
        let sql = match self.spec.mode {
            PostgresMode::SingleUser => match ctx.current.get("password") {
                // Put the current password back.
                Some(current) => Zeroizing::new(format!(
                    "ALTER ROLE {} {}",
                    ident(user)?,
                    *password_clause(current)?
                )),
                None => return Ok(()),
            },
            PostgresMode::AlternatingUsers => {
                if ctx.current.get_str("username") == Some(user) {
                    return Ok(());
                }
                // The idle role's unpublished password must not stay usable.
                Zeroizing::new(format!(
                    "ALTER ROLE {} {}",
                    ident(user)?,
                    valid_until(ctx.now)
                ))
            }
        };
        let admin = self.admin().await?;
        admin
            .batch_execute(&sql)
            .await
            .map_err(stmt("roll back ALTER ROLE"))
    }
}

// Quoting for the statements that cannot take bind parameters (`ALTER ROLE`, `CREATE ROLE`,
// `GRANT`): the same rules as PostgreSQL's own `quote_ident()` and `quote_literal()`
// (`src/backend/utils/adt/quote.c`, `ruleutils.c`), checked against a real server in
// `tests/postgres.rs`.

/// An identifier in double quotes, inner `"` doubled. Always quoted (PostgreSQL quotes only
/// when needed; always quoting is equivalent and cannot miss a keyword).
/// `None` for a name with a NUL byte, which no identifier may contain.
pub fn quote_ident(name: &str) -> Option<String> {
    if name.contains('\0') {
        return None;
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    Some(out)
}

/// A string literal: inner `'` doubled; when the text has a backslash the literal is written
/// `E'...'` with backslashes doubled, exactly as `quote_literal()` does, so it reads the same
/// whatever `standard_conforming_strings` is. `None` for text with a NUL byte.
pub fn quote_literal(text: &str) -> Option<String> {
    if text.contains('\0') {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 3);
    if text.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Some(out)
}

#[cfg(test)]
mod quote_tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(quote_ident("app_a").as_deref(), Some("\"app_a\""));
        assert_eq!(quote_ident("Mixed Case").as_deref(), Some("\"Mixed Case\""));
        assert_eq!(
            quote_ident("x\"; DROP ROLE admin; --").as_deref(),
            Some("\"x\"\"; DROP ROLE admin; --\"")
        );
        assert_eq!(quote_ident("rôle").as_deref(), Some("\"rôle\""));
        assert_eq!(quote_ident("a\0b"), None);
    }

    #[test]
    fn literals() {
        assert_eq!(quote_literal("abc").as_deref(), Some("'abc'"));
        assert_eq!(quote_literal("it's").as_deref(), Some("'it''s'"));
        assert_eq!(quote_literal("a\\b'c").as_deref(), Some("E'a\\\\b''c'"));
        assert_eq!(
            quote_literal("'; DROP TABLE t; --").as_deref(),
            Some("'''; DROP TABLE t; --'")
        );
        assert_eq!(quote_literal("nul\0"), None);
    }
}
