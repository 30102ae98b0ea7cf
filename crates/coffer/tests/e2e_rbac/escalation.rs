//! Escalation and bind checks (§15.4, §18.4): refused without `escalate`/`bind`, allowed
//! with them; an `aggregationRule` needs full authority.

use super::*;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
const ROLEBINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
const CLUSTERROLEBINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const CLUSTERROLES: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
/// cluster-admin's rules as kube lists them when they are not held (compacted, sorted).
const CLUSTER_ADMIN_RULES: &str = "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}";
/// The one rule of get+list on secrets that a holder of get alone lacks (§18.4).
const LIST_SECRETS_RULE: &str = "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"list\"]}";

/// kube's first line of an escalation denial for a user in group `devs` (§15.4).
fn not_held(user: &str, resource: &str, name: &str) -> String {
    format!(
        "{resource}.rbac.authorization.k8s.io \"{name}\" is forbidden: user \"{user}\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"
    )
}

/// Asserts a 403 Forbidden with exactly `message`, naming `resource` of the RBAC group.
fn refused(reply: &Reply, message: &str, resource: &str) {
    assert_eq!(reply.status, 403, "{}", reply.text());
    let status = reply.json();
    assert_eq!(status["reason"], "Forbidden", "{status}");
    assert_eq!(reply.message(), message, "{status}");
    assert_eq!(status["details"]["group"], RBAC_GROUP, "{status}");
    assert_eq!(status["details"]["kind"], resource, "{status}");
}

/// Asserts the denial of binding cluster-admin by `user` in binding `name`.
fn refused_cluster_admin(reply: &Reply, user: &str, resource: &str, name: &str) {
    let message = format!("{}\n{CLUSTER_ADMIN_RULES}", not_held(user, resource, name));
    refused(reply, &message, resource);
}

/// POSTs a binding of `role` to `subject` as `who`: a RoleBinding in `default`, or a
/// ClusterRoleBinding.
fn bind(api: &Api, who: Option<&str>, kind: &str, name: &str, role: &str, subject: &str) -> Reply {
    let (path, namespace) = match kind {
        "RoleBinding" => (ROLEBINDINGS, Some("default")),
        _ => (CLUSTERROLEBINDINGS, None),
    };
    let binding = user_binding(kind, name, namespace, "ClusterRole", role, subject);
    api.post(path, who, &binding)
}

#[test]
fn escalation_is_refused_unless_escalate_or_bind_is_held() {
    let devs = || vec!["devs".to_owned()];
    let tokens = Tokens::new([("bob", devs()), ("erin", devs()), ("finn", devs())]);
    let coffer = Coffer::start_with_tokens(&tokens, &[]);
    let api = Api::new(&coffer);
    let admin = tokens.token(Tokens::ADMIN);
    let (bob, erin, finn) = (
        Some(tokens.token("bob")),
        Some(tokens.token("erin")),
        Some(tokens.token("finn")),
    );
    let grant = |kind: &str, name: &str, role_kind: &str, role: &str, user: &str| {
        let namespace = (kind == "RoleBinding").then_some("default");
        api.create(
            admin,
            &user_binding(kind, name, namespace, role_kind, role, user),
        );
    };

    // Each user holds get on secrets in default, and may write roles and bindings (the
    // ordinary create/update permission is checked first, §15.4) and ClusterRoles and
    // ClusterRoleBindings.
    let get_secrets = json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]);
    api.create(
        admin,
        &role(
            "Role",
            "secret-getter",
            Some("default"),
            get_secrets.clone(),
        ),
    );
    let rbac_writer = json!([{"apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"], "verbs": ["get", "create", "update", "patch"]}]);
    api.create(
        admin,
        &role("Role", "rbac-writer", Some("default"), rbac_writer),
    );
    let cluster_writer = json!([{"apiGroups": [RBAC_GROUP], "resources": ["clusterroles", "clusterrolebindings"], "verbs": ["create"]}]);
    api.create(
        admin,
        &role("ClusterRole", "cluster-rbac-writer", None, cluster_writer),
    );
    for user in ["bob", "erin", "finn"] {
        grant(
            "RoleBinding",
            &format!("{user}-gets"),
            "Role",
            "secret-getter",
            user,
        );
        grant(
            "RoleBinding",
            &format!("{user}-writes-rbac"),
            "Role",
            "rbac-writer",
            user,
        );
        let name = format!("{user}-writes-cluster-rbac");
        grant(
            "ClusterRoleBinding",
            &name,
            "ClusterRole",
            "cluster-rbac-writer",
            user,
        );
    }
    let get_and_list =
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]);

    // §18.4: a Role with more than bob holds, exactly kube's two lines.
    let r = api.post(
        ROLES,
        bob,
        &role("Role", "r", Some("default"), get_and_list.clone()),
    );
    let expected = format!("{}\n{LIST_SECRETS_RULE}", not_held("bob", "roles", "r"));
    refused(&r, &expected, "roles");
    // ... and what he holds is fine.
    let ok = api.post(
        ROLES,
        bob,
        &role("Role", "r-get", Some("default"), get_secrets),
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    // Updating a Role he may edit to grant more is refused the same way.
    let mut bigger = role("Role", "r-get", Some("default"), get_and_list.clone());
    bigger["metadata"]["resourceVersion"] = ok.json()["metadata"]["resourceVersion"].clone();
    let r = api.put(&format!("{ROLES}/r-get"), bob, &bigger);
    let expected = format!("{}\n{LIST_SECRETS_RULE}", not_held("bob", "roles", "r-get"));
    refused(&r, &expected, "roles");

    // Binding cluster-admin: a RoleBinding and a ClusterRoleBinding.
    let r = bind(
        &api,
        bob,
        "RoleBinding",
        "bob-admin",
        "cluster-admin",
        "bob",
    );
    refused_cluster_admin(&r, "bob", "rolebindings", "bob-admin");
    let r = bind(
        &api,
        bob,
        "ClusterRoleBinding",
        "bob-cluster-admin",
        "cluster-admin",
        "bob",
    );
    refused_cluster_admin(&r, "bob", "clusterrolebindings", "bob-cluster-admin");

    // Editing his own RoleBinding to point at a bigger role: refused before the roleRef
    // immutability check (kube's escalation check wraps the update), by PUT and by PATCH.
    let own_path = format!("{ROLEBINDINGS}/bob-gets");
    let own = api.get(&own_path, bob);
    assert_eq!(own.status, 200, "bob reads his own binding: {}", own.text());
    let current = own.json();
    let mut edited = current.clone();
    edited["roleRef"]["kind"] = json!("ClusterRole");
    edited["roleRef"]["name"] = json!("cluster-admin");
    let r = api.put(&own_path, bob, &edited);
    refused_cluster_admin(&r, "bob", "rolebindings", "bob-gets");
    let patch = br#"{"roleRef":{"kind":"ClusterRole","name":"cluster-admin"}}"#.to_vec();
    let r = api.send(
        "PATCH",
        &own_path,
        bob,
        Some(("application/merge-patch+json", patch)),
    );
    refused_cluster_admin(&r, "bob", "rolebindings", "bob-gets");
    let after = api.get(&own_path, Some(admin)).json();
    assert_eq!(
        after["roleRef"], current["roleRef"],
        "the binding is unchanged"
    );
    let list = api.get("/api/v1/namespaces/default/secrets", bob);
    assert_eq!(list.status, 403, "bob still may not list");

    // An aggregationRule needs full authority, even with nothing in `rules`.
    let aggregated = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "bob-agg"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]},
    });
    let r = api.post(CLUSTERROLES, bob, &aggregated);
    refused(
        &r,
        "clusterroles.rbac.authorization.k8s.io \"bob-agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule",
        "clusterroles",
    );
    let r = api.post(CLUSTERROLES, Some(admin), &aggregated);
    assert_eq!(r.status, 201, "the admin may: {}", r.text());

    // With `escalate` on roles, erin may create the Role bob could not ...
    let escalate =
        json!([{"apiGroups": [RBAC_GROUP], "resources": ["roles"], "verbs": ["escalate"]}]);
    api.create(
        admin,
        &role("Role", "role-escalator", Some("default"), escalate),
    );
    grant(
        "RoleBinding",
        "erin-escalates",
        "Role",
        "role-escalator",
        "erin",
    );
    let r = api.post(
        ROLES,
        erin,
        &role("Role", "r", Some("default"), get_and_list),
    );
    assert_eq!(r.status, 201, "escalate allows it: {}", r.text());
    // ... but escalate is not bind.
    let r = bind(
        &api,
        erin,
        "RoleBinding",
        "erin-admin",
        "cluster-admin",
        "zed",
    );
    refused_cluster_admin(&r, "erin", "rolebindings", "erin-admin");

    // With `bind` on the ClusterRole named cluster-admin, finn may bind it (to someone else)
    // in a RoleBinding and a ClusterRoleBinding, and nothing else he does not hold.
    let bind_rule = json!([{"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]);
    api.create(
        admin,
        &role("ClusterRole", "bind-cluster-admin", None, bind_rule),
    );
    grant(
        "ClusterRoleBinding",
        "finn-binds",
        "ClusterRole",
        "bind-cluster-admin",
        "finn",
    );
    let r = bind(&api, finn, "RoleBinding", "zed-edit", "edit", "zed");
    assert_eq!(r.status, 403, "bind is only on cluster-admin: {}", r.text());
    let first_line = not_held("finn", "rolebindings", "zed-edit");
    assert!(r.message().starts_with(&first_line), "{}", r.message());
    let r = bind(
        &api,
        finn,
        "RoleBinding",
        "zed-admin",
        "cluster-admin",
        "zed",
    );
    assert_eq!(r.status, 201, "bind allows it: {}", r.text());
    let r = bind(
        &api,
        finn,
        "ClusterRoleBinding",
        "zed-cluster-admin",
        "cluster-admin",
        "zed",
    );
    assert_eq!(r.status, 201, "bind allows it: {}", r.text());
    // finn himself gained nothing.
    let list = api.get("/api/v1/namespaces/default/secrets", finn);
    assert_eq!(list.status, 403, "{}", list.text());
}
