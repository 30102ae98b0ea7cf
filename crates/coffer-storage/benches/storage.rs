#![allow(missing_docs)] // A benchmark binary; its module docs say what it measures.
//! Storage benchmark: durable 1 KiB writes at 1 and 50 concurrent writers, and point reads,
//! on the embedded store and on a local single-member etcd (Debian `etcd-server`), in one run,
//! printing medians of 3 repetitions and the embedded/etcd ratios.
//!
//! Run with `scripts/bench.sh storage` (or `cargo bench -p coffer-storage --bench storage`).
//! `COFFER_BENCH_SECS` sets the length of each measurement (default 5 s).
//! Everything runs on 127.0.0.1; the machine is noisy, so compare ratios, not absolutes.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coffer_storage::testing::etcd::EtcdCluster;
use coffer_storage::{EmbeddedStore, Store, Txn, TxnOutcome};

const VALUE_BYTES: usize = 1024;
const REPETITIONS: usize = 3;
const READ_KEYS: usize = 1000;

struct Sample {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

#[derive(Clone, Copy)]
enum Workload {
    Write,
    Read,
}

async fn measure(
    store: Arc<dyn Store>,
    workload: Workload,
    workers: usize,
    secs: f64,
    tag: &str,
) -> Sample {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let value = Bytes::from(vec![0xabu8; VALUE_BYTES]);
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0usize;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match workload {
                        Workload::Write => {
                            let key = format!("/bench/{tag}/{w}/{i}");
                            let outcome = store
                                .txn(Txn::create(Bytes::from(key), value.clone()))
                                .await;
                            assert!(
                                matches!(outcome, Ok(TxnOutcome::Committed { .. })),
                                "write failed"
                            );
                        }
                        Workload::Read => {
                            let key = format!("/bench/read/{}", (i * 7919 + w) % READ_KEYS);
                            let got = store.get(key.as_bytes()).await.expect("read");
                            assert!(got.kv.is_some());
                        }
                    }
                    latencies.push(t.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        all.get(idx).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Sample {
        ops_per_sec: all.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    samples.swap_remove(samples.len() / 2)
}

/// fdatasync latency of the disk under the data directory, as `reference/perf.md` asks to
/// record next to every write result.
fn fdatasync_p50_us(dir: &std::path::Path) -> f64 {
    let mut f = std::fs::File::create(dir.join("sync-probe")).expect("probe file");
    let mut times = Vec::new();
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        let t = Instant::now();
        f.write_all(&[0u8; 1024]).expect("write");
        f.sync_data().expect("fdatasync");
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e6
}

async fn seed_reads(store: &dyn Store) {
    let value = Bytes::from(vec![0xcdu8; VALUE_BYTES]);
    for i in 0..READ_KEYS {
        let key = Bytes::from(format!("/bench/read/{i}"));
        store.txn(Txn::put(key, value.clone())).await.expect("seed");
    }
}

fn main() {
    let secs: f64 = std::env::var("COFFER_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedded: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(dir.path().join("bench.redb")).expect("open"));
        let cluster = EtcdCluster::start_single().await;
        let etcd: Arc<dyn Store> = Arc::new(cluster.store().await);
        seed_reads(&*embedded).await;
        seed_reads(&*etcd).await;
        println!(
            "storage benchmark: 1 KiB values, {secs} s per run, median of {REPETITIONS}; disk fdatasync p50 {:.0} µs",
            fdatasync_p50_us(dir.path())
        );
        println!();
        println!("| scenario | embedded ops/s | embedded p50 / p99 µs | etcd ops/s | etcd p50 / p99 µs | embedded / etcd |");
        println!("|---|---|---|---|---|---|");
        let scenarios = [
            ("durable writes, 1 writer", Workload::Write, 1),
            ("durable writes, 50 writers", Workload::Write, 50),
            ("reads, 1 reader", Workload::Read, 1),
            ("reads, 50 readers", Workload::Read, 50),
        ];
        for (n, (name, workload, workers)) in scenarios.into_iter().enumerate() {
            let mut results = Vec::new();
            for (label, store) in [("embedded", &embedded), ("etcd", &etcd)] {
                let mut samples = Vec::new();
                for rep in 0..REPETITIONS {
                    let tag = format!("{label}-{n}-{rep}");
                    samples.push(measure(store.clone(), workload, workers, secs, &tag).await);
                }
                results.push(median(samples));
            }
            let (e, d) = (&results[0], &results[1]);
            println!(
                "| {name} | {:.0} | {:.0} / {:.0} | {:.0} | {:.0} / {:.0} | {:.2}x |",
                e.ops_per_sec, e.p50_us, e.p99_us, d.ops_per_sec, d.p50_us, d.p99_us,
                e.ops_per_sec / d.ops_per_sec
            );
        }
        drop(cluster);
    });
}
