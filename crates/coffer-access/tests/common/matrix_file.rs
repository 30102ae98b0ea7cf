//! The format of `rbac_matrix.yaml` (documented at the top of that file), shared by
//! coffer-access's policy test (`tests/matrix.rs`) and the binary's end-to-end test
//! (`crates/coffer/tests/e2e_rbac/matrix.rs`), so both read the same cases the same way.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Deserialize)]
pub struct Matrix {
    /// User name -> groups, exactly as the authenticator reports them.
    pub users: BTreeMap<String, UserEntry>,
    /// Roles and bindings, besides the bootstrap policy.
    pub objects: Vec<serde_json::Value>,
    /// The questions and their answers.
    pub cases: Vec<Case>,
}

/// One user's groups.
#[derive(Deserialize)]
pub struct UserEntry {
    /// Groups (`system:authenticated` included).
    pub groups: Vec<String>,
}

/// One question: a resource request (`group`, `resource`, ...) or a non-resource one (`path`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub user: String,
    pub verb: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub path: Option<String>,
    pub expect: Expect,
    /// Ask through SubjectAccessReview only (not served as a plain request).
    #[serde(default)]
    pub sar_only: bool,
    #[serde(default)]
    pub note: String,
}

/// The answer Kubernetes gives.
#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allow,
    Deny,
}

/// Parses the matrix text.
pub fn parse(text: &str) -> Matrix {
    serde_yaml::from_str(text).expect("rbac_matrix.yaml parses")
}
