//! The guide's step 7 with real kubectl 1.27 and 1.33: the `secret-reader` Role bound to
//! `bob`, kube-apiserver's 403 texts, `auth can-i`, `auth whoami`, impersonation (§5.18–§5.23, §14).

use super::*;

/// The Role and RoleBinding of the guide's step 7, as in the Kubernetes docs.
const STEP_7: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  namespace: default
  name: secret-reader
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-secrets
  namespace: default
subjects:
- kind: User
  name: bob
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: secret-reader
  apiGroup: rbac.authorization.k8s.io
"#;

#[test]
fn guide_step_7_secret_reader_with_kubectl() {
    let tokens = Tokens::new([("bob", vec![]), ("alice", vec![])]);
    let coffer = Coffer::start_with_tokens(&tokens, &[]);
    let bob = coffer.kubeconfig_for("bob", tokens.token("bob"));
    let alice = coffer.kubeconfig_for("alice", tokens.token("alice"));

    coffer.ok("1.33", &["create", "namespace", "team-a"]);
    coffer.ok(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "db-secret",
            "--from-literal=username=admin",
            "--from-literal=password=MyStrongPassword",
        ],
    );
    coffer.ok(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "db-secret",
            "-n",
            "team-a",
            "--from-literal=k=v",
        ],
    );
    let manifest = coffer.data_dir().join("step7.yaml");
    std::fs::write(&manifest, STEP_7).expect("manifest");
    let applied = coffer.ok("1.33", &["apply", "-f", manifest.to_str().expect("utf8")]);
    assert_eq!(
        applied.trim(),
        "role.rbac.authorization.k8s.io/secret-reader created\nrolebinding.rbac.authorization.k8s.io/read-secrets created"
    );
    let again = coffer.ok("1.27", &["apply", "-f", manifest.to_str().expect("utf8")]);
    assert_eq!(
        again.trim(),
        "role.rbac.authorization.k8s.io/secret-reader unchanged\nrolebinding.rbac.authorization.k8s.io/read-secrets unchanged"
    );

    let denied = |verb: &str, name: Option<&str>, ns: &str| match name {
        Some(n) => format!(
            "Error from server (Forbidden): secrets \"{n}\" is forbidden: User \"bob\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
        ),
        None => format!(
            "Error from server (Forbidden): secrets is forbidden: User \"bob\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
        ),
    };
    for v in KUBECTLS {
        // bob reads the one Secret ...
        let table = ok_as(&coffer, v, &bob, &["get", "secret", "db-secret"]);
        let table = rows(&table);
        assert_eq!(table[0], ["NAME", "TYPE", "DATA", "AGE"], "{table:?}");
        assert_eq!(&table[1][..3], ["db-secret", "Opaque", "2"], "{table:?}");
        let password = ok_as(
            &coffer,
            v,
            &bob,
            &[
                "get",
                "secret",
                "db-secret",
                "-o",
                "jsonpath={.data.password}",
            ],
        );
        assert_eq!(password, "TXlTdHJvbmdQYXNzd29yZA==");

        // ... and nothing else.
        refused_as(
            &coffer,
            v,
            &bob,
            &["get", "secrets"],
            &denied("list", None, "default"),
        );
        refused_as(
            &coffer,
            v,
            &bob,
            &["create", "secret", "generic", "bobs", "--from-literal=a=b"],
            &format!(
                "error: failed to create secret {}",
                denied("create", None, "default")
                    .trim_start_matches("Error from server (Forbidden): ")
            ),
        );
        let manifest = coffer.data_dir().join("bobs.yaml");
        std::fs::write(
            &manifest,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bobs\nstringData:\n  a: b\n",
        )
        .expect("manifest");
        refused_as(
            &coffer,
            v,
            &bob,
            &["create", "-f", manifest.to_str().expect("utf8")],
            &format!(
                "Error from server (Forbidden): error when creating \"{}\": {}",
                manifest.display(),
                denied("create", None, "default")
                    .trim_start_matches("Error from server (Forbidden): ")
            ),
        );
        refused_as(
            &coffer,
            v,
            &bob,
            &["delete", "secret", "db-secret"],
            &denied("delete", Some("db-secret"), "default"),
        );
        refused_as(
            &coffer,
            v,
            &bob,
            &["get", "secret", "db-secret", "-n", "team-a"],
            &denied("get", Some("db-secret"), "team-a"),
        );
        refused_as(
            &coffer,
            v,
            &bob,
            &["get", "secrets", "-n", "team-a"],
            &denied("list", None, "team-a"),
        );
        refused_as(
            &coffer,
            v,
            &bob,
            &["delete", "secret", "db-secret", "-n", "team-a"],
            &denied("delete", Some("db-secret"), "team-a"),
        );

        // kubectl auth can-i: yes (rc 0) or no (rc 1), as kube's RBAC denies with no reason.
        for (args, yes) in [
            (&["auth", "can-i", "get", "secrets"][..], true),
            (&["auth", "can-i", "get", "secret/db-secret"][..], true),
            (&["auth", "can-i", "list", "secrets"][..], false),
            (&["auth", "can-i", "watch", "secrets"][..], false),
            (&["auth", "can-i", "create", "secrets"][..], false),
            (&["auth", "can-i", "delete", "secret/db-secret"][..], false),
            (
                &["auth", "can-i", "get", "secrets", "-n", "team-a"][..],
                false,
            ),
            (
                &["auth", "can-i", "get", "secrets", "--subresource=status"][..],
                false,
            ),
            (&["auth", "can-i", "get", "configmaps"][..], false),
            (&["auth", "can-i", "get", "/healthz"][..], true),
            (&["auth", "can-i", "get", "/metrics"][..], false),
        ] {
            let out = kubectl_as(&coffer, v, &bob, args);
            let answer = if yes { "yes" } else { "no" };
            assert_eq!(
                stdout(&out).trim(),
                answer,
                "kubectl {v} {args:?}: {}",
                stderr(&out)
            );
            assert_eq!(out.status.success(), yes, "kubectl {v} {args:?} exit code");
        }
        let list = rows(&ok_as(&coffer, v, &bob, &["auth", "can-i", "--list"]));
        assert_eq!(
            list[0],
            [
                "Resources",
                "Non-Resource",
                "URLs",
                "Resource",
                "Names",
                "Verbs"
            ],
            "{list:?}"
        );
        assert!(
            list.contains(&vec![
                "secrets".into(),
                "[]".into(),
                "[]".into(),
                "[get]".into()
            ]),
            "{list:?}"
        );
        assert!(
            list.contains(&vec![
                "selfsubjectaccessreviews.authorization.k8s.io".into(),
                "[]".into(),
                "[]".into(),
                "[create]".into()
            ]),
            "{list:?}"
        );
        assert!(
            list.contains(&vec!["[/healthz]".into(), "[]".into(), "[get]".into()]),
            "{list:?}"
        );
        assert!(
            !list.iter().any(|r| r.first().is_some_and(|c| c == "*.*")),
            "bob holds no wildcard: {list:?}"
        );
        let team_a = rows(&ok_as(
            &coffer,
            v,
            &bob,
            &["auth", "can-i", "--list", "-n", "team-a"],
        ));
        assert!(
            !team_a
                .iter()
                .any(|r| r.first().is_some_and(|c| c == "secrets")),
            "{team_a:?}"
        );
        let admin_list = rows(&coffer.ok(v, &["auth", "can-i", "--list"]));
        assert!(
            admin_list.contains(&vec!["*.*".into(), "[]".into(), "[]".into(), "[*]".into()]),
            "{admin_list:?}"
        );

        // kubectl auth whoami: 1.27 asks v1beta1, 1.33 v1.
        let me = rows(&ok_as(&coffer, v, &bob, &["auth", "whoami"]));
        assert_eq!(me[0], ["ATTRIBUTE", "VALUE"], "{me:?}");
        assert!(
            me.contains(&vec!["Username".into(), "bob".into()]),
            "{me:?}"
        );
        assert!(
            me.contains(&vec!["Groups".into(), "[system:authenticated]".into()]),
            "{me:?}"
        );
        let me: Value =
            serde_json::from_str(&ok_as(&coffer, v, &bob, &["auth", "whoami", "-o", "json"]))
                .expect("json");
        let expected_version = if v == "1.27" {
            "authentication.k8s.io/v1beta1"
        } else {
            "authentication.k8s.io/v1"
        };
        assert_eq!(me["apiVersion"], expected_version, "{me}");
        assert_eq!(me["kind"], "SelfSubjectReview");
        assert_eq!(me["status"]["userInfo"]["username"], "bob");

        // Impersonation: the admin may act as bob, and is then bob.
        let as_bob = rows(&coffer.ok(v, &["get", "secret", "db-secret", "--as=bob"]));
        assert_eq!(&as_bob[1][..3], ["db-secret", "Opaque", "2"], "{as_bob:?}");
        let out = coffer.kubectl(v, &["get", "secrets", "--as=bob"]);
        assert!(!out.status.success());
        assert_eq!(stderr(&out).trim(), denied("list", None, "default"));
        let out = coffer.kubectl(v, &["auth", "can-i", "list", "secrets", "--as=bob"]);
        assert_eq!(stdout(&out).trim(), "no");
        let out = coffer.kubectl(v, &["auth", "can-i", "get", "secrets", "--as=bob"]);
        assert_eq!(stdout(&out).trim(), "yes");
        let who = rows(&coffer.ok(v, &["auth", "whoami", "--as=bob", "--as-group=devs"]));
        assert!(
            who.contains(&vec!["Username".into(), "bob".into()]),
            "{who:?}"
        );
        assert!(
            who.contains(&vec![
                "Groups".into(),
                "[devs".into(),
                "system:authenticated]".into()
            ]),
            "{who:?}"
        );

        // A user without `impersonate` may not.
        let out = kubectl_as(
            &coffer,
            v,
            &alice,
            &["get", "secret", "db-secret", "--as=bob"],
        );
        assert!(!out.status.success());
        let impersonate_denied = "Error from server (Forbidden): users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope";
        assert!(
            stderr(&out).lines().any(|l| l.trim() == impersonate_denied),
            "kubectl {v} --as=bob by alice: {}",
            stderr(&out)
        );
        let out = kubectl_as(&coffer, v, &alice, &["auth", "whoami", "--as=bob"]);
        assert!(!out.status.success(), "{}", stdout(&out));
    }

    // Nothing bob tried changed anything.
    let names = coffer.ok("1.33", &["get", "secrets", "-o", "name"]);
    assert_eq!(names.trim(), "secret/db-secret");
    assert_eq!(
        coffer
            .ok("1.33", &["get", "secrets", "-n", "team-a", "-o", "name"])
            .trim(),
        "secret/db-secret"
    );
}
