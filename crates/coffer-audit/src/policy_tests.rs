use super::*;

const GOOD: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
metadata:
  name: example
omitStages: [RequestReceived]
omitManagedFields: true
rules:
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
      - group: ""
        resources: ["endpoints", "services", "services/status"]
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["pods/log", "*/scale", "deployments/*"]
        resourceNames: ["web"]
    namespaces: ["", "prod"]
    omitStages: [Panic]
    omitManagedFields: false
  - level: Metadata
"#;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_slice(text.as_bytes(), "policy.yaml")
}

fn invalid_fields(text: &str) -> Vec<FieldError> {
    match parse(text) {
        Err(PolicyError::Invalid { errors, .. }) => errors,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn parses_a_full_policy() {
    let policy = parse(GOOD).expect("valid");
    assert_eq!(policy.rules().len(), 4);
    assert!(policy.omit_stages().contains(Stage::RequestReceived));
    assert!(policy.omit_managed_fields);
    let r2 = &policy.rules()[2];
    assert_eq!(r2.level, Level::RequestResponse);
    assert_eq!(r2.namespaces, vec!["".to_owned(), "prod".to_owned()]);
    assert_eq!(r2.resources[0].resource_names, vec!["web".to_owned()]);
    assert!(r2.omit_stages.contains(Stage::Panic));
    assert_eq!(r2.omit_managed_fields, Some(false));
    assert_eq!(policy.rules()[1].non_resource_urls.len(), 2);
}

#[test]
fn parses_json_too() {
    let json = r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy",
        "rules":[{"level":"Metadata","resources":[{"group":"","resources":["secrets"]}]}]}"#;
    let policy = parse(json).expect("valid json");
    assert_eq!(policy.rules()[0].resources[0].resources, vec!["secrets"]);
}

#[test]
fn unknown_field_names_the_field_and_path() {
    let err = parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - levle: Metadata\n")
        .expect_err("unknown field");
    let text = err.to_string();
    assert!(text.contains("levle"), "{text}");
    assert!(text.contains("rules[0]"), "{text}");
}

#[test]
fn unknown_field_in_group_resources() {
    let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    resources:\n      - group: \"\"\n        resource: [secrets]\n";
    let err = parse(text).expect_err("unknown field").to_string();
    assert!(err.contains("resource`"), "{err}");
    assert!(err.contains("rules[0].resources[0]"), "{err}");
}

#[test]
fn bad_level_is_named() {
    let errors =
        invalid_fields("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Full\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "rules[0].level");
    assert_eq!(
        errors[0].message,
        "Unsupported value: \"Full\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\""
    );
}

#[test]
fn missing_level_and_bad_stage() {
    let errors = invalid_fields(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Done]\nrules:\n  - users: [a]\n    omitStages: [Panic, Later]\n",
    );
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["omitStages[0]", "rules[0].level", "rules[0].omitStages[1]"]
    );
}

#[test]
fn wrong_kind_and_version() {
    let errors =
        invalid_fields("apiVersion: audit.k8s.io/v1beta1\nkind: Pol\nrules:\n  - level: None\n");
    assert_eq!(errors[0].field, "kind");
    assert_eq!(errors[1].field, "apiVersion");
    assert!(errors[1].message.contains("removed in Kubernetes 1.24"));
}

#[test]
fn zero_rules_refused() {
    let errors = invalid_fields("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n");
    assert_eq!(errors[0].field, "rules");
}

#[test]
fn resources_and_non_resource_urls_exclusive() {
    let errors = invalid_fields(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    namespaces: [a]\n    nonResourceURLs: [/x]\n",
    );
    assert_eq!(errors[0].field, "rules[0].nonResourceURLs");
    assert!(
        errors[0]
            .message
            .contains("both regular resources and non-resource URLs")
    );
}

#[test]
fn non_resource_url_shape() {
    let errors = invalid_fields(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    nonResourceURLs: [healthz, \"/a*b\", \"*\", \"/ok*\"]\n",
    );
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["rules[0].nonResourceURLs[0]", "rules[0].nonResourceURLs[1]"]
    );
    assert!(errors[0].message.contains("must begin with a '/'"));
    assert!(errors[1].message.contains("must be the final character"));
}

#[test]
fn group_and_resource_names_checked() {
    let errors = invalid_fields(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    resources:\n      - group: Apps\n        resourceNames: [x]\n      - resources: [\"a/b/c\", \"\"]\n",
    );
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "rules[0].resources[0].group",
            "rules[0].resources[0].resourceNames",
            "rules[0].resources[1].resources[0]",
            "rules[0].resources[1].resources[1]",
        ]
    );
}

#[test]
fn syntax_error_is_a_decode_error() {
    let err = parse("rules: [").expect_err("syntax");
    assert!(matches!(err, PolicyError::Decode { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("failed to load audit policy from policy.yaml")
    );
}

#[test]
fn from_file_reads_and_reports_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, GOOD).expect("write");
    assert_eq!(Policy::from_file(&path).expect("valid").rules().len(), 4);
    let err = Policy::from_file(&dir.path().join("absent.yaml")).expect_err("missing");
    assert!(matches!(err, PolicyError::Read { .. }));
}

#[test]
fn default_policy_is_metadata_for_all() {
    let policy = Policy::default_metadata();
    assert_eq!(policy.rules().len(), 1);
    assert_eq!(policy.rules()[0].level, Level::Metadata);
    assert!(policy.omit_stages().is_empty());
}
