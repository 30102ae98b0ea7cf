//! Resource strings of an `EncryptionConfiguration` (`reference/encryption.md` §1.3, §1.4):
//! parsing to (group, resource), the per-name rules, the overlap rule inside one list, and the
//! masking rule across entries.

use std::fmt;

use crate::error::{FieldError, FieldErrorKind};

/// A (group, resource) pair as written in the config. `*` in either place is a wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// The API group; `""` is the core group.
    pub group: String,
    /// The resource (plural, lowercase), or `*`.
    pub resource: String,
}

impl GroupResource {
    /// Parses like Go's `schema.ParseGroupResource`: split at the first `.`; without a `.` the
    /// group is core. `secrets` and `secrets.` are both ("", secrets); `*.*` is (*, *).
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((resource, group)) => Self {
                group: group.into(),
                resource: resource.into(),
            },
            None => Self {
                group: String::new(),
                resource: text.into(),
            },
        }
    }

    /// A pair from its parts.
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// `*.*`: every resource of every group.
    pub fn is_any(&self) -> bool {
        self.group == "*" && self.resource == "*"
    }
}

/// Prints as the config writes it: `secrets`, `deployments.apps`, `*.` for the core wildcard.
impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.group.as_str(), self.resource.as_str()) {
            ("", "*") => f.write_str("*."),
            ("", r) => f.write_str(r),
            (g, r) => write!(f, "{r}.{g}"),
        }
    }
}

const NON_REST: [&str; 3] = [
    "apiserveripinfo",
    "serviceipallocations",
    "servicenodeportallocations",
];

/// The per-name rules, one error at most per name.
pub(crate) fn validate_names(names: &[String], path: &str, errs: &mut Vec<FieldError>) {
    for (j, name) in names.iter().enumerate() {
        let detail = if name.chars().any(|c| c.is_ascii_uppercase()) {
            "resource name should not contain capital letters"
        } else if name == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if NON_REST.contains(&name.as_str()) {
            "resources which do not have REST API/s cannot be encrypted"
        } else {
            let gr = GroupResource::parse(name);
            if gr.group == "events.k8s.io" {
                "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
            } else if gr.group == "extensions" {
                "'extensions' group has been removed and cannot be used for encryption"
            } else if gr.group == "*" && gr.resource != "*" {
                "encrypting the same resource across groups is not supported"
            } else {
                continue;
            }
        };
        errs.push(invalid(&format!("{path}[{j}]"), name, detail));
    }
}

/// The overlap rule inside one list: the same pair twice, `*.*` with anything else, or a
/// group wildcard with another item of that group.
pub(crate) fn validate_overlap(names: &[String], path: &str, errs: &mut Vec<FieldError>) {
    if names.len() < 2 {
        return;
    }
    let parsed: Vec<GroupResource> = names.iter().map(|n| GroupResource::parse(n)).collect();
    for (i, a) in parsed.iter().enumerate() {
        for (j, b) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            let detail = if a == b {
                "the same resource cannot be specified multiple times"
            } else if a.is_any() || (a.group == b.group && (a.resource == "*" || b.resource == "*"))
            {
                "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked"
            } else {
                continue;
            };
            errs.push(invalid(&format!("{path}[{j}]"), &names[j], detail));
        }
    }
}

fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.into(),
        kind: FieldErrorKind::Invalid,
        value: Some(format!("{value:?}")),
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_like_go() {
        let p = |s| {
            let g = GroupResource::parse(s);
            (g.group, g.resource)
        };
        assert_eq!(p("secrets"), ("".into(), "secrets".into()));
        assert_eq!(p("secrets."), ("".into(), "secrets".into()));
        assert_eq!(p("*."), ("".into(), "*".into()));
        assert_eq!(p("*.*"), ("*".into(), "*".into()));
        assert_eq!(p("*.apps"), ("apps".into(), "*".into()));
        assert_eq!(p("deployments.apps"), ("apps".into(), "deployments".into()));
        assert_eq!(
            p("pandas.awesome.bears.example"),
            ("awesome.bears.example".into(), "pandas".into())
        );
        assert_eq!(GroupResource::parse("*.").to_string(), "*.");
        assert_eq!(GroupResource::parse("*.*").to_string(), "*.*");
        assert_eq!(
            GroupResource::parse("deployments.apps").to_string(),
            "deployments.apps"
        );
    }

    fn names_errors(names: &[&str]) -> Vec<String> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut errs = Vec::new();
        validate_names(&names, "resources[0].resources", &mut errs);
        validate_overlap(&names, "resources[0].resources", &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn name_rules() {
        let p = "resources[0].resources[0]: Invalid value: ";
        assert_eq!(
            names_errors(&["Secrets"]),
            [format!(
                "{p}\"Secrets\": resource name should not contain capital letters"
            )]
        );
        assert_eq!(
            names_errors(&["*"]),
            [format!(
                "{p}\"*\": use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
            )]
        );
        assert_eq!(
            names_errors(&["serviceipallocations"]),
            [format!(
                "{p}\"serviceipallocations\": resources which do not have REST API/s cannot be encrypted"
            )]
        );
        assert_eq!(
            names_errors(&["*.events.k8s.io"]),
            [format!(
                "{p}\"*.events.k8s.io\": '*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
            )]
        );
        assert_eq!(
            names_errors(&["deployments.extensions"]),
            [format!(
                "{p}\"deployments.extensions\": 'extensions' group has been removed and cannot be used for encryption"
            )]
        );
        assert_eq!(
            names_errors(&["secrets.*"]),
            [format!(
                "{p}\"secrets.*\": encrypting the same resource across groups is not supported"
            )]
        );
        assert!(
            names_errors(&[
                "secrets",
                "configmaps",
                "deployments.apps",
                "*.bears.example"
            ])
            .is_empty()
        );
    }

    #[test]
    fn overlap_rules() {
        let dup = names_errors(&["secrets", "secrets."]);
        assert!(
            dup.iter()
                .all(|e| e.ends_with("the same resource cannot be specified multiple times")),
            "{dup:?}"
        );
        let overlap = "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked";
        for pair in [
            ["secrets", "*."],
            ["*.*", "secrets"],
            ["*.apps", "deployments.apps"],
        ] {
            let errs = names_errors(&pair);
            assert!(
                !errs.is_empty() && errs.iter().all(|e| e.ends_with(overlap)),
                "{pair:?}: {errs:?}"
            );
        }
        assert!(names_errors(&["*.apps", "secrets"]).is_empty());
    }
}
