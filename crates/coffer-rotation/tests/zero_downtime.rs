//! Zero downtime, at the library level: a client opens a NEW connection every 10 ms with the
//! username and password it reads from files, written atomically (kubelet's layout: a fresh
//! directory, `..data` swapped by one rename) each time the engine publishes a new current
//! value. Through 20 alternating-user rotations no connection may fail; the same run with
//! single-user rotation reports how many failed.
//!
//! The client is `psql` (libpq), started afresh for every attempt: a real consumer, and one
//! whose SCRAM login costs a few milliseconds even when this crate is built without
//! optimisation (a Rust client's login costs ~100 ms in a debug build).
//!
//! Why single-user can fail: `setSecret` replaces the role's only password; until the files
//! hold the new one (after testSecret and finishSecret), a client connecting with the old one
//! is refused. The window is a few milliseconds per rotation, so a run may see zero failures
//! by luck; the count is printed, not asserted.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_rotation::{Engine, Error, MemoryStore, Observer, Rotation, RotationStore, SecretData};
use support::{current, pg::Postgres, seed_store, setup_roles, spec};

/// Writes `username` and `password` as kubelet's atomic writer does.
struct VolumeWriter {
    dir: PathBuf,
    seq: AtomicU64,
}

impl VolumeWriter {
    fn new(dir: &Path, initial: &SecretData) -> Self {
        let w = Self {
            dir: dir.to_owned(),
            seq: AtomicU64::new(0),
        };
        w.write(initial);
        for key in ["username", "password"] {
            symlink(Path::new("..data").join(key), dir.join(key)).expect("user-visible link");
        }
        w
    }

    fn write(&self, data: &SecretData) {
        let name = format!("..v{}", self.seq.fetch_add(1, Ordering::SeqCst));
        let version_dir = self.dir.join(&name);
        fs::create_dir(&version_dir).expect("version dir");
        for key in ["username", "password"] {
            fs::write(
                version_dir.join(key),
                data.get(key).expect("key").expose_secret(),
            )
            .expect("file");
        }
        let old = fs::read_link(self.dir.join("..data")).ok();
        let tmp = self.dir.join("..data_tmp");
        let _ = fs::remove_file(&tmp);
        symlink(&name, &tmp).expect("tmp link");
        fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        if let Some(old) = old {
            fs::remove_dir_all(self.dir.join(old)).expect("remove old version");
        }
    }
}

/// Reads both files from one version (the `..data` target), retrying if that version is
/// removed mid-read, as a careful consumer of a kubelet volume does.
fn read_credentials(dir: &Path) -> (String, Vec<u8>) {
    loop {
        let Ok(version) = fs::read_link(dir.join("..data")) else {
            continue;
        };
        let base = dir.join(version);
        match (
            fs::read_to_string(base.join("username")),
            fs::read(base.join("password")),
        ) {
            (Ok(u), Ok(p)) => return (u, p),
            (Err(e), _) | (_, Err(e)) if e.kind() == ErrorKind::NotFound => continue,
            (Err(e), _) | (_, Err(e)) => panic!("read credentials: {e}"),
        }
    }
}

/// One new connection with `psql`: log in and read the table.
async fn psql_login(psql: &Path, port: u16, user: &str, password: &[u8]) -> Result<(), String> {
    let out = tokio::process::Command::new(psql)
        .args(["-X", "-q", "-t", "-A", "-c", "SELECT count(*) FROM items"])
        .arg(format!(
            "host=127.0.0.1 port={port} dbname=postgres user={user} connect_timeout=5"
        ))
        .env("PGPASSWORD", std::ffi::OsStr::from_bytes(password))
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE")
        .output()
        .await
        .map_err(|e| format!("run psql: {e}"))?;
    match (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim(),
    ) {
        (true, "2") => Ok(()),
        _ => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
    }
}

struct Publish(Arc<VolumeWriter>);
impl Observer for Publish {
    fn published(&self, _: &str, _: &str, data: &SecretData) {
        self.0.write(data);
    }
}

#[derive(Debug, Default)]
struct ClientReport {
    attempts: u64,
    failures: u64,
    users: BTreeSet<String>,
    first_errors: Vec<String>,
}

/// Runs 20 rotations in `mode` while the client connects every 10 ms; returns its report.
async fn run(mode: &str, grace: &str, initial_user: &str) -> (ClientReport, u64) {
    let pg = Postgres::start();
    setup_roles(&pg).await;
    let store: Arc<dyn RotationStore> = Arc::new(MemoryStore::new());
    seed_store(store.as_ref(), initial_user).await;
    let files = tempfile::tempdir().expect("volume dir");
    let writer = Arc::new(VolumeWriter::new(
        files.path(),
        &current(&store, "app-db").await,
    ));
    let rotation = Rotation::new("app", spec(&pg, mode, grace), store.clone()).expect("valid");
    let engine = Engine::new(store.clone()).with_observer(Arc::new(Publish(writer)));

    let stop = Arc::new(AtomicBool::new(false));
    let report = Arc::new(Mutex::new(ClientReport::default()));
    let client = {
        let (stop, report, dir, port) = (
            stop.clone(),
            report.clone(),
            files.path().to_owned(),
            pg.port(),
        );
        let psql = pg.bin("psql");
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let (user, password) = read_credentials(&dir);
                let result = psql_login(&psql, port, &user, &password).await;
                {
                    let mut r = report.lock().expect("lock");
                    r.attempts += 1;
                    r.users.insert(user.clone());
                    if let Err(e) = result {
                        r.failures += 1;
                        if r.first_errors.len() < 3 {
                            r.first_errors.push(format!("{user}: {e}"));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut rotations = 0;
    while rotations < 20 {
        match engine.rotate(&rotation).await {
            Ok(_) => rotations += 1,
            Err(Error::PreviousStillValid { .. }) => {}
            Err(e) => panic!("{mode}: rotation failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    client.await.expect("client task");
    let report = std::mem::take(&mut *report.lock().expect("lock"));
    println!(
        "{mode}: {rotations} rotations in {:.1}s, {} connections, {} failed {:?}",
        started.elapsed().as_secs_f64(),
        report.attempts,
        report.failures,
        report.first_errors
    );
    drop(pg);
    (report, engine.metrics().snapshot().rotations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_users_rotate_twenty_times_with_zero_failed_connections() {
    let (report, rotations) = run("alternatingUsers", "500ms", "app_a").await;
    assert_eq!(rotations, 20);
    assert!(
        report.attempts >= 100,
        "the client ran during the rotations: {report:?}"
    );
    assert_eq!(
        report.users.len(),
        2,
        "the client used both roles: {report:?}"
    );
    assert_eq!(report.failures, 0, "failed connections: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_user_rotation_reports_its_failed_connections() {
    let (report, rotations) = run("singleUser", "0s", "app_single").await;
    assert_eq!(rotations, 20);
    assert!(
        report.attempts >= 20,
        "the client ran during the rotations: {report:?}"
    );
    // Every failure must be the refused old password, nothing else.
    for e in &report.first_errors {
        assert!(e.contains("password authentication failed"), "{e}");
    }
    println!(
        "single-user: {} of {} connections failed during 20 rotations (alternating users: 0)",
        report.failures, report.attempts
    );
}
