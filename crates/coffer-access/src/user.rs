//! The authenticated user (kube's `user.Info`).

use std::collections::BTreeMap;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of the anonymous user.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group whose members may do everything (kube-apiserver's privileged group).
pub const MASTERS: &str = "system:masters";
/// The anonymous user's name.
pub const ANONYMOUS: &str = "system:anonymous";

/// Who is making a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (`admin`, `system:anonymous`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// User uid, possibly empty.
    pub uid: String,
    /// Groups; `system:authenticated` is included for every authenticated user.
    pub groups: Vec<String>,
    /// Extra attributes (`authentication.kubernetes.io/credential-id`, ...).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The anonymous user.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS.to_owned(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED.to_owned()],
            extra: BTreeMap::new(),
        }
    }

    /// An authenticated user: `system:authenticated` is appended unless present.
    pub fn authenticated(name: String, uid: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_owned());
        }
        UserInfo {
            name,
            uid,
            groups,
            extra: BTreeMap::new(),
        }
    }

    /// True for `system:anonymous`.
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }

    /// True for members of `system:masters`, who may do everything.
    pub fn is_master(&self) -> bool {
        self.in_group(MASTERS)
    }

    /// True when the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}
