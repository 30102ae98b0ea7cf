//! Authorization until RBAC lands: members of `system:masters` may do everything, everyone
//! else nothing. Denials are worded as kube-apiserver words them (§10).

use crate::authn::UserInfo;
use crate::status::{ApiError, ApiResult, GroupResource};

/// Allows the request or answers 403.
pub fn authorize(
    user: &UserInfo,
    verb: &str,
    resource: GroupResource,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ApiResult<()> {
    if user.groups.iter().any(|g| g == "system:masters") {
        return Ok(());
    }
    let scope = match namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_owned(),
    };
    Err(ApiError::Forbidden {
        resource: Some(resource),
        name: name.map(str::to_owned),
        reason: format!(
            "User {:?} cannot {verb} resource {:?} in API group {:?} {scope}",
            user.name, resource.resource, resource.group
        ),
    })
}
