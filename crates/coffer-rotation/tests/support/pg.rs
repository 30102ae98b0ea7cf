//! A real PostgreSQL server for a test: `initdb` into a temporary directory, started with
//! `pg_ctl` on a free loopback port, SCRAM password authentication for TCP, stopped on drop.
//!
//! Binaries are looked for under `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql`
//! package puts them there and not on PATH), newest version first, then on PATH. As root the
//! server runs as the `postgres` OS user (PostgreSQL refuses to run as root), through
//! `runuser`, with the directory chowned to it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

/// The superuser's password (test only).
pub const SUPERUSER_PASSWORD: &str = "super-Pa55word";

impl Postgres {
    /// Starts a fresh server (with every statement logged, so tests can read the log).
    pub fn start() -> Self {
        let bin = find_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("coffer-pg-")
            .tempdir()
            .expect("temp dir");
        let as_postgres_user = rustix::process::geteuid().is_root();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).expect("pwfile");
        if as_postgres_user {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        let pg = |prog: &str| -> Command {
            if as_postgres_user {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(prog));
                c
            } else {
                Command::new(bin.join(prog))
            }
        };
        run(pg("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display())));
        let port = free_port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c log_statement=all -c password_encryption=scram-sha-256",
            dir.path().display()
        );
        run(pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-o", &opts, "-w", "-t", "60", "start"]));
        Self {
            dir,
            bin,
            port,
            as_postgres_user,
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A program of the server's installation (`psql`, ...).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin.join(program)
    }

    /// The server's log (every statement, as `log_statement = all` writes it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A superuser connection over TCP.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(self.port)
            .dbname("postgres")
            .user("postgres")
            .password(SUPERUSER_PASSWORD);
        let (client, conn) = cfg
            .connect(tokio_postgres::NoTls)
            .await
            .expect("superuser connects");
        tokio::spawn(conn);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut c = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = c
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn find_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .map(|d| {
            std::fs::canonicalize(d.join("initdb"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or(d)
        })
        .expect("PostgreSQL is not installed: apt-get install postgresql (scripts/test.sh does)")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
