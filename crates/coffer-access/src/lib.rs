//! Who may do what (`reference/k8s-api.md` §13–§15): the authenticated [`UserInfo`], the
//! attributes of a request, Kubernetes RBAC evaluated over a snapshot of Roles, ClusterRoles
//! and their bindings, impersonation, and ServiceAccount tokens.
//!
//! What this crate is not: it does no I/O, holds no server and no storage. The server keeps a
//! [`rbac::Policy`] snapshot current from storage and asks it.
#![forbid(unsafe_code)]

mod user;

// The public interface.
pub use user::UserInfo;
