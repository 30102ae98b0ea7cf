use serde_json::json;

use super::*;
use crate::policy::Policy;

fn attrs(resource: &str, sub: &str) -> Attributes {
    Attributes {
        user: "alice".into(),
        groups: vec!["devs".into()],
        verb: "create".into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: "default".into(),
        name: "db".into(),
        path: "/api/v1/namespaces/default/x".into(),
        is_resource: true,
        ..Attributes::default()
    }
}

fn user() -> EventUser {
    EventUser {
        username: "alice".into(),
        groups: vec!["devs".into(), "system:authenticated".into()],
        ..EventUser::default()
    }
}

const T0: i64 = 1_795_946_400_123_456; // 2026-11-29T10:00:00.123456Z

fn all_request_response() -> Policy {
    Policy::from_slice(
        b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n",
        "t",
    )
    .expect("valid")
}

#[test]
fn microtime_has_six_digits_in_utc() {
    let t = MicroTime::from_unix_micros(T0);
    assert_eq!(t.to_string(), "2026-11-29T10:00:00.123456Z");
    assert_eq!(
        MicroTime::from_unix_micros(0).to_string(),
        "1970-01-01T00:00:00.000000Z"
    );
    let back: MicroTime = serde_json::from_str("\"2026-11-29T10:00:00.123456Z\"").expect("parse");
    assert_eq!(back, t);
}

#[test]
fn json_shape_matches_kube_with_omitempty() {
    let mut e = Event::metadata(
        "8d1c2f4e-0000-4000-8000-000000000001",
        Level::Metadata,
        Stage::ResponseComplete,
        &attrs("pods", ""),
        user(),
        "/api/v1/namespaces/default/pods",
        MicroTime::from_unix_micros(T0),
    );
    e.stage_timestamp = MicroTime::from_unix_micros(T0 + 1_000);
    e.source_ips = vec!["127.0.0.1".into()];
    e.user_agent = "kubectl/v1.33.0".into();
    e.response_status = Some(ResponseStatus::code(201));
    e.annotations
        .insert("authorization.k8s.io/decision".into(), "allow".into());
    let value = serde_json::to_value(&e).expect("serialize");
    assert_eq!(
        value,
        json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": "8d1c2f4e-0000-4000-8000-000000000001",
            "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/default/pods",
            "verb": "create",
            "user": {"username": "alice", "groups": ["devs", "system:authenticated"]},
            "sourceIPs": ["127.0.0.1"],
            "userAgent": "kubectl/v1.33.0",
            "objectRef": {"resource": "pods", "namespace": "default", "name": "db", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 201},
            "requestReceivedTimestamp": "2026-11-29T10:00:00.123456Z",
            "stageTimestamp": "2026-11-29T10:00:00.124456Z",
            "annotations": {"authorization.k8s.io/decision": "allow"}
        })
    );
    let back: Event = serde_json::from_value(value).expect("deserialize");
    assert_eq!(back, e);
}

#[test]
fn non_resource_request_has_no_object_ref() {
    let a = Attributes {
        verb: "get".into(),
        path: "/healthz".into(),
        ..Attributes::default()
    };
    let e = Event::metadata(
        "id",
        Level::Metadata,
        Stage::RequestReceived,
        &a,
        user(),
        "/healthz",
        MicroTime::now(),
    );
    let text = serde_json::to_string(&e).expect("serialize");
    assert!(!text.contains("objectRef"), "{text}");
    assert!(!text.contains("responseStatus"), "{text}");
}

#[test]
fn secrets_at_request_response_policy_come_out_at_metadata_without_bodies() {
    let policy = all_request_response();
    for (resource, sub) in [
        ("secrets", ""),
        ("serviceaccounts", "token"),
        ("configmaps", ""),
    ] {
        let a = attrs(resource, sub);
        let config = policy.decide(&a);
        let mut e = Event::metadata(
            "id",
            config.level,
            Stage::ResponseComplete,
            &a,
            user(),
            "/x",
            MicroTime::now(),
        );
        e.attach_bodies(
            &config,
            Some(json!({"data": {"password": "TXlTdHJvbmdQYXNzd29yZA=="}})),
            Some(json!({"data": {"password": "TXlTdHJvbmdQYXNzd29yZA=="}})),
        );
        assert_eq!(e.level, Level::Metadata, "{resource}");
        let text = serde_json::to_string(&e).expect("serialize");
        assert!(
            !text.contains("requestObject") && !text.contains("responseObject"),
            "{text}"
        );
        assert!(!text.contains("TXlTdHJvbmdQYXNzd29yZA"), "{text}");
    }
}

#[test]
fn even_a_hand_built_secret_event_is_capped_by_enforce_limits() {
    let mut e = Event::metadata(
        "id",
        Level::Metadata,
        Stage::ResponseComplete,
        &attrs("secrets", ""),
        user(),
        "/x",
        MicroTime::now(),
    );
    // A careless caller raising the level and setting bodies directly:
    e.level = Level::RequestResponse;
    e.request_object = Some(json!({"data": {"k": "c2VjcmV0"}}));
    e.response_object = Some(json!({"data": {"k": "c2VjcmV0"}}));
    e.enforce_limits();
    assert_eq!(e.level, Level::Metadata);
    assert!(e.request_object.is_none() && e.response_object.is_none());
}

#[test]
fn bodies_follow_the_level_for_other_resources() {
    let policy = all_request_response();
    let a = attrs("pods", "");
    let mut config = policy.decide(&a);
    config.omit_managed_fields = true;
    let body = json!({"metadata": {"name": "p", "managedFields": [{"manager": "kubectl"}]}});
    let mut full = Event::metadata(
        "id",
        config.level,
        Stage::ResponseComplete,
        &a,
        user(),
        "/x",
        MicroTime::now(),
    );
    full.attach_bodies(&config, Some(body.clone()), Some(body.clone()));
    assert_eq!(
        full.request_object,
        Some(json!({"metadata": {"name": "p"}}))
    );
    assert!(full.response_object.is_some());

    let mut request_only = Event::metadata(
        "id",
        Level::Request,
        Stage::ResponseComplete,
        &a,
        user(),
        "/x",
        MicroTime::now(),
    );
    request_only.attach_bodies(&config, Some(body.clone()), Some(body.clone()));
    assert!(request_only.request_object.is_some());
    assert!(request_only.response_object.is_none());

    let mut meta = Event::metadata(
        "id",
        Level::Metadata,
        Stage::ResponseComplete,
        &a,
        user(),
        "/x",
        MicroTime::now(),
    );
    meta.attach_bodies(&config, Some(body.clone()), Some(body));
    assert!(meta.request_object.is_none() && meta.response_object.is_none());
}
