//! The audit log (`audit.k8s.io/v1`): policy, events, a hash-chained writer and its verifier.
//!
//! * [`Policy`] is kube-apiserver's `--audit-policy-file`, parsed strictly; [`Policy::decide`]
//!   picks the level of a request from its [`Attributes`] (first matching rule wins, as
//!   upstream's `checker.go`). Coffer caps [`CAPPED_RESOURCES`] (Secrets, ConfigMaps,
//!   TokenRequest, TokenReview) at `Metadata` whatever the policy says, because their bodies
//!   hold secret values. [`Policy::default_metadata`] is used when only `--audit-log-path` is
//!   given.
//! * [`Event`] is the `audit.k8s.io/v1` Event, JSON for JSON. Build it with
//!   [`Event::metadata`]; bodies go in only through [`Event::attach_bodies`].
//! * [`AuditLog`] appends events as JSON lines from a background thread, chaining each line
//!   to the one before (`coffer.dev/seq`, `coffer.dev/chain`) and keeping `<path>.head`;
//!   [`verify`] checks a log. The format and its threat model are in [`chain`]'s docs
//!   ([`GENESIS`], [`Head`]).
//!
//! Start with `Policy::from_file`, `AuditLog::open`, then per request `decide`,
//! `Event::metadata` and `AuditLog::log`.
#![forbid(unsafe_code)]

pub mod chain;
mod checker;
mod event;
mod level;
mod policy;
mod verify;
mod writer;

// The public interface.
pub use chain::{CHAIN_ANNOTATION, GENESIS, Head, SEQ_ANNOTATION, head_path, line_hash};
pub use checker::{Attributes, CAPPED_RESOURCES, RequestAuditConfig, capped};
pub use event::{
    EVENT_API_VERSION, Event, EventUser, KIND, MicroTime, ObjectReference, ResponseStatus,
};
pub use level::{Level, Stage, StageSet};
pub use policy::{API_VERSION, FieldError, GroupResources, Policy, PolicyError, PolicyRule};
pub use verify::{VerifyError, VerifyReport, verify};
pub use writer::{AuditError, AuditLog};
