//! The PostgreSQL rotators against a real server: quoting agrees with the server's, single-user
//! and alternating-user rotations, the grace period enforced by the server, rollback, and no
//! cleartext password in the server's statement log.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coffer_rotation::{
    Engine, Error, MemoryStore, Outcome, PostgresRotator, Rotation, RotationStore, StepContext,
    Target, TargetError, TargetSpec, quote_ident, quote_literal,
};
use support::{INITIAL_PASSWORD, current, login, pg::Postgres, seed_store, setup_roles, spec};

#[tokio::test]
async fn quoting_agrees_with_the_server() {
    let pg = Postgres::start();
    let client = pg.superuser().await;
    for text in [
        "plain",
        "Mixed Case",
        "quote\"inside",
        "it's",
        "back\\slash",
        "both\\'\"",
        "'; DROP TABLE x; --",
        "ünïcødé",
        "$$dollar$$",
    ] {
        let row = client
            .query_one(
                "SELECT quote_literal($1::text), quote_ident($1::text)",
                &[&text],
            )
            .await
            .expect("server quotes");
        assert_eq!(
            quote_literal(text).as_deref(),
            Some(row.get::<_, &str>(0)),
            "{text:?}"
        );
        // The server leaves simple lower-case names bare; ours always quotes. Both must name
        // the same thing: ours, used as a column alias, comes back as exactly the text.
        let ours = quote_ident(text).expect("no NUL");
        let server = row.get::<_, &str>(1);
        for quoted in [ours.as_str(), server] {
            let stmt = client
                .prepare(&format!("SELECT 1 AS {quoted}"))
                .await
                .expect("identifier parses");
            assert_eq!(stmt.columns()[0].name(), text, "{quoted}");
        }
        // And a role created through our quoting has exactly that name.
        let role_name = format!("r {text}");
        if role_name.len() <= 63 {
            client
                .batch_execute(&format!(
                    "CREATE ROLE {}",
                    quote_ident(&role_name).expect("quote")
                ))
                .await
                .expect("create role with our quoting");
            let found = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role_name])
                .await
                .expect("lookup");
            assert!(found.is_some(), "{role_name:?}");
        }
    }
}

#[tokio::test]
async fn single_user_rotation_replaces_the_password_without_sending_it_in_clear() {
    let pg = Postgres::start();
    setup_roles(&pg).await;
    let store: Arc<dyn RotationStore> = Arc::new(MemoryStore::new());
    seed_store(store.as_ref(), "app_single").await;
    let rotation =
        Rotation::new("app", spec(&pg, "singleUser", "0s"), store.clone()).expect("valid");
    let engine = Engine::new(store.clone());
    for round in 1..=2u64 {
        let before = current(&store, "app-db").await;
        assert_eq!(
            engine.rotate(&rotation).await.expect("rotates"),
            Outcome::Rotated { version: round }
        );
        let now = current(&store, "app-db").await;
        assert_eq!(now.get_str("username"), Some("app_single"));
        let password = now.get("password").expect("password");
        login(&pg, "app_single", password.expose_secret())
            .await
            .expect("new password works");
        let old = before.get("password").expect("old");
        assert!(
            login(&pg, "app_single", old.expose_secret()).await.is_err(),
            "old password must fail"
        );
        // The ready DSN works as is.
        let (client, conn) =
            tokio_postgres::connect(now.get_str("uri").expect("uri"), tokio_postgres::NoTls)
                .await
                .expect("uri connects");
        tokio::spawn(conn);
        client.simple_query("SELECT 1").await.expect("query");
        assert_eq!(now.get_str("port"), Some(pg.port().to_string().as_str()));
        // The statement log has the verifier, never the cleartext.
        let log = pg.log();
        assert!(
            log.contains("SCRAM-SHA-256$4096:"),
            "the ALTER ROLE was logged with a verifier"
        );
        assert!(
            !log.contains(password.expose_str().expect("text")),
            "cleartext password in the server log"
        );
    }
}

/// A target that delegates to the real rotator but fails its test step.
struct FailingTest(PostgresRotator);

#[async_trait]
impl Target for FailingTest {
    async fn prepare(
        &self,
        c: &coffer_rotation::SecretData,
        g: &coffer_rotation::SecretData,
    ) -> Result<coffer_rotation::SecretData, TargetError> {
        self.0.prepare(c, g).await
    }
    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.0.set(ctx).await
    }
    async fn test(&self, _: &StepContext<'_>) -> Result<(), TargetError> {
        Err(TargetError::Invalid("injected test failure".into()))
    }
    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.0.finish(ctx).await
    }
    async fn rollback(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.0.rollback(ctx).await
    }
}

#[tokio::test]
async fn a_failed_test_rolls_back_in_the_database() {
    let pg = Postgres::start();
    setup_roles(&pg).await;
    for (mode, user) in [("singleUser", "app_single"), ("alternatingUsers", "app_a")] {
        let store: Arc<dyn RotationStore> = Arc::new(MemoryStore::new());
        seed_store(store.as_ref(), user).await;
        let spec = spec(&pg, mode, "0s");
        let TargetSpec::Postgres(target) = spec.target.clone() else {
            panic!("postgres spec")
        };
        let failing = FailingTest(PostgresRotator::new(target, store.clone()));
        let rotation = Rotation::with_target("app", spec, Arc::new(failing)).expect("valid");
        let err = Engine::new(store.clone())
            .rotate(&rotation)
            .await
            .expect_err("test fails");
        assert!(matches!(err, Error::RolledBack { .. }), "{err}");
        // The current credential works exactly as before.
        login(&pg, user, INITIAL_PASSWORD.as_bytes())
            .await
            .expect("current still works");
        let data = current(&store, "app-db").await;
        assert_eq!(data.get_str("password"), Some(INITIAL_PASSWORD));
    }
    // The alternating rollback left the idle role created but unusable.
    let client = pg.superuser().await;
    let row = client
        .query_one("SELECT rolvaliduntil IS NOT NULL AND rolvaliduntil <= now() FROM pg_roles WHERE rolname = 'app_b'", &[])
        .await
        .expect("app_b exists");
    assert!(
        row.get::<_, bool>(0),
        "the idle role's unpublished password was expired"
    );
}

#[tokio::test]
async fn alternating_users_keep_the_previous_role_valid_through_the_grace_period() {
    let pg = Postgres::start();
    setup_roles(&pg).await;
    let store: Arc<dyn RotationStore> = Arc::new(MemoryStore::new());
    seed_store(store.as_ref(), "app_a").await;
    let rotation =
        Rotation::new("app", spec(&pg, "alternatingUsers", "2s"), store.clone()).expect("valid");
    let engine = Engine::new(store.clone());

    // Rotation 1: app_b does not exist yet; it is created with app_a's memberships.
    assert_eq!(
        engine.rotate(&rotation).await.expect("rotates"),
        Outcome::Rotated { version: 1 }
    );
    let now = current(&store, "app-db").await;
    assert_eq!(now.get_str("username"), Some("app_b"));
    login(
        &pg,
        "app_b",
        now.get("password").expect("pw").expose_secret(),
    )
    .await
    .expect("app_b reads items through the group role");
    login(&pg, "app_a", INITIAL_PASSWORD.as_bytes())
        .await
        .expect("previous valid inside the grace period");
    // Rotating again now would invalidate app_a early: refused.
    assert!(matches!(
        engine.rotate(&rotation).await,
        Err(Error::PreviousStillValid { .. })
    ));
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let err = login(&pg, "app_a", INITIAL_PASSWORD.as_bytes())
        .await
        .expect_err("grace is over");
    assert!(err.contains("password authentication failed"), "{err}");

    // Rotation 2: app_a gets a new password and becomes current; app_b is now previous.
    let b_password = now.get("password").expect("pw").clone();
    assert_eq!(
        engine.rotate(&rotation).await.expect("rotates"),
        Outcome::Rotated { version: 2 }
    );
    let now = current(&store, "app-db").await;
    assert_eq!(now.get_str("username"), Some("app_a"));
    login(
        &pg,
        "app_a",
        now.get("password").expect("pw").expose_secret(),
    )
    .await
    .expect("app_a works again");
    login(&pg, "app_b", b_password.expose_secret())
        .await
        .expect("app_b valid through its grace");
    let staged = store
        .read_secret("app-db")
        .await
        .expect("read")
        .expect("exists")
        .value;
    assert_eq!(
        staged.previous.expect("previous").data.get_str("username"),
        Some("app_b")
    );
}
