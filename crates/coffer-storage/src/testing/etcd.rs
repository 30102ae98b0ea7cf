//! Real etcd members on loopback, for tests. Each member runs the Debian `etcd` binary (or
//! `$COFFER_ETCD_BIN`) in a temporary data directory on free ports, and is killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::contract::Store;
use crate::etcd::{EtcdConfig, EtcdStore};

/// One etcd member's fixed identity: name, ports and data directory.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// Member name.
    pub name: String,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Peer port on 127.0.0.1.
    pub peer_port: u16,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
}

impl MemberSpec {
    /// The member's client URL.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// A cluster of real etcd members on loopback.
pub struct EtcdCluster {
    members: Vec<MemberSpec>,
    processes: Vec<Option<Child>>,
    _dir: TempDir,
}

impl EtcdCluster {
    /// Starts a single-member cluster and waits until it answers.
    pub async fn start_single() -> Self {
        Self::start(1).await
    }

    /// Starts `size` members forming one cluster and waits until it answers.
    pub async fn start(size: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let members: Vec<MemberSpec> = (0..size)
            .map(|i| MemberSpec {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{i}")),
            })
            .collect();
        let mut cluster = EtcdCluster {
            processes: members.iter().map(|_| None).collect(),
            members,
            _dir: dir,
        };
        for i in 0..size {
            cluster.start_member(i);
        }
        cluster.wait_ready().await;
        cluster
    }

    /// Client URLs of every member, for `--etcd-servers`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(MemberSpec::client_url).collect()
    }

    /// A client config for every member.
    pub fn config(&self) -> EtcdConfig {
        let mut config = EtcdConfig::from_servers(&self.endpoints().join(","));
        config.dial_timeout = Duration::from_secs(2);
        config.request_timeout = Duration::from_secs(5);
        config
    }

    /// Connects an [`EtcdStore`] to every member.
    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(&self.config())
            .await
            .expect("connect to etcd")
    }

    /// Kills member `i` (SIGKILL) and waits for it to exit.
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut child) = self.processes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its old data directory and ports.
    pub fn start_member(&mut self, i: usize) {
        assert!(self.processes[i].is_none(), "member {i} is running");
        let spec = &self.members[i];
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new(etcd_binary())
            .arg("--name")
            .arg(&spec.name)
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .arg("--listen-client-urls")
            .arg(spec.client_url())
            .arg("--advertise-client-urls")
            .arg(spec.client_url())
            .arg("--listen-peer-urls")
            .arg(spec.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(spec.peer_url())
            .arg("--initial-cluster")
            .arg(initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("coffer-test")
            // Room above Coffer's 1.5 MiB value limit for the key and request framing.
            .arg("--max-request-bytes")
            .arg("2097152")
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. Install etcd (apt-get install etcd-server) or run scripts/test.sh, which does",
                    etcd_binary().display()
                )
            });
        self.processes[i] = Some(child);
    }

    /// Waits until a client reaching any member gets an answer (a quorum exists).
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(store) = EtcdStore::connect(&self.config()).await
                && store.current_revision().await.is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd did not become ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The data directory of member `i`.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.processes.len() {
            self.stop_member(i);
        }
    }
}

/// The etcd binary: `$COFFER_ETCD_BIN` or `etcd` on the PATH.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("COFFER_ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

/// A TCP port free on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}
