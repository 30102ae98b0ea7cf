//! The real `coffer scan` binary: exit codes, formats, baseline, allowlist, `--git`.
//!
//! Uses only std (no dev-dependencies): temporary trees live under the system temp directory
//! and are removed at the end of each test.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const GUIDE: &str = "public class Db\n{\n    string password = \"MyStrongPassword\";\n}\n";

struct TempTree(PathBuf);

impl TempTree {
    fn new(files: &[(&str, &str)]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "coffer-scan-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        for (rel, content) in files {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        std::fs::create_dir_all(&dir).expect("mkdir");
        TempTree(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn coffer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("scan")
        .args(args)
        .output()
        .expect("coffer runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn guide_example_fails_the_build_without_printing_the_password() {
    let t = TempTree::new(&[("src/Db.cs", GUIDE)]);
    let path = t.path().to_str().expect("utf-8 path");
    let out = coffer(&[path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("src/Db.cs:3  [generic-password]"), "{text}");
    assert!(text.contains("fix: "), "{text}");
    for format in ["text", "json", "sarif"] {
        let o = coffer(&["--format", format, path]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            !stdout(&o).contains("MyStrongPassword"),
            "{format} leaks the value"
        );
        assert!(!String::from_utf8_lossy(&o.stderr).contains("MyStrongPassword"));
    }
    let sarif = stdout(&coffer(&["--format", "sarif", path]));
    assert!(sarif.contains("\"version\":\"2.1.0\""), "{sarif}");
}

#[test]
fn clean_tree_exits_zero_and_fail_on_sets_the_threshold() {
    let clean = TempTree::new(&[("a.py", "password = os.environ['DB_PASSWORD']\n")]);
    assert_eq!(
        coffer(&[clean.path().to_str().expect("utf-8")])
            .status
            .code(),
        Some(0)
    );

    // A Pod without automountServiceAccountToken: false is a low finding only.
    let pod = "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: x\n";
    let t = TempTree::new(&[("pod.yaml", pod)]);
    let path = t.path().to_str().expect("utf-8");
    assert_eq!(coffer(&[path]).status.code(), Some(0));
    assert_eq!(coffer(&["--fail-on", "low", path]).status.code(), Some(1));
    let secret = TempTree::new(&[("Db.cs", GUIDE)]);
    let spath = secret.path().to_str().expect("utf-8");
    assert_eq!(
        coffer(&["--fail-on", "never", spath]).status.code(),
        Some(0)
    );
}

#[test]
fn baseline_written_with_output_silences_known_findings() {
    let t = TempTree::new(&[("Db.cs", GUIDE)]);
    let path = t.path().to_str().expect("utf-8");
    let base = t.path().join("baseline.json");
    let base = base.to_str().expect("utf-8");
    let out = coffer(&["--format", "json", "-o", base, path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "the report went to the file");
    let again = coffer(&["--baseline", base, path]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert!(
        stdout(&again).contains("1 in baseline"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn default_allowlist_file_is_read_from_the_root() {
    let t = TempTree::new(&[
        ("vendor/Db.cs", GUIDE),
        (".coffer-scan.yaml", "paths: ['^vendor/']\n"),
    ]);
    assert_eq!(
        coffer(&[t.path().to_str().expect("utf-8")]).status.code(),
        Some(0)
    );
}

#[test]
fn errors_exit_two_with_a_hint() {
    let out = coffer(&["/nonexistent/coffer-scan-cli"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: cannot read /nonexistent"));
    let t = TempTree::new(&[("a.txt", "x\n")]);
    let out = coffer(&["--git", t.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop --git"));
}

#[test]
fn git_history_finds_a_deleted_secret() {
    let t = TempTree::new(&[("Db.cs", GUIDE)]);
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args([
                "-c",
                "user.name=Bob",
                "-c",
                "user.email=bob@example.invalid",
            ])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(t.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "add"]);
    git(&["rm", "-q", "Db.cs"]);
    git(&["commit", "-q", "-m", "remove"]);
    let path = t.path().to_str().expect("utf-8");
    assert_eq!(coffer(&[path]).status.code(), Some(0), "work tree is clean");
    let out = coffer(&["--git", path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("Db.cs:3  [generic-password]"), "{text}");
    assert!(text.contains("by Bob <bob@example.invalid>"), "{text}");
    assert!(text.contains("2 commits"), "{text}");
}

#[test]
fn list_rules_prints_the_catalog() {
    let out = coffer(&["--list-rules"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("aws-access-key-id"));
    assert!(text.contains("rbac-wildcard-secrets"));
}

#[test]
fn objects_from_a_cluster_are_audited_and_readers_listed() {
    let listed = r#"{"kind": "List", "apiVersion": "v1", "items": [
      {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "db", "namespace": "prod"},
       "data": {"password": "TXlTdHJvbmdQYXNzd29yZA=="}},
      {"kind": "ClusterRole", "metadata": {"name": "reader"},
       "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]},
      {"kind": "ClusterRoleBinding", "metadata": {"name": "everyone"},
       "roleRef": {"kind": "ClusterRole", "name": "reader"},
       "subjects": [{"kind": "Group", "name": "system:authenticated"}]}
    ]}"#;
    let run = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(["scan", "--objects", "-"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("coffer runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(listed.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("coffer finishes")
    };
    let audit = run(&[]);
    assert_eq!(audit.status.code(), Some(1));
    let text = stdout(&audit);
    assert!(
        text.contains("cluster:ClusterRoleBinding//everyone:1  [rbac-broad-subject-secrets]"),
        "{text}"
    );
    assert!(
        !text.contains("k8s-secret-data"),
        "live Secrets hold values by design: {text}"
    );
    assert!(!text.contains("MyStrongPassword"));

    let readers = run(&["--who-can-read"]);
    assert_eq!(readers.status.code(), Some(0));
    let text = stdout(&readers);
    assert!(
        text.starts_with("Secret prod/db: 1 reader(s)\n  Group system:authenticated  [get,list]"),
        "{text}"
    );
}

/// `coffer scan --cluster` against the real `coffer serve`: a ConfigMap holding a password
/// is reported, Secret values never appear, kinds the server does not serve are skipped.
#[test]
fn live_audit_of_coffer_serve() {
    let coffer = support::Coffer::start(&[]);
    let password = "Xq7-live-audit-P4ssw0rd-9z";
    coffer.ok(
        "1.33",
        &[
            "create",
            "configmap",
            "app-config",
            &format!("--from-literal=db_password={password}"),
        ],
    );
    coffer.ok(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "db",
            &format!("--from-literal=password={password}"),
        ],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["scan", "--kubeconfig"])
        .arg(&coffer.kubeconfig)
        .args(["--format", "json", "--fail-on", "never"])
        .output()
        .expect("coffer scan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("app-config"),
        "the ConfigMap finding: {stdout}"
    );
    assert!(
        !stdout.contains(password) && !stderr.contains(password),
        "no value printed"
    );
    assert!(stderr.contains("does not serve pods"), "{stderr}");

    let readers = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["scan", "--who-can-read", "--kubeconfig"])
        .arg(&coffer.kubeconfig)
        .output()
        .expect("coffer scan --who-can-read");
    let text = String::from_utf8_lossy(&readers.stdout);
    assert!(readers.status.success(), "{text}");
    assert!(text.contains("db"), "lists the Secret: {text}");
    assert!(!text.contains(password));
}
