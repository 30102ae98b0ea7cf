//! `coffer scan`.

use std::process::ExitCode;

/// Flags of `coffer scan`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `coffer scan`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("coffer scan is not built yet")
}
