//! The real `coffer audit verify` binary on logs written by `coffer-audit`'s writer:
//! an intact log exits 0, a log with a line removed exits 1 and says which line.

use std::path::Path;
use std::process::{Command, Output};

use coffer_audit::{Attributes, AuditLog, Event, EventUser, Level, MicroTime, Stage};

fn write_log(path: &Path, events: u64) {
    let log = AuditLog::open(path).expect("open audit log");
    for n in 0..events {
        let attrs = Attributes {
            user: "alice".into(),
            verb: "get".into(),
            api_version: "v1".into(),
            resource: "secrets".into(),
            namespace: "default".into(),
            name: format!("s{n}"),
            is_resource: true,
            ..Attributes::default()
        };
        let user = EventUser {
            username: "alice".into(),
            ..EventUser::default()
        };
        let event = Event::metadata(
            format!("audit-{n}"),
            Level::Metadata,
            Stage::ResponseComplete,
            &attrs,
            user,
            format!("/api/v1/namespaces/default/secrets/s{n}"),
            MicroTime::now(),
        );
        log.log(event).expect("log");
    }
    log.close().expect("close");
}

fn verify(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .expect("run coffer")
}

#[test]
fn intact_log_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    write_log(&path, 6);
    let out = verify(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "ok: 6 events, chain intact");
}

#[test]
fn removed_line_exits_one_with_the_line_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    write_log(&path, 6);
    let text = std::fs::read_to_string(&path).expect("read");
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").expect("rewrite");
    let out = verify(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 4: chain hash does not match line 3 (a line was removed or altered)"),
        "{stderr}"
    );
}

#[test]
fn missing_file_exits_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = verify(&dir.path().join("absent.log"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn help_has_an_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["audit", "verify", "--help"])
        .output()
        .expect("run coffer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("coffer audit verify /var/log/coffer/audit.log"),
        "{stdout}"
    );
}
