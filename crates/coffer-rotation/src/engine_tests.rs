//! State-machine tests with an in-memory store and a fake target (the engine's own trait) that
//! fails where told.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::*;
use crate::error::TargetError;
use crate::rotation::{NoTarget, Target};
use crate::spec::RotationSpec;
use crate::store::MemoryStore;

/// A target that remembers its calls and fails the step named in `fail`.
#[derive(Default)]
struct FakeTarget {
    calls: Mutex<Vec<&'static str>>,
    fail: Mutex<Option<&'static str>>,
}

impl FakeTarget {
    fn failing(step: &'static str) -> Arc<Self> {
        let t = Self::default();
        *t.fail.lock().expect("lock") = Some(step);
        Arc::new(t)
    }
    fn call(&self, name: &'static str) -> Result<(), TargetError> {
        self.calls.lock().expect("lock").push(name);
        if *self.fail.lock().expect("lock") == Some(name) {
            return Err(TargetError::Invalid(format!("injected failure in {name}")));
        }
        Ok(())
    }
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Target for FakeTarget {
    async fn set(&self, _: &StepContext<'_>) -> Result<(), TargetError> {
        self.call("set")
    }
    async fn test(&self, _: &StepContext<'_>) -> Result<(), TargetError> {
        self.call("test")
    }
    async fn finish(&self, _: &StepContext<'_>) -> Result<(), TargetError> {
        self.call("finish")
    }
    async fn rollback(&self, _: &StepContext<'_>) -> Result<(), TargetError> {
        self.call("rollback")
    }
}

/// Records observer calls.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);
impl Observer for Log {
    fn step_recorded(&self, _: &str, step: StepName) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("recorded {step}"));
    }
    fn step_taken(&self, _: &str, step: StepName) {
        self.0.lock().expect("lock").push(format!("taken {step}"));
    }
    fn published(&self, _: &str, secret: &str, _: &SecretData) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("published {secret}"));
    }
}

fn spec(grace: &str) -> RotationSpec {
    serde_json::from_value(serde_json::json!({
        "secretName": "app-secret",
        "schedule": {"interval": "1h"},
        "generator": {"password": {"length": 24}},
        "gracePeriod": grace,
    }))
    .expect("spec")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

struct Fixture {
    store: Arc<MemoryStore>,
    clock: Arc<Mutex<Timestamp>>,
    log: Arc<Log>,
}

impl Fixture {
    async fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let initial: SecretData = [("username", "app"), ("password", "old-password")]
            .into_iter()
            .collect();
        store
            .write_secret("app-secret", &StagedSecret::plain(initial), None)
            .await
            .expect("seed");
        Self {
            store,
            clock: Arc::new(Mutex::new(ts("2026-03-01T00:00:00Z"))),
            log: Arc::new(Log::default()),
        }
    }
    fn engine(&self) -> Engine {
        let clock = self.clock.clone();
        Engine::new(self.store.clone())
            .with_observer(self.log.clone())
            .with_clock(Arc::new(move || *clock.lock().expect("lock")))
    }
    fn advance(&self, secs: i64) {
        let mut c = self.clock.lock().expect("lock");
        *c += SignedDuration::from_secs(secs);
    }
    async fn secret(&self) -> StagedSecret {
        self.store
            .read_secret("app-secret")
            .await
            .expect("read")
            .expect("exists")
            .value
    }
    async fn status(&self) -> RotationStatus {
        self.store
            .load_status("r")
            .await
            .expect("load")
            .expect("exists")
            .value
    }
}

#[tokio::test]
async fn a_rotation_runs_the_four_steps_in_order() {
    let f = Fixture::new().await;
    let target = Arc::new(FakeTarget::default());
    let rotation = Rotation::with_target("r", spec("30m"), target.clone()).expect("valid");
    let engine = f.engine();
    assert_eq!(
        engine.rotate(&rotation).await.expect("rotates"),
        Outcome::Rotated { version: 1 }
    );
    assert_eq!(target.calls(), ["set", "test", "finish"]);
    let log = f.log.0.lock().expect("lock").clone();
    assert_eq!(
        log,
        [
            "recorded createSecret",
            "taken createSecret",
            "recorded setSecret",
            "taken setSecret",
            "recorded testSecret",
            "taken testSecret",
            "recorded finishSecret",
            "published app-secret",
            "taken finishSecret",
        ]
    );
    let s = f.secret().await;
    assert_eq!(s.current_version, 1);
    assert_eq!(
        s.current.get_str("username"),
        Some("app"),
        "other keys are kept"
    );
    let new_password = s.current.get_str("password").expect("password").to_owned();
    assert_eq!(new_password.len(), 24);
    let previous = s.previous.expect("previous stage");
    assert_eq!(
        (previous.version, previous.data.get_str("password")),
        (0, Some("old-password"))
    );
    assert!(s.pending.is_none());
    let st = f.status().await;
    assert_eq!(
        (st.phase, st.current_version, st.step.is_none()),
        (Phase::Succeeded, 1, true)
    );
    assert_eq!(st.previous_valid_until, Some(ts("2026-03-01T00:30:00Z")));
    // Interval 1h after the rotation (the grace period ends before that).
    assert_eq!(st.next_rotation_time, Some(ts("2026-03-01T01:00:00Z")));
    assert_eq!(
        st.condition("Ready").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(engine.metrics().snapshot().rotations, 1);

    // Inside the grace period a new rotation is refused; after it, allowed.
    let err = engine.rotate(&rotation).await.expect_err("inside grace");
    assert!(matches!(err, Error::PreviousStillValid { .. }), "{err}");
    f.advance(1800);
    assert_eq!(
        engine.rotate(&rotation).await.expect("rotates"),
        Outcome::Rotated { version: 2 }
    );
    let s = f.secret().await;
    assert_eq!(
        s.previous.expect("previous").data.get_str("password"),
        Some(new_password.as_str())
    );
}

#[tokio::test]
async fn a_failed_set_or_test_rolls_back_and_keeps_the_current_value() {
    for (step, name) in [("set", StepName::SetSecret), ("test", StepName::TestSecret)] {
        let f = Fixture::new().await;
        let target = FakeTarget::failing(step);
        let rotation = Rotation::with_target("r", spec("0s"), target.clone()).expect("valid");
        let engine = f.engine();
        let err = engine.rotate(&rotation).await.expect_err("fails");
        match &err {
            Error::RolledBack { step: s, .. } => assert_eq!(*s, name),
            other => panic!("{step}: {other}"),
        }
        assert!(
            err.to_string().contains("current value is unchanged"),
            "{err}"
        );
        assert_eq!(target.calls().last(), Some(&"rollback"), "{step}");
        assert!(!target.calls().contains(&"finish"));
        let s = f.secret().await;
        assert_eq!(
            s.current.get_str("password"),
            Some("old-password"),
            "{step}"
        );
        assert_eq!((s.current_version, s.pending.is_none()), (0, true));
        let st = f.status().await;
        assert_eq!(
            (st.phase, st.step.is_none(), st.consecutive_failures),
            (Phase::Failed, true, 1)
        );
        let retry = Some(ts("2026-03-01T00:00:30Z"));
        assert_eq!(st.next_rotation_time, retry, "retry after 30 s");
        let m = engine.metrics().snapshot();
        assert_eq!((m.failures, m.rollbacks, m.rotations), (1, 1, 0));
        // The next attempt starts cleanly and succeeds; the abandoned version number, never
        // current, is used again.
        *target.fail.lock().expect("lock") = None;
        assert_eq!(
            engine.rotate(&rotation).await.expect("rotates"),
            Outcome::Rotated { version: 1 }
        );
        assert_eq!(f.status().await.consecutive_failures, 0);
    }
}

#[tokio::test]
async fn a_failed_create_rolls_back_without_touching_the_target() {
    let f = Fixture::new().await;
    let target = Arc::new(FakeTarget::default());
    let mut s = spec("0s");
    s.generator = serde_json::from_value(
        serde_json::json!({"tlsCertificate": {"caSecretName": "no-such-ca", "commonName": "x"}}),
    )
    .expect("generator");
    let rotation = Rotation::with_target("r", s, target.clone()).expect("valid");
    let err = f.engine().rotate(&rotation).await.expect_err("no CA");
    assert!(
        matches!(
            err,
            Error::RolledBack {
                step: StepName::CreateSecret,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-ca"), "{err}");
    assert!(target.calls().is_empty());
    assert_eq!(
        f.secret().await.current.get_str("password"),
        Some("old-password")
    );
}

#[tokio::test]
async fn a_failed_finish_keeps_the_step_and_resume_completes_it() {
    let f = Fixture::new().await;
    let target = FakeTarget::failing("finish");
    let rotation = Rotation::with_target("r", spec("0s"), target.clone()).expect("valid");
    let engine = f.engine();
    let err = engine.rotate(&rotation).await.expect_err("finish fails");
    assert!(
        matches!(
            err,
            Error::Target {
                step: StepName::FinishSecret,
                ..
            }
        ),
        "{err}"
    );
    // The tested new value is already current; no rollback happened.
    assert_eq!(f.secret().await.current_version, 1);
    assert!(!target.calls().contains(&"rollback"));
    let st = f.status().await;
    assert_eq!(
        (st.phase, st.step.as_ref().map(|s| s.name)),
        (Phase::Failed, Some(StepName::FinishSecret))
    );
    assert!(matches!(
        engine.rotate(&rotation).await,
        Err(Error::InFlight { .. })
    ));
    *target.fail.lock().expect("lock") = None;
    assert_eq!(
        engine.resume(&rotation).await.expect("resumes"),
        Outcome::Rotated { version: 1 }
    );
    assert_eq!(f.status().await.phase, Phase::Succeeded);
    assert_eq!(engine.resume(&rotation).await.expect("idle"), Outcome::Idle);
}

/// A store whose status saves start failing once `armed` is set: the process "dies" right
/// after a step was taken and before the next one is recorded.
struct DyingStore {
    inner: Arc<MemoryStore>,
    armed: AtomicBool,
}

#[async_trait]
impl RotationStore for DyingStore {
    async fn load_status(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<RotationStatus>>, StoreError> {
        self.inner.load_status(name).await
    }
    async fn save_status(
        &self,
        name: &str,
        s: &RotationStatus,
        e: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        if self.armed.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("process died".into()));
        }
        self.inner.save_status(name, s, e).await
    }
    async fn read_secret(&self, name: &str) -> Result<Option<Versioned<StagedSecret>>, StoreError> {
        self.inner.read_secret(name).await
    }
    async fn write_secret(
        &self,
        name: &str,
        s: &StagedSecret,
        e: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        self.inner.write_secret(name, s, e).await
    }
}

struct ArmAfter(StepName, Arc<DyingStore>);
impl Observer for ArmAfter {
    fn step_taken(&self, _: &str, step: StepName) {
        if step == self.0 {
            self.1.armed.store(true, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn resume_after_an_interruption_at_each_step_finishes_the_rotation() {
    for step in StepName::ALL {
        let f = Fixture::new().await;
        let dying = Arc::new(DyingStore {
            inner: f.store.clone(),
            armed: AtomicBool::new(false),
        });
        let target = Arc::new(FakeTarget::default());
        let rotation = Rotation::with_target("r", spec("0s"), target.clone()).expect("valid");
        let engine =
            Engine::new(dying.clone()).with_observer(Arc::new(ArmAfter(step, dying.clone())));
        let err = engine.rotate(&rotation).await.expect_err("dies");
        assert!(matches!(err, Error::Store(_)), "{step}: {err}");
        // The step was taken but the next record never written: the record still names it.
        assert_eq!(f.status().await.step.map(|s| s.name), Some(step));
        // A fresh engine over the same store resumes.
        let engine = Engine::new(f.store.clone());
        let outcome = engine.resume(&rotation).await.expect("resumes");
        assert_eq!(outcome, Outcome::Rotated { version: 1 }, "{step}");
        let s = f.secret().await;
        assert_eq!(
            (s.current_version, s.pending.is_none()),
            (1, true),
            "{step}"
        );
        assert_ne!(s.current.get_str("password"), Some("old-password"));
        assert_eq!(f.status().await.step, None);
        assert_eq!(engine.metrics().snapshot().resumes, 1);
    }
}

#[tokio::test]
async fn resume_finishes_a_rollback_that_had_begun() {
    let f = Fixture::new().await;
    let target = FakeTarget::failing("test");
    let rotation = Rotation::with_target("r", spec("0s"), target.clone()).expect("valid");
    // Record up to testSecret, then mark the rollback as begun (as a crash right after
    // recording it would leave things).
    let dying = Arc::new(DyingStore {
        inner: f.store.clone(),
        armed: AtomicBool::new(false),
    });
    let engine = Engine::new(dying.clone())
        .with_observer(Arc::new(ArmAfter(StepName::SetSecret, dying.clone())));
    engine.rotate(&rotation).await.expect_err("dies after set");
    let mut st = f
        .store
        .load_status("r")
        .await
        .expect("load")
        .expect("exists");
    let step = st.value.step.as_mut().expect("in flight");
    step.rolling_back = true;
    step.reason = Some("test failed".into());
    f.store
        .save_status("r", &st.value, Some(st.revision))
        .await
        .expect("save");

    let outcome = Engine::new(f.store.clone())
        .resume(&rotation)
        .await
        .expect("resumes");
    assert_eq!(outcome, Outcome::RolledBack { version: 1 });
    assert_eq!(
        target.calls(),
        ["set", "rollback"],
        "resume never tests a rollback"
    );
    let s = f.secret().await;
    assert_eq!(
        (s.current.get_str("password"), s.pending.is_none()),
        (Some("old-password"), true)
    );
    assert_eq!(f.status().await.phase, Phase::Failed);
}

#[tokio::test]
async fn the_previous_stage_is_dropped_after_the_grace_period() {
    let f = Fixture::new().await;
    let rotation = Rotation::with_target("r", spec("10m"), Arc::new(NoTarget)).expect("valid");
    let engine = f.engine();
    engine.rotate(&rotation).await.expect("rotates");
    assert!(
        !engine
            .expire_previous(&rotation)
            .await
            .expect("inside grace")
    );
    assert!(f.secret().await.previous.is_some());
    f.advance(600);
    assert!(engine.expire_previous(&rotation).await.expect("expires"));
    assert!(f.secret().await.previous.is_none());
}

#[tokio::test]
async fn a_missing_secret_is_created_by_the_first_rotation() {
    let store = Arc::new(MemoryStore::new());
    let rotation = Rotation::with_target("r", spec("0s"), Arc::new(NoTarget)).expect("valid");
    Engine::new(store.clone())
        .rotate(&rotation)
        .await
        .expect("rotates");
    let s = store
        .read_secret("app-secret")
        .await
        .expect("read")
        .expect("created")
        .value;
    assert_eq!(s.current.get("password").map(|v| v.len()), Some(24));
    assert!(
        s.previous.is_none(),
        "an empty value is not kept as previous"
    );
}
