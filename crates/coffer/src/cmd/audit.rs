//! `coffer audit`: tools for the audit log that `coffer serve --audit-log-path` writes
//! (`coffer-audit`; the chain and head file formats are in `coffer_audit::chain`).
//!
//! `coffer audit verify FILE` checks that every line is an `audit.k8s.io/v1` Event, that the
//! `coffer.dev/seq` numbers run 1, 2, 3, ..., that each `coffer.dev/chain` value is the hash
//! of the line before, and that `FILE.head` names the last line. Exit 0 when intact, 1 with
//! the first problem (line number and what is wrong) otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

/// `coffer audit` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Check an audit log's hash chain and head file; exit 1 at the first problem.
    #[command(after_help = "Examples:\n  \
        coffer audit verify /var/log/coffer/audit.log\n\n\
        Prints `ok: N events, chain intact` and exits 0, or prints what is wrong and exits 1:\n  \
        line 7: chain hash does not match line 6 (a line was removed or altered)\n  \
        log ends at seq 41 but head says 42 (lines were removed from the end)\n\n\
        The head file (FILE.head) must sit beside the log; keep both when rotating.")]
    Verify(VerifyArgs),
}

/// Flags of `coffer audit verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The audit log (its head file FILE.head is read too).
    pub file: PathBuf,
}

/// Runs a `coffer audit` subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Verify(args) => Ok(verify(&args)),
    }
}

fn verify(args: &VerifyArgs) -> ExitCode {
    match coffer_audit::verify(&args.file) {
        Ok(report) => {
            print!("ok: {} events, chain intact", report.events);
            if report.lines_after_head > 0 {
                print!(
                    " ({} lines after the head file's seq: the writer stopped before updating it)",
                    report.lines_after_head
                );
            }
            println!();
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{}: {err}", args.file.display());
            ExitCode::FAILURE
        }
    }
}
