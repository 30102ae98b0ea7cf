//! The server's shared state: one cloneable handle passed to every handler.

use std::ops::Deref;
use std::sync::Arc;

use coffer_encryption::ResourceTransformers;
use coffer_storage::{KeyLayout, Store};

use crate::authn::Authenticator;

/// Everything a request may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// kube-apiserver's key layout under `--etcd-prefix`.
    pub layout: KeyLayout,
    /// The value transformers from the encryption config, per resource.
    pub transformers: ResourceTransformers,
    /// Who is calling.
    pub authn: Authenticator,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
