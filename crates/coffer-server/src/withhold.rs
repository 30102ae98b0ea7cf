//! List without reveal (`--secret-list-policy`, kubernetes/kubernetes#48128). Kubernetes lets
//! whoever may `list` or `watch` Secrets read every value, so `list` is as strong as `get` on
//! all of them. Coffer keeps the list (names, keys, types, metadata: `kubectl get secrets`
//! still shows the DATA count) but empties the values of each Secret the caller may not `get`
//! (resourceNames considered), marks it with [`WITHHELD_ANNOTATION`] and says so in a
//! `Warning` header. `--secret-list-policy=kubernetes` restores upstream behaviour.

use coffer_access::ResourceAttributes;

use crate::authn::UserInfo;
use crate::kinds::ApiKind;
#[cfg(doc)]
use crate::kinds::WITHHELD_ANNOTATION;
use crate::state::{AppState, SecretListPolicy};

/// Decides, object by object, whether the caller may see values.
pub struct Redactor {
    state: AppState,
    user: UserInfo,
}

impl Redactor {
    /// A redactor for a list or watch of `K` by `user`; `None` when nothing can be withheld
    /// (not Secrets, upstream policy, or a `system:masters` member).
    pub fn for_request<K: ApiKind>(state: &AppState, user: &UserInfo) -> Option<Self> {
        let applies = K::API_GROUP.is_empty()
            && K::RESOURCE == "secrets"
            && state.secret_list_policy == SecretListPolicy::Withhold
            && !user.is_master();
        applies.then(|| Redactor {
            state: state.clone(),
            user: user.clone(),
        })
    }

    /// Withholds `obj`'s values unless the caller may `get` it; true when withheld.
    pub fn apply<K: ApiKind>(&self, obj: &mut K) -> bool {
        !self.may_get(obj) && obj.withhold_values()
    }

    /// Whether the caller may `get` this object.
    pub fn may_get<K: ApiKind>(&self, obj: &K) -> bool {
        let meta = obj.metadata();
        let attrs = ResourceAttributes {
            verb: "get".to_owned(),
            group: K::API_GROUP.to_owned(),
            version: "v1".to_owned(),
            resource: K::RESOURCE.to_owned(),
            subresource: String::new(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        };
        crate::authz::allows(&self.state, &self.user, attrs)
    }
}

/// The `Warning` text for a list where `count` Secrets had their values withheld.
pub fn warning(count: usize) -> String {
    format!(
        "values of {count} Secret(s) withheld: you may list them but not get them (the {} annotation marks each)",
        crate::kinds::WITHHELD_ANNOTATION
    )
}
