//! `audit.k8s.io/v1` `Policy`: parsed strictly from the `--audit-policy-file` (YAML or JSON),
//! validated with kube-apiserver's rules and messages
//! (`staging/src/k8s.io/apiserver/pkg/apis/audit/validation/validation.go`).
//!
//! Matching a request against the rules lives in [`crate::checker`].

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::level::{Level, Stage, StageSet};

/// The only `apiVersion` accepted (`v1alpha1` and `v1beta1` were removed in Kubernetes 1.24).
pub const API_VERSION: &str = "audit.k8s.io/v1";

/// A validated audit policy. Build it with [`Policy::from_file`], [`Policy::from_slice`] or
/// [`Policy::default_metadata`].
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub(crate) rules: Vec<PolicyRule>,
    pub(crate) omit_stages: StageSet,
    pub(crate) omit_managed_fields: bool,
}

/// One rule of a policy. Empty lists match everything, as upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRule {
    /// The level of requests this rule matches.
    pub level: Level,
    /// User names the rule applies to (empty: all).
    pub users: Vec<String>,
    /// Groups the rule applies to; a user in any of them matches (empty: all).
    pub user_groups: Vec<String>,
    /// Verbs (`get`, `list`, `watch`, `create`, ...; empty: all).
    pub verbs: Vec<String>,
    /// Resources, by API group (empty: all).
    pub resources: Vec<GroupResources>,
    /// Namespaces; `""` matches cluster-scoped resources (empty: all).
    pub namespaces: Vec<String>,
    /// Non-resource paths: exact, `prefix*`, or `*`.
    pub non_resource_urls: Vec<String>,
    /// Stages this rule does not record, added to the policy's.
    pub omit_stages: StageSet,
    /// Overrides the policy's `omitManagedFields` when set.
    pub omit_managed_fields: Option<bool>,
}

/// Resources of one API group in a rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupResources {
    /// The API group; `""` is the core group.
    pub group: String,
    /// `res`, `res/sub`, `*`, `*/sub` or `res/*` (empty: every resource of the group).
    pub resources: Vec<String>,
    /// Object names (empty: all).
    pub resource_names: Vec<String>,
}

/// One field that failed validation, as kube's `field.Error` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The path of the field, e.g. `rules[2].level`.
    pub field: String,
    /// What is wrong, e.g. `Unsupported value: "Full": supported values: ...`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("failed to read audit policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a well-formed policy: bad syntax, a wrong type or an unknown field
    /// (the message names the field path, e.g. `rules[0]: unknown field `levle``).
    #[error("failed to load audit policy from {path}: {message}")]
    Decode {
        /// The file (or the name the caller gave the bytes).
        path: String,
        /// The decoder's message, with the field path and position.
        message: String,
    },
    /// The policy decoded but breaks a rule of kube-apiserver's validation.
    #[error("invalid audit policy {path}: {}", join(.errors))]
    Invalid {
        /// The file.
        path: String,
        /// Every field that failed, in document order.
        errors: Vec<FieldError>,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Policy {
    /// Reads and validates `--audit-policy-file`.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Read {
            path: display.clone(),
            source,
        })?;
        Policy::from_slice(&bytes, &display)
    }

    /// Parses and validates a policy from YAML or JSON bytes; `name` appears in errors.
    pub fn from_slice(bytes: &[u8], name: &str) -> Result<Policy, PolicyError> {
        // JSON is read by the YAML decoder too; its errors carry the field path.
        let wire: WirePolicy = serde_yaml::from_slice(bytes).map_err(|e| PolicyError::Decode {
            path: name.to_owned(),
            message: e.to_string(),
        })?;
        wire.validate().map_err(|errors| PolicyError::Invalid {
            path: name.to_owned(),
            errors,
        })
    }

    /// The policy used when `--audit-log-path` is given without `--audit-policy-file`:
    /// one rule, `Metadata` for every request at every stage, nothing omitted.
    pub fn default_metadata() -> Policy {
        Policy {
            rules: vec![PolicyRule {
                level: Level::Metadata,
                users: Vec::new(),
                user_groups: Vec::new(),
                verbs: Vec::new(),
                resources: Vec::new(),
                namespaces: Vec::new(),
                non_resource_urls: Vec::new(),
                omit_stages: StageSet::EMPTY,
                omit_managed_fields: None,
            }],
            omit_stages: StageSet::EMPTY,
            omit_managed_fields: false,
        }
    }

    /// The rules, in order (the first match wins).
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// The policy-wide `omitStages`.
    pub fn omit_stages(&self) -> StageSet {
        self.omit_stages
    }
}

// ---- wire form and validation -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WirePolicy {
    api_version: Option<String>,
    kind: Option<String>,
    #[allow(dead_code)] // accepted (ObjectMeta) and ignored, as kube-apiserver does
    metadata: Option<serde_yaml::Value>,
    rules: Option<Vec<WireRule>>,
    omit_stages: Option<Vec<String>>,
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireRule {
    level: Option<String>,
    users: Option<Vec<String>>,
    user_groups: Option<Vec<String>>,
    verbs: Option<Vec<String>>,
    resources: Option<Vec<WireGroupResources>>,
    namespaces: Option<Vec<String>>,
    #[serde(rename = "nonResourceURLs")]
    non_resource_urls: Option<Vec<String>>,
    omit_stages: Option<Vec<String>>,
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireGroupResources {
    group: Option<String>,
    resources: Option<Vec<String>>,
    resource_names: Option<Vec<String>>,
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

fn supported(value: &str, names: impl Iterator<Item = &'static str>) -> String {
    let list = names.map(|n| format!("\"{n}\"")).collect::<Vec<_>>();
    format!(
        "Unsupported value: \"{value}\": supported values: {}",
        list.join(", ")
    )
}

impl WirePolicy {
    fn validate(self) -> Result<Policy, Vec<FieldError>> {
        let mut errs = Errors(Vec::new());
        match self.kind.as_deref() {
            Some("Policy") => {}
            Some(other) => errs.push("kind", supported(other, ["Policy"].into_iter())),
            None => errs.push("kind", "Required value: must be \"Policy\""),
        }
        match self.api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => errs.push(
                "apiVersion",
                supported(other, [API_VERSION].into_iter())
                    + " (v1alpha1 and v1beta1 were removed in Kubernetes 1.24)",
            ),
            None => errs.push("apiVersion", "Required value: must be \"audit.k8s.io/v1\""),
        }
        let omit_stages = stages(self.omit_stages, "omitStages", &mut errs);
        let wire_rules = self.rules.unwrap_or_default();
        if wire_rules.is_empty() {
            // kube-apiserver: "loaded illegal policy with 0 rules".
            errs.push(
                "rules",
                "Required value: a policy with 0 rules audits nothing; give at least one rule",
            );
        }
        let rules = wire_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.validate(&format!("rules[{i}]"), &mut errs))
            .collect();
        if errs.0.is_empty() {
            Ok(Policy {
                rules,
                omit_stages,
                omit_managed_fields: self.omit_managed_fields.unwrap_or(false),
            })
        } else {
            Err(errs.0)
        }
    }
}

impl WireRule {
    fn validate(self, at: &str, errs: &mut Errors) -> PolicyRule {
        let level = match self.level.as_deref() {
            Some(name) => Level::parse(name).unwrap_or_else(|| {
                errs.push(
                    format!("{at}.level"),
                    supported(name, Level::ALL.iter().map(|l| l.as_str())),
                );
                Level::None
            }),
            None => {
                errs.push(format!("{at}.level"), "Required value");
                Level::None
            }
        };
        let non_resource_urls = self.non_resource_urls.unwrap_or_default();
        let namespaces = self.namespaces.unwrap_or_default();
        let wire_resources = self.resources.unwrap_or_default();
        if !non_resource_urls.is_empty() && (!wire_resources.is_empty() || !namespaces.is_empty()) {
            errs.push(
                format!("{at}.nonResourceURLs"),
                "Invalid value: rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        for (i, url) in non_resource_urls.iter().enumerate() {
            let field = format!("{at}.nonResourceURLs[{i}]");
            if url == "*" {
                continue;
            }
            if !url.starts_with('/') {
                errs.push(
                    &field,
                    format!(
                        "Invalid value: \"{url}\": non-resource URL rules must begin with a '/' character"
                    ),
                );
            }
            if url.len() > 1 && url[..url.len() - 1].contains('*') {
                errs.push(
                    field,
                    format!(
                        "Invalid value: \"{url}\": non-resource URL wildcards '*' must be the final character of the rule"
                    ),
                );
            }
        }
        let resources = wire_resources
            .into_iter()
            .enumerate()
            .map(|(i, g)| g.validate(&format!("{at}.resources[{i}]"), errs))
            .collect();
        PolicyRule {
            level,
            users: self.users.unwrap_or_default(),
            user_groups: self.user_groups.unwrap_or_default(),
            verbs: self.verbs.unwrap_or_default(),
            resources,
            namespaces,
            non_resource_urls,
            omit_stages: stages(self.omit_stages, &format!("{at}.omitStages"), errs),
            omit_managed_fields: self.omit_managed_fields,
        }
    }
}

impl WireGroupResources {
    fn validate(self, at: &str, errs: &mut Errors) -> GroupResources {
        let group = self.group.unwrap_or_default();
        if !group.is_empty() && !is_dns1123_subdomain(&group) {
            errs.push(
                format!("{at}.group"),
                format!(
                    "Invalid value: \"{group}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            );
        }
        let resources = self.resources.unwrap_or_default();
        let resource_names = self.resource_names.unwrap_or_default();
        if !resource_names.is_empty() && resources.is_empty() {
            errs.push(
                format!("{at}.resourceNames"),
                "Invalid value: using resourceNames requires at least one resource",
            );
        }
        for (i, res) in resources.iter().enumerate() {
            if res.is_empty() || res.split('/').count() > 2 || res.split('/').any(str::is_empty) {
                errs.push(
                    format!("{at}.resources[{i}]"),
                    format!(
                        "Invalid value: \"{res}\": must be \"resource\", \"resource/subresource\", \"*\", \"*/subresource\" or \"resource/*\""
                    ),
                );
            }
        }
        GroupResources {
            group,
            resources,
            resource_names,
        }
    }
}

fn stages(names: Option<Vec<String>>, at: &str, errs: &mut Errors) -> StageSet {
    let mut set = StageSet::EMPTY;
    for (i, name) in names.unwrap_or_default().iter().enumerate() {
        match Stage::parse(name) {
            Some(stage) => set.insert(stage),
            None => errs.push(
                format!("{at}[{i}]"),
                supported(name, Stage::ALL.iter().map(|s| s.as_str())),
            ),
        }
    }
    set
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
