//! Impersonation (`reference/k8s-api.md` §14): the `Impersonate-*` headers, the `impersonate`
//! checks they need, and the identity that results.
//!
//! Source: apiserver `pkg/endpoints/filters/impersonation.go`. The server: parses the headers
//! with [`parse_impersonation`] (an error is a 500 `InternalError` in kube); authorizes each of
//! [`Impersonation::checks`] for the requesting user, answering the first denial with a 403
//! worded by [`crate::rbac::forbidden_message`]; strips every header for which
//! [`is_impersonation_header`] holds; and carries on as [`Impersonation::user`].

use std::collections::BTreeMap;

use coffer_api::{is_dns1123_label, is_dns1123_subdomain};

use crate::attributes::{ResourceAttributes, percent_decode};
use crate::rbac::SERVICE_ACCOUNT_PREFIX;
use crate::user::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo};

/// `Impersonate-User`.
pub const USER_HEADER: &str = "impersonate-user";
/// `Impersonate-Group`, one header per group.
pub const GROUP_HEADER: &str = "impersonate-group";
/// `Impersonate-Uid`.
pub const UID_HEADER: &str = "impersonate-uid";
/// `Impersonate-Extra-<key>`, one header per value.
pub const EXTRA_HEADER_PREFIX: &str = "impersonate-extra-";

/// The API group of the `uids` and `userextras` checks.
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// What a request asks to act as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Impersonation {
    /// The `Impersonate-User` value.
    user: String,
    /// `(namespace, name)` when `user` is a valid ServiceAccount user name.
    service_account: Option<(String, String)>,
    /// The `Impersonate-Group` values, in order.
    groups: Vec<String>,
    /// The `Impersonate-Uid` value, if any.
    uid: Option<String>,
    /// `Impersonate-Extra-*`: lower-cased, percent-decoded key → values in order.
    extra: BTreeMap<String, Vec<String>>,
}

/// Impersonation headers that cannot be honoured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImpersonationError {
    /// Groups, a uid or extras without `Impersonate-User`. The text lists the requests as Go
    /// prints its `[]ObjectReference` (kube returns it as a 500 InternalError).
    #[error("requested {0} without impersonating a user")]
    WithoutUser(String),
}

/// Whether a header (any case) is one of the impersonation headers the server must strip.
pub fn is_impersonation_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == USER_HEADER
        || lower == GROUP_HEADER
        || lower == UID_HEADER
        || lower.starts_with(EXTRA_HEADER_PREFIX)
}

/// Reads the impersonation headers from `(name, value)` pairs (names in any case). `Ok(None)`
/// when there are none; an error when groups, a uid or extras come without a user.
pub fn parse_impersonation<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Option<Impersonation>, ImpersonationError> {
    let mut user: Option<&str> = None;
    let mut uid: Option<&str> = None;
    let mut groups = Vec::new();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            USER_HEADER => {
                user.get_or_insert(value);
            }
            UID_HEADER => {
                uid.get_or_insert(value);
            }
            GROUP_HEADER => groups.push(value.to_owned()),
            _ => {
                if let Some(key) = lower.strip_prefix(EXTRA_HEADER_PREFIX) {
                    // Go's url.PathUnescape: %XX decoded, `+` kept; a malformed key is kept as sent.
                    let key = percent_decode(key, false).unwrap_or_else(|| key.to_owned());
                    extra.entry(key).or_default().push(value.to_owned());
                }
            }
        }
    }
    let user = user.filter(|u| !u.is_empty()).map(str::to_owned);
    let uid = uid.filter(|u| !u.is_empty()).map(str::to_owned);
    let Some(user) = user else {
        if groups.is_empty() && extra.is_empty() && uid.is_none() {
            return Ok(None);
        }
        let partial = Impersonation {
            user: String::new(),
            service_account: None,
            groups,
            uid,
            extra,
        };
        return Err(ImpersonationError::WithoutUser(partial.go_requests()));
    };
    Ok(Some(Impersonation {
        service_account: split_service_account(&user),
        user,
        groups,
        uid,
        extra,
    }))
}

impl Impersonation {
    /// The `impersonate` checks, in kube's order (§14): the user (`users`, or `serviceaccounts`
    /// in its namespace for a ServiceAccount user name), each group (`groups`), each extra
    /// value (`authentication.k8s.io` `userextras/<key>`), then the uid
    /// (`authentication.k8s.io` `uids`).
    pub fn checks(&self) -> Vec<ResourceAttributes> {
        let check =
            |group: &str, resource: &str, sub: &str, ns: &str, name: &str| ResourceAttributes {
                verb: "impersonate".to_owned(),
                group: group.to_owned(),
                version: String::new(),
                resource: resource.to_owned(),
                subresource: sub.to_owned(),
                namespace: ns.to_owned(),
                name: name.to_owned(),
            };
        let mut out = Vec::new();
        match &self.service_account {
            Some((ns, name)) => out.push(check("", "serviceaccounts", "", ns, name)),
            None => out.push(check("", "users", "", "", &self.user)),
        }
        for group in &self.groups {
            out.push(check("", "groups", "", "", group));
        }
        for (key, values) in &self.extra {
            for value in values {
                out.push(check(AUTHENTICATION_GROUP, "userextras", key, "", value));
            }
        }
        if let Some(uid) = &self.uid {
            out.push(check(AUTHENTICATION_GROUP, "uids", "", "", uid));
        }
        out
    }

    /// The identity to act as: the given name, uid and extras; the given groups, or for a
    /// ServiceAccount without `Impersonate-Group` its `system:serviceaccounts` and
    /// `system:serviceaccounts:<ns>` groups; then `system:authenticated` unless the groups hold
    /// it or `system:unauthenticated` (for `system:anonymous`: `system:unauthenticated` unless
    /// present).
    pub fn user(&self) -> UserInfo {
        let mut groups = match (&self.service_account, self.groups.is_empty()) {
            (Some((ns, _)), true) => vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{ns}"),
            ],
            _ => self.groups.clone(),
        };
        let has = |g: &str, groups: &[String]| groups.iter().any(|x| x == g);
        if self.user == ANONYMOUS {
            if !has(UNAUTHENTICATED, &groups) {
                groups.push(UNAUTHENTICATED.to_owned());
            }
        } else if !has(AUTHENTICATED, &groups) && !has(UNAUTHENTICATED, &groups) {
            groups.push(AUTHENTICATED.to_owned());
        }
        UserInfo {
            name: self.user.clone(),
            uid: self.uid.clone().unwrap_or_default(),
            groups,
            extra: self.extra.clone(),
        }
    }

    /// The requests as Go's `%v` prints a `[]v1.ObjectReference` (fields Kind, Namespace,
    /// Name, UID, APIVersion, ResourceVersion, FieldPath, space-separated in braces).
    fn go_requests(&self) -> String {
        let reference = |kind: &str, ns: &str, name: &str, api_version: &str, field: &str| {
            format!("{{{kind} {ns} {name}  {api_version}  {field}}}")
        };
        let mut items = Vec::new();
        if !self.user.is_empty() {
            items.push(match &self.service_account {
                Some((ns, name)) => reference("ServiceAccount", ns, name, "", ""),
                None => reference("User", "", &self.user, "", ""),
            });
        }
        for group in &self.groups {
            items.push(reference("Group", "", group, "", ""));
        }
        let api_version = format!("{AUTHENTICATION_GROUP}/v1");
        for (key, values) in &self.extra {
            for value in values {
                items.push(reference("UserExtra", "", value, &api_version, key));
            }
        }
        if let Some(uid) = &self.uid {
            items.push(reference("UID", "", uid, &api_version, ""));
        }
        format!("[{}]", items.join(" "))
    }
}

/// apiserver's `serviceaccount.SplitUsername`: `system:serviceaccount:<ns>:<name>` with a valid
/// namespace (DNS-1123 label) and name (DNS-1123 subdomain).
fn split_service_account(user: &str) -> Option<(String, String)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    if name.contains(':')
        || !is_dns1123_label(ns).is_empty()
        || !is_dns1123_subdomain(name).is_empty()
    {
        return None;
    }
    Some((ns.to_owned(), name.to_owned()))
}

#[cfg(test)]
#[path = "impersonation_tests.rs"]
mod tests;
