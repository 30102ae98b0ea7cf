//! Default deny: a fresh user gets discovery, health, version and the self reviews only;
//! anonymous gets health and version only (§13.5, §15.5).

use super::*;

#[test]
fn default_deny_for_new_and_anonymous_users() {
    let tokens = Tokens::new([("newbie", vec![])]);
    let coffer = Coffer::start_with_tokens(&tokens, &[]);
    let api = Api::new(&coffer);
    let admin = tokens.token(Tokens::ADMIN);
    let newbie = Some(tokens.token("newbie"));
    api.create(admin, &secret("s1", "default", &[("k", "v")]));

    // Discovery, OpenAPI, health, version: allowed (system:discovery, public-info-viewer).
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/rbac.authorization.k8s.io/v1",
        "/openapi/v3",
        "/openapi/v2",
        "/healthz",
        "/livez",
        "/readyz",
        "/version",
    ] {
        let r = api.get(path, newbie);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    }
    // Self reviews: allowed (system:basic-user).
    let ssar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "secrets"}}});
    let r = api.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        newbie,
        &ssar,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"]["allowed"], false);
    let ssrr = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}});
    let r = api.post(
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        newbie,
        &ssrr,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let resource_rules = r.json()["status"]["resourceRules"].clone();
    for rule in resource_rules.as_array().expect("resourceRules") {
        let groups = rule["apiGroups"].as_array().expect("apiGroups");
        assert!(
            groups
                .iter()
                .all(|g| g == "authorization.k8s.io" || g == "authentication.k8s.io"),
            "only the self reviews: {resource_rules}"
        );
    }
    for version in ["v1", "v1beta1"] {
        let ssr = json!({"apiVersion": format!("authentication.k8s.io/{version}"), "kind": "SelfSubjectReview"});
        let r = api.post(
            &format!("/apis/authentication.k8s.io/{version}/selfsubjectreviews"),
            newbie,
            &ssr,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["status"]["userInfo"]["username"], "newbie");
    }
    // Everything else: 403, kube's wording.
    for (method, path, message) in [
        (
            "GET",
            "/api/v1/namespaces/default/secrets",
            r#"secrets is forbidden: User "newbie" cannot list resource "secrets" in API group "" in the namespace "default""#,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/secrets/s1",
            r#"secrets "s1" is forbidden: User "newbie" cannot get resource "secrets" in API group "" in the namespace "default""#,
        ),
        (
            "GET",
            "/api/v1/secrets",
            r#"secrets is forbidden: User "newbie" cannot list resource "secrets" in API group "" at the cluster scope"#,
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/secrets/s1",
            r#"secrets "s1" is forbidden: User "newbie" cannot delete resource "secrets" in API group "" in the namespace "default""#,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps",
            r#"configmaps is forbidden: User "newbie" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        ),
        (
            "GET",
            "/api/v1/namespaces",
            r#"namespaces is forbidden: User "newbie" cannot list resource "namespaces" in API group "" at the cluster scope"#,
        ),
        (
            "GET",
            "/api/v1/namespaces/default",
            r#"namespaces "default" is forbidden: User "newbie" cannot get resource "namespaces" in API group "" in the namespace "default""#,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/serviceaccounts",
            r#"serviceaccounts is forbidden: User "newbie" cannot list resource "serviceaccounts" in API group "" in the namespace "default""#,
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "newbie" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#,
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            r#"roles.rbac.authorization.k8s.io is forbidden: User "newbie" cannot list resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "default""#,
        ),
        (
            "GET",
            "/metrics",
            r#"forbidden: User "newbie" cannot get path "/metrics""#,
        ),
        (
            "POST",
            "/api",
            r#"forbidden: User "newbie" cannot post path "/api""#,
        ),
    ] {
        let r = api.send(method, path, newbie, None);
        assert_eq!(
            (r.status, r.message()),
            (403, message.to_owned()),
            "{method} {path}"
        );
    }
    let r = api.post(
        "/api/v1/namespaces/default/secrets",
        newbie,
        &secret("mine", "default", &[("k", "v")]),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.message(),
        r#"secrets is forbidden: User "newbie" cannot create resource "secrets" in API group "" in the namespace "default""#
    );
    let r = api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", newbie, &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "admin", "resourceAttributes": {"verb": "get", "resource": "secrets"}}}));
    assert_eq!(r.status, 403, "only self reviews: {}", r.text());
    let newbie_config = coffer.kubeconfig_for("newbie", tokens.token("newbie"));
    for v in KUBECTLS {
        refused_as(
            &coffer,
            v,
            &newbie_config,
            &["get", "secrets"],
            r#"Error from server (Forbidden): secrets is forbidden: User "newbie" cannot list resource "secrets" in API group "" in the namespace "default""#,
        );
        let out = kubectl_as(
            &coffer,
            v,
            &newbie_config,
            &["auth", "can-i", "get", "secrets"],
        );
        assert_eq!(stdout(&out).trim(), "no");
    }

    // Anonymous: health and version only.
    let r = api.get("/api/v1/namespaces/default/secrets", None);
    assert_eq!(
        (r.status, r.message()),
        (403, r#"secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in API group "" in the namespace "default""#.to_owned()),
        "{}",
        r.text()
    );
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(api.get(path, None).status, 200, "anonymous GET {path}");
    }
    assert!(api.get("/version", None).json()["gitVersion"].is_string());
    for path in ["/api", "/apis", "/openapi/v3"] {
        let r = api.get(path, None);
        assert_eq!(
            (r.status, r.message()),
            (
                403,
                format!(r#"forbidden: User "system:anonymous" cannot get path "{path}""#)
            ),
            "anonymous GET {path}"
        );
    }
    let r = api.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        None,
        &ssar,
    );
    assert_eq!(r.status, 403, "anonymous has no self reviews: {}", r.text());
    // A presented but unknown token is 401, never anonymous.
    let r = api.get("/healthz", Some("not-a-token"));
    assert_eq!(r.status, 401, "{}", r.text());
}
