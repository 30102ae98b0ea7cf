//! End to end: `coffer run` against the real `coffer serve`, with Secrets made by real
//! kubectl, running the guide's step 3 and step 4 Pods (with a command after `--`, since there
//! is no image) and checking what the process sees, live updates, restarts and failures.

mod run_support;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use run_support::*;
use support::Coffer;

#[test]
fn guide_pod_sees_env_and_files_and_exit_code_passes_through() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let manifest = write_manifest(coffer.data_dir(), APP_POD);
    let script = r#"
        echo "user=$DB_USERNAME pass=$DB_PASSWORD"
        d="$COFFER_MOUNT_ROOT/etc/secrets"
        echo "file-user=$(cat "$d/username") file-pass=$(cat "$d/password")"
        echo "mode=$(stat -L -c %a "$d/password")"
        echo "data=$(readlink "$d/..data" | cut -c1-2) link=$(readlink "$d/username")"
        exit 7"#;
    let out = output(coffer_run(&coffer, &manifest, &[], script));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stdout}{stderr}");
    let want = "user=admin pass=MyStrongPassword\n\
                file-user=admin file-pass=MyStrongPassword\n\
                mode=644\n\
                data=.. link=..data/username\n";
    assert_eq!(stdout, want, "{stderr}");
    assert!(!stderr.contains("MyStrongPassword"), "{stderr}");
    // As root the mount point is an empty directory left in place (see docs/run.md); the
    // files are gone with the private tmpfs.
    let mount = coffer.data_dir().join("mounts/etc/secrets");
    assert!(
        std::fs::read_dir(&mount).map_or(true, |mut d| d.next().is_none()),
        "no files are left at {}",
        mount.display()
    );
}

#[test]
fn manifest_command_and_expansion_run_without_dashdash() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let manifest = write_manifest(
        coffer.data_dir(),
        r#"
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        command: ["sh", "-c"]
        args: ["echo user=$(USER) 'literal=$$(USER)' prefixed=$DB_username"]
        env:
        - {name: USER, valueFrom: {secretKeyRef: {name: db-secret, key: username}}}
        envFrom:
        - {secretRef: {name: db-secret}, prefix: DB_}
"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&coffer.kubeconfig)
        .arg("-f")
        .arg(&manifest)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "user=admin literal=$(USER) prefixed=admin\n"
    );
}

#[test]
fn missing_secret_missing_key_and_optional() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let dir = coffer.data_dir();

    let manifest = write_manifest(dir, &APP_POD.replace("name: db-secret", "name: no-such"));
    let out = output(coffer_run(&coffer, &manifest, &[], "echo ran"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "the process is not started");
    assert!(
        stderr.contains("container \"app\": secret \"default/no-such\" not found"),
        "{stderr}"
    );

    let manifest = write_manifest(dir, &APP_POD.replace("key: password", "key: pasword"));
    let out = output(coffer_run(&coffer, &manifest, &[], "echo ran"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "container \"app\": couldn't find key pasword in Secret default/db-secret (env DB_PASSWORD)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("MyStrongPassword"), "{stderr}");

    let optional = r#"
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    env:
    - {name: A, valueFrom: {secretKeyRef: {name: gone, key: k, optional: true}}}
    - {name: B, valueFrom: {secretKeyRef: {name: db-secret, key: nokey, optional: true}}}
    volumeMounts: [{name: v, mountPath: /opt/v}]
  volumes:
  - {name: v, secret: {secretName: gone, optional: true}}
"#;
    let manifest = write_manifest(dir, optional);
    let out = output(coffer_run(
        &coffer,
        &manifest,
        &[],
        r#"echo "A=${A-unset} B=${B-unset} files=$(ls "$COFFER_MOUNT_ROOT/opt/v" | wc -l)""#,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "A=unset B=unset files=0\n"
    );
}

#[test]
fn files_follow_secret_updates_within_a_second() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let manifest = write_manifest(coffer.data_dir(), APP_POD);
    let script =
        r#"while true; do cat "$COFFER_MOUNT_ROOT/etc/secrets/password"; echo; sleep 0.05; done"#;
    let mut cmd = coffer_run(&coffer, &manifest, &[], script);
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let rx = lines(&mut child);
    wait_for(&rx, "MyStrongPassword", Duration::from_secs(20));
    for round in 1..=3 {
        let value = format!("Rotated-{round}");
        coffer.ok(
            "",
            &[
                "patch",
                "secret",
                "db-secret",
                "-p",
                &format!(r#"{{"stringData":{{"password":"{value}"}}}}"#),
            ],
        );
        // kubectl itself returns after the write; the file follows within a second (2 s
        // allowed here for a loaded machine).
        wait_for(&rx, &value, Duration::from_secs(2));
    }
    drop(child);
}

#[test]
fn restart_passes_new_env_and_signal_reaches_the_process() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let manifest = write_manifest(coffer.data_dir(), APP_POD);

    let script = r#"echo "start $DB_PASSWORD"; exec sleep 60"#;
    let mut cmd = coffer_run(&coffer, &manifest, &["--on-change", "restart"], script);
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let rx = lines(&mut child);
    wait_for(&rx, "start MyStrongPassword", Duration::from_secs(20));
    coffer.ok(
        "",
        &[
            "patch",
            "secret",
            "db-secret",
            "-p",
            r#"{"stringData":{"password":"New1"}}"#,
        ],
    );
    wait_for(&rx, "start New1", Duration::from_secs(5));
    // SIGTERM to coffer reaches the process; coffer exits with its status (128 + 15).
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143));

    let script = r#"trap 'echo "hup $(cat "$COFFER_MOUNT_ROOT/etc/secrets/password")"' HUP
        echo ready; while true; do sleep 0.05; done"#;
    let mut cmd = coffer_run(&coffer, &manifest, &["--on-change", "signal:HUP"], script);
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let rx = lines(&mut child);
    wait_for(&rx, "ready", Duration::from_secs(20));
    coffer.ok(
        "",
        &[
            "patch",
            "secret",
            "db-secret",
            "-p",
            r#"{"stringData":{"password":"New2"}}"#,
        ],
    );
    wait_for(&rx, "hup New2", Duration::from_secs(5));
    drop(child);
}

#[test]
fn fallback_symlink_at_the_path_as_written_and_files_kept_when_the_api_goes_away() {
    let mut coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    // An absolute mountPath that coffer may create: used as written, no --mount-root.
    let at = coffer.data_dir().join("abs/etc/secrets");
    let manifest = write_manifest(
        coffer.data_dir(),
        &APP_POD.replace(
            "\"/etc/secrets\"",
            &format!("{:?}", at.display().to_string()),
        ),
    );
    // Without a private mount namespace (forced here; the tests run as root) the mount path
    // is a symlink into a 0700 directory on /dev/shm.
    let script = format!(
        r#"echo "shm=$(readlink -f {0} | cut -d/ -f1-3) $(stat -c %a "$(dirname "$(dirname "$(readlink {0})")")")"
        while true; do echo "$(cat {0}/username) ${{COFFER_MOUNT_ROOT-none}}"; sleep 0.1; done"#,
        at.display()
    );
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&coffer.kubeconfig)
            .arg("-f")
            .arg(&manifest)
            .arg("--no-private-mount")
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let rx = lines(&mut child);
    wait_for(&rx, "shm=/dev/shm 700", Duration::from_secs(20));
    wait_for(&rx, "admin none", Duration::from_secs(20));
    assert!(
        std::fs::symlink_metadata(&at)
            .expect("mount")
            .file_type()
            .is_symlink()
    );
    // The API server stops: the process goes on with its last good files.
    coffer.stop();
    std::thread::sleep(Duration::from_secs(2));
    while rx.try_recv().is_ok() {}
    wait_for(&rx, "admin none", Duration::from_secs(2));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("wait");
    assert!(!at.exists(), "the mount is removed at exit");
}

/// Update-to-file latency over 100 updates: from `kubectl patch` returning to the new value
/// being readable in the mounted file. A measurement, not a pass/fail timing: it prints p50
/// and p99 (for `docs/benchmarks.md`) and only asserts that every update arrived.
#[test]
#[ignore = "measurement: run with --ignored --nocapture to print update-to-file latency"]
fn update_to_file_latency() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let manifest = write_manifest(coffer.data_dir(), APP_POD);
    let child = Running(
        // The test reads the files from outside the process: no private mount.
        coffer_run(
            &coffer,
            &manifest,
            &["--no-private-mount"],
            "exec sleep 600",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn"),
    );
    let file = coffer.data_dir().join("mounts/etc/secrets/password");
    let start = Instant::now();
    while std::fs::read_to_string(&file).ok().as_deref() != Some("MyStrongPassword") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "coffer run did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut latencies = Vec::new();
    for i in 0..100 {
        let value = format!("value-{i}");
        coffer.ok(
            "",
            &[
                "patch",
                "secret",
                "db-secret",
                "-p",
                &format!(r#"{{"stringData":{{"password":"{value}"}}}}"#),
            ],
        );
        let written = Instant::now();
        while std::fs::read_to_string(&file).ok().as_deref() != Some(value.as_str()) {
            assert!(
                written.elapsed() < Duration::from_secs(10),
                "update {i} lost"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(written.elapsed());
    }
    latencies.sort();
    println!(
        "update-to-file latency over {} updates: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    );
    drop(child);
}

/// The issue's consistency check: while the Secret is updated 1,000 times (by the official
/// Python client, one PATCH after another), a reader that resolves `..data` once and reads
/// both files of that version never sees a mix of old and new values; after the last update
/// the files show it within a second (two allowed on a loaded machine).
#[test]
fn a_reader_never_sees_a_mix_over_1000_updates() {
    let coffer = Coffer::start(&[]);
    coffer.ok(
        "",
        &[
            "create",
            "secret",
            "generic",
            "db-secret",
            "--from-literal=username=v0",
            "--from-literal=password=v0",
        ],
    );
    let manifest = write_manifest(coffer.data_dir(), APP_POD);
    let child = Running(
        // The test reads the files from outside the process: no private mount.
        coffer_run(
            &coffer,
            &manifest,
            &["--no-private-mount"],
            "exec sleep 600",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn"),
    );
    let volume = coffer.data_dir().join("mounts/etc/secrets");
    let start = Instant::now();
    while std::fs::read_to_string(volume.join("password")).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "coffer run did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, data) = (stop.clone(), volume.join("..data"));
        std::thread::spawn(move || {
            let (mut reads, mut versions) = (0u64, std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(dir) = std::fs::canonicalize(&data) else {
                    continue;
                };
                let (Ok(user), Ok(pass)) = (
                    std::fs::read_to_string(dir.join("username")),
                    std::fs::read_to_string(dir.join("password")),
                ) else {
                    continue; // that version was replaced and removed meanwhile
                };
                assert_eq!(user, pass, "a mix of two versions");
                versions.insert(user);
                reads += 1;
            }
            (reads, versions.len())
        })
    };

    let updater = r#"
import base64, os
from kubernetes import client, config
config.load_kube_config(config_file=os.environ["KUBECONFIG"])
v1 = client.CoreV1Api()
for i in range(1, 1001):
    v = base64.b64encode(f"v{i}".encode()).decode()
    v1.patch_namespaced_secret("db-secret", "default", {"data": {"username": v, "password": v}})
print("updated")
"#;
    let out = Command::new("python3")
        .args(["-c", updater])
        .env("KUBECONFIG", &coffer.kubeconfig)
        .output()
        .expect("python3 with the kubernetes package (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = Instant::now();
    while std::fs::read_to_string(volume.join("password"))
        .ok()
        .as_deref()
        != Some("v1000")
    {
        assert!(
            last.elapsed() < Duration::from_secs(2),
            "the last value did not arrive"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let latency = last.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, versions) = reader.join().expect("no mix seen");
    assert!(
        reads > 100 && versions > 10,
        "{reads} reads, {versions} versions"
    );
    println!("{reads} consistent reads of {versions} versions; last value after {latency:?}");
    drop(child);
}

/// A burst of updates (ten PATCHes in quick succession by the Python client) is debounced:
/// `--on-change=signal:HUP` delivers one signal for it (at most one more per second if the
/// burst outlasts the 500 ms window on a loaded machine), never one per update.
#[test]
fn a_burst_of_updates_gives_one_signal() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let manifest = write_manifest(coffer.data_dir(), APP_POD);
    let script = r#"trap 'echo hup' HUP
        echo ready; while true; do sleep 0.05; done"#;
    // The test reads the file from outside the process: no private mount.
    let mut cmd = coffer_run(
        &coffer,
        &manifest,
        &["--on-change", "signal:HUP", "--no-private-mount"],
        script,
    );
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let rx = lines(&mut child);
    wait_for(&rx, "ready", Duration::from_secs(20));
    let burst = r#"
import base64, os
from kubernetes import client, config
config.load_kube_config(config_file=os.environ["KUBECONFIG"])
v1 = client.CoreV1Api()
for i in range(10):
    v = base64.b64encode(f"burst{i}".encode()).decode()
    v1.patch_namespaced_secret("db-secret", "default", {"data": {"password": v}})
"#;
    let out = Command::new("python3")
        .args(["-c", burst])
        .env("KUBECONFIG", &coffer.kubeconfig)
        .output()
        .expect("python3 with the kubernetes package (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(&rx, "hup", Duration::from_secs(5));
    // The burst is debounced: ten updates give one signal when they land within the 500 ms
    // window, and at most one more per second when a loaded machine stretches the burst.
    std::thread::sleep(Duration::from_secs(2));
    let more: Vec<String> = rx.try_iter().collect();
    assert!(
        more.iter().all(|l| l == "hup"),
        "unexpected output: {more:?}"
    );
    assert!(
        more.len() <= 2,
        "ten updates gave {} signals",
        more.len() + 1
    );
    let file = coffer.data_dir().join("mounts/etc/secrets/password");
    assert_eq!(std::fs::read_to_string(file).expect("read"), "burst9");
    drop(child);
}
