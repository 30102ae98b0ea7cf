//! `coffer scan`: hardcoded secrets and posture checks.
#![forbid(unsafe_code)]
