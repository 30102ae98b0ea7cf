//! The attributes an authorizer sees for one HTTP request (`reference/k8s-api.md` §15.1): kube's
//! `RequestInfo`, computed from the method, the path and the query string.
//!
//! Source: apiserver `pkg/endpoints/request/requestinfo.go`. A path under `/api/<version>/` or
//! `/apis/<group>/<version>/` with at least one more segment is a resource request; everything
//! else is a non-resource request whose verb is the lower-cased method.

use coffer_api::{LabelSelector, is_path_segment_name};

/// A request for an API resource; `""` means unset in every field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceAttributes {
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or a special verb such as `impersonate`, `bind`, `escalate`).
    pub verb: String,
    /// The API group; `""` is the core group.
    pub group: String,
    /// The API version (`v1`).
    pub version: String,
    /// The resource, plural and lower-case (`secrets`).
    pub resource: String,
    /// The subresource (`status`, `token`, `finalize`).
    pub subresource: String,
    /// The namespace; `""` for cluster-scoped requests.
    pub namespace: String,
    /// The object name; `""` for collections and for create.
    pub name: String,
}

/// A request for a path outside the resource tree (`/healthz`, `/version`, `/apis`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NonResourceAttributes {
    /// The lower-cased HTTP method (`get`, `post`, ...).
    pub verb: String,
    /// The URL path.
    pub path: String,
}

/// What an authorizer decides about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestAttributes {
    /// A request for an API resource.
    Resource(ResourceAttributes),
    /// A request for any other path.
    NonResource(NonResourceAttributes),
}

impl RequestAttributes {
    /// The verb of either kind of request.
    pub fn verb(&self) -> &str {
        match self {
            Self::Resource(r) => &r.verb,
            Self::NonResource(n) => &n.verb,
        }
    }

    /// The namespace of a resource request; `""` otherwise.
    pub fn namespace(&self) -> &str {
        match self {
            Self::Resource(r) => &r.namespace,
            Self::NonResource(_) => "",
        }
    }
}

/// Computes the attributes of a request as kube-apiserver's `RequestInfoFactory` does.
///
/// `path` is the URL path (percent-escapes are decoded here); `query` the raw query string
/// without `?`. Rules:
///
/// * `POST` → `create`, `GET`/`HEAD` → `get`, `PUT` → `update`, `PATCH` → `patch`,
///   `DELETE` → `delete`; a `get` without a name becomes `list`, or `watch` when the first
///   `watch` query value is anything but `false`/`0`; a `delete` without a name becomes
///   `deletecollection`; the legacy `/watch/` and `/proxy/` path prefixes set the verb.
/// * `/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`; for `/api/v1/namespaces/{name}`
///   the namespace attribute is `{name}` itself.
/// * On list and watch, a `fieldSelector` requiring `metadata.name=X` gives the name `X` (when
///   `X` is a valid path segment and the list options decode).
/// * Everything else is non-resource with the lower-cased method as verb; `HEAD` counts as
///   `get` (§15.1; upstream would say `head`).
pub fn request_attributes(method: &str, path: &str, query: Option<&str>) -> RequestAttributes {
    let decoded = percent_decode(path, false).unwrap_or_else(|| path.to_owned());
    let non_resource = || {
        let verb = if method.eq_ignore_ascii_case("HEAD") {
            "get".to_owned()
        } else {
            method.to_ascii_lowercase()
        };
        RequestAttributes::NonResource(NonResourceAttributes {
            verb,
            path: decoded.clone(),
        })
    };
    let trimmed = decoded.trim_matches('/');
    let parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let (group, rest) = match parts.as_slice() {
        ["api", rest @ ..] if rest.len() >= 2 => ("", rest),
        ["apis", group, rest @ ..] if rest.len() >= 2 => (*group, rest),
        _ => return non_resource(),
    };
    let mut attrs = ResourceAttributes {
        group: group.to_owned(),
        version: rest[0].to_owned(),
        ..ResourceAttributes::default()
    };
    let mut parts = &rest[1..];
    if matches!(parts[0], "watch" | "proxy") && parts.len() >= 2 {
        attrs.verb = parts[0].to_owned();
        parts = &parts[1..];
    } else {
        attrs.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }
    if parts[0] == "namespaces" && parts.len() > 1 {
        attrs.namespace = parts[1].to_owned();
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    if parts.len() >= 3 && attrs.verb != "proxy" {
        attrs.subresource = parts[2].to_owned();
    }
    if parts.len() >= 2 {
        attrs.name = parts[1].to_owned();
    }
    attrs.resource = parts[0].to_owned();

    if attrs.name.is_empty() && attrs.verb == "get" {
        let params = QueryParams::parse(query.unwrap_or(""));
        attrs.verb = if params.watch() { "watch" } else { "list" }.to_owned();
        if let Some(name) = params.selected_name() {
            attrs.name = name;
        }
    }
    if attrs.name.is_empty() && attrs.verb == "delete" {
        attrs.verb = "deletecollection".to_owned();
    }
    RequestAttributes::Resource(attrs)
}

/// The query parameters that matter for authorization, first value of each.
struct QueryParams {
    watch: Option<String>,
    field_selector: Option<String>,
    label_selector: Option<String>,
}

impl QueryParams {
    /// Parses `a=b&c=d` as Go's `url.ParseQuery` (pairs with bad escapes are dropped).
    fn parse(query: &str) -> Self {
        let mut params = QueryParams {
            watch: None,
            field_selector: None,
            label_selector: None,
        };
        for pair in query
            .split('&')
            .filter(|p| !p.is_empty() && !p.contains(';'))
        {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(key), Some(value)) = (
                percent_decode(raw_key, true),
                percent_decode(raw_value, true),
            ) else {
                continue;
            };
            let slot = match key.as_str() {
                "watch" => &mut params.watch,
                "fieldSelector" => &mut params.field_selector,
                "labelSelector" => &mut params.label_selector,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        params
    }

    /// Any `watch` value but `0` or `false` (any case) means watch (apimachinery's
    /// `Convert_Slice_string_To_bool`).
    fn watch(&self) -> bool {
        self.watch
            .as_deref()
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// The name a list or watch is restricted to by `metadata.name=X`, if the list options
    /// decode (both selectors parse) and `X` is a valid path segment.
    fn selected_name(&self) -> Option<String> {
        if let Some(labels) = &self.label_selector {
            LabelSelector::parse(labels).ok()?;
        }
        let name = exact_name_match(self.field_selector.as_deref()?)?;
        is_path_segment_name(&name).is_empty().then_some(name)
    }
}

/// apimachinery's `fields.ParseSelector(s).RequiresExactMatch("metadata.name")`: the value of
/// the first `metadata.name=` / `metadata.name==` term, or `None` when there is none or any
/// term fails to parse.
fn exact_name_match(selector: &str) -> Option<String> {
    let mut terms = split_terms(selector);
    terms.sort_unstable();
    let mut found = None;
    for term in terms.into_iter().filter(|t| !t.is_empty()) {
        let (field, negated, raw) = split_term(term)?;
        let value = unescape_field_value(raw)?;
        if field == "metadata.name" && !negated && found.is_none() {
            found = Some(value);
        }
    }
    found
}

/// Splits on commas not preceded by an escaping backslash.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in selector.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// `(field, negated, raw value)` at the first operator, trying `!=`, `==`, `=` at each position.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], negated, value));
            }
        }
    }
    None
}

/// apimachinery's `fields.UnescapeValue`: `\\`, `\,`, `\=` are escapes; anything else after a
/// backslash, a trailing backslash, or an unescaped `,`/`=` is an error.
fn unescape_field_value(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        match (escaped, c) {
            (true, '\\' | ',' | '=') => {
                out.push(c);
                escaped = false;
            }
            (true, _) | (false, ',' | '=') => return None,
            (false, '\\') => escaped = true,
            (false, _) => out.push(c),
        }
    }
    (!escaped).then_some(out)
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`); `None` for a malformed escape
/// or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    if !(s.contains('%') || plus_is_space && s.contains('+')) {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: &str, path: &str, query: Option<&str>) -> ResourceAttributes {
        match request_attributes(method, path, query) {
            RequestAttributes::Resource(r) => r,
            other => panic!("expected a resource request, got {other:?}"),
        }
    }

    fn non_res(method: &str, path: &str) -> NonResourceAttributes {
        match request_attributes(method, path, None) {
            RequestAttributes::NonResource(n) => n,
            other => panic!("expected a non-resource request, got {other:?}"),
        }
    }

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> ResourceAttributes {
        ResourceAttributes {
            verb: verb.into(),
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn verbs_from_methods_and_names() {
        let base = "/api/v1/namespaces/default/secrets";
        assert_eq!(
            res("GET", &format!("{base}/s1"), None),
            attrs("get", "", "secrets", "", "default", "s1")
        );
        assert_eq!(res("HEAD", &format!("{base}/s1"), None).verb, "get");
        assert_eq!(
            res("GET", base, None),
            attrs("list", "", "secrets", "", "default", "")
        );
        assert_eq!(
            res("POST", base, None),
            attrs("create", "", "secrets", "", "default", "")
        );
        assert_eq!(res("PUT", &format!("{base}/s1"), None).verb, "update");
        assert_eq!(res("PATCH", &format!("{base}/s1"), None).verb, "patch");
        assert_eq!(res("DELETE", &format!("{base}/s1"), None).verb, "delete");
        assert_eq!(res("DELETE", base, None).verb, "deletecollection");
        assert_eq!(res("OPTIONS", &format!("{base}/s1"), None).verb, "");
    }

    #[test]
    fn watch_query_values() {
        let base = "/api/v1/namespaces/default/secrets";
        for (q, verb) in [
            ("watch=true", "watch"),
            ("watch=1", "watch"),
            ("watch=", "watch"),
            ("watch=FALSE", "list"),
            ("watch=0", "list"),
            ("limit=5", "list"),
            ("watch=0&watch=1", "list"),
        ] {
            assert_eq!(res("GET", base, Some(q)).verb, verb, "{q}");
        }
        // A named get stays a get even with watch=true (kube only rewrites nameless gets).
        assert_eq!(
            res("GET", &format!("{base}/s1"), Some("watch=true")).verb,
            "get"
        );
        // The legacy watch prefix.
        assert_eq!(
            res("GET", "/api/v1/watch/namespaces/default/secrets", None),
            attrs("watch", "", "secrets", "", "default", "")
        );
    }

    #[test]
    fn field_selector_names_list_and_watch() {
        let base = "/api/v1/namespaces/default/secrets";
        let name = |q: &str| res("GET", base, Some(q)).name;
        assert_eq!(name("fieldSelector=metadata.name%3Ds1"), "s1");
        assert_eq!(name("fieldSelector=metadata.name%3D%3Ds1"), "s1");
        assert_eq!(name("watch=true&fieldSelector=metadata.name%3Ds1"), "s1");
        assert_eq!(name("fieldSelector=type%3Dx,metadata.name%3Ds1"), "s1");
        assert_eq!(name("fieldSelector=metadata.name!%3Ds1"), "");
        assert_eq!(name("fieldSelector=metadata.namespace%3Ddefault"), "");
        assert_eq!(name("fieldSelector=garbage"), "", "unparsable selector");
        assert_eq!(
            name("fieldSelector=metadata.name%3Da%3Db"),
            "",
            "unescaped ="
        );
        assert_eq!(
            name("fieldSelector=metadata.name%3D.."),
            "",
            "not a path segment"
        );
        assert_eq!(
            name("fieldSelector=metadata.name%3Ds1&labelSelector=a%20in"),
            "",
            "bad labels"
        );
        assert_eq!(
            res("GET", base, Some("fieldSelector=metadata.name%3Ds1")).verb,
            "list"
        );
    }

    #[test]
    fn namespaces_subresources_and_groups() {
        assert_eq!(
            res("GET", "/api/v1/namespaces/team-a", None),
            attrs("get", "", "namespaces", "", "team-a", "team-a")
        );
        assert_eq!(
            res("GET", "/api/v1/namespaces", None),
            attrs("list", "", "namespaces", "", "", "")
        );
        assert_eq!(
            res("PUT", "/api/v1/namespaces/ns1/finalize", None),
            attrs("update", "", "namespaces", "finalize", "ns1", "ns1")
        );
        assert_eq!(
            res(
                "POST",
                "/api/v1/namespaces/default/serviceaccounts/sa1/token",
                None
            ),
            attrs("create", "", "serviceaccounts", "token", "default", "sa1")
        );
        let mut rbac = attrs(
            "get",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "",
            "view",
        );
        assert_eq!(
            res(
                "GET",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
                None
            ),
            rbac
        );
        rbac = attrs(
            "list",
            "rbac.authorization.k8s.io",
            "roles",
            "",
            "team-b",
            "",
        );
        assert_eq!(
            res(
                "GET",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/roles/",
                None
            ),
            rbac
        );
        assert_eq!(
            res("GET", "/api/v1/namespaces/a%2Db/secrets", None).namespace,
            "a-b"
        );
    }

    #[test]
    fn non_resource_paths() {
        for path in [
            "/",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/rbac.authorization.k8s.io/v1",
            "/healthz",
            "/openapi/v3",
            "/version/",
        ] {
            assert_eq!(
                non_res("GET", path),
                NonResourceAttributes {
                    verb: "get".into(),
                    path: path.into()
                }
            );
        }
        assert_eq!(non_res("HEAD", "/healthz").verb, "get");
        assert_eq!(non_res("POST", "/foo").verb, "post");
        assert_eq!(non_res("DELETE", "/apis/x").verb, "delete");
        let any = request_attributes("GET", "/metrics", None);
        assert_eq!((any.verb(), any.namespace()), ("get", ""));
    }
}
