//! Escalation and bind checks (§15.4, §18.4): refused without `escalate`/`bind`, allowed
//! with them; an `aggregationRule` needs full authority.

use super::*;

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
    let rbac = "rbac.authorization.k8s.io";

    // bob holds get on secrets in default, and may write roles and bindings (the ordinary
    // create/update permission is checked first, §15.4) and ClusterRoles/ClusterRoleBindings.
    api.create(
        admin,
        &role(
            "Role",
            "secret-getter",
            Some("default"),
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
        ),
    );
    api.create(admin, &role("Role", "rbac-writer", Some("default"), json!([{"apiGroups": [rbac], "resources": ["roles", "rolebindings"], "verbs": ["get", "create", "update", "patch"]}])));
    api.create(admin, &role("ClusterRole", "cluster-rbac-writer", None, json!([{"apiGroups": [rbac], "resources": ["clusterroles", "clusterrolebindings"], "verbs": ["create"]}])));
    for user in ["bob", "erin", "finn"] {
        api.create(
            admin,
            &user_binding(
                "RoleBinding",
                &format!("{user}-gets"),
                Some("default"),
                "Role",
                "secret-getter",
                user,
            ),
        );
        api.create(
            admin,
            &user_binding(
                "RoleBinding",
                &format!("{user}-writes-rbac"),
                Some("default"),
                "Role",
                "rbac-writer",
                user,
            ),
        );
        api.create(
            admin,
            &user_binding(
                "ClusterRoleBinding",
                &format!("{user}-writes-cluster-rbac"),
                None,
                "ClusterRole",
                "cluster-rbac-writer",
                user,
            ),
        );
    }
    let getter_and_lister =
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]);
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
    let rolebindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
    let crbs = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    let clusterroles = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
    let not_held = |user: &str, what: &str, name: &str| {
        format!(
            "{what}.rbac.authorization.k8s.io \"{name}\" is forbidden: user \"{user}\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"
        )
    };
    let cluster_admin_rules = "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}";
    let refused = |reply: &Reply, message: &str, resource: &str| {
        assert_eq!(reply.status, 403, "{}", reply.text());
        let status = reply.json();
        assert_eq!(status["reason"], "Forbidden", "{status}");
        assert_eq!(reply.message(), message, "{status}");
        assert_eq!(status["details"]["group"], rbac, "{status}");
        assert_eq!(status["details"]["kind"], resource, "{status}");
    };

    // §18.4: a Role with more than bob holds, exactly kube's two lines.
    let r = api.post(
        roles,
        bob,
        &role("Role", "r", Some("default"), getter_and_lister.clone()),
    );
    refused(
        &r,
        &format!(
            "{}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"list\"]}}",
            not_held("bob", "roles", "r")
        ),
        "roles",
    );
    // ... and what he holds is fine.
    let ok = api.post(
        roles,
        bob,
        &role(
            "Role",
            "r-get",
            Some("default"),
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
        ),
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    // Updating a Role he may edit to grant more is refused the same way.
    let mut bigger = role("Role", "r-get", Some("default"), getter_and_lister.clone());
    bigger["metadata"]["resourceVersion"] = ok.json()["metadata"]["resourceVersion"].clone();
    let r = api.put(&format!("{roles}/r-get"), bob, &bigger);
    refused(
        &r,
        &format!(
            "{}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"list\"]}}",
            not_held("bob", "roles", "r-get")
        ),
        "roles",
    );

    // Binding cluster-admin: a RoleBinding and a ClusterRoleBinding.
    let r = api.post(
        rolebindings,
        bob,
        &user_binding(
            "RoleBinding",
            "bob-admin",
            Some("default"),
            "ClusterRole",
            "cluster-admin",
            "bob",
        ),
    );
    refused(
        &r,
        &format!(
            "{}\n{cluster_admin_rules}",
            not_held("bob", "rolebindings", "bob-admin")
        ),
        "rolebindings",
    );
    let r = api.post(
        crbs,
        bob,
        &user_binding(
            "ClusterRoleBinding",
            "bob-cluster-admin",
            None,
            "ClusterRole",
            "cluster-admin",
            "bob",
        ),
    );
    refused(
        &r,
        &format!(
            "{}\n{cluster_admin_rules}",
            not_held("bob", "clusterrolebindings", "bob-cluster-admin")
        ),
        "clusterrolebindings",
    );

    // Editing his own RoleBinding to point at a bigger role: refused before the roleRef
    // immutability check (kube's escalation check wraps the update).
    let own = api.get(&format!("{rolebindings}/bob-gets"), bob);
    assert_eq!(own.status, 200, "bob reads his own binding: {}", own.text());
    let current = own.json();
    let mut edited = current.clone();
    edited["roleRef"]["kind"] = json!("ClusterRole");
    edited["roleRef"]["name"] = json!("cluster-admin");
    let r = api.put(&format!("{rolebindings}/bob-gets"), bob, &edited);
    refused(
        &r,
        &format!(
            "{}\n{cluster_admin_rules}",
            not_held("bob", "rolebindings", "bob-gets")
        ),
        "rolebindings",
    );
    let patch = br#"{"roleRef":{"kind":"ClusterRole","name":"cluster-admin"}}"#.to_vec();
    let r = api.send(
        "PATCH",
        &format!("{rolebindings}/bob-gets"),
        bob,
        Some(("application/merge-patch+json", patch)),
    );
    refused(
        &r,
        &format!(
            "{}\n{cluster_admin_rules}",
            not_held("bob", "rolebindings", "bob-gets")
        ),
        "rolebindings",
    );
    let after = api
        .get(&format!("{rolebindings}/bob-gets"), Some(admin))
        .json();
    assert_eq!(
        after["roleRef"], current["roleRef"],
        "the binding is unchanged"
    );
    assert_eq!(
        api.get("/api/v1/namespaces/default/secrets", bob).status,
        403,
        "bob still may not list"
    );

    // An aggregationRule needs full authority, even with nothing in `rules`.
    let aggregated = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "bob-agg"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]},
    });
    let r = api.post(clusterroles, bob, &aggregated);
    refused(
        &r,
        "clusterroles.rbac.authorization.k8s.io \"bob-agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule",
        "clusterroles",
    );
    let r = api.post(clusterroles, Some(admin), &aggregated);
    assert_eq!(r.status, 201, "the admin may: {}", r.text());

    // With `escalate` on roles, erin may create the Role bob could not.
    api.create(
        admin,
        &role(
            "Role",
            "role-escalator",
            Some("default"),
            json!([{"apiGroups": [rbac], "resources": ["roles"], "verbs": ["escalate"]}]),
        ),
    );
    api.create(
        admin,
        &user_binding(
            "RoleBinding",
            "erin-escalates",
            Some("default"),
            "Role",
            "role-escalator",
            "erin",
        ),
    );
    let r = api.post(
        roles,
        erin,
        &role("Role", "r", Some("default"), getter_and_lister.clone()),
    );
    assert_eq!(r.status, 201, "escalate allows it: {}", r.text());
    // ... but escalate is not bind.
    let r = api.post(
        rolebindings,
        erin,
        &user_binding(
            "RoleBinding",
            "erin-admin",
            Some("default"),
            "ClusterRole",
            "cluster-admin",
            "zed",
        ),
    );
    refused(
        &r,
        &format!(
            "{}\n{cluster_admin_rules}",
            not_held("erin", "rolebindings", "erin-admin")
        ),
        "rolebindings",
    );

    // With `bind` on the ClusterRole named cluster-admin, finn may bind it (to someone else)
    // in a RoleBinding and a ClusterRoleBinding, and nothing else he does not hold.
    api.create(admin, &role("ClusterRole", "bind-cluster-admin", None, json!([{"apiGroups": [rbac], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["cluster-admin"]}])));
    api.create(
        admin,
        &user_binding(
            "ClusterRoleBinding",
            "finn-binds",
            None,
            "ClusterRole",
            "bind-cluster-admin",
            "finn",
        ),
    );
    let r = api.post(
        rolebindings,
        finn,
        &user_binding(
            "RoleBinding",
            "zed-edit",
            Some("default"),
            "ClusterRole",
            "edit",
            "zed",
        ),
    );
    assert_eq!(r.status, 403, "bind is only on cluster-admin: {}", r.text());
    assert!(
        r.message()
            .starts_with(&not_held("finn", "rolebindings", "zed-edit")),
        "{}",
        r.message()
    );
    let r = api.post(
        rolebindings,
        finn,
        &user_binding(
            "RoleBinding",
            "zed-admin",
            Some("default"),
            "ClusterRole",
            "cluster-admin",
            "zed",
        ),
    );
    assert_eq!(r.status, 201, "bind allows it: {}", r.text());
    let r = api.post(
        crbs,
        finn,
        &user_binding(
            "ClusterRoleBinding",
            "zed-cluster-admin",
            None,
            "ClusterRole",
            "cluster-admin",
            "zed",
        ),
    );
    assert_eq!(r.status, 201, "bind allows it: {}", r.text());
    // finn himself gained nothing.
    assert_eq!(
        api.get("/api/v1/namespaces/default/secrets", finn).status,
        403
    );
}
