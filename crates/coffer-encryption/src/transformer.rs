//! The two-method contract between storage and encryption, and the one place where stored
//! values are dispatched by prefix (`reference/encryption.md` §1.5; upstream
//! `storage/value/transformer.go`).
//!
//! A provider implements [`ReadTransformer`] (and [`Transformer`] if it may write). It never
//! sees its `k8s:enc:...` prefix: [`PrefixTransformers`] strips it on read and prepends it on
//! write, and the configuration loader decides what the prefixes are.
//!
//! **AAD.** Every call takes the full storage key (for example
//! `/registry/secrets/default/db`) as additional authenticated data. The GCM-based providers bind
//! the ciphertext to it, so a value copied under another key fails to decrypt. This does not stop
//! the replay of an older value under the same key; kube-apiserver accepts that, and so do we.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{NoMatch, TransformError};
use crate::secret::SecretBytes;

/// Whether a read came from the current writer (first provider, first key) or not.
///
/// A stale value must be rewritten by the next update even if its content is unchanged, so that
/// touching an object re-encrypts it with the current key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Read by the provider and key that writes today.
    Current,
    /// Read by another provider or key (or an old KMS key id): rewrite it.
    Stale,
}

impl Freshness {
    /// `true` for [`Freshness::Stale`].
    pub fn is_stale(self) -> bool {
        self == Freshness::Stale
    }

    /// Stale if either is stale.
    pub fn or(self, other: Freshness) -> Freshness {
        if self.is_stale() || other.is_stale() {
            Freshness::Stale
        } else {
            Freshness::Current
        }
    }
}

/// Reads values from storage. A key or provider kept only to read old data (KMS v1, a retired
/// key) is just this half.
#[async_trait]
pub trait ReadTransformer: Send + Sync {
    /// Turns stored bytes (with any prefix owned by this transformer's caller already removed)
    /// into plaintext. `aad` is the full storage key.
    #[allow(
        clippy::wrong_self_convention,
        reason = "the name mirrors kube-apiserver's TransformFromStorage (STYLE rule 10)"
    )]
    async fn from_storage(
        &self,
        data: &[u8],
        aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError>;
}

/// Reads and writes values. Writes always use the current key.
#[async_trait]
pub trait Transformer: ReadTransformer {
    /// Turns plaintext into the bytes to store (without this transformer's caller's prefix).
    /// `aad` is the full storage key.
    async fn to_storage(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError>;
}

/// One entry of a prefix list: a transformer that may write, or one that only reads.
#[derive(Clone)]
pub enum Slot {
    /// May be the writer if it comes first.
    ReadWrite(Arc<dyn Transformer>),
    /// Never writes; a list whose first entry is read-only refuses writes.
    ReadOnly(Arc<dyn ReadTransformer>),
}

impl Slot {
    fn reader(&self) -> &dyn ReadTransformer {
        match self {
            Slot::ReadWrite(t) => t.as_ref(),
            Slot::ReadOnly(t) => t.as_ref(),
        }
    }
}

/// An ordered list of (prefix, transformer) pairs. Writes go to the first entry, with its
/// prefix prepended. Reads try, in order, every entry whose prefix the value starts with, and
/// move on after an error, because several entries may share a prefix (two keys of one
/// provider). A read through any entry but the first is [`Freshness::Stale`].
pub struct PrefixTransformers {
    entries: Vec<(Vec<u8>, Slot)>,
    no_match: NoMatch,
}

impl PrefixTransformers {
    /// Builds the list. `no_match` is the error when no prefix matches at all.
    pub fn new(entries: Vec<(Vec<u8>, Slot)>, no_match: NoMatch) -> Self {
        Self { entries, no_match }
    }

    /// The prefixes, in order (prefixes are not secret).
    pub fn prefixes(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|(p, _)| p.as_slice())
    }
}

impl std::fmt::Debug for PrefixTransformers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefixes: Vec<_> = self.prefixes().map(String::from_utf8_lossy).collect();
        f.debug_struct("PrefixTransformers")
            .field("prefixes", &prefixes)
            .finish()
    }
}

#[async_trait]
impl ReadTransformer for PrefixTransformers {
    async fn from_storage(
        &self,
        data: &[u8],
        aad: &[u8],
    ) -> Result<(SecretBytes, Freshness), TransformError> {
        let mut errors = Vec::new();
        for (i, (prefix, slot)) in self.entries.iter().enumerate() {
            let Some(rest) = data.strip_prefix(prefix.as_slice()) else {
                continue;
            };
            match slot.reader().from_storage(rest, aad).await {
                Ok((plain, inner)) => {
                    let here = if i == 0 {
                        Freshness::Current
                    } else {
                        Freshness::Stale
                    };
                    return Ok((plain, here.or(inner)));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Err(TransformError::NoMatch(self.no_match))
        } else {
            Err(TransformError::Aggregate(errors))
        }
    }
}

#[async_trait]
impl Transformer for PrefixTransformers {
    async fn to_storage(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let Some((prefix, slot)) = self.entries.first() else {
            return Err(TransformError::NoMatch(self.no_match));
        };
        let Slot::ReadWrite(writer) = slot else {
            return Err(TransformError::ReadOnly);
        };
        let body = writer.to_storage(plain, aad).await?;
        let mut out = Vec::with_capacity(prefix.len() + body.len());
        out.extend_from_slice(prefix);
        out.extend_from_slice(&body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    /// Appends (write) or checks and removes (read) a one-byte tag; fails on anything else.
    struct Tagged(u8);

    #[async_trait]
    impl ReadTransformer for Tagged {
        async fn from_storage(
            &self,
            data: &[u8],
            _aad: &[u8],
        ) -> Result<(SecretBytes, Freshness), TransformError> {
            match data.split_last() {
                Some((last, rest)) if *last == self.0 => {
                    Ok((SecretBytes::new(rest.to_vec()), Freshness::Current))
                }
                _ => Err(TransformError::GcmAuthentication),
            }
        }
    }

    #[async_trait]
    impl Transformer for Tagged {
        async fn to_storage(&self, plain: &[u8], _aad: &[u8]) -> Result<Vec<u8>, TransformError> {
            let mut v = plain.to_vec();
            v.push(self.0);
            Ok(v)
        }
    }

    fn list(tags: &[(&str, u8)]) -> PrefixTransformers {
        PrefixTransformers::new(
            tags.iter()
                .map(|(p, t)| (p.as_bytes().to_vec(), Slot::ReadWrite(Arc::new(Tagged(*t)))))
                .collect(),
            NoMatch::Prefix,
        )
    }

    #[test]
    fn writes_with_first_and_reads_stale_from_others() {
        let l = list(&[("a:", 1), ("b:", 2)]);
        let stored = block_on(l.to_storage(b"x", b"k")).expect("write");
        assert_eq!(stored, b"a:x\x01");
        let (p, f) = block_on(l.from_storage(b"a:x\x01", b"k")).expect("read");
        assert_eq!((p.expose_secret(), f), (&b"x"[..], Freshness::Current));
        let (p, f) = block_on(l.from_storage(b"b:y\x02", b"k")).expect("read");
        assert_eq!((p.expose_secret(), f), (&b"y"[..], Freshness::Stale));
    }

    #[test]
    fn shared_prefix_moves_on_after_error() {
        let l = list(&[("a:", 1), ("a:", 2)]);
        let (p, f) = block_on(l.from_storage(b"a:z\x02", b"k")).expect("second key reads");
        assert_eq!((p.expose_secret(), f), (&b"z"[..], Freshness::Stale));
        let err = block_on(l.from_storage(b"a:z\x03", b"k")).unwrap_err();
        assert!(
            matches!(err, TransformError::Aggregate(ref v) if v.len() == 2),
            "{err:?}"
        );
    }

    #[test]
    fn no_prefix_gives_list_error() {
        let l = list(&[("a:", 1)]);
        let err = block_on(l.from_storage(b"zzz", b"k")).unwrap_err();
        assert_eq!(err.to_string(), "no matching prefix found");
    }

    #[test]
    fn read_only_first_refuses_writes() {
        let l = PrefixTransformers::new(
            vec![(b"r:".to_vec(), Slot::ReadOnly(Arc::new(Tagged(1))))],
            NoMatch::Prefix,
        );
        assert!(matches!(
            block_on(l.to_storage(b"x", b"k")),
            Err(TransformError::ReadOnly)
        ));
        assert!(block_on(l.from_storage(b"r:x\x01", b"k")).is_ok());
    }
}
