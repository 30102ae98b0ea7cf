//! Counters the server can expose on `/metrics`: ESO's metric names
//! (`externalsecret_sync_calls_total`, `externalsecret_sync_calls_error`,
//! `externalsecret_provider_api_calls_count`, `externalsecret_reconcile_duration`) plus
//! Coffer's `coffer_sync_secret_writes_skipped_total` (unchanged data, no write).
//! Plain atomics and maps; [`Metrics::encode`] writes the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The sync counters.
#[derive(Debug, Default)]
pub struct Metrics {
    sync_calls: AtomicU64,
    sync_errors: AtomicU64,
    writes_skipped: AtomicU64,
    secret_writes: AtomicU64,
    /// (provider, call, status) → count.
    provider_calls: Mutex<BTreeMap<(String, String, String), u64>>,
    /// Histogram bucket counts, then sum (µs) and count.
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_sum_us: AtomicU64,
    duration_count: AtomicU64,
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// One reconcile finished.
    pub fn observe_sync(&self, ok: bool, took: Duration) {
        self.sync_calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.sync_errors.fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
    }

    /// One provider call (after the cache: these are real remote calls).
    pub fn observe_provider_call(&self, provider: &str, call: &str, status: &str) {
        let mut m = self
            .provider_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m.entry((provider.to_owned(), call.to_owned(), status.to_owned()))
            .or_default() += 1;
    }

    /// A Secret was written (created, updated or deleted).
    pub fn observe_write(&self) {
        self.secret_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// A Secret already held the data, so nothing was written.
    pub fn observe_skip(&self) {
        self.writes_skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Total provider calls so far.
    pub fn provider_calls_total(&self) -> u64 {
        self.provider_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// (sync calls, sync errors, Secret writes, skipped writes).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        (
            self.sync_calls.load(Ordering::Relaxed),
            self.sync_errors.load(Ordering::Relaxed),
            self.secret_writes.load(Ordering::Relaxed),
            self.writes_skipped.load(Ordering::Relaxed),
        )
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let (calls, errors, writes, skipped) = self.totals();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "externalsecret_sync_calls_total",
            "Total number of ExternalSecret reconciles.",
            calls,
        );
        counter(
            &mut out,
            "externalsecret_sync_calls_error",
            "Total number of ExternalSecret reconcile errors.",
            errors,
        );
        counter(
            &mut out,
            "coffer_sync_secret_writes_total",
            "Secrets created, updated or deleted.",
            writes,
        );
        counter(
            &mut out,
            "coffer_sync_secret_writes_skipped_total",
            "Refreshes whose data was unchanged, so no write.",
            skipped,
        );
        let _ = writeln!(
            out,
            "# HELP externalsecret_provider_api_calls_count Provider API calls.\n# TYPE externalsecret_provider_api_calls_count counter"
        );
        for ((p, c, s), v) in self
            .provider_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "externalsecret_provider_api_calls_count{{provider=\"{p}\",call=\"{c}\",status=\"{s}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP externalsecret_reconcile_duration Reconcile duration in seconds.\n# TYPE externalsecret_reconcile_duration histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "externalsecret_reconcile_duration_bucket{{le=\"{b}\"}} {}",
                self.duration_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "externalsecret_reconcile_duration_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "externalsecret_reconcile_duration_sum {sum}\nexternalsecret_reconcile_duration_count {count}"
        );
        out
    }
}
