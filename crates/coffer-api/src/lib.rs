//! Coffer's API types: Kubernetes object shapes, validation and `Status` errors. No I/O.
#![forbid(unsafe_code)]
