//! Impersonation (§14) and authorization (§15) as layers: every request is authorized against
//! the current RBAC snapshot before a handler runs, so a handler never sees a request its
//! caller may not make. Members of `system:masters` skip the snapshot (kube's
//! privileged-group authorizer). Denials are worded as kube-apiserver words them.

use std::sync::Arc;

use axum::extract::Request;
use coffer_access::rbac::forbidden_message;
use coffer_access::{RequestAttributes, ResourceAttributes};

use crate::audit::AuditNotes;
use crate::authn::UserInfo;
use crate::state::AppState;
use crate::status::ApiError;

/// Honours `Impersonate-*` headers: each requested identity must be allowed the `impersonate`
/// verb; the headers are then removed and the request continues as the impersonated user.
/// `Err` is why the request may not continue.
///
/// A check, not a layer around the rest of the request: a stage that awaited the next one
/// would hold the whole inner future in its own, and the per-request future grew to ~20 KB,
/// copied on every move (`docs/benchmarks.md`).
pub fn impersonate(state: &AppState, mut req: Request) -> Result<Request, ApiError> {
    let parsed = coffer_access::parse_impersonation(
        req.headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))),
    );
    let impersonation = match parsed {
        Ok(None) => return Ok(req),
        Ok(Some(i)) => i,
        Err(e) => return Err(ApiError::BadRequest(e.to_string())),
    };
    let Some(user) = req.extensions().get::<Arc<UserInfo>>().cloned() else {
        return Err(ApiError::Unauthorized);
    };
    if !user.is_master() {
        let policy = state.rbac.policy();
        for check in impersonation.checks() {
            let attrs = RequestAttributes::Resource(check);
            let decision = policy.authorize(&user, &attrs);
            if !decision.allowed {
                note_decision(&req, "forbid", &decision.reason);
                return Err(forbidden(&user, &attrs, &decision.reason));
            }
        }
    }
    let impersonated = impersonation.user();
    if let Some(notes) = req.extensions().get::<AuditNotes>() {
        notes.impersonated(&impersonated);
    }
    let headers = req.headers_mut();
    let names: Vec<_> = headers
        .keys()
        .filter(|n| coffer_access::is_impersonation_header(n.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
    req.extensions_mut().insert(Arc::new(impersonated));
    Ok(req)
}

/// Authorizes the request (verb, group, resource, subresource, namespace, name, or path) and
/// records the decision for the audit log. `Err` is why the request may not continue.
pub fn authorize(state: &AppState, req: Request) -> Result<Request, ApiError> {
    let Some(user) = req.extensions().get::<Arc<UserInfo>>() else {
        return Err(ApiError::Unauthorized);
    };
    if user.is_master() {
        // Members of system:masters need no attributes: nothing is evaluated.
        note_decision(&req, "allow", "");
    } else {
        let (method, path, query) = (req.method().as_str(), req.uri().path(), req.uri().query());
        let policy = state.rbac.policy();
        let key = crate::decisions::key(user, method, path, query);
        if let Some(reason) = state.rbac.decisions.allowed(&policy, &key) {
            note_decision(&req, "allow", &reason);
        } else {
            let mut attrs = coffer_access::request_attributes(method, path, query);
            coffer_subresource_as_parent(&mut attrs);
            let decision = policy.authorize(user, &attrs);
            if !decision.allowed {
                note_decision(&req, "forbid", &decision.reason);
                return Err(forbidden(user, &attrs, &decision.reason));
            }
            state
                .rbac
                .decisions
                .remember(&policy, key, &decision.reason);
            note_decision(&req, "allow", &decision.reason);
        }
    }
    Ok(req)
}

/// Coffer's own Secret subresources are authorized as the Secret itself: reading its
/// versions is `get`, rolling back is `update` (`history.rs`).
fn coffer_subresource_as_parent(attrs: &mut RequestAttributes) {
    if let RequestAttributes::Resource(r) = attrs
        && r.group.is_empty()
        && r.resource == "secrets"
    {
        let verb = match r.subresource.as_str() {
            "versions" => "get",
            "rollback" => "update",
            _ => return,
        };
        r.verb = verb.to_owned();
        r.subresource.clear();
    }
}

fn note_decision(req: &Request, decision: &'static str, reason: &str) {
    if let Some(notes) = req.extensions().get::<AuditNotes>() {
        notes.decision(decision, reason);
    }
}

/// Whether `user` may do what `attrs` describe (for checks inside handlers: reading values
/// in a list, the `escalate` and `bind` shortcuts).
pub fn allows(state: &AppState, user: &UserInfo, attrs: ResourceAttributes) -> bool {
    user.is_master()
        || state
            .rbac
            .policy()
            .authorize(user, &RequestAttributes::Resource(attrs))
            .allowed
}

/// The 403 for a denied request: `secrets "s1" is forbidden: User "bob" cannot get resource
/// "secrets" in API group "" in the namespace "default"`, plus `: <reason>` when RBAC gave one.
pub fn forbidden(user: &UserInfo, attrs: &RequestAttributes, reason: &str) -> ApiError {
    let mut text = forbidden_message(user, attrs);
    if !reason.is_empty() {
        text.push_str(": ");
        text.push_str(reason);
    }
    match attrs {
        RequestAttributes::Resource(r) => ApiError::Forbidden {
            resource: Some((r.group.clone(), r.resource.clone())),
            name: (!r.name.is_empty()).then(|| r.name.clone()),
            reason: text,
        },
        RequestAttributes::NonResource(_) => ApiError::Forbidden {
            resource: None,
            name: None,
            reason: text,
        },
    }
}
