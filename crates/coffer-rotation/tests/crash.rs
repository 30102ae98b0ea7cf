//! Crash safety: a child process (this test binary, re-executed) runs a rotation against a
//! real PostgreSQL with the file-backed store and stops right after step N is taken; the
//! parent kills it with SIGKILL, resumes with a new engine over the same file, and checks that
//! the database and the Secret agree: the Secret's current credentials log in, nothing is left
//! pending, and the previous credentials work exactly while their grace period lasts.
//! Done for each of the four steps, with alternating users and with a single user.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use coffer_rotation::{
    Engine, FileStore, Observer, Outcome, Rotation, RotationSpec, RotationStore, StepName,
};
use support::{login, pg::Postgres, seed_store, setup_roles, spec};

/// Set in the child: `{"store": path, "spec": RotationSpec, "stopAfter": step}`.
const CHILD_ENV: &str = "COFFER_ROTATION_CRASH_CHILD";
/// What the child prints once it has taken the step it stops after.
const MARKER: &str = "COFFER_CRASH_POINT";

/// Stops the process (for the parent to kill) right after `0` is taken.
struct StopAfter(StepName);
impl Observer for StopAfter {
    fn step_taken(&self, _: &str, step: StepName) {
        if step == self.0 {
            // Straight to fd 1: the test harness's output capture only sees print! macros.
            let mut out = std::io::stdout().lock();
            out.write_all(format!("{MARKER} {step}\n").as_bytes())
                .expect("marker");
            out.flush().expect("flush");
            drop(out);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}

/// The child half: does nothing unless started by the parent test.
#[test]
fn crash_child() {
    let Ok(config) = std::env::var(CHILD_ENV) else {
        return;
    };
    let config: serde_json::Value = serde_json::from_str(&config).expect("child config");
    let spec: RotationSpec = serde_json::from_value(config["spec"].clone()).expect("spec");
    let stop: StepName = serde_json::from_value(config["stopAfter"].clone()).expect("step");
    let path = config["store"].as_str().expect("store path").to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store: Arc<dyn RotationStore> = Arc::new(FileStore::new(path));
        let rotation = Rotation::new("app", spec, store.clone()).expect("valid");
        let engine = Engine::new(store).with_observer(Arc::new(StopAfter(stop)));
        engine
            .rotate(&rotation)
            .await
            .expect("rotation runs until the stop");
        panic!("the child should have stopped after {stop}");
    });
}

/// Runs the child until it reports `stop`, then SIGKILLs it.
fn run_child_and_kill(store: &std::path::Path, spec: &RotationSpec, stop: StepName) {
    let config = serde_json::json!({ "store": store, "spec": spec, "stopAfter": stop });
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, config.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may have printed "test crash_child ... " on the same line.
            if let Some(at) = line.find(MARKER) {
                let _ = tx.send(line[at..].to_owned());
                return;
            }
        }
    });
    let marker = rx.recv_timeout(Duration::from_secs(180));
    child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    let marker = marker.unwrap_or_else(|_| panic!("the child never reached {stop}"));
    assert_eq!(marker, format!("{MARKER} {stop}"));
    let status = child.wait().expect("reap");
    assert!(!status.success());
}

async fn crash_at_every_step(pg: &Postgres, mode: &str, grace: &str, first_user: &str) {
    let dir = tempfile::tempdir().expect("store dir");
    let path = dir.path().join("store.json");
    let store: Arc<dyn RotationStore> = Arc::new(FileStore::new(&path));
    seed_store(store.as_ref(), first_user).await;
    let spec = spec(pg, mode, grace);

    for (i, stop) in StepName::ALL.into_iter().enumerate() {
        let before = store
            .read_secret("app-db")
            .await
            .expect("read")
            .expect("exists")
            .value;
        run_child_and_kill(&path, &spec, stop);

        // The record names the step that was taken; the next one was never recorded.
        let status = store
            .load_status("app")
            .await
            .expect("load")
            .expect("saved")
            .value;
        assert_eq!(status.step.as_ref().map(|s| s.name), Some(stop), "{mode}");

        let store: Arc<dyn RotationStore> = Arc::new(FileStore::new(&path));
        let rotation = Rotation::new("app", spec.clone(), store.clone()).expect("valid");
        let engine = Engine::new(store.clone());
        let version = i as u64 + 1;
        assert_eq!(
            engine.resume(&rotation).await.expect("resumes"),
            Outcome::Rotated { version },
            "{mode} {stop}"
        );

        // Database and Secret agree.
        let secret = store
            .read_secret("app-db")
            .await
            .expect("read")
            .expect("exists")
            .value;
        let status = store
            .load_status("app")
            .await
            .expect("load")
            .expect("saved")
            .value;
        assert!(
            secret.pending.is_none() && status.step.is_none(),
            "{mode} {stop}: nothing in flight"
        );
        assert_eq!(secret.current_version, version);
        let user = secret.current.get_str("username").expect("username");
        let password = secret.current.get("password").expect("password");
        login(pg, user, password.expose_secret())
            .await
            .unwrap_or_else(|e| panic!("{mode} {stop}: current login: {e}"));
        let prev = secret.previous.expect("previous stage");
        assert_eq!(
            prev.data, before.current,
            "{mode} {stop}: previous is the value rotated out"
        );
        let prev_user = prev.data.get_str("username").expect("username");
        let prev_password = prev.data.get("password").expect("password");
        let until = status.previous_valid_until.expect("previous_valid_until");
        let remaining = until.duration_since(jiff::Timestamp::now());
        if mode == "singleUser" {
            assert!(
                login(pg, prev_user, prev_password.expose_secret())
                    .await
                    .is_err(),
                "{stop}: old single-user password must fail"
            );
        } else {
            if remaining > jiff::SignedDuration::from_millis(500) {
                login(pg, prev_user, prev_password.expose_secret())
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{stop}: previous must work inside grace ({remaining:?} left): {e}")
                    });
            } else {
                println!(
                    "{stop}: only {remaining:?} of grace left; skipping the inside-grace login"
                );
            }
            let wait = remaining.as_millis().max(0) as u64 + 300;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let err = login(pg, prev_user, prev_password.expose_secret())
                .await
                .expect_err("grace is over");
            assert!(
                err.contains("password authentication failed"),
                "{stop}: {err}"
            );
        }
        println!(
            "{mode}: killed after {stop}; resumed to version {version}; database and Secret agree"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_each_step_then_resume_agrees_with_the_database() {
    let pg = Postgres::start();
    setup_roles(&pg).await;
    crash_at_every_step(&pg, "alternatingUsers", "4s", "app_a").await;
    crash_at_every_step(&pg, "singleUser", "0s", "app_single").await;
}
