//! `verify(path)`: reads a log line by line and checks the chain and the head file
//! (format in [`crate::chain`]). Used by `coffer audit verify` and by the writer when it
//! reopens a log whose head does not match its last line.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use crate::chain::{
    CHAIN_ANNOTATION, GENESIS, Head, SEQ_ANNOTATION, head_path, line_hash, read_head,
};
use crate::event::Event;

/// What an intact log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of events (lines).
    pub events: u64,
    /// `coffer.dev/seq` of the last line (0 for an empty log).
    pub last_seq: u64,
    /// Lines after the one the head names. They chain correctly; the writer stopped (crash)
    /// between writing them and updating the head. Usually 0.
    pub lines_after_head: u64,
}

/// Why a log failed verification. Line numbers count from 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The log or its head file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The head file is missing, so lines cut from the end could not be detected.
    #[error("head file {path} is missing: cannot tell whether lines were removed from the end")]
    HeadMissing {
        /// The head file.
        path: String,
    },
    /// A line is not a JSON audit event.
    #[error("line {line}: not an audit event: {reason}")]
    NotAnEvent {
        /// The line.
        line: u64,
        /// The decoder's message (positions and types, never content).
        reason: String,
    },
    /// The last line has no newline: the writer stopped in the middle of it.
    #[error(
        "line {line}: incomplete (no newline at the end of the file); the writer stopped mid-line"
    )]
    Incomplete {
        /// The line.
        line: u64,
    },
    /// A line lacks `coffer.dev/seq` or `coffer.dev/chain`, or its value is malformed.
    #[error("line {line}: missing or malformed annotation {annotation}")]
    BadAnnotation {
        /// The line.
        line: u64,
        /// The annotation.
        annotation: &'static str,
    },
    /// The chain value of a line is not the hash of the line before it.
    #[error("{}", chain_message(*.line))]
    ChainMismatch {
        /// The line whose chain value is wrong.
        line: u64,
    },
    /// A line's sequence number is not one more than the line before.
    #[error(
        "line {line}: seq is {found}, expected {expected} (lines were removed, added or reordered)"
    )]
    SeqMismatch {
        /// The line.
        line: u64,
        /// Its seq.
        found: u64,
        /// The seq it should have.
        expected: u64,
    },
    /// The log ends before the line the head names.
    #[error(
        "log ends at seq {last_seq} but head says {head_seq} (lines were removed from the end)"
    )]
    Truncated {
        /// Seq of the last line in the log.
        last_seq: u64,
        /// Seq in the head file.
        head_seq: u64,
    },
    /// The line the head names has a different hash.
    #[error(
        "line {line} (seq {seq}) does not match the hash in the head file (the line was altered)"
    )]
    HeadHashMismatch {
        /// The line.
        line: u64,
        /// Its seq.
        seq: u64,
    },
}

fn chain_message(line: u64) -> String {
    if line == 1 {
        "line 1: chain hash is not the genesis value (the first line was removed or altered)"
            .to_owned()
    } else {
        format!(
            "line {line}: chain hash does not match line {} (a line was removed or altered)",
            line - 1
        )
    }
}

/// Verifies a log and its `<path>.head`: every line an `Event`, seq 1, 2, 3, ..., every
/// chain value the hash of the line before, and the head naming the last line (or an
/// earlier line whose hash it holds, see [`VerifyReport::lines_after_head`]).
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let head_file = head_path(path);
    let head = read_head(&head_file)
        .map_err(|source| VerifyError::Io {
            path: head_file.display().to_string(),
            source,
        })?
        .ok_or_else(|| VerifyError::HeadMissing {
            path: head_file.display().to_string(),
        })?;
    let scan = scan(path, head.seq)?;
    check_head(&scan, &head)?;
    Ok(VerifyReport {
        events: scan.lines,
        last_seq: scan.last_seq,
        lines_after_head: scan.last_seq - head.seq,
    })
}

/// The result of reading a log whose chain is intact.
pub(crate) struct Scan {
    /// Number of lines.
    pub lines: u64,
    /// Seq of the last line (0 when empty).
    pub last_seq: u64,
    /// Hash of the last line ([`GENESIS`] when empty).
    pub last_hash: String,
    /// Hash and line number of the line with the requested seq, if present.
    pub at_wanted: Option<(String, u64)>,
}

/// Reads every line, checking parse, chain and seq; remembers the hash of line `want_seq`.
pub(crate) fn scan(path: &Path, want_seq: u64) -> Result<Scan, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    let mut prev_hash = GENESIS.to_owned();
    let mut prev_seq = 0u64;
    let mut line_no = 0u64;
    let mut at_wanted = None;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
            break;
        }
        line_no += 1;
        if buf.pop() != Some(b'\n') {
            return Err(VerifyError::Incomplete { line: line_no });
        }
        let event: Event = serde_json::from_slice(&buf).map_err(|e| VerifyError::NotAnEvent {
            line: line_no,
            reason: describe_json_error(&e),
        })?;
        let chain = event
            .annotations
            .get(CHAIN_ANNOTATION)
            .ok_or(VerifyError::BadAnnotation {
                line: line_no,
                annotation: CHAIN_ANNOTATION,
            })?;
        if *chain != prev_hash {
            return Err(VerifyError::ChainMismatch { line: line_no });
        }
        let seq = event
            .annotations
            .get(SEQ_ANNOTATION)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(VerifyError::BadAnnotation {
                line: line_no,
                annotation: SEQ_ANNOTATION,
            })?;
        if seq != prev_seq + 1 {
            return Err(VerifyError::SeqMismatch {
                line: line_no,
                found: seq,
                expected: prev_seq + 1,
            });
        }
        prev_hash = line_hash(&buf);
        prev_seq = seq;
        if seq == want_seq {
            at_wanted = Some((prev_hash.clone(), line_no));
        }
    }
    Ok(Scan {
        lines: line_no,
        last_seq: prev_seq,
        last_hash: prev_hash,
        at_wanted,
    })
}

/// Checks an intact chain against the head file.
pub(crate) fn check_head(scan: &Scan, head: &Head) -> Result<(), VerifyError> {
    if scan.last_seq < head.seq {
        return Err(VerifyError::Truncated {
            last_seq: scan.last_seq,
            head_seq: head.seq,
        });
    }
    let (hash, line) = if head.seq == 0 {
        (GENESIS, 0)
    } else {
        match &scan.at_wanted {
            Some((hash, line)) => (hash.as_str(), *line),
            None => (GENESIS, 0),
        }
    };
    if hash != head.hash {
        return Err(VerifyError::HeadHashMismatch {
            line,
            seq: head.seq,
        });
    }
    Ok(())
}

/// A serde_json error without any quoted input: category and position only.
fn describe_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{what} at column {}", e.column())
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
