//! Any bytes as an `EncryptionConfiguration` file: parsing and validation must not panic,
//! and a file that loads must build (without KMS clients) or fail cleanly.
#![no_main]

use std::path::Path;

use coffer_encryption::{EncryptionConfig, LoadMode, NoKms};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = EncryptionConfig::parse(data, Path::new("fuzz"), LoadMode::AutomaticReload) {
        let _ = config.warnings();
        let _ = config.build(&NoKms);
    }
});
