//! Shared end-to-end harness: the real `coffer` binary on a free loopback port, and real
//! kubectl binaries (1.27 … 1.33) pointed at it with a fresh discovery cache per test.

#![allow(dead_code)]

pub mod https;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A running `coffer serve` in a temporary data directory, killed on drop.
pub struct Coffer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// How the server was started (kept for [`Coffer::restart`]).
    launch: Launch,
}

/// What `coffer serve` gets besides its flags: environment variables, and whether the
/// built-in ExternalSecret controller runs. Tests written before the controller existed
/// start without it ([`Coffer::start`] passes `--disable-sync`), so its list/watch
/// requests and status writes never show up in their audit logs or objects.
#[derive(Clone, Default)]
pub struct Launch {
    /// Extra environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// Run the built-in sync controller (on by default in `coffer serve` itself).
    pub sync: bool,
}

impl Coffer {
    /// Starts `coffer serve` on the embedded store with `extra` flags and waits until it
    /// prints its `export KUBECONFIG=` line (it is then listening). The built-in sync
    /// controller is off; see [`Coffer::start_with`].
    pub fn start(extra: &[&str]) -> Coffer {
        Self::start_with(extra, Launch::default())
    }

    /// Like [`Coffer::start`], with an environment and the sync controller as `launch` says.
    pub fn start_with(extra: &[&str], launch: Launch) -> Coffer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, kubeconfig) = spawn_serve(dir.path(), extra, &launch);
        Coffer {
            child,
            dir,
            kubeconfig,
            launch,
        }
    }

    /// Stops the server (if running) and starts it again on the same data directory with
    /// `extra` flags.
    pub fn restart(&mut self, extra: &[&str]) {
        // Never signal a pid that was already reaped (it may belong to another process now).
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
        let (child, kubeconfig) = spawn_serve(self.dir.path(), extra, &self.launch);
        self.child = child;
        self.kubeconfig = kubeconfig;
    }

    /// Runs the `coffer` binary itself (for example `storage verify`) with `args`.
    pub fn coffer(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run coffer")
    }

    /// Runs a kubectl version (`"1.27"`, `"1.33"`, or `""` for the default) with this
    /// server's kubeconfig and a fresh cache directory.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        let cache = self.dir.path().join(format!("kube-cache-{version}"));
        Command::new(kubectl_binary(version))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(cache)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Like [`Coffer::kubectl`], asserting success and returning stdout.
    pub fn ok(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            out.status.success(),
            "kubectl {version} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Like [`Coffer::kubectl`], asserting failure and returning stderr.
    pub fn fails(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            !out.status.success(),
            "kubectl {version} {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).expect("utf8")
    }

    /// Runs `kubectl edit args` with an editor that runs the shell command `edit` on the
    /// file (`$1`), asserting success and returning stdout.
    pub fn edit(&self, version: &str, edit: &str, args: &[&str]) -> String {
        let editor = self.dir.path().join("editor.sh");
        std::fs::write(&editor, format!("#!/bin/sh\n{edit}\n")).expect("write editor");
        Command::new("chmod")
            .arg("+x")
            .arg(&editor)
            .status()
            .expect("chmod");
        let out = Command::new(kubectl_binary(version))
            .env("KUBE_EDITOR", &editor)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("edit")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl edit");
        assert!(
            out.status.success(),
            "kubectl {version} edit {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// The embedded store file.
    pub fn store_file(&self) -> PathBuf {
        self.dir.path().join("coffer.redb")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server has logged so far (all runs in this data directory).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait")
    }
}

/// Starts `coffer serve` in `dir` and waits for its `export KUBECONFIG=` line. Its stderr (the
/// log) is appended to `<dir>/serve.log`.
fn spawn_serve(dir: &Path, extra: &[&str], launch: &Launch) -> (Child, PathBuf) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))
        .expect("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["serve", "--secure-port", "0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .args((!launch.sync).then_some("--disable-sync"))
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn coffer");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(path) = line.strip_prefix("export KUBECONFIG=") {
                let _ = tx.send(PathBuf::from(path));
            }
        }
    });
    let kubeconfig = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("coffer serve started");
    (child, kubeconfig)
}

impl Drop for Coffer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kubectl binary of a version: `kubectl.<version>` on the PATH or in the Google Cloud
/// SDK directory where this machine installs them.
pub fn kubectl_binary(version: &str) -> PathBuf {
    let name = if version.is_empty() {
        "kubectl".to_owned()
    } else {
        format!("kubectl.{version}")
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/lib/google-cloud-sdk/bin")])
        .map(|d| d.join(&name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found on PATH or in /usr/lib/google-cloud-sdk/bin"))
}

/// A running `coffer kms-plugin`, killed on drop.
pub struct KmsPlugin(pub Child);

impl KmsPlugin {
    /// Starts `coffer kms-plugin --listen unix://<socket>` with the backend flags `args` and
    /// the environment `env`, and waits until the socket exists. Its stderr is inherited.
    pub fn start(socket: &Path, args: &[&std::ffi::OsStr], env: &[(&str, &Path)]) -> KmsPlugin {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
        command
            .arg("kms-plugin")
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn coffer kms-plugin");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("coffer kms-plugin exited with {status} before binding its socket");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the plugin never bound its socket"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        KmsPlugin(child)
    }
}

impl Drop for KmsPlugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
