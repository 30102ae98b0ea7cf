//! Shared test support: a real PostgreSQL server, the roles the tests rotate, and a store
//! seeded with the admin and application Secrets.
#![allow(dead_code)] // each test binary uses a part

pub mod pg;

use std::sync::Arc;

use coffer_rotation::{RotationSpec, RotationStore, SecretData, StagedSecret};

/// The admin role the rotator uses (CREATEROLE, not superuser) and its password.
pub const ADMIN_USER: &str = "coffer_admin";
/// The admin password (test only).
pub const ADMIN_PASSWORD: &str = "admin-Pa55word";
/// The initial password of every application role (test only).
pub const INITIAL_PASSWORD: &str = "initial-Pa55word";

/// Creates the test schema: group role `app` owning the grants, a table it may read,
/// `app_single` and `app_a` as members (`app_b` is left to the rotator to create), and the
/// CREATEROLE admin.
pub async fn setup_roles(pg: &pg::Postgres) {
    let client = pg.superuser().await;
    client
        .batch_execute(&format!(
            "CREATE ROLE app NOLOGIN;
             CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2);
             GRANT SELECT ON items TO app;
             CREATE ROLE app_single LOGIN PASSWORD '{INITIAL_PASSWORD}' IN ROLE app;
             CREATE ROLE app_a LOGIN PASSWORD '{INITIAL_PASSWORD}' IN ROLE app;
             CREATE ROLE {ADMIN_USER} LOGIN CREATEROLE PASSWORD '{ADMIN_PASSWORD}';
             GRANT app TO {ADMIN_USER} WITH ADMIN OPTION;"
        ))
        .await
        .expect("setup SQL");
}

/// Writes the admin Secret `pg-admin` and the application Secret `app-db` (current user
/// `username`, the initial password) into `store`.
pub async fn seed_store(store: &dyn RotationStore, username: &str) {
    let admin: SecretData = [("username", ADMIN_USER), ("password", ADMIN_PASSWORD)]
        .into_iter()
        .collect();
    store
        .write_secret("pg-admin", &StagedSecret::plain(admin), None)
        .await
        .expect("admin secret");
    let app: SecretData = [("username", username), ("password", INITIAL_PASSWORD)]
        .into_iter()
        .collect();
    store
        .write_secret("app-db", &StagedSecret::plain(app), None)
        .await
        .expect("app secret");
}

/// A PostgreSQL rotation spec for `app-db` in `mode` with `grace`.
pub fn spec(pg: &pg::Postgres, mode: &str, grace: &str) -> RotationSpec {
    let mut target = serde_json::json!({
        "adminSecretName": "pg-admin", "host": "127.0.0.1", "port": pg.port(),
        "database": "postgres", "mode": mode,
    });
    if mode == "singleUser" {
        target["username"] = "app_single".into();
    } else {
        target["usernames"] = serde_json::json!(["app_a", "app_b"]);
    }
    serde_json::from_value(serde_json::json!({
        "secretName": "app-db",
        "schedule": {"interval": "1h"},
        "generator": {"password": {"length": 32}},
        "gracePeriod": grace,
        "target": {"postgres": target},
    }))
    .expect("spec")
}

/// Logs in as `user` with `password` and reads the table; `Err` with the server's message.
pub async fn login(pg: &pg::Postgres, user: &str, password: &[u8]) -> Result<(), String> {
    login_port(pg.port(), user, password).await
}

/// [`login`] by port (for tasks that do not hold the server handle).
pub async fn login_port(port: u16, user: &str, password: &[u8]) -> Result<(), String> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .dbname("postgres")
        .user(user)
        .password(password)
        .connect_timeout(std::time::Duration::from_secs(5));
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(message)?;
    let task = tokio::spawn(conn);
    let rows = client
        .query("SELECT count(*) FROM items", &[])
        .await
        .map_err(message)?;
    drop(client);
    let _ = task.await;
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    Ok(())
}

/// The current data of Secret `name`.
pub async fn current(store: &Arc<dyn RotationStore>, name: &str) -> SecretData {
    store
        .read_secret(name)
        .await
        .expect("read")
        .expect("exists")
        .value
        .current
}

/// The server's message when there is one (`Display` says only "db error").
pub fn message(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}
