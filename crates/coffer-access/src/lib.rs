//! Who may do what (`reference/k8s-api.md` §13–§15): the authenticated [`UserInfo`], the
//! attributes of a request, Kubernetes RBAC evaluated over a snapshot of Roles, ClusterRoles
//! and their bindings, impersonation, and ServiceAccount tokens.
//!
//! What this crate is not: it does no I/O, holds no server and no storage. The server keeps a
//! [`rbac::Policy`] snapshot current from storage and asks it.
#![forbid(unsafe_code)]

mod attributes;
mod impersonation;
pub mod rbac;
pub mod serviceaccount;
mod user;

// The public interface.
pub use attributes::{
    NonResourceAttributes, RequestAttributes, ResourceAttributes, request_attributes,
};
pub use impersonation::{
    EXTRA_HEADER_PREFIX, GROUP_HEADER, Impersonation, ImpersonationError, UID_HEADER, USER_HEADER,
    is_impersonation_header, parse_impersonation,
};
pub use serviceaccount::{
    BearerToken, ServiceAccountToken, TokenAuthenticator, TokenError, TokenIssuer, TokenSpec,
};
pub use user::UserInfo;
