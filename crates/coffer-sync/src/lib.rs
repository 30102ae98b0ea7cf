//! `coffer sync`: External Secrets Operator manifests synced into Secrets.
//!
//! Coffer reads ESO's `SecretStore`, `ClusterSecretStore`, `ExternalSecret` and
//! `ClusterExternalSecret` unchanged ([`types`]), fetches values from AWS Secrets Manager,
//! HashiCorp Vault or Azure Key Vault ([`provider`]), renders ESO v2 templates ([`template`])
//! and decides each Secret write with a pure function ([`sync::plan`]). [`sync::sync_one`] is
//! the whole reconciler over the [`sync::KubeAccess`] trait; a controller only has to feed it
//! ExternalSecrets and implement that trait, [`sync::StoreLookup`] and
//! [`provider::CredentialSource`]. [`controller`] is that controller over the `kube` client
//! (watcher → reflector store → reconciler), the one code path `coffer serve` runs inside
//! itself and `coffer sync --kubeconfig` runs against any API server.
//!
//! Where it differs from ESO, on purpose: fetches are shared per (store, key, version) per
//! refresh window ([`sync::FetchCache`]); unchanged data never rewrites a Secret; a provider
//! failure never touches the Secret and is retried with capped backoff.
//!
//! Secret values live in [`provider::SecretValue`] (zeroized, `Debug` shows only the length)
//! and never appear in errors, conditions or logs.
#![forbid(unsafe_code)]

pub mod controller;
mod duration;
pub mod provider;
pub mod sync;
pub mod template;
pub mod types;

// The public interface beyond the modules above.
pub use duration::{DurationError, GoDuration};
