//! Helpers shared by the `coffer run` end-to-end tests: the guide's Pod, starting `coffer run`
//! against a `coffer serve`, and reading what the process prints.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::Coffer;

/// The guide's step 3 (env) and step 4 (volume) Pods, joined into one container.
pub const APP_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: app-pod
spec:
  containers:
  - name: app
    image: nginx
    env:
    - name: DB_USERNAME
      valueFrom:
        secretKeyRef:
          name: db-secret
          key: username
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef:
          name: db-secret
          key: password
    volumeMounts:
    - name: secret-volume
      mountPath: "/etc/secrets"
      readOnly: true
  volumes:
  - name: secret-volume
    secret:
      secretName: db-secret
"#;

pub fn create_db_secret(coffer: &Coffer) {
    coffer.ok(
        "",
        &[
            "create",
            "secret",
            "generic",
            "db-secret",
            "--from-literal=username=admin",
            "--from-literal=password=MyStrongPassword",
        ],
    );
}

pub fn write_manifest(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("app-pod.yaml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

pub fn coffer_run(coffer: &Coffer, manifest: &Path, extra: &[&str], script: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(&coffer.kubeconfig)
        .arg("-f")
        .arg(manifest)
        .arg("--mount-root")
        .arg(coffer.data_dir().join("mounts"))
        .args(extra)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null());
    cmd
}

pub fn output(mut cmd: Command) -> Output {
    cmd.output().expect("run coffer run")
}

/// A running `coffer run`, stopped on drop with SIGTERM (so it removes its in-memory files
/// and its process; SIGKILL would leave both behind), and SIGKILL after 5 s.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let start = Instant::now();
            while matches!(self.0.try_wait(), Ok(None)) {
                if start.elapsed() > Duration::from_secs(5) {
                    let _ = self.0.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.0.wait();
    }
}

/// Lines of a running child's stdout, on a channel.
pub fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits until a line equal to `want` arrives; returns how long it took.
pub fn wait_for(rx: &mpsc::Receiver<String>, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < within {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line == want {
                return start.elapsed();
            }
            seen.push(line);
        }
    }
    let tail = &seen[seen.len().saturating_sub(5)..];
    panic!("{want:?} not seen within {within:?}; last lines: {tail:?}");
}
