//! List without reveal (`--secret-list-policy`): values of Secrets the caller may list but
//! not get are withheld in lists, tables and watches; `kubernetes` restores upstream behaviour.

use super::*;

const WITHHELD: &str = "coffer.dev/values-withheld";

#[test]
fn list_without_reveal_withholds_values_of_secrets_the_caller_may_not_get() {
    let tokens = Tokens::new([("lister", vec![])]);
    let mut coffer = Coffer::start_with_tokens(&tokens, &[]);
    let admin = tokens.token(Tokens::ADMIN).to_owned();
    let lister_token = tokens.token("lister").to_owned();
    let lister = coffer.kubeconfig_for("lister", &lister_token);
    {
        let api = Api::new(&coffer);
        api.create(
            &admin,
            &secret("readable", "default", &[("user", "u1"), ("password", "p1")]),
        );
        api.create(
            &admin,
            &secret("hidden-a", "default", &[("user", "u2"), ("password", "p2")]),
        );
        api.create(&admin, &secret("hidden-b", "default", &[("token", "t3")]));
        api.create(
            &admin,
            &role(
                "Role",
                "list-and-read-one",
                Some("default"),
                json!([
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["readable"]},
                ]),
            ),
        );
        api.create(
            &admin,
            &user_binding(
                "RoleBinding",
                "lister",
                Some("default"),
                "Role",
                "list-and-read-one",
                "lister",
            ),
        );
    }
    let warning = "values of 2 Secret(s) withheld";
    for v in KUBECTLS {
        let out = kubectl_as(&coffer, v, &lister, &["get", "secrets"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let table = rows(&stdout(&out));
        let data: BTreeMap<_, _> = table[1..]
            .iter()
            .map(|r| (r[0].clone(), r[2].clone()))
            .collect();
        assert_eq!(
            data,
            BTreeMap::from([
                ("hidden-a".into(), "2".into()),
                ("hidden-b".into(), "1".into()),
                ("readable".into(), "2".into())
            ]),
            "DATA counts: {table:?}"
        );
        assert!(
            stderr(&out)
                .lines()
                .any(|l| l.starts_with("Warning: ") && l.contains(warning)),
            "kubectl {v} shows the Warning header: {}",
            stderr(&out)
        );

        let out = kubectl_as(&coffer, v, &lister, &["get", "secrets", "-o", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains(warning), "{}", stderr(&out));
        let list: Value = serde_json::from_slice(&out.stdout).expect("json");
        let items: BTreeMap<String, Value> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["metadata"]["name"].as_str().expect("name").to_owned(),
                    i.clone(),
                )
            })
            .collect();
        assert_eq!(
            items["readable"]["data"],
            json!({"user": "dTE=", "password": "cDE="})
        );
        assert!(
            items["readable"]["metadata"]["annotations"][WITHHELD].is_null(),
            "{}",
            items["readable"]
        );
        assert_eq!(
            items["hidden-a"]["data"],
            json!({"user": "", "password": ""})
        );
        assert_eq!(items["hidden-b"]["data"], json!({"token": ""}));
        for hidden in ["hidden-a", "hidden-b"] {
            assert!(
                items[hidden]["metadata"]["annotations"][WITHHELD].is_string(),
                "{}",
                items[hidden]
            );
        }
        // get is still per name.
        assert_eq!(
            ok_as(
                &coffer,
                v,
                &lister,
                &[
                    "get",
                    "secret",
                    "readable",
                    "-o",
                    "jsonpath={.data.password}"
                ]
            ),
            "cDE="
        );
        let out = kubectl_as(&coffer, v, &lister, &["get", "secret", "hidden-a"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out)
                .contains("secrets \"hidden-a\" is forbidden: User \"lister\" cannot get resource"),
            "{}",
            stderr(&out)
        );
        // The stored Secrets are untouched.
        let full = coffer.ok(
            v,
            &[
                "get",
                "secret",
                "hidden-a",
                "-o",
                "jsonpath={.data.password}",
            ],
        );
        assert_eq!(full, "cDI=");
    }

    // watch withholds the same way.
    let events = {
        let api = Api::new(&coffer);
        let reply = api.get(
            "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1",
            Some(&lister_token),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        watch_objects(&reply)
    };
    assert_eq!(
        events["readable"]["data"],
        json!({"user": "dTE=", "password": "cDE="})
    );
    assert_eq!(
        events["hidden-a"]["data"],
        json!({"user": "", "password": ""})
    );
    assert!(events["hidden-a"]["metadata"]["annotations"][WITHHELD].is_string());
    assert_eq!(events["hidden-b"]["data"], json!({"token": ""}));

    // Upstream behaviour on request: every value comes through, no annotation, no warning.
    let flags = tokens.flags();
    coffer.restart(&[&flags[0], &flags[1], "--secret-list-policy=kubernetes"]);
    let lister = coffer.kubeconfig_for("lister", &lister_token);
    for v in KUBECTLS {
        let out = kubectl_as(&coffer, v, &lister, &["get", "secrets", "-o", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains("withheld"), "{}", stderr(&out));
        let list: Value = serde_json::from_slice(&out.stdout).expect("json");
        for item in list["items"].as_array().expect("items") {
            assert!(
                item["metadata"]["annotations"][WITHHELD].is_null(),
                "{item}"
            );
            let name = item["metadata"]["name"].as_str().expect("name");
            let expected = match name {
                "readable" => json!({"user": "dTE=", "password": "cDE="}),
                "hidden-a" => json!({"user": "dTI=", "password": "cDI="}),
                _ => json!({"token": "dDM="}),
            };
            assert_eq!(item["data"], expected, "{name}");
        }
    }
    let api = Api::new(&coffer);
    let reply = api.get(
        "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1",
        Some(&lister_token),
    );
    let events = watch_objects(&reply);
    assert_eq!(
        events["hidden-a"]["data"],
        json!({"user": "dTI=", "password": "cDI="})
    );
}

/// The objects of a JSON watch stream, by name (last event wins).
fn watch_objects(reply: &Reply) -> BTreeMap<String, Value> {
    reply
        .text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("watch line {l:?}: {e}"))
        })
        .filter(|e| e["type"] == "ADDED" || e["type"] == "MODIFIED")
        .map(|e| {
            (
                e["object"]["metadata"]["name"]
                    .as_str()
                    .expect("name")
                    .to_owned(),
                e["object"].clone(),
            )
        })
        .collect()
}
