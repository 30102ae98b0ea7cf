//! Reaching the token: loading the module once per process, finding the slot, reading the PIN
//! file, and the rules for key labels and `CKA_ID`s.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::{Pkcs11Error, TokenSelector};

/// `v<version>-<8 hex>` → version.
pub(super) fn parse_cka_id(id: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(id).ok()?;
    let (version, tag) = text.strip_prefix('v')?.split_once('-')?;
    let ok_tag = tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit());
    let ok_version = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
    if !(ok_tag && ok_version) {
        return None;
    }
    version.parse().ok()
}

pub(super) fn check_label(label: &str) -> Result<(), Pkcs11Error> {
    let ok = (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Pkcs11Error::BadLabel {
            label: label.to_owned(),
        })
    }
}

/// Reads the PIN; the file's bytes are zeroized, and only the zeroizing `SecretString` keeps
/// the PIN. A trailing `\n` or `\r\n` is dropped.
pub(super) fn read_pin(path: &Path) -> Result<AuthPin, Pkcs11Error> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| Pkcs11Error::PinFile {
        path: path.into(),
        source,
    })?);
    let mut pin: &[u8] = &bytes;
    if let Some(rest) = pin.strip_suffix(b"\n") {
        pin = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    let text = std::str::from_utf8(pin)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Pkcs11Error::BadPinFile { path: path.into() })?;
    // Exactly sized, so turning it into a `Box<str>` does not reallocate and leave a copy.
    let mut owned = String::with_capacity(text.len());
    owned.push_str(text);
    Ok(AuthPin::new(owned.into_boxed_str()))
}

/// The process's context for a module, loaded and initialized on first use and kept.
pub(super) fn context(module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    /// Modules loaded so far, by canonical path. Guards loading: a module is initialized once.
    static CONTEXTS: OnceLock<Mutex<Vec<(PathBuf, Pkcs11)>>> = OnceLock::new();
    let failed = |reason: String| Pkcs11Error::Module {
        path: module.into(),
        reason,
    };
    let canonical = module.canonicalize().map_err(|e| failed(e.to_string()))?;
    let mut loaded = CONTEXTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((_, ctx)) = loaded.iter().find(|(p, _)| *p == canonical) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&canonical).map_err(|e| failed(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(e.to_string())),
    }
    loaded.push((canonical, ctx.clone()));
    Ok(ctx)
}

pub(super) fn find_slot(ctx: &Pkcs11, selector: &TokenSelector) -> Result<Slot, Pkcs11Error> {
    let dev = |source| Pkcs11Error::Device {
        op: "listing slots",
        source,
    };
    let slots = ctx.get_slots_with_initialized_token().map_err(dev)?;
    let mut present = Vec::new();
    let mut matches = Vec::new();
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(dev)?;
        let label = info.label().trim_end().to_owned();
        let hit = match selector {
            TokenSelector::Label(want) => label == *want,
            TokenSelector::Slot(id) => slot.id() == *id,
        };
        if hit {
            matches.push(slot);
        }
        present.push(format!("{label:?} in slot {}", slot.id()));
    }
    match (matches.as_slice(), selector) {
        ([one], _) => Ok(*one),
        ([], _) => Err(Pkcs11Error::NoToken {
            token: selector.to_string(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        }),
        (many, TokenSelector::Label(label)) => Err(Pkcs11Error::AmbiguousToken {
            label: label.clone(),
            slots: many.iter().map(Slot::id).collect(),
        }),
        (_, TokenSelector::Slot(_)) => unreachable!("BUG: slot ids are unique"),
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cka_ids_and_labels() {
        assert_eq!(parse_cka_id(b"v1-0a1b2c3d"), Some(1));
        assert_eq!(parse_cka_id(b"v12-ffffffff"), Some(12));
        for bad in [
            &b"v-0a1b2c3d"[..],
            b"v1-0a1b2c3",
            b"1-0a1b2c3d",
            b"v1-0a1b2c3g",
            b"\xff",
        ] {
            assert_eq!(parse_cka_id(bad), None, "{bad:?}");
        }
        assert!(check_label("coffer-kek.v_2").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pin_file_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pin");
        for (content, expected) in [
            (&b"1234\n"[..], Some("1234")),
            (b"1234\r\n", Some("1234")),
            (b"12 34", Some("12 34")),
            (b"\n", None),
            (b"", None),
            (b"\xff\xfe", None),
        ] {
            std::fs::write(&path, content).expect("write");
            let got = read_pin(&path);
            match expected {
                Some(pin) => {
                    use secrecy::ExposeSecret as _;
                    assert_eq!(got.expect("pin").expose_secret(), pin);
                }
                None => assert!(matches!(got, Err(Pkcs11Error::BadPinFile { .. }))),
            }
        }
        let missing = read_pin(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("--pkcs11-pin-file"), "{missing}");
    }
}
