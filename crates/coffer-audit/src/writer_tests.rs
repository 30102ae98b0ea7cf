use std::fs;

use serde_json::json;

use super::*;
use crate::chain::GENESIS;
use crate::checker::Attributes;
use crate::event::{EventUser, MicroTime};
use crate::level::Stage;
use crate::verify::verify;

pub(crate) fn event(n: u64, resource: &str, level: Level) -> Event {
    let attrs = Attributes {
        user: "alice".into(),
        verb: "get".into(),
        api_version: "v1".into(),
        resource: resource.into(),
        namespace: "default".into(),
        name: format!("obj-{n}"),
        is_resource: true,
        ..Attributes::default()
    };
    let user = EventUser {
        username: "alice".into(),
        ..EventUser::default()
    };
    Event::metadata(
        format!("id-{n}"),
        level,
        Stage::ResponseComplete,
        &attrs,
        user,
        format!("/api/v1/namespaces/default/{resource}/obj-{n}"),
        MicroTime::from_unix_micros(1_795_946_400_000_000 + n as i64),
    )
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn annotation(line: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    v["annotations"][key]
        .as_str()
        .expect("annotation")
        .to_owned()
}

fn write(path: &Path, range: std::ops::Range<u64>) {
    let log = AuditLog::open(path).expect("open");
    for n in range {
        log.log(event(n, "pods", Level::Metadata)).expect("log");
    }
    log.close().expect("close");
}

#[test]
fn writes_a_chain_and_a_head_with_private_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path).expect("open");
    for n in 0..3 {
        log.log(event(n, "pods", Level::Metadata)).expect("log");
    }
    log.flush().expect("flush");
    let ls = lines(&path);
    assert_eq!(ls.len(), 3);
    assert_eq!(annotation(&ls[0], SEQ_ANNOTATION), "1");
    assert_eq!(annotation(&ls[0], CHAIN_ANNOTATION), GENESIS);
    assert_eq!(annotation(&ls[1], SEQ_ANNOTATION), "2");
    assert_eq!(
        annotation(&ls[1], CHAIN_ANNOTATION),
        line_hash(ls[0].as_bytes())
    );
    assert_eq!(
        annotation(&ls[2], CHAIN_ANNOTATION),
        line_hash(ls[1].as_bytes())
    );
    let head = read_head(&head_path(&path)).expect("read").expect("head");
    assert_eq!(
        head,
        Head {
            seq: 3,
            hash: line_hash(ls[2].as_bytes())
        }
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for p in [path.clone(), head_path(&path)] {
            let mode = fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
    }
    log.close().expect("close");
}

#[test]
fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    write(&path, 0..3);
    write(&path, 3..5);
    let ls = lines(&path);
    assert_eq!(ls.len(), 5);
    assert_eq!(annotation(&ls[3], SEQ_ANNOTATION), "4");
    assert_eq!(
        annotation(&ls[3], CHAIN_ANNOTATION),
        line_hash(ls[2].as_bytes())
    );
    let report = verify(&path).expect("intact");
    assert_eq!(report.events, 5);
    assert_eq!(report.last_seq, 5);
}

#[test]
fn reopening_a_log_missing_its_last_line_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    write(&path, 0..3);
    let ls = lines(&path);
    fs::write(&path, format!("{}\n{}\n", ls[0], ls[1])).expect("rewrite");
    let err = AuditLog::open(&path).expect_err("damaged");
    let text = err.to_string();
    assert!(text.contains("log ends at seq 2 but head says 3"), "{text}");
    assert!(text.contains("coffer audit verify"), "{text}");
    // Nothing was written over the evidence.
    assert_eq!(lines(&path).len(), 2);
}

#[test]
fn reopening_a_log_without_its_head_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    write(&path, 0..2);
    fs::remove_file(head_path(&path)).expect("rm");
    let err = AuditLog::open(&path).expect_err("no head");
    assert!(err.to_string().contains("is missing"), "{err}");
}

#[test]
fn a_lagging_head_from_a_crash_is_accepted_and_brought_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    write(&path, 0..4);
    let ls = lines(&path);
    write_head(
        &head_path(&path),
        &Head {
            seq: 2,
            hash: line_hash(ls[1].as_bytes()),
        },
    )
    .expect("head");
    assert_eq!(verify(&path).expect("ok").lines_after_head, 2);
    write(&path, 4..5);
    let report = verify(&path).expect("intact");
    assert_eq!((report.events, report.lines_after_head), (5, 0));
}

#[test]
fn a_torn_last_line_is_cut_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    write(&path, 0..2);
    let mut bytes = fs::read(&path).expect("read");
    bytes.extend_from_slice(b"{\"kind\":\"Ev");
    fs::write(&path, bytes).expect("write");
    write(&path, 2..3);
    assert_eq!(verify(&path).expect("intact").events, 3);
}

#[test]
fn none_level_is_skipped_and_secrets_lose_their_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path).expect("open");
    log.log(event(0, "pods", Level::None)).expect("log");
    let mut secret = event(1, "secrets", Level::Metadata);
    secret.level = Level::RequestResponse;
    secret.request_object = Some(json!({"data": {"password": "TXlTdHJvbmdQYXNzd29yZA=="}}));
    secret.response_object = Some(json!({"data": {"password": "TXlTdHJvbmdQYXNzd29yZA=="}}));
    log.log(secret).expect("log");
    log.close().expect("close");
    let ls = lines(&path);
    assert_eq!(ls.len(), 1);
    assert!(ls[0].contains("\"level\":\"Metadata\""), "{}", ls[0]);
    assert!(!ls[0].contains("requestObject") && !ls[0].contains("TXlTdHJvbmdQYXNzd29yZA"));
}

#[test]
fn a_full_queue_blocks_instead_of_dropping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = Arc::new(AuditLog::open_with_capacity(&path, 1).expect("open"));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for n in 0..50 {
                    log.log(event(w * 100 + n, "pods", Level::Metadata))
                        .expect("log");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("join");
    }
    log.flush().expect("flush");
    assert_eq!(verify(&path).expect("intact").events, 200);
}

#[test]
fn a_write_failure_is_reported_and_stops_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path).expect("open");
    // The head cannot be replaced once a directory stands in its place.
    fs::remove_file(head_path(&path)).expect("rm head");
    fs::create_dir(head_path(&path)).expect("dir in the way");
    log.log(event(0, "pods", Level::Metadata)).expect("queued");
    let err = log.flush().expect_err("the batch failed");
    assert!(matches!(err, AuditError::WriterFailed { .. }), "{err:?}");
    assert!(log.log(event(1, "pods", Level::Metadata)).is_err());
    assert!(log.close().is_err());
}
