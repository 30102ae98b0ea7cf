//! ClusterRole aggregation (§9.3): a labelled ClusterRole flows into `view` (and on into
//! `edit` and `admin`), and holders of `view` gain it; removing the label takes it away.

use super::*;

fn has_rule(role: &Value, rule: &Value) -> bool {
    role["rules"]
        .as_array()
        .is_some_and(|rules| rules.contains(rule))
}

#[test]
fn aggregation_feeds_view_and_its_holders() {
    let tokens = Tokens::new([("vic", vec![])]);
    let coffer = Coffer::start_with_tokens(&tokens, &[]);
    let api = Api::new(&coffer);
    let admin = tokens.token(Tokens::ADMIN);
    let vic = Some(tokens.token("vic"));
    api.create(admin, &secret("agg-s", "default", &[("k", "v")]));
    api.create(
        admin,
        &user_binding(
            "RoleBinding",
            "vic-views",
            Some("default"),
            "ClusterRole",
            "view",
            "vic",
        ),
    );
    let secret_path = "/api/v1/namespaces/default/secrets/agg-s";
    assert_eq!(
        api.get("/api/v1/namespaces/default/configmaps", vic).status,
        200,
        "view lists configmaps"
    );
    assert_eq!(
        api.get(secret_path, vic).status,
        403,
        "view excludes secrets"
    );

    let rule = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]});
    let mut extra = role(
        "ClusterRole",
        "view-secrets-extra",
        None,
        json!([rule.clone()]),
    );
    extra["metadata"]["labels"] = json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"});
    let created = Instant::now();
    api.create(admin, &extra);
    let view = || {
        api.get(&format!("{RBAC}/clusterroles/view"), Some(admin))
            .json()
    };
    assert!(
        eventually(Duration::from_secs(3), || has_rule(&view(), &rule)),
        "view never gained the rule: {}",
        view()
    );
    eprintln!("aggregated into view after {:?}", created.elapsed());
    // `view` carries aggregate-to-edit, and `edit` aggregate-to-admin: the rule flows on.
    for chained in ["edit", "admin"] {
        let get = || {
            api.get(&format!("{RBAC}/clusterroles/{chained}"), Some(admin))
                .json()
        };
        assert!(
            eventually(Duration::from_secs(3), || has_rule(&get(), &rule)),
            "{chained} never gained the rule"
        );
    }
    assert!(
        eventually(Duration::from_secs(3), || api.get(secret_path, vic).status
            == 200),
        "vic never gained get secrets"
    );
    let reply = api.get(secret_path, vic);
    assert_eq!(reply.json()["data"]["k"], "dg==", "{}", reply.text());
    assert_eq!(
        api.get("/api/v1/namespaces/default/secrets", vic).status,
        403,
        "only get was aggregated"
    );

    // A user-written rule in an aggregated role is overwritten (§9.3).
    let mut tampered = view();
    tampered["rules"] = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
    let r = api.put(&format!("{RBAC}/clusterroles/view"), Some(admin), &tampered);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        eventually(Duration::from_secs(3), || {
            let v = view();
            has_rule(&v, &rule)
                && !has_rule(
                    &v,
                    &json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
                )
        }),
        "view was not re-aggregated: {}",
        view()
    );

    // Removing the label (or the role) takes the rule away again.
    let mut unlabelled = api
        .get(
            &format!("{RBAC}/clusterroles/view-secrets-extra"),
            Some(admin),
        )
        .json();
    unlabelled["metadata"]["labels"] = json!({});
    assert_eq!(
        api.put(
            &format!("{RBAC}/clusterroles/view-secrets-extra"),
            Some(admin),
            &unlabelled
        )
        .status,
        200
    );
    assert!(
        eventually(Duration::from_secs(3), || !has_rule(&view(), &rule)),
        "view kept the rule: {}",
        view()
    );
    assert!(
        eventually(Duration::from_secs(3), || api.get(secret_path, vic).status
            == 403),
        "vic kept get secrets"
    );
    assert_eq!(
        api.get("/api/v1/namespaces/default/configmaps", vic).status,
        200,
        "view itself still works"
    );
}
