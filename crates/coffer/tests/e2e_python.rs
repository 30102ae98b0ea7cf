//! End to end: the official Python `kubernetes` client (installed by scripts/test.sh) creates,
//! reads, lists, patches, replaces, watches and deletes a Secret on the real `coffer serve`,
//! and runs the API-only Kubernetes conformance tests touching Secrets.

mod support;

use support::Coffer;

fn run_python(script: &str, done: &str) {
    let coffer = Coffer::start(&[]);
    let script = format!("{}/../../tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(&script)
        .env("KUBECONFIG", &coffer.kubeconfig)
        .output()
        .expect("run python3 (scripts/test.sh installs the kubernetes package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(done), "{stdout}");
}

#[test]
fn python_client_secret_lifecycle() {
    run_python("client_test.py", "python client: all checks passed");
}

/// The API-only conformance tests of `reference/k8s-api.md` §16.
#[test]
fn conformance_secrets_and_service_accounts() {
    run_python("conformance_test.py", "conformance: all checks passed");
}
