//! Test support, behind the `testing` feature: the conformance suite every backend runs, and
//! real etcd members on loopback.

pub mod conformance;
pub mod etcd;
mod snapshots;
