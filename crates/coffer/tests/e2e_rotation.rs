//! End to end, issue 9: rotation against a real `coffer serve`.
//!
//! - `KubeStore` (the engine's store over the Kubernetes API) passes the store conformance
//!   check, repairs a Secret whose write a crash interrupted, and keeps a Secret someone
//!   changed on purpose (a rollback).
//! - The built-in controller rotates a real PostgreSQL role pair (alternating users) every
//!   2 s while a consumer run by `coffer run` opens a new `psql` connection every 10 ms with
//!   the DSN from its mounted file: zero failures; `coffer rotate now` and `status`; a
//!   rollback reaches the consumer's file within a second.

mod support;

/// coffer-rotation's PostgreSQL harness (initdb into a temporary directory, a free loopback
/// port, run as `postgres` when root) and its role setup.
#[allow(unused_imports)]
#[path = "../../coffer-rotation/tests/support/mod.rs"]
mod pgsupport;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_rotation::{
    KubeStore, RotationStore, SecretData, StagedSecret, check_store_conformance, companion_name,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use support::Coffer;

const NOTARGET_ROTATION: &str = r#"
apiVersion: coffer.dev/v1
kind: SecretRotation
metadata:
  name: r
  namespace: default
spec:
  secretName: s
  schedule:
    interval: 24h
  generator:
    randomBytes:
      length: 16
"#;

fn apply(c: &Coffer, dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write manifest");
    c.ok("", &["apply", "-f", path.to_str().expect("utf8")])
}

async fn client(c: &Coffer) -> kube::Client {
    coffer_rotation::connect(Some(&c.kubeconfig))
        .await
        .expect("client")
}

fn data(pairs: &[(&str, &str)]) -> SecretData {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_store_conforms_and_repairs() {
    let c = Coffer::start(&["--disable-rotation"]);
    let dir = tempfile::tempdir().expect("tempdir");
    apply(&c, dir.path(), "r.yaml", NOTARGET_ROTATION);
    let store = KubeStore::new(client(&c).await, "default");
    check_store_conformance(&store).await.expect("conforms");

    // The companion holds the stages; consumers read only the Secret's current data.
    let got = c.ok("", &["get", "secret", "s", "-o", "jsonpath={.data.k}"]);
    assert_eq!(got, "dg==", "the Secret holds current (v)");
    let companion = companion_name("s");
    let out = c.ok("", &["get", "secret", &companion, "-o", "jsonpath={.type}"]);
    assert_eq!(out, "coffer.dev/rotation-stages");

    // A crash between the two writes: the companion says current = B, the Secret (still at
    // the companion's base resourceVersion) says A. Reading repairs the Secret.
    let plain = StagedSecret::plain(data(&[("k", "A")]));
    let r = store
        .write_secret("crash", &plain, None)
        .await
        .expect("write");
    let mut staged = store
        .read_secret("crash")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(staged.revision, r);
    staged.value.current = data(&[("k", "B")]);
    staged.value.current_version = 1;
    // Write only the companion: its base is the Secret's present resourceVersion.
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client(&c).await, "default");
    let before = secrets.get("crash").await.expect("secret");
    store
        .write_secret("crash", &staged.value, Some(staged.revision))
        .await
        .expect("write B");
    // Undo the Secret half of that write with the old object, as if it never happened, by
    // rewriting the companion's base to the Secret's new resourceVersion.
    let mut target = secrets.get("crash").await.expect("secret");
    target.data = before.data.clone();
    let target = secrets
        .replace("crash", &Default::default(), &target)
        .await
        .expect("set A back");
    let mut comp = secrets
        .get(&companion_name("crash"))
        .await
        .expect("companion");
    let raw = comp.data.as_ref().expect("data")["stages.json"].0.clone();
    let mut json: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    json["baseResourceVersion"] = target.metadata.resource_version.clone().into();
    comp.data.as_mut().expect("data").insert(
        "stages.json".into(),
        ByteString(serde_json::to_vec(&json).expect("json")),
    );
    secrets
        .replace(&companion_name("crash"), &Default::default(), &comp)
        .await
        .expect("companion with the crash's base");
    let read = store
        .read_secret("crash")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.value.current.get_str("k"), Some("B"), "companion wins");
    let now = secrets.get("crash").await.expect("secret");
    assert_eq!(
        now.data.expect("data")["k"].0,
        b"B",
        "the Secret was repaired from the companion"
    );

    // A change made on purpose after the companion (kubectl, rollback) is kept.
    let mut edited = secrets.get("crash").await.expect("secret");
    edited
        .data
        .as_mut()
        .expect("data")
        .insert("k".into(), ByteString(b"C".to_vec()));
    secrets
        .replace("crash", &Default::default(), &edited)
        .await
        .expect("edit");
    let read = store
        .read_secret("crash")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        read.value.current.get_str("k"),
        Some("C"),
        "the edit is current"
    );
    assert_eq!(read.value.current_version, 1);
    let now = secrets.get("crash").await.expect("secret");
    assert_eq!(now.data.expect("data")["k"].0, b"C", "the edit stays");
}

/// A rotation of `app-db` between `app_a` and `app_b` every 2 s, 1 s grace.
fn pg_rotation(port: u16) -> String {
    format!(
        r#"
apiVersion: coffer.dev/v1
kind: SecretRotation
metadata:
  name: app-db
  namespace: default
spec:
  secretName: app-db
  schedule:
    interval: 2s
  generator:
    password:
      length: 24
  gracePeriod: 1s
  target:
    postgres:
      adminSecretName: pg-admin
      host: 127.0.0.1
      port: {port}
      database: postgres
      mode: alternatingUsers
      usernames: [app_a, app_b]
      sslmode: disable
"#
    )
}

/// The consumer: `coffer run` mounts `app-db` at /etc/db; the child opens a new connection
/// with `psql` every 10 ms with the DSN from the mounted `uri` file (one file, so it never
/// mixes a user with another user's password) and counts successes and failures.
const CONSUMER_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: consumer}
spec:
  containers:
  - name: app
    volumeMounts: [{name: db, mountPath: /etc/db, readOnly: true}]
  volumes:
  - {name: db, secret: {secretName: app-db}}
"#;

const CONSUMER_SCRIPT: &str = r#"
OUT='@OUT@'; PSQL='@PSQL@'; export PGCONNECT_TIMEOUT=5
d="$COFFER_MOUNT_ROOT/etc/db"
while [ ! -e "$OUT/stop" ]; do
  uri=$(cat "$d/uri")
  printf '%s' "$uri" > "$OUT/uri.tmp" && mv "$OUT/uri.tmp" "$OUT/uri"
  if [ ! -e "$OUT/pause" ]; then
    if "$PSQL" "$uri" -qAtc 'select count(*) from items' >/dev/null 2>>"$OUT/errors"; then
      echo >> "$OUT/ok"
    else
      echo >> "$OUT/fail"
    fi
  fi
  sleep 0.01
done
"#;

struct Consumer(Child);

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn jsonpath(c: &Coffer, kind: &str, name: &str, path: &str) -> String {
    let out = c.kubectl("", &["get", kind, name, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn version(c: &Coffer) -> u64 {
    jsonpath(c, "secretrotation", "app-db", "{.status.currentVersion}")
        .parse()
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn coffer_cli(c: &Coffer, args: &[&str]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    let kubeconfig = c.kubeconfig.to_str().expect("utf8").to_owned();
    all.extend(["--kubeconfig", &kubeconfig]);
    let out = c.coffer(&all);
    assert!(
        out.status.success(),
        "coffer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_users_zero_downtime_rotate_now_status_rollback() {
    let pg = pgsupport::pg::Postgres::start();
    pgsupport::setup_roles(&pg).await;
    let metrics_port = free_port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    // The built-in rotation controller runs.
    let c = Coffer::start(&["--rotation-metrics-address", &metrics_address]);
    c.ok(
        "",
        &[
            "create",
            "secret",
            "generic",
            "pg-admin",
            &format!("--from-literal=username={}", pgsupport::ADMIN_USER),
            &format!("--from-literal=password={}", pgsupport::ADMIN_PASSWORD),
        ],
    );
    c.ok(
        "",
        &[
            "create",
            "secret",
            "generic",
            "app-db",
            "--from-literal=username=app_a",
            &format!("--from-literal=password={}", pgsupport::INITIAL_PASSWORD),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    apply(&c, dir.path(), "rotation.yaml", &pg_rotation(pg.port()));
    // A new rotation is due at once.
    wait_for("the first rotation", Duration::from_secs(20), || {
        version(&c) >= 1
    });

    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let manifest = dir.path().join("consumer.yaml");
    std::fs::write(&manifest, CONSUMER_POD).expect("manifest");
    // `coffer run` gives the child the pod's environment only: paths go into the script.
    let script = CONSUMER_SCRIPT
        .replace("@OUT@", out.to_str().expect("utf8"))
        .replace("@PSQL@", pg.bin("psql").to_str().expect("utf8"));
    let consumer = Consumer(
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .arg("-f")
            .arg(&manifest)
            .arg("--mount-root")
            .arg(dir.path().join("mounts"))
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("coffer run"),
    );
    wait_for(
        "the consumer's first connection",
        Duration::from_secs(20),
        || lines(&out.join("ok")) + lines(&out.join("fail")) > 0,
    );
    let first = version(&c);
    let started = Instant::now();
    const ROTATIONS: u64 = 12;
    wait_for("12 rotations", Duration::from_secs(90), || {
        version(&c) >= first + ROTATIONS
    });
    std::fs::write(out.join("pause"), "").expect("pause");
    std::thread::sleep(Duration::from_millis(200));
    let (ok, failed) = (lines(&out.join("ok")), lines(&out.join("fail")));
    let rotations = version(&c) - first;
    eprintln!(
        "alternating users: {rotations} rotations in {:?}, {ok} connections, {failed} failed",
        started.elapsed()
    );
    assert!(ok >= 100, "the consumer connected only {ok} times");
    assert_eq!(
        failed,
        0,
        "failed connections: {}",
        std::fs::read_to_string(out.join("errors")).unwrap_or_default()
    );

    // The controller's metrics.
    let text = http_get(&metrics_address, "/metrics");
    let rotated: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("coffer_rotation_rotations_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rotations counter: {text}"));
    assert!(rotated >= ROTATIONS, "{text}");
    assert!(
        text.contains(
            "coffer_rotation_secret_age_seconds{namespace=\"default\",rotation=\"app-db\"}"
        ),
        "{text}"
    );

    // coffer rotate now: the controller acts on the annotation.
    let said = coffer_cli(&c, &["rotate", "now", "app-db", "-n", "default"]);
    assert!(said.contains("rotation requested"), "{said}");
    let requested = jsonpath(
        &c,
        "secretrotation",
        "app-db",
        "{.metadata.annotations.coffer\\.dev/rotate-now}",
    );
    assert!(!requested.is_empty());
    wait_for(
        "the rotate-now request handled",
        Duration::from_secs(10),
        || jsonpath(&c, "secretrotation", "app-db", "{.status.rotateNowHandled}") == requested,
    );

    // coffer rotate status lists it.
    let table = coffer_cli(&c, &["rotate", "status"]);
    let mut rows = table.lines();
    let header: Vec<&str> = rows.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "SECRET",
            "LAST",
            "NEXT",
            "VERSION",
            "STATE"
        ]
    );
    let row = rows.next().expect("a row");
    assert!(
        row.starts_with("default") && row.contains("app-db"),
        "{table}"
    );

    // Stop rotating, then roll the Secret back to its previous version: the consumer's file
    // shows it within a second.
    c.ok("", &["delete", "secretrotation", "app-db"]);
    std::thread::sleep(Duration::from_secs(1));
    let raw = c.ok(
        "",
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/secrets/app-db/versions",
        ],
    );
    let list: serde_json::Value = serde_json::from_str(&raw).expect("versions");
    let previous = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| {
            i["stages"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "previous"))
        })
        .expect("a previous version");
    let want = b64_decode(previous["data"]["uri"].as_str().expect("uri"));
    let current_uri = std::fs::read_to_string(out.join("uri")).expect("uri file");
    assert_ne!(current_uri, want, "the previous version differs");
    let n = previous["version"].to_string();
    let asked = Instant::now();
    coffer_cli(&c, &["secret", "rollback", "app-db", "--to", &n]);
    wait_for(
        "the consumer to see the rollback",
        Duration::from_secs(5),
        || std::fs::read_to_string(out.join("uri")).is_ok_and(|u| u == want),
    );
    let seen = asked.elapsed();
    eprintln!("rollback reached the consumer's file in {seen:?}");
    assert!(seen < Duration::from_secs(1), "rollback took {seen:?}");
    std::fs::write(out.join("stop"), "").expect("stop");
    drop(consumer);
}

fn b64_decode(text: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("base64");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("base64");
    String::from_utf8(out.stdout).expect("utf8")
}

/// The microservices example's RBAC: each service's ServiceAccount token reads its own
/// Secret and is refused the others' (and the rotation's companion Secret).
#[test]
fn example_service_accounts_read_only_their_own_secret() {
    let c = Coffer::start(&["--disable-rotation"]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/microservices");
    c.ok("", &["create", "namespace", "shop"]);
    let services = ["orders", "payments", "inventory"];
    for s in services {
        c.ok(
            "",
            &[
                "-n",
                "shop",
                "create",
                "secret",
                "generic",
                &format!("{s}-db"),
                &format!("--from-literal=username={s}_a"),
            ],
        );
    }
    c.ok(
        "",
        &[
            "-n",
            "shop",
            "create",
            "secret",
            "generic",
            &companion_name("orders-db"),
            "--from-literal=stages.json={}",
        ],
    );
    let rbac = example.join("manifests/rbac.yaml");
    c.ok("", &["apply", "-f", rbac.to_str().expect("utf8")]);
    for s in services {
        let token = c.ok("", &["-n", "shop", "create", "token", s]);
        let token = format!("--token={}", token.trim());
        let own = c.ok(
            "",
            &[
                &token,
                "-n",
                "shop",
                "get",
                "secret",
                &format!("{s}-db"),
                "-o",
                "jsonpath={.data.username}",
            ],
        );
        assert_eq!(
            b64_decode(&own),
            format!("{s}_a"),
            "{s} reads its own Secret"
        );
        let others = services
            .iter()
            .filter(|o| **o != s)
            .map(|o| format!("{o}-db"))
            .chain([companion_name("orders-db")]);
        for other in others {
            let err = c.fails("", &[&token, "-n", "shop", "get", "secret", &other]);
            assert!(
                err.contains("Forbidden") || err.contains("forbidden"),
                "{s} reading {other}: {err}"
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A plain HTTP/1.1 GET, returning the body.
fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// `coffer rotate controller` SIGKILLed while a step is in flight, six times in a row: each
/// new controller resumes the recorded step (or rolls it back); at the end the Secret's
/// current credential logs in and no stage is left pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_mid_rotation_resumes() {
    let pg = pgsupport::pg::Postgres::start();
    pgsupport::setup_roles(&pg).await;
    let c = Coffer::start(&["--disable-rotation"]);
    c.ok(
        "",
        &[
            "create",
            "secret",
            "generic",
            "pg-admin",
            &format!("--from-literal=username={}", pgsupport::ADMIN_USER),
            &format!("--from-literal=password={}", pgsupport::ADMIN_PASSWORD),
        ],
    );
    c.ok(
        "",
        &[
            "create",
            "secret",
            "generic",
            "app-db",
            "--from-literal=username=app_a",
            &format!("--from-literal=password={}", pgsupport::INITIAL_PASSWORD),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = pg_rotation(pg.port()).replace("interval: 2s", "interval: 1s");
    apply(&c, dir.path(), "rotation.yaml", &manifest);
    let store = KubeStore::new(client(&c).await, "default");
    let log_path = dir.path().join("controller.log");
    let controller = || {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log");
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(["rotate", "controller", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("controller")
    };
    // Kill after each of the four steps is recorded, in turn (the step must be a new one:
    // a resumed controller first re-runs the step it finds).
    let mut killed_at = Vec::new();
    let mut last: Option<(coffer_rotation::StepName, u64)> = None;
    for round in 0..8 {
        let target = coffer_rotation::StepName::ALL[round % 4];
        let mut child = controller();
        let deadline = Instant::now() + Duration::from_secs(30);
        let step = loop {
            let status = store.load_status("app-db").await.expect("status");
            if let Some(step) = status.and_then(|s| s.value.step)
                && step.name == target
                && last != Some((step.name, step.version))
            {
                break step;
            }
            assert!(Instant::now() < deadline, "{target} was never recorded");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        last = Some((step.name, step.version));
        killed_at.push(format!("{}@v{}", step.name, step.version));
    }
    eprintln!("killed during: {killed_at:?}");
    let mut child = controller();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = store
            .load_status("app-db")
            .await
            .expect("status")
            .expect("exists")
            .value;
        let target = store
            .read_secret("app-db")
            .await
            .expect("read")
            .expect("exists")
            .value;
        if status.step.is_none()
            && target.pending.is_none()
            && status.current_version == target.current_version
        {
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("reap");
    let current = store
        .read_secret("app-db")
        .await
        .expect("read")
        .expect("exists")
        .value
        .current;
    let user = current.get_str("username").expect("username").to_owned();
    let password = current
        .get("password")
        .expect("password")
        .expose_secret()
        .to_vec();
    pgsupport::login_port(pg.port(), &user, &password)
        .await
        .expect("the Secret's current credential logs in");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("resuming rotation"),
        "no controller resumed an in-flight rotation: {log}"
    );
    assert!(
        !log.contains(pgsupport::INITIAL_PASSWORD),
        "a password reached the log"
    );
}
