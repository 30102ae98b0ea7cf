//! Passwords from character classes with per-class minimums.
//!
//! Method: first draw each class's minimum from that class, then draw the rest from the union
//! of enabled classes, then shuffle the whole (Fisher–Yates). Every draw is a uniform index
//! into an alphabet from `rand`'s unbiased range sampling over a CSPRNG. This is how AWS's
//! `GetRandomPassword` with `RequireEachIncludedType` behaves.

use rand::seq::{IndexedRandom, SliceRandom};
use zeroize::Zeroizing;

use crate::error::GenerateError;
use crate::secret::SecretValue;
use crate::spec::{PasswordSpec, Symbols};

/// The symbol set used when `symbols: true`: ASCII punctuation without quotes, backslash,
/// backtick, `$`, `&`, `/` and space, so a password survives shells, URLs' userinfo (after
/// percent-encoding), YAML and `.env` files without escaping surprises.
pub const DEFAULT_SYMBOLS: &str = "!#%()*+,-.:;<=>?@[]^_{|}~";

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";

/// Generates a password for `spec` (validated with [`crate::RotationSpec::validate`]).
pub fn generate_password(spec: &PasswordSpec) -> Result<SecretValue, GenerateError> {
    let symbols: &[u8] = match &spec.symbols {
        Symbols::Enabled(true) => DEFAULT_SYMBOLS.as_bytes(),
        Symbols::Enabled(false) => b"",
        Symbols::Set(set) => set.as_bytes(),
    };
    let classes: Vec<(&[u8], u32)> = [
        (spec.lowercase, LOWER, spec.minimum.lowercase),
        (spec.uppercase, UPPER, spec.minimum.uppercase),
        (spec.digits, DIGITS, spec.minimum.digits),
        (!symbols.is_empty(), symbols, spec.minimum.symbols),
    ]
    .into_iter()
    .filter(|(on, alphabet, _)| *on && !alphabet.is_empty())
    .map(|(_, alphabet, min)| (alphabet, min.unwrap_or(1)))
    .collect();
    let length = spec.length as usize;
    let required: usize = classes.iter().map(|(_, m)| *m as usize).sum();
    if classes.is_empty() || required > length {
        return Err(GenerateError::Key {
            algorithm: "password",
            reason:
                "the spec enables no class or its minimums exceed the length; validate the spec"
                    .into(),
        });
    }
    let union: Vec<u8> = classes
        .iter()
        .flat_map(|(a, _)| a.iter().copied())
        .collect();

    let mut rng = rand::rng();
    // Capacity is fixed up front so the buffer never reallocates (a reallocation would leave an
    // unzeroized copy behind).
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    for (alphabet, min) in &classes {
        for _ in 0..*min {
            out.push(
                *alphabet
                    .choose(&mut rng)
                    .expect("BUG: alphabet is non-empty"),
            );
        }
    }
    while out.len() < length {
        out.push(*union.choose(&mut rng).expect("BUG: union is non-empty"));
    }
    out.shuffle(&mut rng);
    Ok(SecretValue::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ClassMinimums;

    fn spec() -> PasswordSpec {
        PasswordSpec::default()
    }

    fn count(p: &[u8], alphabet: &[u8]) -> usize {
        p.iter().filter(|c| alphabet.contains(c)).count()
    }

    #[test]
    fn length_and_classes() {
        let p = generate_password(&spec()).expect("generates");
        let p = p.expose_secret();
        assert_eq!(p.len(), 32);
        for c in p {
            assert!(
                LOWER.contains(c)
                    || UPPER.contains(c)
                    || DIGITS.contains(c)
                    || DEFAULT_SYMBOLS.as_bytes().contains(c)
            );
        }
    }

    #[test]
    fn minimums_are_guaranteed_every_time() {
        let s = PasswordSpec {
            length: 12,
            symbols: Symbols::Set("-_".into()),
            minimum: ClassMinimums {
                lowercase: Some(2),
                uppercase: Some(3),
                digits: Some(4),
                symbols: Some(3),
            },
            ..spec()
        };
        for _ in 0..500 {
            let v = generate_password(&s).expect("generates");
            let p = v.expose_secret();
            assert_eq!(p.len(), 12);
            assert_eq!(count(p, LOWER), 2);
            assert_eq!(count(p, UPPER), 3);
            assert_eq!(count(p, DIGITS), 4);
            assert_eq!(count(p, b"-_"), 3);
        }
    }

    #[test]
    fn disabled_classes_never_appear() {
        let s = PasswordSpec {
            uppercase: false,
            symbols: Symbols::Enabled(false),
            ..spec()
        };
        for _ in 0..100 {
            let v = generate_password(&s).expect("generates");
            assert_eq!(count(v.expose_secret(), UPPER), 0);
            assert_eq!(count(v.expose_secret(), DEFAULT_SYMBOLS.as_bytes()), 0);
        }
    }

    /// Digits only, 200k draws: each digit's share must be within 5% of 1/10 (a modulo bias
    /// or a broken shuffle on this scale shows far beyond that), and two passwords differ.
    #[test]
    fn selection_is_uniform() {
        let s = PasswordSpec {
            length: 1000,
            lowercase: false,
            uppercase: false,
            symbols: Symbols::Enabled(false),
            ..spec()
        };
        let mut counts = [0usize; 10];
        let mut first = None;
        for _ in 0..200 {
            let v = generate_password(&s).expect("generates");
            for c in v.expose_secret() {
                counts[usize::from(c - b'0')] += 1;
            }
            if let Some(f) = &first {
                assert_ne!(f, &v, "two passwords were equal");
            } else {
                first = Some(v);
            }
        }
        for (digit, n) in counts.iter().enumerate() {
            let share = *n as f64 / 200_000.0;
            assert!((share - 0.1).abs() < 0.005, "digit {digit}: {share}");
        }
    }

    #[test]
    fn impossible_spec_is_an_error() {
        let s = PasswordSpec {
            length: 2,
            ..spec()
        };
        assert!(generate_password(&s).is_err());
    }
}
