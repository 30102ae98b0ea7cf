//! `coffer kms-plugin`.

use std::process::ExitCode;

/// Flags of `coffer kms-plugin`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `coffer kms-plugin`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`coffer kms-plugin` is not built yet")
}
