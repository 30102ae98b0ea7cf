//! Validation of a decoded file, with kube-apiserver's defaults, rules, field paths and
//! messages (`reference/encryption.md` §1.2, §1.3; upstream `validation_encryption.go`,
//! `v1/defaults.go`). Produces the validated model or every field error found.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::resource::{self, GroupResource};
use super::schema::{RawConfig, RawKey, RawKms, RawProvider, parse_go_duration};
use super::{KmsApiVersion, KmsEndpoint, KmsProvider, NamedKey, ProviderConfig, ResourceEntry};
use crate::error::{FieldError, FieldErrorKind};
use crate::secret::KeyMaterial;

const AES_SIZES: &[usize] = &[16, 24, 32];
const SECRETBOX_SIZES: &[usize] = &[32];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_CACHE_SIZE: i32 = 1000;

/// Whether names of KMS v1 providers must also be unique (true when loading for automatic
/// reload, as upstream does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMode {
    /// `--encryption-provider-config` at startup without automatic reload.
    Startup,
    /// With `--encryption-provider-config-automatic-reload`, at startup and on every reload.
    AutomaticReload,
}

/// Validates `raw`, returning the model or the field errors (deduplicated, in order).
pub(crate) fn validate(
    raw: &RawConfig,
    mode: LoadMode,
) -> Result<Vec<ResourceEntry>, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut entries = Vec::new();
    let resources = raw.resources.as_deref().unwrap_or_default();
    if resources.is_empty() {
        errs.push(required("resources", "at least one resources is required"));
    }
    let mut kms_names = HashSet::new();
    for (i, entry) in resources.iter().enumerate() {
        let rpath = format!("resources[{i}].resources");
        let ppath = format!("resources[{i}].providers");
        let names = entry.resources.as_deref().unwrap_or_default();
        if names.is_empty() {
            errs.push(required(
                &rpath,
                &format!("at least one {rpath} is required"),
            ));
        }
        resource::validate_overlap(names, &rpath, &mut errs);
        resource::validate_names(names, &rpath, &mut errs);
        let raw_providers = entry.providers.as_deref().unwrap_or_default();
        if raw_providers.is_empty() {
            errs.push(required(
                &ppath,
                &format!("at least one {ppath} is required"),
            ));
        }
        let mut providers = Vec::new();
        for (j, p) in raw_providers.iter().enumerate() {
            let path = format!("{ppath}[{j}]");
            if let Some(provider) = validate_provider(p, &path, &mut kms_names, mode, &mut errs) {
                providers.push(provider);
            }
        }
        entries.push(ResourceEntry {
            resources: names.iter().map(|n| GroupResource::parse(n)).collect(),
            providers,
        });
    }
    if errs.is_empty() {
        Ok(entries)
    } else {
        // Go's ErrorList.ToAggregate drops repeated messages.
        let mut seen = HashSet::new();
        errs.retain(|e| seen.insert(e.to_string()));
        Err(errs)
    }
}

fn validate_provider(
    p: &RawProvider,
    path: &str,
    kms_names: &mut HashSet<String>,
    mode: LoadMode,
    errs: &mut Vec<FieldError>,
) -> Option<ProviderConfig> {
    let present: Vec<&str> = [
        ("kms", p.kms.is_some()),
        ("aesgcm", p.aesgcm.is_some()),
        ("aescbc", p.aescbc.is_some()),
        ("secretbox", p.secretbox.is_some()),
        ("identity", p.identity.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect();
    // Go prints the whole struct here; we print which providers were set.
    let value = format!("{present:?}");
    match present.len() {
        0 => errs.push(invalid(path, value, "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity")),
        1 => {}
        _ => errs.push(invalid(path, value, "more than one provider specified in a single element, should split into different list elements")),
    }
    if let Some(kms) = &p.kms {
        let v = validate_kms(kms, &format!("{path}.kms"), kms_names, mode, errs);
        kms_names.insert(kms.name.clone().unwrap_or_default());
        return v.map(ProviderConfig::Kms);
    }
    if let Some(c) = &p.aesgcm {
        let keys = validate_keys(
            c.keys.as_deref(),
            &format!("{path}.aesgcm.keys"),
            AES_SIZES,
            errs,
        );
        return keys.map(ProviderConfig::AesGcm);
    }
    if let Some(c) = &p.aescbc {
        let keys = validate_keys(
            c.keys.as_deref(),
            &format!("{path}.aescbc.keys"),
            AES_SIZES,
            errs,
        );
        return keys.map(ProviderConfig::AesCbc);
    }
    if let Some(c) = &p.secretbox {
        let keys = validate_keys(
            c.keys.as_deref(),
            &format!("{path}.secretbox.keys"),
            SECRETBOX_SIZES,
            errs,
        );
        return keys.map(ProviderConfig::Secretbox);
    }
    p.identity.as_ref().map(|_| ProviderConfig::Identity)
}

fn validate_keys(
    keys: Option<&[RawKey]>,
    path: &str,
    sizes: &[usize],
    errs: &mut Vec<FieldError>,
) -> Option<Vec<NamedKey>> {
    let keys = keys.unwrap_or_default();
    if keys.is_empty() {
        errs.push(required(path, "at least one keys is required"));
        return None;
    }
    let before = errs.len();
    let mut out = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let kpath = format!("{path}[{k}]");
        let name = key.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            errs.push(required(
                &format!("{kpath}.name"),
                "name is a mandatory field for a key",
            ));
        }
        let secret = key.secret.as_deref().unwrap_or_default();
        let spath = format!("{kpath}.secret");
        if secret.is_empty() {
            errs.push(required(&spath, "secret is a mandatory field for a key"));
            continue;
        }
        let Ok(material) = KeyMaterial::from_go_base64(secret) else {
            errs.push(invalid(
                &spath,
                redacted(),
                "secrets must be base64 encoded",
            ));
            continue;
        };
        if !sizes.contains(&material.len()) {
            let detail = format!(
                "secret is not of the expected length, got {}, expected one of {}",
                material.len(),
                go_int_list(sizes)
            );
            errs.push(invalid(&spath, redacted(), &detail));
            continue;
        }
        out.push(NamedKey {
            name: name.to_string(),
            secret: material,
        });
    }
    (errs.len() == before).then_some(out)
}

fn validate_kms(
    kms: &RawKms,
    path: &str,
    names: &HashSet<String>,
    mode: LoadMode,
    errs: &mut Vec<FieldError>,
) -> Option<KmsProvider> {
    let before = errs.len();
    // Defaults (v1/defaults.go), applied before validation.
    let api_version = match kms.api_version.as_deref() {
        None | Some("") => "v1",
        Some(v) => v,
    };
    let cache_size = match kms.cachesize {
        None if api_version == "v1" => Some(DEFAULT_CACHE_SIZE),
        other => other,
    };
    let name = kms.name.as_deref().unwrap_or_default();
    let npath = format!("{path}.name");
    if name.is_empty() {
        errs.push(required(&npath, "name is a mandatory field for a provider"));
    } else if api_version == "v2" && name.contains(':') {
        let d = format!("invalid KMS provider name {name}, must not contain ':'");
        errs.push(invalid(&npath, quoted(name), &d));
    } else if (api_version == "v2" || mode == LoadMode::AutomaticReload) && names.contains(name) {
        let d = format!("duplicate KMS provider name {name}, names must be unique");
        errs.push(invalid(&npath, quoted(name), &d));
    }
    let tpath = format!("{path}.timeout");
    let timeout = match kms.timeout.as_deref() {
        None => Some(DEFAULT_TIMEOUT),
        Some(text) => match parse_go_duration(text) {
            Ok(ns) if ns > 0 => Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))),
            Ok(_) => {
                errs.push(invalid(
                    &tpath,
                    quoted(text),
                    "timeout should be a positive value",
                ));
                None
            }
            Err(e) => {
                errs.push(invalid(&tpath, quoted(text), &e));
                None
            }
        },
    };
    let endpoint = validate_endpoint(
        kms.endpoint.as_deref().unwrap_or_default(),
        &format!("{path}.endpoint"),
        errs,
    );
    let cpath = format!("{path}.cachesize");
    match (api_version, cache_size) {
        ("v1", Some(0)) => errs.push(invalid(
            &cpath,
            "0".into(),
            "cachesize should be a positive value, or negative to disable",
        )),
        ("v1", _) | (_, None) => {}
        (_, Some(n)) => errs.push(invalid(
            &cpath,
            n.to_string(),
            "cachesize is not supported in v2",
        )),
    }
    let version = match api_version {
        "v1" => Some(KmsApiVersion::V1),
        "v2" => Some(KmsApiVersion::V2),
        other => {
            errs.push(invalid(
                &format!("{path}.apiVersion"),
                quoted(other),
                "unsupported apiVersion apiVersion for KMS provider, only v1 and v2 are supported",
            ));
            None
        }
    };
    if errs.len() != before {
        return None;
    }
    Some(KmsProvider {
        name: name.to_string(),
        api_version: version?,
        cache_size,
        endpoint: endpoint?,
        timeout: timeout?,
    })
}

/// The endpoint must be a URL with scheme `unix`; only its path is used, and a path starting
/// with `/@` names a Linux abstract socket (`reference/encryption.md` §3.3).
fn validate_endpoint(text: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<KmsEndpoint> {
    if text.is_empty() {
        errs.push(invalid(
            path,
            quoted(""),
            "endpoint is a mandatory field for a kms",
        ));
        return None;
    }
    let (scheme, rest) = match go_url_scheme(text) {
        Ok(parts) => parts,
        Err(e) => {
            let d = format!("invalid endpoint for kms provider, error: parse {text:?}: {e}");
            errs.push(invalid(path, quoted(text), &d));
            return None;
        }
    };
    if scheme != "unix" {
        let d = format!("unsupported scheme {scheme:?} for KMS provider, only unix is supported");
        errs.push(invalid(path, quoted(text), &d));
        return None;
    }
    // `unix:///p` and `unix://host/p` use `/p`; `unix:/p` is `/p`; `unix:p` is opaque (no path).
    let url_path = match rest.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path
            .find('/')
            .map_or("", |i| &authority_and_path[i..]),
        None if rest.starts_with('/') => rest,
        None => "",
    };
    let url_path = url_path.split(['?', '#']).next().unwrap_or_default();
    Some(match url_path.strip_prefix("/@") {
        Some(name) => KmsEndpoint::Abstract(name.to_string()),
        None => KmsEndpoint::Path(PathBuf::from(url_path)),
    })
}

/// Go's `url.Parse` scheme rules: letters first, then letters, digits, `+`, `-`, `.`, up to
/// `:`. Returns the lowercased scheme (empty if none) and the rest.
fn go_url_scheme(text: &str) -> Result<(String, &str), &'static str> {
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL");
    }
    for (i, c) in text.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme"),
            ':' => return Ok((text[..i].to_ascii_lowercase(), &text[i + 1..])),
            _ => break,
        }
    }
    let first_segment = text.split('/').next().unwrap_or_default();
    if first_segment.contains(':') {
        return Err("first path segment in URL cannot contain colon");
    }
    Ok((String::new(), text))
}

fn required(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.into(),
        kind: FieldErrorKind::Required,
        value: None,
        detail: detail.into(),
    }
}

fn invalid(field: &str, value: String, detail: &str) -> FieldError {
    FieldError {
        field: field.into(),
        kind: FieldErrorKind::Invalid,
        value: Some(value),
        detail: detail.into(),
    }
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn redacted() -> String {
    "\"REDACTED\"".into()
}

/// Go's `%v` of an int slice: `[16 24 32]`.
fn go_int_list(v: &[usize]) -> String {
    let items: Vec<String> = v.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> Result<KmsEndpoint, String> {
        let mut errs = Vec::new();
        validate_endpoint(text, "e", &mut errs).ok_or_else(|| errs[0].to_string())
    }

    #[test]
    fn endpoints_like_upstream() {
        assert_eq!(
            endpoint("unix:///var/run/kms.sock"),
            Ok(KmsEndpoint::Path("/var/run/kms.sock".into()))
        );
        assert_eq!(
            endpoint("unix:///@kms-provider.sock"),
            Ok(KmsEndpoint::Abstract("kms-provider.sock".into()))
        );
        assert_eq!(
            endpoint("unix://host/x"),
            Ok(KmsEndpoint::Path("/x".into()))
        );
        assert_eq!(endpoint("unix:/x"), Ok(KmsEndpoint::Path("/x".into())));
        assert_eq!(endpoint("unix:relative"), Ok(KmsEndpoint::Path("".into())));
        assert_eq!(
            endpoint("https://kms.example"),
            Err("e: Invalid value: \"https://kms.example\": unsupported scheme \"https\" for KMS provider, only unix is supported".into())
        );
        assert_eq!(
            endpoint(""),
            Err("e: Invalid value: \"\": endpoint is a mandatory field for a kms".into())
        );
        assert_eq!(
            endpoint(":foo"),
            Err("e: Invalid value: \":foo\": invalid endpoint for kms provider, error: parse \":foo\": missing protocol scheme".into())
        );
        assert!(
            endpoint("/var/run/kms.sock")
                .unwrap_err()
                .contains("unsupported scheme \"\"")
        );
    }

    #[test]
    fn go_int_list_format() {
        assert_eq!(go_int_list(AES_SIZES), "[16 24 32]");
        assert_eq!(go_int_list(SECRETBOX_SIZES), "[32]");
    }
}
