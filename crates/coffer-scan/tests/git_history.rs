//! `Scanner::scan_git` on real repositories built with the `git` CLI.

use std::path::Path;
use std::process::Command;

use coffer_scan::{Error, Report, ScanOptions, Scanner};

const SECRET_PY: &str = "import os\n\nDB_PASSWORD = \"Gh-Hist0ry-S3cret\"\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Alice Example")
        .env("GIT_AUTHOR_EMAIL", "alice@example.invalid")
        .env("GIT_COMMITTER_NAME", "Alice Example")
        .env("GIT_COMMITTER_EMAIL", "alice@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commits everything in the work tree with a fixed date, so commit order is deterministic.
fn commit(dir: &Path, message: &str, n: u32) -> String {
    git(dir, &["add", "-A"]);
    let date = format!("2026-01-01T00:00:{n:02}Z");
    let out = Command::new("git")
        .args(["-c", "commit.gpgsign=false", "commit", "-q", "-m", message])
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Alice Example")
        .env("GIT_AUTHOR_EMAIL", "alice@example.invalid")
        .env("GIT_COMMITTER_NAME", "Alice Example")
        .env("GIT_COMMITTER_EMAIL", "alice@example.invalid")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .expect("git commit runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(dir, &["rev-parse", "HEAD"])
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q"]);
    dir
}

fn scan(dir: &Path) -> Report {
    Scanner::new(ScanOptions::default())
        .scan_git(dir, &mut |_| {})
        .expect("history scans")
}

#[test]
fn secret_added_then_deleted_is_found_with_its_commit() {
    let dir = repo();
    let root = dir.path();
    std::fs::write(root.join("README.md"), "# app\n").expect("write");
    commit(root, "start", 1);
    std::fs::create_dir(root.join("app")).expect("mkdir");
    std::fs::write(root.join("app/settings.py"), SECRET_PY).expect("write");
    let added = commit(root, "add settings", 2);
    std::fs::remove_file(root.join("app/settings.py")).expect("rm");
    commit(root, "oops, remove the password", 3);
    assert!(!root.join("app/settings.py").exists());

    let report = scan(root);
    assert_eq!(report.stats.commits_scanned, 3);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!(f.rule, "generic-password");
    assert_eq!(f.location.path, "app/settings.py");
    assert_eq!(f.location.line, 3);
    let c = f
        .location
        .commit
        .as_ref()
        .expect("history findings carry the commit");
    assert_eq!(c.id, added);
    assert_eq!(c.author, "Alice Example");
    assert_eq!(c.email, "alice@example.invalid");
    assert_eq!(c.time, 1_767_225_602);

    // Pointing at a directory inside the work tree scans the whole repository.
    std::fs::create_dir(root.join("docs")).expect("mkdir");
    let from_sub = scan(&root.join("docs"));
    assert_eq!(from_sub.findings, report.findings);

    // A plain directory scan of the same work tree sees nothing: the file is gone.
    let tree = Scanner::default()
        .scan_dir(root, &mut |_| {})
        .expect("dir scans");
    assert!(tree.findings.is_empty(), "{:#?}", tree.findings);
}

#[test]
fn secret_kept_or_moved_across_commits_is_reported_once_at_its_first_commit() {
    let dir = repo();
    let root = dir.path();
    std::fs::write(root.join("settings.py"), SECRET_PY).expect("write");
    let first = commit(root, "one", 1);
    std::fs::write(root.join("other.txt"), "x\n").expect("write");
    commit(root, "two", 2);
    std::fs::write(root.join("settings.py"), format!("# header\n{SECRET_PY}")).expect("write");
    commit(root, "three", 3);

    let report = scan(root);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let commit_id = &report.findings[0]
        .location
        .commit
        .as_ref()
        .expect("commit")
        .id;
    assert_eq!(commit_id, &first);
}

#[test]
fn secret_only_on_another_branch_is_found() {
    let dir = repo();
    let root = dir.path();
    std::fs::write(root.join("README.md"), "# app\n").expect("write");
    commit(root, "start", 1);
    git(root, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(
        root.join("deploy.sh"),
        "export GITLAB_TOKEN=glpat-Qw3rTy7uI9oP2aS4dF6g\n", // coffer:ignore (test fixture)
    )
    .expect("write");
    let feature = commit(root, "feature work", 2);
    git(root, &["checkout", "-q", "main"]);

    let report = scan(root);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(report.findings[0].rule, "gitlab-token");
    assert_eq!(
        report.findings[0]
            .location
            .commit
            .as_ref()
            .expect("commit")
            .id,
        feature
    );
}

#[test]
fn committed_secret_manifest_in_history_and_posture_from_head_only() {
    let dir = repo();
    let root = dir.path();
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: TXlTdHJvbmdQYXNzd29yZA==\n";
    let wildcard = "kind: ClusterRole\nmetadata:\n  name: ops\nrules:\n- apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n";
    std::fs::write(root.join("secret.yaml"), secret).expect("write");
    std::fs::write(root.join("rbac.yaml"), wildcard).expect("write");
    commit(root, "manifests", 1);
    std::fs::remove_file(root.join("secret.yaml")).expect("rm");
    let narrow = "kind: ClusterRole\nmetadata:\n  name: ops\nrules:\n- apiGroups: ['apps']\n  resources: ['deployments']\n  verbs: ['get']\n";
    std::fs::write(root.join("rbac.yaml"), narrow).expect("write");
    commit(root, "fix", 2);

    let rules: Vec<String> = scan(root).findings.into_iter().map(|f| f.rule).collect();
    assert_eq!(rules, vec!["k8s-secret-data"]);

    std::fs::write(root.join("rbac.yaml"), wildcard).expect("write");
    commit(root, "regress", 3);
    let report = scan(root);
    let wild = report
        .findings
        .iter()
        .find(|f| f.rule == "rbac-wildcard-secrets")
        .expect("HEAD's wildcard role is reported");
    assert!(wild.location.commit.is_none());
}

#[test]
fn empty_repository_and_non_repository() {
    let dir = repo();
    let report = scan(dir.path());
    assert!(report.findings.is_empty());
    assert_eq!(report.stats.commits_scanned, 0);

    let plain = tempfile::tempdir().expect("tempdir");
    let err = Scanner::default()
        .scan_git(plain.path(), &mut |_| {})
        .expect_err("not a repository");
    assert!(matches!(err, Error::Git { .. }), "{err}");
}

#[test]
fn progress_reports_commits() {
    let dir = repo();
    let root = dir.path();
    for n in 1..=3 {
        std::fs::write(root.join("f.txt"), format!("{n}\n")).expect("write");
        commit(root, "c", n);
    }
    let mut seen = Vec::new();
    Scanner::default()
        .scan_git(root, &mut |p| seen.push((p.commits_done, p.commits_total)))
        .expect("scans");
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
}
