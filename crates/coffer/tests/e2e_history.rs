//! End to end, issue 9 item 1: every change to a Secret is kept as a version (encrypted at rest
//! like the Secret), `coffer secret history` lists them with AWS-style stages, `coffer secret
//! rollback` makes an earlier one current (a consumer's watch sees it), versions are readable
//! only by those who may `get` the Secret, and a deleted Secret can be restored.

mod support;

use std::time::{Duration, Instant};

use support::Coffer;

const CANARY: &str = "history-canary-0b1c2d";

fn secret(c: &Coffer, name: &str) -> String {
    c.ok(
        "1.33",
        &["get", "secret", name, "-o", "jsonpath={.data.password}"],
    )
}

fn coffer_secret(c: &Coffer, args: &[&str]) -> (bool, String, String) {
    let kubeconfig = c.kubeconfig.to_str().expect("utf8").to_owned();
    let mut all = vec!["secret"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--kubeconfig", &kubeconfig]);
    let out = c.coffer(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `coffer secret history` shows `n` versions (the recorder follows the watch).
fn history_with(c: &Coffer, name: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, err) = coffer_secret(c, &["history", name]);
        let rows = out
            .lines()
            .skip_while(|l| !l.starts_with("VERSION"))
            .count();
        if ok && rows == n + 1 {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "history never had {n} versions: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn b64(s: &str) -> String {
    let out = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(s.as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64");
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn versions_history_rollback_and_restore() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(
        &token_file,
        "admintok,admin,1,\"system:masters\"\nreadertok,reader,2\nlistertok,lister,3\n",
    )
    .expect("tokens");
    let c = Coffer::start(&["--token-auth-file", token_file.to_str().expect("utf8")]);

    for (i, value) in ["one", "two", CANARY].iter().enumerate() {
        let literal = format!("--from-literal=password={value}");
        if i == 0 {
            c.ok("1.33", &["create", "secret", "generic", "db", &literal]);
        } else {
            let patch = format!(r#"{{"stringData":{{"password":"{value}"}}}}"#);
            c.ok("1.33", &["patch", "secret", "db", "-p", &patch]);
        }
    }
    // A change to labels only is not a new version.
    c.ok("1.33", &["label", "secret", "db", "tier=backend"]);
    let history = history_with(&c, "db", 3);
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert!(
        rows[0].starts_with("3 ") && rows[0].contains("current"),
        "{history}"
    );
    assert!(
        rows[1].starts_with("2 ") && rows[1].contains("previous"),
        "{history}"
    );
    assert!(rows[2].starts_with("1 "), "{history}");
    assert!(
        !history.contains(CANARY),
        "history lists keys, never values"
    );

    // Versions are encrypted at rest like the Secret.
    let store = std::fs::read(c.store_file()).expect("store");
    for form in [CANARY.to_owned(), b64(CANARY)] {
        assert!(
            !store.windows(form.len()).any(|w| w == form.as_bytes()),
            "a version is stored in the clear"
        );
    }

    // Rollback: version 1 becomes current again, as version 4; a watcher sees it.
    let (ok, out, err) = coffer_secret(&c, &["rollback", "db", "--to", "1"]);
    assert!(ok, "{out}{err}");
    assert_eq!(secret(&c, "db"), b64("one"));
    let history = history_with(&c, "db", 4);
    assert!(
        history.lines().nth(1).expect("row").starts_with("4 "),
        "{history}"
    );
    let (ok, _, err) = coffer_secret(&c, &["rollback", "db", "--to", "99"]);
    assert!(!ok && err.contains("no version 99"), "{err}");

    // Only who may get the Secret reads its versions; only who may update it rolls back.
    c.ok(
        "1.33",
        &[
            "create",
            "role",
            "get-db",
            "--verb=get",
            "--resource=secrets",
            "--resource-name=db",
        ],
    );
    c.ok(
        "1.33",
        &[
            "create",
            "rolebinding",
            "get-db",
            "--role=get-db",
            "--user=reader",
        ],
    );
    let as_reader = c.kubectl(
        "1.33",
        &[
            "--token=readertok",
            "get",
            "--raw",
            "/api/v1/namespaces/default/secrets/db/versions",
        ],
    );
    assert!(
        as_reader.status.success(),
        "{}",
        String::from_utf8_lossy(&as_reader.stderr)
    );
    let as_lister = c.kubectl(
        "1.33",
        &[
            "--token=listertok",
            "get",
            "--raw",
            "/api/v1/namespaces/default/secrets/db/versions",
        ],
    );
    let refused = String::from_utf8_lossy(&as_lister.stderr);
    assert!(
        refused.contains("Forbidden") || refused.contains("forbidden"),
        "{refused}"
    );
    let rollback_as_reader = c.kubectl(
        "1.33",
        &[
            "--token=readertok",
            "create",
            "--raw",
            "/api/v1/namespaces/default/secrets/db/rollback",
            "-f",
            "-",
        ],
    );
    assert!(
        !rollback_as_reader.status.success(),
        "get does not allow rollback"
    );

    // Soft delete: the versions stay, and rollback restores the Secret.
    c.ok("1.33", &["delete", "secret", "db"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = coffer_secret(&c, &["history", "db"]);
        if out.contains("deleted at") {
            break;
        }
        assert!(Instant::now() < deadline, "never marked deleted: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out, err) = coffer_secret(&c, &["rollback", "db", "--to", "3"]);
    assert!(ok, "{out}{err}");
    assert_eq!(secret(&c, "db"), b64(CANARY));
}
