//! Secret values in newtypes that cannot leak (STYLE rule 7). The types are `coffer-api`'s,
//! shared with `coffer-agent`; they are re-exported here so `crate::secret::*` paths stay.

pub use coffer_api::{SecretData, SecretValue};
