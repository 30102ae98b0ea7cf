//! Crash test: a child process writes continuously to the embedded store and reports each
//! acknowledged revision; it is killed with SIGKILL at random moments, 20 times. After each
//! kill the store must open cleanly and hold every acknowledged write with its value.
//!
//! The child is this same test binary, re-run with `crash_child` selected and the store
//! directory in `COFFER_CRASH_DIR`; without that variable `crash_child` does nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use coffer_storage::{EmbeddedStore, Revision, Store, Txn, TxnOutcome};
use rand::Rng;

const DIR_ENV: &str = "COFFER_CRASH_DIR";
const ROUND_ENV: &str = "COFFER_CRASH_ROUND";
const WRITERS: usize = 8;

/// The value written under `key`: 1 KiB derived from the key, so the parent can check it.
fn value_for(key: &str) -> Bytes {
    let mut v = Vec::with_capacity(1024);
    while v.len() < 1024 {
        v.extend_from_slice(key.as_bytes());
        v.push(b'|');
    }
    v.truncate(1024);
    Bytes::from(v)
}

#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let round = std::env::var(ROUND_ENV).expect("round");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let store = EmbeddedStore::open(std::path::Path::new(&dir).join("s.redb")).expect("open");
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                let round = round.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/crash/{round}/{w}/{i}");
                        let txn = Txn::create(Bytes::from(key.clone()), value_for(&key));
                        match store.txn(txn).await.expect("txn") {
                            TxnOutcome::Committed { revision, .. } => {
                                let mut out = std::io::stdout().lock();
                                writeln!(out, "ACK {revision} {key}").expect("stdout");
                                out.flush().expect("flush");
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut acked: Vec<(Revision, String)> = Vec::new();
    let mut rng = rand::rng();
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let (rev, key) = rest.split_once(' ').expect("ACK rev key");
                    let _ = tx.send((Revision::new(rev.parse().expect("rev")), key.to_owned()));
                }
            }
        });
        // Wait for the first acknowledgement, then kill at a random moment.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child acknowledged a write");
        acked.push(first);
        std::thread::sleep(Duration::from_millis(rng.random_range(10..400)));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        reader.join().expect("reader");
        acked.extend(rx.try_iter());

        let store = EmbeddedStore::open(dir.path().join("s.redb"))
            .unwrap_or_else(|e| panic!("round {round}: store does not open after SIGKILL: {e}"));
        let current = store.current_revision().await.expect("rev");
        for (rev, key) in &acked {
            let kv = store
                .get(key.as_bytes())
                .await
                .expect("get")
                .kv
                .unwrap_or_else(|| panic!("round {round}: acknowledged {key} at {rev} is lost"));
            assert_eq!(kv.mod_revision, *rev, "round {round}: {key}");
            assert_eq!(kv.value, value_for(key), "round {round}: {key}");
            assert!(*rev <= current);
        }
        drop(store);
    }
    assert!(acked.len() >= 20, "each round acknowledged writes");
    eprintln!(
        "crash test: {} acknowledged writes checked over 20 kills",
        acked.len()
    );
}
