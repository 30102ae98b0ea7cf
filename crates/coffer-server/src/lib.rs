//! `coffer serve`: the Kubernetes Secrets API that real kubectl and the official clients use
//! unchanged, over HTTPS, with authentication and encryption at rest.
//!
//! Start with [`Server::bind`] (bootstrap files, TLS, state) and [`Server::run`]. A request
//! goes: TLS (client certificate) → `server::authenticate` (token file, anonymous) →
//! `resources` handler: `authz::authorize` → `body` decode → `kinds` defaults and validation →
//! `registry` (codec → encryption with the storage key as AAD → compare-and-swap) → JSON or
//! `table` response. Errors become `Status` only in `status.rs`.
//!
//! What this crate is not: it holds no storage engine (`coffer-storage`), no crypto
//! (`coffer-encryption`) and no object codec (`coffer-api`).
#![forbid(unsafe_code)]

mod audit;
mod authn;
mod authz;
mod body;
mod bootstrap;
mod cache;
mod decisions;
mod discovery;
mod history;
mod kinds;
mod listing;
mod negotiate;
mod openapi;
mod openapi_custom;
mod openapi_rbac;
mod rbac_cache;
mod registry;
mod resources;
mod reviews;
mod server;
mod state;
mod status;
mod subresources;
mod table;
mod tokens;
mod watch;
mod withhold;

// The public interface.
pub use authn::UserInfo;
pub use bootstrap::issue_client_cert;
pub use cache::DEFAULT_OBJECT_CACHE_BYTES;
pub use history::HistoryOptions;
pub use server::{AccessOptions, DEFAULT_ISSUER, ServeOptions, Server, app};
pub use state::{AppState, SecretListPolicy};
pub use status::ApiError;
