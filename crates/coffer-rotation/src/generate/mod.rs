//! Generators: every value comes from the operating system's CSPRNG (directly, or through
//! `rand`'s `ThreadRng`, a ChaCha12 generator seeded and periodically reseeded from it), and
//! every selection from an alphabet is unbiased (`rand`'s uniform range sampling rejects the
//! remainder instead of taking a modulo).
//!
//! Output keys, fixed so consumers can rely on them:
//!
//! | generator | keys | Secret type |
//! |---|---|---|
//! | `password` | `password` (or `key`) | unchanged |
//! | `randomBytes` | `value` (or `key`) | unchanged |
//! | `ed25519` | `private.pem` (PKCS#8), `public.pem` (SPKI), `public.openssh` | unchanged |
//! | `rsa` | `private.pem` (PKCS#8), `public.pem` (SPKI) | unchanged |
//! | `tlsCertificate` | `tls.crt`, `tls.key` (PKCS#8), `ca.crt` | `kubernetes.io/tls` |

pub(crate) mod keys;
pub(crate) mod password;
pub(crate) mod tls;

use crate::error::GenerateError;
use crate::secret::SecretData;
use crate::spec::Generator;

/// The Secret type of a generated TLS certificate.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// What a generator made: the keys it owns, and the Secret type they require (if any).
#[derive(Debug)]
pub struct Generated {
    /// The generated keys and values.
    pub data: SecretData,
    /// The Secret type the keys require (`kubernetes.io/tls` for certificates).
    pub secret_type: Option<&'static str>,
}

/// Inputs a generator may need besides its spec.
#[derive(Debug, Default)]
pub struct GenerateContext<'a> {
    /// The CA Secret's data, for `tlsCertificate`.
    pub ca: Option<&'a SecretData>,
}

/// Makes a new value for `generator`. CPU-heavy (RSA): call it from `spawn_blocking` in a
/// server (the engine does).
pub fn generate(
    generator: &Generator,
    ctx: &GenerateContext<'_>,
) -> Result<Generated, GenerateError> {
    let (data, secret_type) = match generator {
        Generator::Password(p) => {
            let value = password::generate_password(p)?;
            ([(p.key.clone(), value)].into_iter().collect(), None)
        }
        Generator::RandomBytes(r) => {
            let value = keys::random_bytes(r)?;
            ([(r.key.clone(), value)].into_iter().collect(), None)
        }
        Generator::Ed25519(_) => (keys::ed25519()?, None),
        Generator::Rsa(r) => (keys::rsa(r.bits)?, None),
        Generator::TlsCertificate(t) => (tls::certificate(t, ctx.ca)?, Some(TLS_SECRET_TYPE)),
    };
    Ok(Generated { data, secret_type })
}
