//! The RBAC decision matrix (`coffer-access/tests/rbac_matrix.yaml`): every case through a
//! SubjectAccessReview posted by the admin and, unless `sar_only`, through the real request
//! sent with that user's token (§15).

use super::*;

#[path = "../../../coffer-access/tests/common/matrix_file.rs"]
mod matrix_file;

use matrix_file::{Case, Expect, Matrix};

const ANONYMOUS: &str = "system:anonymous";
const CLUSTER_SCOPED: [&str; 3] = ["namespaces", "clusterroles", "clusterrolebindings"];

fn load_matrix() -> Matrix {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../coffer-access/tests/rbac_matrix.yaml"
    );
    matrix_file::parse(&std::fs::read_to_string(file).expect("read rbac_matrix.yaml"))
}

impl Case {
    /// The SubjectAccessReview the admin posts for this case.
    fn review(&self, groups: &[String]) -> Value {
        let mut spec = json!({"user": self.user, "groups": groups});
        match &self.path {
            Some(path) => spec["nonResourceAttributes"] = json!({"path": path, "verb": self.verb}),
            None => {
                spec["resourceAttributes"] = json!({
                    "verb": self.verb,
                    "group": self.group.clone().unwrap_or_default(),
                    "version": "v1",
                    "resource": self.resource,
                    "subresource": self.subresource,
                    "namespace": self.namespace,
                    "name": self.name,
                })
            }
        }
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
    }

    /// The real request: method, path and query, body. Mutating verbs use `dryRun=All`
    /// (which is still authorized) so no case changes what a later one sees.
    fn request(&self, n: usize) -> (String, String, Option<(&'static str, Vec<u8>)>) {
        if let Some(path) = &self.path {
            return (self.verb.to_uppercase(), path.clone(), None);
        }
        let resource = self.resource.as_deref().expect("resource");
        let group = self.group.as_deref().unwrap_or_default();
        let root = if group.is_empty() {
            "/api/v1".to_owned()
        } else {
            format!("/apis/{group}/v1")
        };
        let collection = if resource == "namespaces"
            || self.namespace.is_empty()
            || CLUSTER_SCOPED.contains(&resource)
        {
            format!("{root}/{resource}")
        } else {
            format!("{root}/namespaces/{}/{resource}", self.namespace)
        };
        let item = format!("{collection}/{}", self.name);
        let name_selector = if self.name.is_empty() {
            String::new()
        } else {
            format!("&fieldSelector=metadata.name%3D{}", self.name)
        };
        let json_body = |v: Value| Some(("application/json", v.to_string().into_bytes()));
        match (self.verb.as_str(), self.subresource.as_str()) {
            ("create", "token") => (
                "POST".into(),
                format!("{item}/token?dryRun=All"),
                json_body(
                    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
                ),
            ),
            (_, "") => match self.verb.as_str() {
                "get" => ("GET".into(), item, None),
                "list" => (
                    "GET".into(),
                    format!("{collection}?limit=500{name_selector}"),
                    None,
                ),
                "watch" => (
                    "GET".into(),
                    format!("{collection}?watch=1&timeoutSeconds=1{name_selector}"),
                    None,
                ),
                "create" => (
                    "POST".into(),
                    format!("{collection}?dryRun=All"),
                    json_body(minimal(resource, &format!("mx-{n}"))),
                ),
                "update" => (
                    "PUT".into(),
                    format!("{item}?dryRun=All"),
                    json_body(minimal(resource, &self.name)),
                ),
                "patch" => (
                    "PATCH".into(),
                    format!("{item}?dryRun=All"),
                    Some((
                        "application/merge-patch+json",
                        br#"{"metadata":{"labels":{"matrix":"patched"}}}"#.to_vec(),
                    )),
                ),
                "delete" => ("DELETE".into(), format!("{item}?dryRun=All"), None),
                "deletecollection" => ("DELETE".into(), format!("{collection}?dryRun=All"), None),
                other => panic!("verb {other} is not a plain request; mark the case sar_only"),
            },
            (verb, sub) => {
                panic!("{verb} on subresource {sub} is not a plain request; mark the case sar_only")
            }
        }
    }

    /// kube-apiserver's 403 message for this case (§5.23; responsewriters.forbiddenMessage
    /// and errors.NewForbidden), without a trailing `: <reason>`.
    fn forbidden_message(&self) -> String {
        if let Some(path) = &self.path {
            return format!(
                "forbidden: User {:?} cannot {} path {:?}",
                self.user, self.verb, path
            );
        }
        let resource = self.resource.clone().unwrap_or_default();
        let group = self.group.clone().unwrap_or_default();
        let qualified = if group.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{group}")
        };
        let full = if self.subresource.is_empty() {
            resource
        } else {
            format!("{resource}/{}", self.subresource)
        };
        let subject = if self.name.is_empty() {
            format!("{qualified} is forbidden")
        } else {
            format!("{qualified} {:?} is forbidden", self.name)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        format!(
            "{subject}: User {:?} cannot {} resource {full:?} in API group {group:?} {scope}",
            self.user, self.verb
        )
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("{} {} {p} (expect {:?})", self.user, self.verb, self.expect),
            None => format!(
                "{} {} {}{}{} ns={:?} name={:?} (expect {:?}{})",
                self.user,
                self.verb,
                self.group
                    .as_deref()
                    .map(|g| if g.is_empty() {
                        String::new()
                    } else {
                        format!("{g}/")
                    })
                    .unwrap_or_default(),
                self.resource.as_deref().unwrap_or_default(),
                if self.subresource.is_empty() {
                    String::new()
                } else {
                    format!("/{}", self.subresource)
                },
                self.namespace,
                self.name,
                self.expect,
                if self.sar_only { ", sar_only" } else { "" }
            ),
        }
    }
}

/// A valid minimal object of `resource` named `name`, for create and update.
fn minimal(resource: &str, name: &str) -> Value {
    let meta = json!({"name": name});
    match resource {
        "secrets" => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v"}})
        }
        "configmaps" => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}})
        }
        "serviceaccounts" => {
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
        }
        "namespaces" => json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}),
        "roles" | "clusterroles" => json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": if resource == "roles" { "Role" } else { "ClusterRole" },
            "metadata": meta,
            "rules": [],
        }),
        "rolebindings" | "clusterrolebindings" => json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": if resource == "rolebindings" { "RoleBinding" } else { "ClusterRoleBinding" },
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:basic-user"},
            "subjects": [],
        }),
        other => panic!("no minimal object for {other}"),
    }
}

/// What went wrong with one case, if anything.
async fn check_case(
    https: &Https,
    tokens: &Tokens,
    matrix: &Matrix,
    n: usize,
    case: &Case,
) -> Vec<String> {
    let mut problems = Vec::new();
    let groups = &matrix
        .users
        .get(&case.user)
        .unwrap_or_else(|| panic!("case user {:?} is not in `users`", case.user))
        .groups;
    let admin = tokens.token(Tokens::ADMIN);
    let sar = https
        .post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(admin),
            &case.review(groups),
        )
        .await;
    let allowed = sar.json()["status"]["allowed"].as_bool();
    if sar.status != 201 || allowed != Some(case.expect == Expect::Allow) {
        problems.push(format!(
            "SubjectAccessReview: {} {}",
            sar.status,
            sar.text()
        ));
    }
    if case.sar_only {
        return problems;
    }
    let token = (case.user != ANONYMOUS).then(|| tokens.token(&case.user));
    let (method, path, body) = case.request(n);
    let reply = https.send(&method, &path, token, body).await;
    match case.expect {
        Expect::Allow if reply.status == 403 || reply.status == 401 => {
            problems.push(format!(
                "{method} {path}: {} {}",
                reply.status,
                reply.message()
            ));
        }
        Expect::Allow => {}
        Expect::Deny => {
            let status = reply.json();
            let expected = case.forbidden_message();
            let message = reply.message();
            let worded = message == expected
                || message
                    .strip_prefix(&expected)
                    .is_some_and(|rest| rest.starts_with(": "));
            let shaped = status["kind"] == "Status"
                && status["reason"] == "Forbidden"
                && status["code"] == 403
                && (case.path.is_some() || status["details"]["kind"] == json!(case.resource));
            if reply.status != 403 || !worded || !shaped {
                problems.push(format!(
                    "{method} {path}: {} {}\n      expected 403 with message {expected:?}",
                    reply.status,
                    reply.text()
                ));
            }
        }
    }
    problems
}

#[test]
fn rbac_matrix_through_subject_access_review_and_real_requests() {
    let matrix = load_matrix();
    assert!(
        matrix.cases.len() >= 250,
        "the matrix has {} cases",
        matrix.cases.len()
    );
    let tokens = Tokens::new(
        matrix
            .users
            .iter()
            .filter(|(u, _)| u.as_str() != ANONYMOUS)
            .map(|(u, e)| (u.as_str(), e.groups.clone())),
    );
    let coffer = Coffer::start_with_tokens(&tokens, &[]);
    let api = Api::new(&coffer);
    let admin = tokens.token(Tokens::ADMIN);

    // The namespaces and the policy, then objects the cases name (so allowed reads find some).
    for ns in ["team-a", "team-b"] {
        api.create(admin, &namespace(ns));
    }
    for object in &matrix.objects {
        api.create(admin, object);
    }
    for (ns, names) in [
        ("default", &["s1", "s2", "s"][..]),
        ("team-a", &["s1", "s"]),
        ("team-b", &["s1", "s"]),
    ] {
        for name in names {
            api.create(admin, &secret(name, ns, &[("k", "v")]));
        }
    }
    for ns in ["default", "team-a", "team-b"] {
        for name in ["c", "c1"] {
            let mut cm = minimal("configmaps", name);
            cm["metadata"]["namespace"] = json!(ns);
            api.create(admin, &cm);
        }
    }
    for (ns, name) in [
        ("team-a", "sa"),
        ("team-a", "sa1"),
        ("team-a", "builder"),
        ("team-b", "deployer"),
        ("team-b", "other"),
        ("team-b", "sa"),
    ] {
        let mut sa = minimal("serviceaccounts", name);
        sa["metadata"]["namespace"] = json!(ns);
        api.create(admin, &sa);
    }

    // The matrix is asked once aggregation has settled: wait until `team-aggregate` holds
    // the rules of both parts (3 rules), or give up after 10 s and let the cases tell.
    eventually(Duration::from_secs(10), || {
        api.get(&format!("{RBAC}/clusterroles/team-aggregate"), Some(admin))
            .json()["rules"]
            .as_array()
            .is_some_and(|r| r.len() >= 3)
    });
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let failures: Vec<(String, Vec<String>)> = api.rt.block_on(async {
        futures::stream::iter(matrix.cases.iter().enumerate())
            .map(|(n, case)| {
                let (https, tokens, matrix) = (&api.https, &tokens, &matrix);
                async move {
                    (
                        case.describe(),
                        check_case(https, tokens, matrix, n, case).await,
                    )
                }
            })
            .buffer_unordered(16)
            .filter(|(_, problems)| std::future::ready(!problems.is_empty()))
            .collect()
            .await
    });
    let real = matrix.cases.iter().filter(|c| !c.sar_only).count();
    eprintln!(
        "matrix: {} cases ({} also as real requests) in {:.1?}",
        matrix.cases.len(),
        real,
        started.elapsed()
    );
    for (case, problems) in &failures {
        eprintln!("MISMATCH {case}");
        for p in problems {
            eprintln!("    {p}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} matrix cases mismatched (printed above)",
        failures.len(),
        matrix.cases.len()
    );

    // dryRun kept every mutating case from changing anything.
    for path in [
        "/api/v1/namespaces/team-a",
        "/api/v1/namespaces/team-a/secrets/s",
        "/api/v1/namespaces/default/secrets/s1",
        &format!("{RBAC}/namespaces/team-a/rolebindings/admins"),
    ] {
        assert_eq!(
            api.get(path, Some(admin)).status,
            200,
            "{path} still exists"
        );
    }
    let list = api
        .get("/api/v1/namespaces/team-a/secrets", Some(admin))
        .json();
    let names: Vec<_> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("s"), json!("s1")], "no create went through");
}
