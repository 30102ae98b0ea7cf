//! The etcd backend: the same contract on a real etcd v3 cluster, through the native gRPC
//! client (`etcd-client`), for several Coffer servers sharing one store.
//!
//! The mapping is kube-apiserver's (`storage/etcd3/store.go`): a [`Txn`] becomes one etcd txn
//! `If(mod_revision(key) == expected) Then(put|delete with prev_kv) Else(get key)`, the response
//! header's revision is the store revision, and watches ask for `prev_kv`.
//!
//! Failures: reads are retried across members for a short while when etcd is unreachable; a
//! txn is not retried (its effect is unknown once sent) and fails with
//! [`Error::Unavailable`]. Watches resume on another member from the revision after the last
//! event delivered, so a lost connection neither drops nor repeats events.

mod watch;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    PutOptions, TlsOptions, TxnOp, TxnOpResponse,
};

use crate::contract::{
    GetResponse, KeyValue, Op, RangeResponse, Revision, Store, Txn, TxnOutcome, WatchStream,
};
use crate::error::{Error, Result};

/// How to reach etcd, with kube-apiserver's flag names in the docs.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// `--etcd-servers`: client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`.
    pub tls: Option<EtcdTls>,
    /// How long to wait for a connection to a member.
    pub dial_timeout: Duration,
    /// How long one request may take before it counts as unavailable.
    pub request_timeout: Duration,
    /// How long reads keep retrying while no member answers.
    pub retry_for: Duration,
}

/// TLS files for talking to etcd, as kube-apiserver's `--etcd-cafile`, `--etcd-certfile` and
/// `--etcd-keyfile`.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// CA bundle that signed the members' serving certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM).
    pub key_file: Option<PathBuf>,
}

impl EtcdConfig {
    /// A config for `--etcd-servers` (comma-separated URLs) with default timeouts.
    pub fn from_servers(servers: &str) -> Self {
        EtcdConfig {
            endpoints: servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            tls: None,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(10),
        }
    }
}

/// The etcd backend. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    retry_for: Duration,
}

impl EtcdStore {
    /// Connects to the members in `config`. Fails when no endpoint is given or the TLS files
    /// cannot be read; members that are down are tried again on each request.
    pub async fn connect(config: &EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::Backend(
                "--etcd-servers names no endpoint; give at least one URL such as http://127.0.0.1:2379"
                    .to_owned(),
            ));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.dial_timeout)
            .with_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(map_err)?;
        Ok(EtcdStore {
            client,
            retry_for: config.retry_for,
        })
    }

    /// Runs an idempotent read, retrying while etcd is unavailable.
    async fn read<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.retry_for;
        let mut backoff = Duration::from_millis(50);
        loop {
            match op(self.client.clone()).await {
                Err(Error::Unavailable(reason)) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%reason, "etcd read failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }
}

impl EtcdStore {
    /// Sends a txn, retrying only while the connection cannot even be opened (the request
    /// never left this process, so it cannot have been applied). Any later failure is
    /// [`Error::Unavailable`]: the txn may or may not have been applied.
    async fn send_txn(&self, request: etcd_client::Txn) -> Result<etcd_client::TxnResponse> {
        let deadline = tokio::time::Instant::now() + self.retry_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.client.clone().txn(request.clone()).await {
                Ok(resp) => return Ok(resp),
                Err(e) if never_sent(&e) && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "etcd member unreachable; txn not sent, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(map_err(e)),
            }
        }
    }
}

impl EtcdStore {
    /// Turns etcd's `mvcc: required revision has been compacted` / `... is a future revision`
    /// answers to a read at `requested` into the contract's errors, with the revision etcd
    /// compacted to (read from a watch at `requested`, which etcd cancels naming it) or its
    /// current revision.
    async fn revision_error(&self, msg: String, requested: Revision) -> Error {
        if msg.contains("required revision has been compacted") {
            let compacted = self.compact_revision(requested).await.unwrap_or(requested);
            return Error::Compacted {
                requested,
                compacted,
            };
        }
        if msg.contains("required revision is a future revision") {
            return match self.current_revision().await {
                Ok(current) => Error::FutureRevision { requested, current },
                Err(e) => e,
            };
        }
        Error::Backend(msg)
    }

    /// etcd's compaction revision, when `requested` is older than it.
    async fn compact_revision(&self, requested: Revision) -> Option<Revision> {
        let start = i64::try_from(requested.get()).ok()?;
        let options = etcd_client::WatchOptions::new().with_start_revision(start);
        let mut stream = self
            .client
            .clone()
            .watch(b"\0".to_vec(), Some(options))
            .await
            .ok()?;
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(resp)) = stream.message().await {
                if resp.compact_revision() > 0 {
                    return u64::try_from(resp.compact_revision()).ok();
                }
                if resp.canceled() {
                    return None;
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        // Dropping the stream cancels the watch.
        drop(stream);
        answer.map(Revision::new)
    }
}

/// True when the request failed while connecting, before any byte of it was sent.
fn never_sent(e: &etcd_client::Error) -> bool {
    let text = match e {
        etcd_client::Error::TransportError(t) => t.to_string(),
        etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::Unavailable => {
            s.message().to_owned()
        }
        _ => return false,
    };
    text.contains("tcp connect error") || text.contains("Connection refused")
}

fn tls_options(tls: &EtcdTls) -> Result<TlsOptions> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| Error::Backend(format!("cannot read {}: {e}", p.display())))
    };
    let mut options = TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            options = options.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(Error::Backend(
                "--etcd-certfile and --etcd-keyfile must be given together".to_owned(),
            ));
        }
    }
    Ok(options)
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &[u8]) -> Result<GetResponse> {
        self.read(|mut c| async move {
            let mut resp = c.get(key, None).await.map_err(map_err)?;
            let revision = header_revision(resp.header());
            let kv = resp.take_kvs().into_iter().next().map(convert_kv);
            Ok(GetResponse { kv, revision })
        })
        .await
    }

    async fn range_at(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<RangeResponse> {
        let from = match start_after {
            Some(after) if after >= prefix => [after, b"\0"].concat(),
            _ if prefix.is_empty() => b"\0".to_vec(),
            _ => prefix.to_vec(),
        };
        let end = prefix_end(prefix);
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let at = revision.filter(|r| *r != Revision::ZERO);
        let at_i64 = match at {
            Some(r) => i64::try_from(r.get())
                .map_err(|_| Error::Backend(format!("revision {r} out of range")))?,
            None => 0,
        };
        let read = self
            .read(|mut c| {
                let (from, end) = (from.clone(), end.clone());
                async move {
                    let options = GetOptions::new()
                        .with_range(end)
                        .with_limit(limit_i64)
                        .with_revision(at_i64);
                    let mut resp = c.get(from, Some(options)).await.map_err(map_err)?;
                    let revision = at.unwrap_or_else(|| header_revision(resp.header()));
                    let more = resp.more();
                    let kvs: Vec<KeyValue> = resp.take_kvs().into_iter().map(convert_kv).collect();
                    // etcd's count is every key in the range at that revision, past the limit too.
                    let count = u64::try_from(resp.count()).unwrap_or(0);
                    let remaining = if more {
                        count.saturating_sub(kvs.len() as u64)
                    } else {
                        0
                    };
                    Ok(RangeResponse {
                        kvs,
                        more,
                        remaining,
                        revision,
                    })
                }
            })
            .await;
        match (read, at) {
            (Err(Error::Backend(msg)), Some(requested)) => {
                Err(self.revision_error(msg, requested).await)
            }
            (other, _) => other,
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        txn.validate()?;
        let key = txn.key.to_vec();
        let then = match &txn.op {
            Op::Put(value) => TxnOp::put(
                key.clone(),
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            ),
            Op::Delete => TxnOp::delete(key.clone(), Some(DeleteOptions::new().with_prev_key())),
        };
        let mut request = etcd_client::Txn::new();
        if let Some(expected) = txn.expected_mod_revision {
            let expected = i64::try_from(expected.get())
                .map_err(|_| Error::Backend(format!("revision {expected} out of range")))?;
            request = request.when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                expected,
            )]);
        }
        let request = request.and_then([then]).or_else([TxnOp::get(key, None)]);
        let resp = self.send_txn(request).await?;
        let revision = header_revision(resp.header());
        let mut op = resp.op_responses().into_iter();
        if !resp.succeeded() {
            let current = match op.next() {
                Some(TxnOpResponse::Get(mut get)) => {
                    get.take_kvs().into_iter().next().map(convert_kv)
                }
                _ => None,
            };
            return Ok(TxnOutcome::Failed { revision, current });
        }
        let prev = match op.next() {
            Some(TxnOpResponse::Put(mut put)) => put.take_prev_key().map(convert_kv),
            Some(TxnOpResponse::Delete(mut del)) => {
                del.take_prev_kvs().into_iter().next().map(convert_kv)
            }
            _ => None,
        };
        Ok(TxnOutcome::Committed { revision, prev })
    }

    async fn watch(&self, prefix: &[u8], start: Revision) -> Result<WatchStream> {
        let start = if start == Revision::ZERO {
            self.current_revision().await?.next()
        } else {
            start
        };
        Ok(watch::spawn(
            self.client.clone(),
            Bytes::copy_from_slice(prefix),
            start,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let raw = i64::try_from(revision.get())
            .map_err(|_| Error::Backend(format!("revision {revision} out of range")))?;
        let current = self.current_revision().await?;
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        match self.client.clone().compact(raw, None).await {
            Ok(_) => Ok(()),
            Err(e) => match map_err(e) {
                Error::Backend(msg) if msg.contains("required revision has been compacted") => {
                    Err(Error::Compacted {
                        requested: revision,
                        compacted: revision,
                    })
                }
                other => Err(other),
            },
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.read(|mut c| async move {
            let resp = c
                .get(b"\0".to_vec(), Some(GetOptions::new().with_count_only()))
                .await
                .map_err(map_err)?;
            Ok(header_revision(resp.header()))
        })
        .await
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's `GetPrefixRangeEnd`);
/// `\0` (meaning "no end") when there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    Revision::new(header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)))
}

pub(crate) fn convert_kv(kv: etcd_client::KeyValue) -> KeyValue {
    let rev = |r: i64| Revision::new(u64::try_from(r).unwrap_or(0));
    let (create, modified, version) = (kv.create_revision(), kv.mod_revision(), kv.version());
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: Bytes::from(key),
        value: Bytes::from(value),
        create_revision: rev(create),
        mod_revision: rev(modified),
        version: u64::try_from(version).unwrap_or(0),
    }
}

/// Maps a client error; never includes request bodies (etcd-client's errors carry none).
pub(crate) fn map_err(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::TransportError(t) => Error::Unavailable(t.to_string()),
        E::IoError(io) => Error::Unavailable(io.to_string()),
        E::GRpcStatus(status) => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                Error::Unavailable(status.message().to_owned())
            }
            _ if status.message().contains("request is too large") => Error::ValueTooLarge {
                key: String::new(),
                size: 0,
                limit: crate::MAX_VALUE_BYTES,
            },
            _ => Error::Backend(status.message().to_owned()),
        },
        other => Error::Backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(
            prefix_end(b"/registry/secrets/"),
            b"/registry/secrets0".to_vec()
        );
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn servers_flag_is_split() {
        let c = EtcdConfig::from_servers("http://127.0.0.1:1, http://127.0.0.1:2,");
        assert_eq!(c.endpoints, ["http://127.0.0.1:1", "http://127.0.0.1:2"]);
    }
}
