//! The audit layer (DESIGN.md's request path; `--audit-log-path`, `--audit-policy-file`):
//! one `audit.k8s.io/v1` Event per request at `ResponseComplete` (and `RequestReceived`
//! unless the policy omits it), at the level the policy picks for the authenticated user.
//!
//! What it never records: request or response bodies of Secrets, ConfigMaps, TokenRequests
//! and TokenReviews (`coffer_audit::capped` holds them at `Metadata` whatever the policy
//! says), the `Authorization` header, or token values. Bodies of other kinds are recorded at
//! `Request`/`RequestResponse` as JSON, up to [`MAX_AUDITED_BODY`].

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use coffer_access::RequestAttributes;
use coffer_audit::{
    Attributes, AuditLog, Event, EventUser, Level, MicroTime, Policy, RequestAuditConfig,
    ResponseStatus, Stage,
};
use http_body_util::BodyExt;

use crate::authn::UserInfo;
use crate::state::AppState;

/// Bodies larger than this are not copied into the log.
pub const MAX_AUDITED_BODY: usize = 1 << 20;

/// The audit log and its policy.
pub struct Auditor {
    /// Where events go.
    pub log: AuditLog,
    /// Which level each request gets.
    pub policy: Policy,
}

/// What inner layers learn about a request for its event: the impersonated user and the
/// authorization decision. Shared between the audit layer and the layers it wraps.
#[derive(Clone, Default)]
pub struct AuditNotes(Arc<Mutex<Notes>>);

#[derive(Default)]
struct Notes {
    impersonated: Option<UserInfo>,
    decision: Option<(&'static str, String)>,
}

impl AuditNotes {
    /// Records that the request runs as `user`.
    pub fn impersonated(&self, user: &UserInfo) {
        if let Ok(mut n) = self.0.lock() {
            n.impersonated = Some(user.clone());
        }
    }

    /// Records the authorization decision (`allow` or `forbid`) and RBAC's reason.
    pub fn decision(&self, decision: &'static str, reason: &str) {
        if let Ok(mut n) = self.0.lock() {
            n.decision = Some((decision, reason.to_owned()));
        }
    }
}

/// The layer: decides the level, writes `RequestReceived`, runs the request, writes
/// `ResponseComplete`. A failing audit log fails the request closed (500), as kube-apiserver's
/// blocking backend does, so nothing happens unaudited. Its caller boxes it: most servers run
/// without an audit log, and their requests' futures need not hold this one.
pub async fn audit<F, Fut>(state: &AppState, mut req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Some(auditor) = state.audit.as_ref() else {
        return next(req).await;
    };
    let Some(user) = req.extensions().get::<Arc<UserInfo>>().cloned() else {
        return next(req).await;
    };
    let received = MicroTime::now();
    let request_attrs = coffer_access::request_attributes(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
    );
    let attrs = attributes(&user, &request_attrs, req.uri().path());
    let config = auditor.policy.decide(&attrs);
    if config.level == Level::None {
        return next(req).await;
    }
    let audit_id = uuid::Uuid::new_v4().to_string();
    let uri = req.uri().to_string();
    let mut event = Event::metadata(
        audit_id.clone(),
        config.level,
        Stage::RequestReceived,
        &attrs,
        event_user(&user),
        uri,
        received,
    );
    event.source_ips = source_ips(&req);
    event.user_agent = req
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !config.omit_stages.contains(Stage::RequestReceived)
        && let Err(e) = auditor.log.log(event.clone())
    {
        return audit_failed(&e);
    }
    let notes = AuditNotes::default();
    req.extensions_mut().insert(notes.clone());
    let request_body = if event.level >= Level::Request {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json = json_body(&bytes);
        req = Request::from_parts(parts, Body::from(bytes));
        json
    } else {
        None
    };
    let mut response = next(req).await;
    let response_body = if event.level >= Level::RequestResponse && !is_stream(&response) {
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json = json_body(&bytes);
        response = Response::from_parts(parts, Body::from(bytes));
        json
    } else {
        None
    };
    finish(
        &mut event,
        &config,
        &notes,
        &response,
        request_body,
        response_body,
    );
    if !config.omit_stages.contains(Stage::ResponseComplete)
        && let Err(e) = auditor.log.log(event)
    {
        return audit_failed(&e);
    }
    response
}

fn finish(
    event: &mut Event,
    config: &RequestAuditConfig,
    notes: &AuditNotes,
    response: &Response,
    request_body: Option<serde_json::Value>,
    response_body: Option<serde_json::Value>,
) {
    event.stage = Stage::ResponseComplete;
    event.stage_timestamp = MicroTime::now();
    let code = response.status().as_u16();
    event.response_status = Some(ResponseStatus::code(i32::from(code)));
    if let Ok(n) = notes.0.lock() {
        event.impersonated_user = n.impersonated.as_ref().map(event_user);
        if let Some((decision, reason)) = &n.decision {
            event.annotations.insert(
                "authorization.k8s.io/decision".to_owned(),
                (*decision).to_owned(),
            );
            if !reason.is_empty() {
                event
                    .annotations
                    .insert("authorization.k8s.io/reason".to_owned(), reason.clone());
            }
        }
    }
    event.attach_bodies(config, request_body, response_body);
}

fn audit_failed(e: &coffer_audit::AuditError) -> Response {
    use axum::response::IntoResponse;
    tracing::error!(error = %e, "audit log write failed; refusing the request");
    crate::status::ApiError::internal(format!("audit log: {e}")).into_response()
}

fn attributes(user: &UserInfo, request: &RequestAttributes, path: &str) -> Attributes {
    let mut attrs = Attributes {
        user: user.name.clone(),
        groups: user.groups.clone(),
        verb: request.verb().to_owned(),
        path: path.to_owned(),
        ..Attributes::default()
    };
    if let RequestAttributes::Resource(r) = request {
        attrs.is_resource = true;
        attrs.api_group.clone_from(&r.group);
        attrs.api_version.clone_from(&r.version);
        attrs.resource.clone_from(&r.resource);
        attrs.subresource.clone_from(&r.subresource);
        attrs.namespace.clone_from(&r.namespace);
        attrs.name.clone_from(&r.name);
    }
    attrs
}

fn event_user(user: &UserInfo) -> EventUser {
    EventUser {
        username: user.name.clone(),
        uid: user.uid.clone(),
        groups: user.groups.clone(),
        extra: user.extra.clone(),
    }
}

fn source_ips(req: &Request) -> Vec<String> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| vec![c.0.ip().to_string()])
        .unwrap_or_default()
}

fn json_body(bytes: &[u8]) -> Option<serde_json::Value> {
    if bytes.is_empty() || bytes.len() > MAX_AUDITED_BODY {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

fn is_stream(response: &Response) -> bool {
    use axum::body::HttpBody as _;
    response.body().size_hint().exact().is_none()
}
