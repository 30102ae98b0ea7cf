//! Directory walking: `.gitignore`-aware, hidden files included, `.git` skipped.

use std::path::Path;

use crate::error::{Error, Result};

/// Bytes inspected for a NUL to decide that a file is binary (Git's own heuristic).
const BINARY_PROBE: usize = 8000;

/// True when `bytes` look binary (a NUL in the first 8000 bytes).
pub(crate) fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_PROBE)].contains(&0)
}

/// One file offered to the scanner: its path relative to the root (forward slashes), its
/// size, and a reader for its bytes.
pub(crate) struct Entry<'a> {
    pub rel: String,
    pub size: u64,
    pub path: &'a Path,
}

/// Walks `root` (a directory or one file) and calls `visit` for each regular file.
///
/// Hidden files are scanned (`.env` is where secrets hide); the `.git` directory is not.
/// With `respect_gitignore`, `.gitignore`, `.ignore` and `.git/info/exclude` are honoured even
/// outside a Git work tree. Returns the number of entries that could not be read.
pub(crate) fn walk_dir(
    root: &Path,
    respect_gitignore: bool,
    mut visit: impl FnMut(Entry<'_>),
) -> Result<u64> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if meta.is_file() {
        let rel = root
            .file_name()
            .map_or_else(|| root.to_string_lossy(), |n| n.to_string_lossy())
            .into_owned();
        visit(Entry {
            rel,
            size: meta.len(),
            path: root,
        });
        return Ok(0);
    }
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .parents(respect_gitignore)
        .ignore(respect_gitignore)
        .git_ignore(respect_gitignore)
        .git_global(false)
        .git_exclude(respect_gitignore)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut errors = 0;
    for entry in walker {
        let Ok(entry) = entry else {
            errors += 1;
            continue;
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            errors += 1;
            continue;
        };
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        visit(Entry {
            rel,
            size: meta.len(),
            path: entry.path(),
        });
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_probe() {
        assert!(is_binary(b"PK\x03\x04\0\0"));
        assert!(!is_binary(b"password = 1\n"));
    }

    #[test]
    fn walks_hidden_files_and_respects_gitignore() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).expect("mkdir");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        std::fs::write(root.join(".gitignore"), "target/\n").expect("write");
        std::fs::write(root.join(".env"), "A=1\n").expect("write");
        std::fs::write(root.join("src/a.rs"), "").expect("write");
        std::fs::write(root.join(".git/config"), "").expect("write");
        std::fs::create_dir_all(root.join("target")).expect("mkdir");
        std::fs::write(root.join("target/x"), "").expect("write");
        let mut seen = Vec::new();
        walk_dir(root, true, |e| seen.push(e.rel)).expect("walk");
        assert_eq!(seen, vec![".env", ".gitignore", "src/a.rs"]);
        let mut all = Vec::new();
        walk_dir(root, false, |e| all.push(e.rel)).expect("walk");
        assert!(all.contains(&"target/x".to_string()));
        assert!(!all.iter().any(|p| p.starts_with(".git/")));
    }
}
