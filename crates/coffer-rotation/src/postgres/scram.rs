//! SCRAM-SHA-256 verifiers (RFC 5802 §3, RFC 7677), as PostgreSQL stores them in
//! `pg_authid.rolpassword`: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
//! Sending a verifier in `ALTER ROLE .. PASSWORD` keeps the cleartext away from the server and
//! its logs; the server stores a verifier as given.
//!
//! Same steps as libpq's `PQencryptPasswordConn` and PostgreSQL's `scram_build_secret`:
//! SASLprep the password when it is valid UTF-8 and SASLprep accepts it (else the raw bytes),
//! a random 16-byte salt, 4096 iterations (PostgreSQL's default `scram_iterations`).

use std::num::NonZeroU32;

use base64::Engine as _;
use ring::{digest, hmac, pbkdf2};
use zeroize::Zeroizing;

/// PostgreSQL's default iteration count.
const ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;

/// A verifier for `password` with a fresh random salt.
pub(crate) fn verifier(password: &[u8]) -> Result<Zeroizing<String>, getrandom::Error> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt)?;
    Ok(verifier_with_salt(password, &salt, ITERATIONS))
}

fn verifier_with_salt(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<String> {
    let keys = Keys::derive(password, salt, iterations);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Zeroizing::new(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64(salt),
        b64(keys.stored_key.as_ref()),
        b64(keys.server_key.as_ref())
    ))
}

/// The keys of RFC 5802 §3 for one password and salt.
struct Keys {
    #[cfg_attr(not(test), allow(dead_code))]
    client_key: hmac::Tag,
    stored_key: digest::Digest,
    server_key: hmac::Tag,
}

impl Keys {
    fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let prepared = saslprep(password);
        let mut salted = Zeroizing::new([0u8; 32]);
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            &prepared,
            &mut *salted,
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, &*salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let server_key = hmac::sign(&key, b"Server Key");
        Self {
            client_key,
            stored_key,
            server_key,
        }
    }
}

/// SASLprep (RFC 4013) when the password is UTF-8 and allowed, else the bytes as they are:
/// PostgreSQL's rule (`pg_saslprep` falls back to the raw password).
fn saslprep(password: &[u8]) -> Zeroizing<Vec<u8>> {
    let prepared = std::str::from_utf8(password)
        .ok()
        .and_then(|s| stringprep::saslprep(s).ok())
        .map(|p| p.as_bytes().to_vec());
    Zeroizing::new(prepared.unwrap_or_else(|| password.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    /// RFC 7677 §3's exchange: user "user", password "pencil". The keys derived here must
    /// give the client proof and server signature printed in the RFC.
    #[test]
    fn rfc7677_test_vector() {
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .expect("salt");
        let keys = Keys::derive(b"pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let stored = hmac::Key::new(hmac::HMAC_SHA256, keys.stored_key.as_ref());
        let signature = hmac::sign(&stored, auth_message.as_bytes());
        let proof: Vec<u8> = keys
            .client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(b64(&proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server = hmac::Key::new(hmac::HMAC_SHA256, keys.server_key.as_ref());
        let v = hmac::sign(&server, auth_message.as_bytes());
        assert_eq!(
            b64(v.as_ref()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn verifier_shape_and_fresh_salt() {
        let a = verifier(b"secret").expect("random");
        let b = verifier(b"secret").expect("random");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{}", &a[..20]);
        assert_ne!(*a, *b, "each verifier has its own salt");
        let (head, keys) = a
            .split_once('$')
            .and_then(|(_, r)| r.split_once('$'))
            .expect("three parts");
        let salt = head.split_once(':').expect("iterations:salt").1;
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(salt)
                .expect("salt")
                .len(),
            16
        );
        assert_eq!(keys.split(':').count(), 2);
    }

    #[test]
    fn saslprep_maps_non_ascii_spaces_and_keeps_invalid_input() {
        // U+00A0 NO-BREAK SPACE maps to a space (RFC 4013 §2.1).
        assert_eq!(&*saslprep("a\u{a0}b".as_bytes()), b"a b");
        // A prohibited control character: the raw bytes are used.
        assert_eq!(&*saslprep(b"a\x07b"), b"a\x07b");
        assert_eq!(&*saslprep(&[0xff, 0xfe]), &[0xff, 0xfe]);
    }
}
