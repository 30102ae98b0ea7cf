//! Content negotiation (`reference/k8s-api.md` §1.2–§1.3): what the client sent (`Content-Type`)
//! and what it wants back (`Accept`).

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};

use crate::status::ApiError;

/// The Table media type kubectl asks for, version v1.
pub const TABLE_V1: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
/// The Table media type, version v1beta1.
pub const TABLE_V1BETA1: &str = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";
/// Aggregated discovery v2.
pub const DISCOVERY_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// Aggregated discovery v2beta1.
pub const DISCOVERY_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
/// Kubernetes protobuf.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// What to answer with, chosen from `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Plain JSON (also the answer to a protobuf-or-JSON Accept).
    Json,
    /// A `meta.k8s.io` Table of the given version (`v1` or `v1beta1`).
    Table(&'static str),
}

/// Which aggregated discovery document the client asked for, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `apidiscovery.k8s.io/v2`.
    V2,
    /// `apidiscovery.k8s.io/v2beta1`.
    V2Beta1,
    /// The legacy `APIVersions` / `APIGroupList`.
    Legacy,
}

/// One media range of an `Accept` header: type and parameters (lower-cased names).
#[derive(Debug)]
struct MediaRange {
    essence: String,
    params: Vec<(String, String)>,
}

impl MediaRange {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_list(value: &str) -> Vec<MediaRange> {
    value
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';');
            let essence = parts.next()?.trim().to_ascii_lowercase();
            if essence.is_empty() {
                return None;
            }
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((
                        k.trim().to_ascii_lowercase(),
                        v.trim().trim_matches('"').to_owned(),
                    ))
                })
                .collect();
            Some(MediaRange { essence, params })
        })
        .collect()
}

fn accept_header(headers: &HeaderMap) -> String {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

/// Picks the response format for an object endpoint. `table_allowed` is false for kinds with
/// no object metadata (reviews, TokenRequest), which must refuse a Table-only Accept.
pub fn output(headers: &HeaderMap, table_allowed: bool) -> Result<Output, ApiError> {
    let accept = accept_header(headers);
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for range in parse_list(&accept) {
        let as_ = range.param("as");
        match (range.essence.as_str(), as_) {
            ("application/json", Some("Table")) if table_allowed => {
                match (range.param("v"), range.param("g")) {
                    (Some("v1"), Some("meta.k8s.io")) => return Ok(Output::Table("v1")),
                    (Some("v1beta1"), Some("meta.k8s.io")) => return Ok(Output::Table("v1beta1")),
                    _ => {}
                }
            }
            ("application/json", Some(_)) => {}
            ("application/json" | "application/yaml" | "*/*" | "application/*", None) => {
                return Ok(Output::Json);
            }
            (PROTOBUF, _) => return Ok(Output::Json),
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(
        "application/json, application/yaml, application/vnd.kubernetes.protobuf".to_owned(),
    ))
}

/// Picks the discovery document for `/api` and `/apis`.
pub fn discovery(headers: &HeaderMap) -> Discovery {
    for range in parse_list(&accept_header(headers)) {
        if range.essence == "application/json"
            && range.param("g") == Some("apidiscovery.k8s.io")
            && range.param("as") == Some("APIGroupDiscoveryList")
        {
            match range.param("v") {
                Some("v2") => return Discovery::V2,
                Some("v2beta1") => return Discovery::V2Beta1,
                _ => {}
            }
        }
        if range.essence == "application/json" && range.param("as").is_none() {
            return Discovery::Legacy;
        }
    }
    Discovery::Legacy
}

/// The format of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON (also when `Content-Type` is absent, as the Python client sends).
    Json,
    /// YAML.
    Yaml,
    /// Kubernetes protobuf (`k8s\0` envelope).
    Protobuf,
}

/// The format of a POST/PUT body from its `Content-Type`.
pub fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Ok(BodyFormat::Json);
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" | "application/json" => Ok(BodyFormat::Json),
        "application/yaml" => Ok(BodyFormat::Yaml),
        PROTOBUF => Ok(BodyFormat::Protobuf),
        _ => Err(ApiError::UnsupportedMediaType(
            "application/json, application/yaml, application/vnd.kubernetes.protobuf".to_owned(),
        )),
    }
}

/// The kind of a PATCH body from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902.
    Json,
    /// RFC 7386.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// Server-side apply.
    Apply,
}

/// The patch type of a PATCH request.
pub fn patch_type(headers: &HeaderMap) -> Result<PatchType, ApiError> {
    let value = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(ApiError::UnsupportedMediaType(
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                .to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn kubectl_get_gets_a_table() {
        let h = accept(&format!("{TABLE_V1},{TABLE_V1BETA1},application/json"));
        assert_eq!(output(&h, true).expect("ok"), Output::Table("v1"));
        assert_eq!(output(&h, false).expect("ok"), Output::Json);
        assert!(
            output(&accept(TABLE_V1), false).is_err(),
            "Table-only Accept on a review is 406"
        );
    }

    #[test]
    fn protobuf_accept_gets_json() {
        let h = accept("application/vnd.kubernetes.protobuf,application/json");
        assert_eq!(output(&h, true).expect("ok"), Output::Json);
    }

    #[test]
    fn discovery_follows_kubectl_versions() {
        let v133 = format!("{DISCOVERY_V2},{DISCOVERY_V2BETA1},application/json");
        assert_eq!(discovery(&accept(&v133)), Discovery::V2);
        let v127 = format!("{DISCOVERY_V2BETA1},application/json");
        assert_eq!(discovery(&accept(&v127)), Discovery::V2Beta1);
        assert_eq!(
            discovery(&accept("application/json, */*")),
            Discovery::Legacy
        );
    }

    #[test]
    fn missing_content_type_is_json() {
        assert_eq!(
            body_format(&HeaderMap::new()).expect("ok"),
            BodyFormat::Json
        );
    }
}
