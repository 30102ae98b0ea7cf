//! The audit log (`audit.k8s.io/v1`): policy, events, a hash-chained writer and its verifier.
#![forbid(unsafe_code)]
