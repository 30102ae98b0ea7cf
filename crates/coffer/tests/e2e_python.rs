//! End to end: the official Python `kubernetes` client (installed by scripts/test.sh) creates,
//! reads, lists, patches, replaces, watches and deletes a Secret on the real `coffer serve`.

mod support;

use support::Coffer;

#[test]
fn python_client_secret_lifecycle() {
    let coffer = Coffer::start(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/client_test.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .env("KUBECONFIG", &coffer.kubeconfig)
        .output()
        .expect("run python3 (scripts/test.sh installs the kubernetes package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("python client: all checks passed"),
        "{stdout}"
    );
}
