use std::fs;
use std::path::PathBuf;

use super::*;
use crate::chain::{line_hash, write_head};
use crate::level::Level;
use crate::writer::AuditLog;

struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
    lines: Vec<String>,
}

/// A log of five events written by the real writer.
fn five() -> Log {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path).expect("open");
    for n in 0..5 {
        log.log(crate::writer::tests::event(n, "pods", Level::Metadata))
            .expect("log");
    }
    log.close().expect("close");
    let lines = fs::read_to_string(&path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect();
    Log {
        _dir: dir,
        path,
        lines,
    }
}

impl Log {
    fn rewrite(&self, lines: &[&String]) {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(&self.path, text).expect("rewrite");
    }

    fn error(&self) -> String {
        verify(&self.path).expect_err("must fail").to_string()
    }
}

#[test]
fn intact_log_passes() {
    let log = five();
    let report = verify(&log.path).expect("intact");
    assert_eq!(
        report,
        VerifyReport {
            events: 5,
            last_seq: 5,
            lines_after_head: 0
        }
    );
}

#[test]
fn empty_new_log_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    AuditLog::open(&path).expect("open").close().expect("close");
    assert_eq!(verify(&path).expect("ok").events, 0);
}

#[test]
fn deleted_middle_line() {
    let log = five();
    let l = &log.lines;
    log.rewrite(&[&l[0], &l[1], &l[3], &l[4]]);
    assert_eq!(
        log.error(),
        "line 3: chain hash does not match line 2 (a line was removed or altered)"
    );
}

#[test]
fn deleted_first_line() {
    let log = five();
    let l = &log.lines;
    log.rewrite(&[&l[1], &l[2], &l[3], &l[4]]);
    assert_eq!(
        log.error(),
        "line 1: chain hash is not the genesis value (the first line was removed or altered)"
    );
}

#[test]
fn deleted_last_line() {
    let log = five();
    let l = &log.lines;
    log.rewrite(&[&l[0], &l[1], &l[2], &l[3]]);
    assert_eq!(
        log.error(),
        "log ends at seq 4 but head says 5 (lines were removed from the end)"
    );
}

#[test]
fn altered_middle_line() {
    let log = five();
    let altered = log.lines[1].replace("obj-1", "obj-9");
    let l = &log.lines;
    log.rewrite(&[&l[0], &altered, &l[2], &l[3], &l[4]]);
    assert_eq!(
        log.error(),
        "line 3: chain hash does not match line 2 (a line was removed or altered)"
    );
}

#[test]
fn altered_last_line() {
    let log = five();
    let altered = log.lines[4].replace("alice", "mallory");
    let l = &log.lines;
    log.rewrite(&[&l[0], &l[1], &l[2], &l[3], &altered]);
    assert_eq!(
        log.error(),
        "line 5 (seq 5) does not match the hash in the head file (the line was altered)"
    );
}

#[test]
fn reordered_pair() {
    let log = five();
    let l = &log.lines;
    log.rewrite(&[&l[0], &l[2], &l[1], &l[3], &l[4]]);
    assert_eq!(
        log.error(),
        "line 2: chain hash does not match line 1 (a line was removed or altered)"
    );
}

#[test]
fn rechained_line_with_wrong_seq() {
    // Someone recomputed the chain but kept a gap in seq: the seq check catches it.
    let log = five();
    let first = &log.lines[0];
    let mut v: serde_json::Value = serde_json::from_str(&log.lines[1]).expect("json");
    v["annotations"]["coffer.dev/seq"] = "3".into();
    let second = serde_json::to_string(&v).expect("json");
    log.rewrite(&[first, &second]);
    write_head(
        &crate::chain::head_path(&log.path),
        &crate::chain::Head {
            seq: 3,
            hash: line_hash(second.as_bytes()),
        },
    )
    .expect("head");
    assert_eq!(
        log.error(),
        "line 2: seq is 3, expected 2 (lines were removed, added or reordered)"
    );
}

#[test]
fn garbage_line_is_named_without_its_content() {
    let log = five();
    let garbage = "password=MyStrongPassword".to_owned();
    let l = &log.lines;
    log.rewrite(&[&l[0], &garbage, &l[2]]);
    let err = log.error();
    assert!(
        err.starts_with("line 2: not an audit event: invalid JSON"),
        "{err}"
    );
    assert!(!err.contains("MyStrongPassword"), "{err}");
}

#[test]
fn incomplete_last_line() {
    let log = five();
    let mut bytes = fs::read(&log.path).expect("read");
    bytes.extend_from_slice(b"{\"kind\"");
    fs::write(&log.path, bytes).expect("write");
    assert!(log.error().starts_with("line 6: incomplete"));
}

#[test]
fn missing_head_file() {
    let log = five();
    fs::remove_file(crate::chain::head_path(&log.path)).expect("rm");
    assert!(
        log.error()
            .contains("is missing: cannot tell whether lines were removed from the end")
    );
}
