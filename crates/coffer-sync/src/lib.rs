//! `coffer sync`: External Secrets Operator manifests synced into Secrets.
#![forbid(unsafe_code)]

mod duration;
pub mod provider;
pub mod sync;
pub mod template;
pub mod types;

pub use duration::{DurationError, GoDuration};
