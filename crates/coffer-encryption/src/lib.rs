//! Encryption at rest compatible with kube-apiserver's `EncryptionConfiguration`.
#![forbid(unsafe_code)]
