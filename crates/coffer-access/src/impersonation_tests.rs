use super::*;

fn parse(headers: &[(&str, &str)]) -> Result<Option<Impersonation>, ImpersonationError> {
    parse_impersonation(headers.iter().copied())
}

fn check(group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> ResourceAttributes {
    ResourceAttributes {
        verb: "impersonate".into(),
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        ..ResourceAttributes::default()
    }
}

fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

#[test]
fn no_headers_no_impersonation() {
    assert_eq!(
        parse(&[("Authorization", "Bearer x"), ("Accept", "*/*")]),
        Ok(None)
    );
    assert_eq!(parse(&[("Impersonate-User", "")]), Ok(None));
}

/// The §14 table, row by row.
#[test]
fn checks_as_the_table() {
    let imp = parse(&[
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "devs"),
        ("impersonate-uid", "123"),
        ("Impersonate-Extra-scopes", "view"),
        ("IMPERSONATE-EXTRA-SCOPES", "edit"),
    ])
    .expect("valid")
    .expect("present");
    assert_eq!(
        imp.checks(),
        vec![
            check("", "users", "", "", "bob"),
            check("", "groups", "", "", "devs"),
            check("authentication.k8s.io", "userextras", "scopes", "", "view"),
            check("authentication.k8s.io", "userextras", "scopes", "", "edit"),
            check("authentication.k8s.io", "uids", "", "", "123"),
        ]
    );
    let sa = parse(&[("Impersonate-User", "system:serviceaccount:ns1:sa1")])
        .expect("valid")
        .expect("present");
    assert_eq!(
        sa.checks(),
        vec![check("", "serviceaccounts", "", "ns1", "sa1")]
    );
    // Not a valid ServiceAccount name: an ordinary user.
    let odd = parse(&[("Impersonate-User", "system:serviceaccount:NS:sa")])
        .expect("valid")
        .expect("present");
    assert_eq!(
        odd.checks(),
        vec![check("", "users", "", "", "system:serviceaccount:NS:sa")]
    );
}

#[test]
fn resulting_identity() {
    let bob = parse(&[("Impersonate-User", "bob")])
        .expect("valid")
        .expect("present")
        .user();
    assert_eq!(
        (bob.name.as_str(), bob.groups.clone()),
        ("bob", strings(&["system:authenticated"]))
    );
    let devs = parse(&[
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "devs"),
        ("Impersonate-Group", "ops"),
        ("Impersonate-Uid", "u1"),
    ])
    .expect("valid")
    .expect("present")
    .user();
    assert_eq!(
        devs.groups,
        strings(&["devs", "ops", "system:authenticated"])
    );
    assert_eq!(devs.uid, "u1");
    let unauth = parse(&[
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "system:unauthenticated"),
    ])
    .expect("valid")
    .expect("present")
    .user();
    assert_eq!(unauth.groups, strings(&["system:unauthenticated"]));
    let sa = parse(&[("Impersonate-User", "system:serviceaccount:ns1:sa1")])
        .expect("valid")
        .expect("present")
        .user();
    assert_eq!(sa.name, "system:serviceaccount:ns1:sa1");
    assert_eq!(
        sa.groups,
        strings(&[
            "system:serviceaccounts",
            "system:serviceaccounts:ns1",
            "system:authenticated"
        ])
    );
    let sa_groups = parse(&[
        ("Impersonate-User", "system:serviceaccount:ns1:sa1"),
        ("Impersonate-Group", "g"),
    ])
    .expect("valid")
    .expect("present")
    .user();
    assert_eq!(sa_groups.groups, strings(&["g", "system:authenticated"]));
    let anon = parse(&[("Impersonate-User", "system:anonymous")])
        .expect("valid")
        .expect("present")
        .user();
    assert_eq!(anon.groups, strings(&["system:unauthenticated"]));
    assert!(anon.is_anonymous());
}

#[test]
fn extras_are_lowercased_and_percent_decoded() {
    let imp = parse(&[
        ("Impersonate-User", "bob"),
        ("Impersonate-Extra-Example.com%2fScopes", "a"),
        ("Impersonate-Extra-bad%zz", "b"),
    ])
    .expect("valid")
    .expect("present");
    let user = imp.user();
    assert_eq!(user.extra.get("example.com/scopes"), Some(&strings(&["a"])));
    assert_eq!(user.extra.get("bad%zz"), Some(&strings(&["b"])));
}

#[test]
fn groups_uid_or_extra_without_user_is_an_error() {
    let err = parse(&[("Impersonate-Group", "devs")]).expect_err("no user");
    assert_eq!(
        err.to_string(),
        "requested [{Group  devs    }] without impersonating a user"
    );
    let err = parse(&[
        ("Impersonate-Uid", "123"),
        ("Impersonate-Extra-scopes", "view"),
    ])
    .expect_err("no user");
    assert_eq!(
        err.to_string(),
        "requested [{UserExtra  view  authentication.k8s.io/v1  scopes} {UID  123  authentication.k8s.io/v1  }] without impersonating a user"
    );
}

#[test]
fn header_names_to_strip() {
    for h in [
        "Impersonate-User",
        "impersonate-group",
        "Impersonate-Uid",
        "Impersonate-Extra-x",
    ] {
        assert!(is_impersonation_header(h), "{h}");
    }
    assert!(!is_impersonation_header("Authorization"));
    assert!(!is_impersonation_header("Impersonate-Users"));
}
