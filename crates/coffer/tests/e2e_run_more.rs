//! End to end: `coffer run` against the real `coffer serve`, for the parts beyond Secrets:
//! the private tmpfs mount (as root), ConfigMap volumes with live updates, the downward API,
//! and projected ServiceAccount tokens that authenticate and are refreshed.

mod run_support;
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use run_support::*;
use support::Coffer;

/// `coffer run` without `--mount-root`, its stdout on a channel.
fn spawn_as_written(coffer: &Coffer, manifest: &std::path::Path, script: &str) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&coffer.kubeconfig)
            .arg("-f")
            .arg(manifest)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn coffer run"),
    )
}

fn mountinfo_has(pid: &str, path: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let needle = format!(" {} ", path.display());
    info.lines()
        .find(|l| l.contains(&needle))
        .map(str::to_owned)
}

#[test]
fn private_mount_is_read_only_invisible_to_the_host_and_live() {
    let coffer = Coffer::start(&[]);
    create_db_secret(&coffer);
    let at = coffer.data_dir().join("priv/etc/secrets");
    let manifest = write_manifest(
        coffer.data_dir(),
        &APP_POD.replace(
            "\"/etc/secrets\"",
            &format!("{:?}", at.display().to_string()),
        ),
    );
    let script = format!(
        r#"echo "pid=$$"
        if echo x > {0}/password 2>/dev/null; then echo write=ok; else echo write=refused; fi
        if touch {0}/new 2>/dev/null; then echo create=ok; else echo create=refused; fi
        touch {0}/new 2>&1 | grep -o 'Read-only file system'
        while true; do echo "v=$(cat {0}/password)"; sleep 0.05; done"#,
        at.display()
    );
    let mut child = spawn_as_written(&coffer, &manifest, &script);
    let rx = lines(&mut child);
    let pid = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the process starts")
        .strip_prefix("pid=")
        .expect("pid line")
        .to_owned();
    wait_for(&rx, "write=refused", Duration::from_secs(5));
    wait_for(&rx, "create=refused", Duration::from_secs(5));
    wait_for(&rx, "Read-only file system", Duration::from_secs(5));
    wait_for(&rx, "v=MyStrongPassword", Duration::from_secs(5));

    // The process's mount namespace has a read-only bind mount at the path as written...
    let mount = mountinfo_has(&pid, &at).expect("the process sees a mount at the path");
    assert!(
        mount.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")),
        "{mount}"
    );
    // ...and the host has none: no mount, no files.
    assert_eq!(mountinfo_has("self", &at), None);
    assert!(!at.join("password").exists(), "the host sees no files");
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .contains("coffer-run-"),
        "the private tmpfs is not visible on the host"
    );

    // Live updates still arrive through the atomic writer inside the bind mount.
    coffer.ok(
        "",
        &[
            "patch",
            "secret",
            "db-secret",
            "-p",
            r#"{"stringData":{"password":"Rotated"}}"#,
        ],
    );
    wait_for(&rx, "v=Rotated", Duration::from_secs(2));

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("wait");
    assert!(
        std::fs::read_dir(&at).map_or(true, |mut d| d.next().is_none()),
        "at most an empty mount point is left"
    );
}

/// A Pod with a ConfigMap in env and as a volume, and the downward API in env and files.
const CONFIG_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web-0
  labels: {app: web, tier: front}
  annotations: {owner: "team \"a\""}
spec:
  automountServiceAccountToken: false
  containers:
  - name: app
    image: nginx
    resources: {limits: {memory: 64Mi}}
    env:
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: settings, key: level}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: podinfo, mountPath: /etc/podinfo}
  volumes:
  - name: config
    configMap:
      name: settings
      items: [{key: level, path: level}, {key: app.conf, path: conf/app.conf, mode: 0600}]
  - name: podinfo
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
"#;

#[test]
fn config_map_volume_follows_updates_and_the_downward_api_is_filled() {
    let coffer = Coffer::start(&[]);
    coffer.ok(
        "",
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=level=debug",
            "--from-literal=app.conf=port=80",
        ],
    );
    let manifest = write_manifest(coffer.data_dir(), CONFIG_POD);
    let script = r#"
        c="$COFFER_MOUNT_ROOT/etc/config"; p="$COFFER_MOUNT_ROOT/etc/podinfo"
        echo "env $LEVEL $POD_NAME $POD_NS $TIER $MEM_MI"
        echo "conf $(cat "$c/conf/app.conf") $(stat -L -c %a "$c/conf/app.conf")"
        echo "labels $(cat "$p/labels" | tr '\n' ' ')"
        echo "annotations $(cat "$p/annotations")"
        echo "mem $(cat "$p/mem")"
        while true; do echo "level=$(cat "$c/level")"; sleep 0.05; done"#;
    let mut cmd = coffer_run(&coffer, &manifest, &[], script);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = Running(cmd.spawn().expect("spawn coffer run"));
    let rx = lines(&mut child);
    wait_for(
        &rx,
        "env debug web-0 default front 64",
        Duration::from_secs(30),
    );
    wait_for(&rx, "conf port=80 600", Duration::from_secs(2));
    wait_for(
        &rx,
        r#"labels app="web" tier="front""#,
        Duration::from_secs(2),
    );
    wait_for(
        &rx,
        r#"annotations owner="team \"a\"""#,
        Duration::from_secs(2),
    );
    wait_for(&rx, "mem 64", Duration::from_secs(2));
    wait_for(&rx, "level=debug", Duration::from_secs(2));
    coffer.ok(
        "",
        &[
            "patch",
            "configmap",
            "settings",
            "-p",
            r#"{"data":{"level":"trace"}}"#,
        ],
    );
    wait_for(&rx, "level=trace", Duration::from_secs(2));
}

/// A Pod with a projected ServiceAccount token (and the automatic ServiceAccount volume).
const TOKEN_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: api-client}
spec:
  containers:
  - name: app
    image: curl
    volumeMounts:
    - {name: token, mountPath: /var/run/secrets/tokens}
  volumes:
  - name: token
    projected:
      defaultMode: 0440
      sources:
      - serviceAccountToken: {path: api-token, expirationSeconds: 600}
"#;

#[test]
fn projected_token_authenticates_as_the_service_account_and_is_refreshed() {
    let coffer = Coffer::start(&[]);
    let manifest = write_manifest(coffer.data_dir(), TOKEN_POD);
    let script = r#"
        t="$COFFER_MOUNT_ROOT/var/run/secrets/tokens/api-token"
        sa="$COFFER_MOUNT_ROOT/var/run/secrets/kubernetes.io/serviceaccount"
        echo "mode $(stat -L -c %a "$t")"
        echo "ns $(cat "$sa/namespace")"
        echo "ca $(md5sum < "$sa/ca.crt" | cut -c1-32)"
        echo "auto $(cut -c1-3 "$sa/token")"
        while true; do echo "token $(cat "$t")"; sleep 0.2; done"#;
    // Tokens are replaced at the latest when 2 s old (else at 80% of 600 s).
    let mut cmd = coffer_run(&coffer, &manifest, &["--token-max-age", "2s"], script);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Running(cmd.spawn().expect("spawn coffer run"));
    let stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let rx = lines(&mut child);
    wait_for(&rx, "mode 440", Duration::from_secs(30));
    wait_for(&rx, "ns default", Duration::from_secs(2));
    let ca = std::fs::read(coffer.data_dir().join("pki/ca.crt")).expect("ca.crt");
    let ca_md5 = String::from_utf8(
        Command::new("md5sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().expect("stdin").write_all(&ca)?;
                c.wait_with_output()
            })
            .expect("md5sum")
            .stdout,
    )
    .expect("utf8");
    wait_for(
        &rx,
        &format!("ca {}", &ca_md5[..32]),
        Duration::from_secs(2),
    );
    wait_for(&rx, "auto eyJ", Duration::from_secs(2));

    let token_of = |line: String| line.strip_prefix("token ").map(str::to_owned);
    let first = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(5)).ok())
        .find_map(token_of)
        .expect("a token line");
    assert!(first.starts_with("eyJ"), "a JWT");
    // Refreshed: a different token appears in the same file.
    let second = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(10)).ok())
        .filter_map(token_of)
        .find(|t| *t != first)
        .expect("the token is refreshed");

    // It authenticates as the Pod's ServiceAccount.
    for token in [&first, &second] {
        let kubeconfig = coffer.kubeconfig_for("sa", token);
        let out = Command::new(support::kubectl_binary(""))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ])
            .output()
            .expect("kubectl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "system:serviceaccount:default:default",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("wait");
    let log = log.join().expect("log");
    assert!(
        !log.contains(&first) && !log.contains(&second),
        "tokens never logged: {log}"
    );
}
