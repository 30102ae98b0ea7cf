//! What state a LIST reads and how its pages are tied together (`reference/k8s-api.md` §12.1,
//! §12.2).
//!
//! - `resourceVersion`/`resourceVersionMatch`: unset, `"0"` or `NotOlderThan` read the latest
//!   state (one server with one global revision is never older than a revision it handed
//!   out); `N` with `Exact` reads the state exactly at `N`. Invalid combinations are kube's 422s
//!   (apimachinery `ValidateListOptions`).
//! - A continue token carries the first page's revision and the last key returned; every later
//!   page reads at that revision, so the pages form one snapshot however the store changes in
//!   between. When that revision has been compacted the answer is kube's 410 with a fresh token
//!   (`rv: -1`) that resumes after the same key from the latest state.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use coffer_api::FieldError;
use coffer_storage::Revision;
use serde_json::{Value, json};

use crate::status::{ApiError, ApiResult};

/// kube-apiserver's text for a continue token whose snapshot was compacted (§12.2).
pub const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// The token revision meaning "resume from the latest state" (kube's inconsistent
/// continuation after a 410).
const LATEST: i64 = -1;

/// The LIST query parameters this module reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListParams<'a> {
    /// `resourceVersion`.
    pub resource_version: Option<&'a str>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<&'a str>,
    /// `continue`.
    pub continue_token: Option<&'a str>,
    /// `sendInitialEvents` (forbidden on a LIST).
    pub send_initial_events: Option<bool>,
}

/// Where a LIST reads: at which revision and after which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListStart {
    /// The revision to read at; `None`: the latest.
    pub revision: Option<Revision>,
    /// Resume after this storage key (from a continue token).
    pub start_after: Option<Bytes>,
    /// `resourceVersion=N` without `Exact`: the latest state must be at least N.
    pub not_older_than: Option<Revision>,
}

impl ListStart {
    /// Validates the parameters as kube-apiserver does and decodes the continue token.
    pub fn parse(p: ListParams<'_>) -> ApiResult<ListStart> {
        let rv = p.resource_version.filter(|v| !v.is_empty());
        let token = p.continue_token.filter(|c| !c.is_empty());
        let mut errors = Vec::new();
        if let Some(rv_match) = p.resource_version_match.filter(|m| !m.is_empty()) {
            let field = "resourceVersionMatch";
            if rv.is_none() {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if token.is_some() {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if rv_match != "Exact" && rv_match != "NotOlderThan" {
                errors.push(FieldError::not_supported(
                    field,
                    rv_match,
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if rv_match == "Exact" && rv == Some("0") {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if p.send_initial_events.is_some() {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::Invalid {
                kind: "ListOptions.meta.k8s.io".to_owned(),
                name: String::new(),
                causes: crate::kinds::causes(errors),
            });
        }
        if let Some(token) = token {
            if rv.is_some_and(|v| v != "0") {
                return Err(ApiError::BadRequest(
                    "specifying resource version is not allowed when using continue".to_owned(),
                ));
            }
            let (revision, start_after) = decode_continue(token)?;
            return Ok(ListStart {
                revision,
                start_after: Some(start_after),
                not_older_than: None,
            });
        }
        let parsed = match rv.filter(|v| *v != "0") {
            Some(v) => Some(Revision::new(v.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("invalid resource version: {v:?}"))
            })?)),
            None => None,
        };
        let exact = p.resource_version_match == Some("Exact");
        Ok(ListStart {
            revision: parsed.filter(|_| exact),
            start_after: None,
            not_older_than: parsed.filter(|_| !exact),
        })
    }

    /// Checks that a page read at the latest `revision` is not older than the
    /// `resourceVersion` asked for: kube's 504 `Too large resource version` otherwise.
    pub fn fresh_enough(&self, revision: Revision) -> ApiResult<()> {
        match self.not_older_than {
            Some(min) if min > revision => Err(ApiError::TooLargeResourceVersion {
                requested: min.get(),
                current: revision.get(),
            }),
            _ => Ok(()),
        }
    }

    /// Turns a compacted snapshot into kube's 410s: for a continuation, the continue text
    /// with a token resuming after the same key from the latest state; for `Exact`, the text
    /// kube-apiserver's etcd3 store gives a list at a compacted revision
    /// (`The resourceVersion for the provided list is too old.`). Other failures pass.
    pub fn expired(&self, e: ApiError) -> ApiError {
        match (&e, &self.start_after) {
            (ApiError::Expired(_), Some(after)) => ApiError::ContinueExpired {
                fresh: encode_continue(after, LATEST),
            },
            (ApiError::Expired(_), None) => ApiError::Expired(LIST_EXPIRED.to_owned()),
            _ => e,
        }
    }
}

/// kube-apiserver's message for a list at a compacted `resourceVersion` (etcd3 store).
pub const LIST_EXPIRED: &str = "The resourceVersion for the provided list is too old.";

/// The `metadata` of a list: its revision, the continue token when more follows, and
/// `remainingItemCount` when known (kube omits it when selectors filtered the list).
pub fn list_meta(revision: Revision, next: Option<&[u8]>, remaining: Option<u64>) -> Value {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(next) = next {
        let rv = i64::try_from(revision.get()).unwrap_or(i64::MAX);
        meta["continue"] = json!(encode_continue(next, rv));
        if let Some(remaining) = remaining.filter(|r| *r > 0) {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    meta
}

/// A continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>"}`, the shape
/// kube-apiserver writes (`start` here is the last key returned, a full storage key).
fn encode_continue(key: &[u8], revision: i64) -> String {
    let body =
        json!({"v": "meta.k8s.io/v1", "rv": revision, "start": String::from_utf8_lossy(key)});
    URL_SAFE_NO_PAD.encode(body.to_string())
}

/// The revision (`None` for [`LATEST`]) and key of a continue token; 400 with kube's
/// `continue key is not valid` texts otherwise.
fn decode_continue(token: &str) -> ApiResult<(Option<Revision>, Bytes)> {
    let bad = |why: &str| ApiError::BadRequest(format!("continue key is not valid: {why}"));
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad("malformed continue token"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("malformed continue token"))?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad("server does not recognize this encoded key"));
    }
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("malformed continue token"))?;
    let revision = match v.get("rv").and_then(Value::as_i64) {
        Some(LATEST) => None,
        Some(rv) if rv > 0 => Some(Revision::new(rv.unsigned_abs())),
        _ => {
            return Err(bad(
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            ));
        }
    };
    Ok((revision, Bytes::from(start.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        rv: Option<&str>,
        rv_match: Option<&str>,
        token: Option<&str>,
    ) -> ApiResult<ListStart> {
        ListStart::parse(ListParams {
            resource_version: rv,
            resource_version_match: rv_match,
            continue_token: token,
            send_initial_events: None,
        })
    }

    fn message(e: ApiError) -> String {
        e.status()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn resource_version_table() {
        let latest = ListStart {
            revision: None,
            start_after: None,
            not_older_than: None,
        };
        assert_eq!(parse(None, None, None).ok(), Some(latest.clone()));
        assert_eq!(parse(Some("0"), None, None).ok(), Some(latest.clone()));
        assert_eq!(
            parse(Some("0"), Some("NotOlderThan"), None).ok(),
            Some(latest.clone())
        );
        let at_least_7 = ListStart {
            not_older_than: Some(Revision::new(7)),
            ..latest
        };
        assert_eq!(
            parse(Some("7"), Some("NotOlderThan"), None).ok(),
            Some(at_least_7.clone())
        );
        assert_eq!(parse(Some("7"), None, None).ok(), Some(at_least_7.clone()));
        assert!(at_least_7.fresh_enough(Revision::new(7)).is_ok());
        let e = at_least_7.fresh_enough(Revision::new(6)).expect_err("504");
        let status = e.status();
        assert_eq!(
            (e.code().as_u16(), &status["reason"]),
            (504, &json!("Timeout"))
        );
        assert_eq!(
            status["message"],
            "Timeout: Too large resource version: 7, current: 6"
        );
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "ResourceVersionTooLarge"
        );
        assert_eq!(
            parse(Some("7"), Some("Exact"), None)
                .ok()
                .and_then(|s| s.revision),
            Some(Revision::new(7))
        );
        let bad = parse(Some("x"), None, None).expect_err("400");
        assert_eq!(message(bad), "invalid resource version: \"x\"");
    }

    #[test]
    fn invalid_combinations_are_kube_422s() {
        let e = parse(None, Some("Exact"), None).expect_err("422");
        assert_eq!(e.code().as_u16(), 422);
        assert_eq!(
            message(e),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        );
        let e = parse(Some("0"), Some("Exact"), None).expect_err("422");
        assert_eq!(
            message(e),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
        );
        let token = encode_continue(b"/registry/secrets/ns/a", 5);
        let e = parse(Some("5"), Some("Exact"), Some(&token)).expect_err("422");
        assert!(
            message(e).contains(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"
            )
        );
        let e = parse(Some("5"), Some("Newest"), None).expect_err("422");
        assert_eq!(
            message(e),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\""
        );
        let e = ListStart::parse(ListParams {
            send_initial_events: Some(true),
            ..ListParams::default()
        })
        .expect_err("422");
        assert_eq!(
            message(e),
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"
        );
    }

    #[test]
    fn continue_tokens_round_trip_and_expire() {
        let meta = list_meta(Revision::new(42), Some(b"/registry/secrets/ns/b"), Some(3));
        assert_eq!(meta["resourceVersion"], "42");
        assert_eq!(meta["remainingItemCount"], 3);
        let token = meta["continue"].as_str().expect("token");
        let start = parse(None, None, Some(token)).expect("decodes");
        assert_eq!(start.revision, Some(Revision::new(42)));
        assert_eq!(
            start.start_after.as_deref(),
            Some(&b"/registry/secrets/ns/b"[..])
        );
        assert!(parse(Some("0"), None, Some(token)).is_ok());
        let e = parse(Some("41"), None, Some(token)).expect_err("400");
        assert_eq!(
            message(e),
            "specifying resource version is not allowed when using continue"
        );

        let gone = start.expired(ApiError::Expired(
            "too old resource version: 42 (50)".into(),
        ));
        let status = gone.status();
        assert_eq!(
            (gone.code().as_u16(), &status["reason"]),
            (410, &json!("Expired"))
        );
        assert_eq!(status["message"], CONTINUE_EXPIRED);
        let fresh = status["metadata"]["continue"]
            .as_str()
            .expect("fresh token");
        let resumed = parse(None, None, Some(fresh)).expect("decodes");
        assert_eq!(
            resumed.revision, None,
            "the fresh token reads the latest state"
        );
        assert_eq!(resumed.start_after, start.start_after);

        assert!(
            list_meta(Revision::new(1), None, Some(3))
                .get("remainingItemCount")
                .is_none()
        );
        assert!(
            list_meta(Revision::new(1), Some(b"k"), None)
                .get("remainingItemCount")
                .is_none()
        );
        for bad in [
            "!!",
            "e30",
            &URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"k"}"#),
        ] {
            let e = parse(None, None, Some(bad)).expect_err("400");
            assert!(message(e).starts_with("continue key is not valid: "));
        }
    }
}
