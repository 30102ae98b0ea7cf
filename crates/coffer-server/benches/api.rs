#![allow(missing_docs)] // A benchmark binary; its module docs say what it measures.
//! API benchmark (`reference/perf.md` §5, scenarios 1 and 4), in one run:
//!
//! - GET of a 1 KiB Secret over HTTPS with a bearer token at 50 connections (`wrk -t2 -c50`),
//!   against `coffer serve` (embedded store, secretbox encryption at rest) and against a bare
//!   hyper server on the same rustls configuration returning a body of the same size; the
//!   ratio is the figure of merit (goal ≥ 70%).
//! - RBAC (issue 5): the same GET by a user allowed through RBAC (10 Roles, 50 RoleBindings)
//!   and by a `system:masters` user (no RBAC evaluation), alternated, median of 5, and the
//!   ratio (goal: within 10%).
//! - LIST of 10,000 Secrets in one namespace, one client (`wrk -t1 -c1`), p50 and p99.
//!
//! Needs `wrk` (Debian package; `scripts/bench.sh api` installs it). Loopback only; each run is
//! bounded in time. The machine is noisy: medians of 3 runs, compare ratios.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use coffer_server::{AccessOptions, HistoryOptions, SecretListPolicy, ServeOptions, Server};
use coffer_storage::{EmbeddedStore, KeyLayout};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The allocator the `coffer` binary ships with, for both servers measured here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REPETITIONS: usize = 3;
const LIST_SIZE: usize = 10_000;
const RBAC_REPETITIONS: usize = 5;
const RBAC_ROLES: usize = 10;
const RBAC_BINDINGS: usize = 50;

struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time this process (which hosts both servers, never wrk) spent per request, in µs:
    /// steadier than req/s on a shared machine.
    cpu_us: f64,
}

/// CPU time (user + system) of this process so far, in µs, from `/proc/self/stat`.
fn process_cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) * 10_000.0
}

/// `COFFER_BENCH_OBJECT_CACHE` (bytes; default: the server's default) sizes the object
/// cache, so a run with `0` measures every request decrypting and encoding.
fn object_cache_bytes() -> usize {
    std::env::var("COFFER_BENCH_OBJECT_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(coffer_server::DEFAULT_OBJECT_CACHE_BYTES)
}

/// Whether the scenario is selected by `COFFER_BENCH_ONLY` (comma-separated `get`, `rbac`,
/// `list`; unset = all), for profiling one scenario at a time.
fn selected(scenario: &str) -> bool {
    std::env::var("COFFER_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == scenario))
}

fn wrk(args: &[&str], url: &str, token: &str, script: Option<&Path>) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.args(args)
        .arg("--latency")
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let cpu_before = process_cpu_us();
    let out = cmd
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let cpu = process_cpu_us() - cpu_before;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output without Requests/sec:\n{text}"));
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p).map(str::trim))
            .map(parse_duration_ms)
            .unwrap_or(f64::NAN)
    };
    // "123456 requests in 10.00s, ..."
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    WrkResult {
        rps,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
        cpu_us: cpu / requests,
    }
}

fn parse_duration_ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

/// The run with the median req/s, carrying the median CPU per request of all runs.
fn median(mut runs: Vec<WrkResult>) -> WrkResult {
    let mut cpu: Vec<f64> = runs.iter().map(|r| r.cpu_us).collect();
    cpu.sort_by(f64::total_cmp);
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mut mid = runs.swap_remove(runs.len() / 2);
    mid.cpu_us = cpu[cpu.len() / 2];
    mid
}

/// A bare hyper server on coffer's certificate, answering every request with `body`.
async fn bare_server(dir: &Path, body: Vec<u8>) -> SocketAddr {
    let certs: Vec<_> = rustls_pemfile::certs(
        &mut std::fs::read(dir.join("pki/serving.crt"))
            .expect("crt")
            .as_slice(),
    )
    .collect::<Result<_, _>>()
    .expect("certs");
    let key = rustls_pemfile::private_key(
        &mut std::fs::read(dir.join("pki/serving.key"))
            .expect("key")
            .as_slice(),
    )
    .expect("key")
    .expect("a key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = bytes::Bytes::from(body);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(body))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("coffer.redb")).expect("store");
        // The admin (system:masters: no RBAC evaluation) and a user who gets the Secret
        // through RBAC (the RBAC scenario below).
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let token = format!("bench-admin-{stamp:x}");
        let reader_token = format!("bench-reader-{stamp:x}");
        let token_file = dir.path().join("bench-tokens.csv");
        std::fs::write(
            &token_file,
            format!("{token},admin,uid-admin,\"system:masters\"\n{reader_token},reader,uid-reader\n"),
        )
        .expect("token file");
        let server = Server::bind(ServeOptions {
            data_dir: dir.path().to_path_buf(),
            bind_address: "127.0.0.1".parse().expect("ip"),
            secure_port: 0,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            token_auth_file: Some(token_file.clone()),
            encryption_provider_config: None,
            encryption_provider_config_automatic_reload: None,
            store: Arc::new(store),
            layout: KeyLayout::default(),
            secret_list_policy: SecretListPolicy::default(),
            access: AccessOptions::default(),
            secret_history: HistoryOptions::default(),
            object_cache_bytes: object_cache_bytes(),
        })
        .await
        .expect("bind");
        let addr = server.local_addr().expect("addr");
        tokio::spawn(server.run(std::future::pending()));
        let base = format!("https://127.0.0.1:{}", addr.port());

        // One 1 KiB Secret to GET, created through the API with curl.
        let value = "x".repeat(768); // 1 KiB once base64-encoded
        let body = format!(r#"{{"metadata":{{"name":"bench"}},"stringData":{{"value":"{value}"}}}}"#);
        let ca = dir.path().join("pki/ca.crt");
        let curl_as = |token: &str, method: &str, url: &str, data: Option<&str>| {
            let mut c = Command::new("curl");
            c.args(["-sS", "--cacert"]).arg(&ca).args(["-H", &format!("Authorization: Bearer {token}"), "-X", method]);
            if let Some(d) = data {
                c.args(["-H", "Content-Type: application/json", "--data", d]);
            }
            let out = c.arg(url).output().expect("curl");
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let curl = |method: &str, url: &str, data: Option<&str>| curl_as(&token, method, url, data);
        curl("POST", &format!("{base}/api/v1/namespaces/default/secrets"), Some(&body));
        let get_url = format!("{base}/api/v1/namespaces/default/secrets/bench");
        let object = curl("GET", &get_url, None);
        assert!(object.contains("\"bench\""), "GET works: {object}");
        let bare = bare_server(dir.path(), object.clone().into_bytes()).await;
        let bare_url = format!("https://127.0.0.1:{}/", bare.port());

        let c50 = ["-t2", "-c50", "-d10s"];
        let health_url = format!("{base}/healthz");
        if selected("get") {
        let mut coffer_runs = Vec::new();
        let mut bare_runs = Vec::new();
        let mut health_runs = Vec::new();
        for _ in 0..REPETITIONS {
            bare_runs.push(wrk(&c50, &bare_url, &token, None));
            coffer_runs.push(wrk(&c50, &get_url, &token, None));
            health_runs.push(wrk(&c50, &health_url, &token, None));
        }
        let (c, b, h) = (median(coffer_runs), median(bare_runs), median(health_runs));
        println!("API benchmark: GET of one {} byte Secret over HTTPS, 50 connections, median of {REPETITIONS} x 10 s", object.len());
        println!();
        println!("| target | req/s | p50 ms | p99 ms | server CPU µs/req |");
        println!("|---|---|---|---|---|");
        println!("| bare hyper + rustls, same body | {:.0} | {:.2} | {:.2} | {:.1} |", b.rps, b.p50_ms, b.p99_ms, b.cpu_us);
        println!("| coffer /healthz (TLS, authn, routing only) | {:.0} | {:.2} | {:.2} | {:.1} |", h.rps, h.p50_ms, h.p99_ms, h.cpu_us);
        println!("| coffer GET (token, decrypt, JSON) | {:.0} | {:.2} | {:.2} | {:.1} |", c.rps, c.p50_ms, c.p99_ms, c.cpu_us);
        println!("| **coffer / bare** | **{:.0}%** | | | {:.2}x |", 100.0 * c.rps / b.rps, c.cpu_us / b.cpu_us);
        }

        // RBAC on (issue 5): 10 Roles and 50 RoleBindings with users, groups and
        // ServiceAccounts as subjects; `reader` may get the Secret through the last binding.
        // GET by `reader` (RBAC evaluated on every request) against GET by the admin
        // (system:masters, no RBAC evaluation), alternated, same wrk settings.
        let rbac = format!("{base}/apis/rbac.authorization.k8s.io/v1/namespaces/default");
        if selected("rbac") {
        for r in 0..RBAC_ROLES {
            let rules = if r == 0 {
                r#"[{"apiGroups":[""],"resources":["secrets"],"verbs":["get"],"resourceNames":["bench"]}]"#.to_owned()
            } else {
                format!(
                    r#"[{{"apiGroups":[""],"resources":["configmaps"],"verbs":["get","list"],"resourceNames":["cm-{r}"]}},{{"apiGroups":[""],"resources":["serviceaccounts"],"verbs":["get"]}},{{"apiGroups":["rbac.authorization.k8s.io"],"resources":["roles"],"verbs":["get","list","watch"]}}]"#
                )
            };
            let role = format!(r#"{{"metadata":{{"name":"role-{r}"}},"rules":{rules}}}"#);
            assert!(curl("POST", &format!("{rbac}/roles"), Some(&role)).contains("\"Role\""));
        }
        for b in 0..RBAC_BINDINGS {
            let subject = match b % 3 {
                0 => format!(r#"{{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"user-{b}"}}"#),
                1 => format!(r#"{{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"group-{b}"}}"#),
                _ => format!(r#"{{"kind":"ServiceAccount","name":"sa-{b}","namespace":"default"}}"#),
            };
            let (subjects, role) = if b == RBAC_BINDINGS - 1 {
                (format!(r#"[{subject},{{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"reader"}}]"#), 0)
            } else {
                (format!("[{subject}]"), b % RBAC_ROLES)
            };
            let binding = format!(
                r#"{{"metadata":{{"name":"rb-{b:02}"}},"subjects":{subjects},"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"role-{role}"}}}}"#
            );
            assert!(curl("POST", &format!("{rbac}/rolebindings"), Some(&binding)).contains("\"RoleBinding\""));
        }
        let as_reader = curl_as(&reader_token, "GET", &get_url, None);
        assert!(as_reader.contains("\"bench\""), "reader may GET through RBAC: {as_reader}");
        let (mut masters_runs, mut rbac_runs) = (Vec::new(), Vec::new());
        for _ in 0..RBAC_REPETITIONS {
            masters_runs.push(wrk(&c50, &get_url, &token, None));
            rbac_runs.push(wrk(&c50, &get_url, &reader_token, None));
        }
        let (m, r) = (median(masters_runs), median(rbac_runs));
        println!();
        println!("RBAC: GET of the same Secret by a system:masters user and by a user bound through RBAC ({RBAC_ROLES} Roles, {RBAC_BINDINGS} RoleBindings, plus the bootstrap policy), alternated, median of {RBAC_REPETITIONS} x 10 s");
        println!();
        println!("| caller | req/s | p50 ms | p99 ms | server CPU µs/req |");
        println!("|---|---|---|---|---|");
        println!("| system:masters (no RBAC evaluation) | {:.0} | {:.2} | {:.2} | {:.1} |", m.rps, m.p50_ms, m.p99_ms, m.cpu_us);
        println!("| RBAC user (get via RoleBinding) | {:.0} | {:.2} | {:.2} | {:.1} |", r.rps, r.p50_ms, r.p99_ms, r.cpu_us);
        println!("| **RBAC / masters** | **{:.1}%** | | | |", 100.0 * r.rps / m.rps);
        }

        // LIST of 10,000 Secrets: fill with wrk POSTs (unique names per thread and request).
        if !selected("list") {
            return;
        }
        let collection = format!("{base}/api/v1/namespaces/bulk/secrets");
        curl("POST", &format!("{base}/api/v1/namespaces"), Some(r#"{"metadata":{"name":"bulk"}}"#));
        let mut created = 0;
        for round in 0..60 {
            // Names are unique per round and wrk thread: `s-<round>-<thread>-<n>`.
            let script = dir.path().join(format!("post-{round}.lua"));
            std::fs::write(
                &script,
                format!(
                    r#"local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
request = function()
  n = n + 1
  local body = '{{"metadata":{{"name":"s-{round}-' .. tid .. '-' .. n .. '"}},"stringData":{{"value":"{value}"}}}}'
  wrk.headers["Content-Type"] = "application/json"
  return wrk.format("POST", nil, nil, body)
end
"#
                ),
            )
            .expect("lua");
            wrk(&["-t2", "-c16", "-d1s"], &collection, &token, Some(&script));
            created = count_hint(&curl("GET", &collection, None));
            if created >= LIST_SIZE {
                break;
            }
        }
        assert!(created >= LIST_SIZE, "only {created} Secrets were created; see the server log");
        let mut list_runs = Vec::new();
        for _ in 0..REPETITIONS {
            list_runs.push(wrk(&["-t1", "-c1", "-d10s"], &collection, &token, None));
        }
        let l = median(list_runs);
        println!();
        println!("LIST of {created} Secrets (1 KiB each, decrypted), one client: p50 {:.1} ms, p99 {:.1} ms, {:.1} lists/s, server CPU {:.1} ms per list", l.p50_ms, l.p99_ms, l.rps, l.cpu_us / 1000.0);
        std::thread::sleep(Duration::from_millis(100));
    });
}

/// Number of items in a JSON list response.
fn count_hint(list: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(list)
        .ok()
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .unwrap_or(0)
}
