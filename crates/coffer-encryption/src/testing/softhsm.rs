//! A real SoftHSM2 token for tests of the PKCS#11 key backend: a private config file whose
//! `directories.tokendir` is a test directory, and a token initialized with
//! `softhsm2-util --init-token --free`. Processes that use it need `SOFTHSM2_CONF` set to
//! [`SoftHsm::conf`] (see [`SoftHsm::env`]); SoftHSM2 reads it when the module is initialized.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The user PIN of tokens made here.
pub const USER_PIN: &str = "1234";
/// The security officer PIN of tokens made here.
pub const SO_PIN: &str = "5678";

/// Where Debian's `libsofthsm2` installs the module.
const MODULE_PATHS: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// An initialized SoftHSM2 token in a directory the test owns.
#[derive(Debug)]
pub struct SoftHsm {
    /// The SoftHSM2 config file; export it as `SOFTHSM2_CONF`.
    pub conf: PathBuf,
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub label: String,
    /// A file holding [`USER_PIN`] and a newline.
    pub pin_file: PathBuf,
}

impl SoftHsm {
    /// The SoftHSM2 module, or a panic that says how to install it.
    pub fn module() -> PathBuf {
        MODULE_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "SoftHSM2 is not installed (no {MODULE_PATHS:?}); install Debian's softhsm2 (scripts/test.sh does)"
                )
            })
    }

    /// Writes a config under `dir` and initializes a token labelled `label` in it.
    pub fn init(dir: &Path, label: &str) -> SoftHsm {
        let module = Self::module();
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("token directory");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", USER_PIN, "--so-pin", SO_PIN])
            .output()
            .expect("softhsm2-util (install Debian's softhsm2; scripts/test.sh does)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let pin_file = dir.join("pin");
        std::fs::write(&pin_file, format!("{USER_PIN}\n")).expect("pin file");
        SoftHsm {
            conf,
            module,
            label: label.to_owned(),
            pin_file,
        }
    }

    /// The environment variable a process using this token needs.
    pub fn env(&self) -> (&'static str, &Path) {
        ("SOFTHSM2_CONF", &self.conf)
    }
}
