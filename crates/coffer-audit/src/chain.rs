//! The hash chain: what links one line of the log to the one before it, and the head file
//! that pins the last line.
//!
//! # Format
//!
//! Each line is one `Event` in compact JSON, ended by `\n`. The writer adds two annotations:
//!
//! * `coffer.dev/seq`: `"1"`, `"2"`, ... (decimal, one more than the line before);
//! * `coffer.dev/chain`: `"sha256:<64 lower-case hex>"`, the SHA-256 of the previous line's
//!   bytes exactly as written, without its `\n`. The first line carries [`GENESIS`].
//!
//! Because each line hashes the one before, which holds its own chain value, removing,
//! altering or reordering any line breaks the link of the line after it. The chain cannot show
//! that lines were cut from the *end*, so the writer also keeps `<log>.head`, one line of JSON
//! `{"seq":42,"hash":"sha256:<hex of line 42>"}` (`seq` 0 and [`GENESIS`] for an empty log),
//! replaced atomically (temporary file in the same directory, fsync, rename) after every batch.
//!
//! # Threat model
//!
//! The chain and head detect lines lost, cut, altered or reordered by accident, by a careless
//! log rotation or by someone editing one file. They do not stop someone who can write both
//! files and recompute every hash: there is no key. Against that, ship the log off the machine
//! as it is written, or record the head's hash elsewhere from time to time.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Annotation holding the line's sequence number.
pub const SEQ_ANNOTATION: &str = "coffer.dev/seq";
/// Annotation holding the hash of the previous line.
pub const CHAIN_ANNOTATION: &str = "coffer.dev/chain";
/// The chain value of the first line: `sha256:` and 64 zeros.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// `sha256:<hex>` of a line's bytes (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(line)))
}

/// The head file of a log: `<log>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

/// The content of the head file: the last line written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// `coffer.dev/seq` of the last line (0 for an empty log).
    pub seq: u64,
    /// [`line_hash`] of the last line ([`GENESIS`] for an empty log).
    pub hash: String,
}

impl Head {
    /// The head of an empty log.
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// Reads the head file; `Ok(None)` when it does not exist.
pub(crate) fn read_head(path: &Path) -> io::Result<Option<Head>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the head file atomically: write `<head>.tmp` (mode 0600), fsync, rename.
pub(crate) fn write_head(path: &Path, head: &Head) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut bytes = serde_json::to_vec(head).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let mut file = create_private(&tmp, true)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)
}

/// Opens `path` for reading and appending, creating it with mode 0600 (owner only) when
/// absent; `truncate` empties it (used for the head's temporary file only).
pub(crate) fn create_private(path: &Path, truncate: bool) -> io::Result<fs::File> {
    let mut options = OpenOptions::new();
    options.read(true).create(true);
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// The last complete line of a file (without its newline), if any.
///
/// A trailing fragment without a newline (the writer stopped mid-line: crash or full disk)
/// is cut off the file first and its length returned. The head is written only after a
/// batch is complete and synced, so the head never refers to such a fragment.
pub(crate) fn last_line_repairing_tail(file: &mut fs::File) -> io::Result<(Option<Vec<u8>>, u64)> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((None, 0));
    }
    // Read backwards in blocks until two newlines (or the start) bound the last line.
    const BLOCK: u64 = 64 * 1024;
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; usize::try_from(pos - start).map_err(io::Error::other)?];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        pos = start;
        // Two newlines bound the last complete line, whether or not a fragment follows it.
        if tail.iter().filter(|b| **b == b'\n').count() >= 2 || pos == 0 {
            break;
        }
    }
    // `tail` covers file bytes [pos, len).
    let mut cut = 0;
    if tail.last() != Some(&b'\n') {
        let keep = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        cut = (tail.len() - keep) as u64;
        tail.truncate(keep);
        file.set_len(pos + keep as u64)?;
        file.sync_data()?;
    }
    if tail.is_empty() {
        return Ok((None, cut));
    }
    tail.pop(); // the final newline
    let start = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Ok((Some(tail[start..].to_vec()), cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_format_and_genesis() {
        let h = line_hash(b"abc");
        assert_eq!(
            h,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(GENESIS.len(), h.len());
        assert_eq!(
            head_path(Path::new("/var/log/audit.log")),
            PathBuf::from("/var/log/audit.log.head")
        );
    }

    #[test]
    fn head_round_trip_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log.head");
        assert_eq!(read_head(&path).expect("read"), None);
        let head = Head {
            seq: 7,
            hash: line_hash(b"x"),
        };
        write_head(&path, &head).expect("write");
        assert_eq!(read_head(&path).expect("read"), Some(head));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn last_line_and_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        fs::write(&path, b"one\ntwo\nthr").expect("write");
        let mut file = create_private(&path, false).expect("open");
        let (last, cut) = last_line_repairing_tail(&mut file).expect("last");
        assert_eq!(last.as_deref(), Some(&b"two"[..]));
        assert_eq!(cut, 3);
        assert_eq!(fs::read(&path).expect("read"), b"one\ntwo\n");

        fs::write(&path, b"only\n").expect("write");
        let mut file = create_private(&path, false).expect("open");
        assert_eq!(
            last_line_repairing_tail(&mut file)
                .expect("last")
                .0
                .as_deref(),
            Some(&b"only"[..])
        );

        fs::write(&path, b"").expect("write");
        let mut file = create_private(&path, false).expect("open");
        assert_eq!(
            last_line_repairing_tail(&mut file).expect("last"),
            (None, 0)
        );
    }

    #[test]
    fn last_line_longer_than_a_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let long = "x".repeat(200_000);
        fs::write(&path, format!("first\n{long}\n")).expect("write");
        let mut file = create_private(&path, false).expect("open");
        let (last, _) = last_line_repairing_tail(&mut file).expect("last");
        assert_eq!(last.map(|l| l.len()), Some(200_000));
    }
}
