//! `coffer run`.

use std::process::ExitCode;

/// Flags of `coffer run`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `coffer run`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`coffer run` is not built yet")
}
