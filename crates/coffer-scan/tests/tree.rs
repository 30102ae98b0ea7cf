//! `Scanner::scan_dir` on real temporary trees: ignore files, binaries, size limit, allowlist.

use std::path::Path;

use coffer_scan::{Allowlist, ScanOptions, Scanner};

const SECRET: &str = "DB_PASSWORD = \"Tr33-S3cret-Val\"\n";

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

fn paths(options: ScanOptions, root: &Path) -> Vec<String> {
    Scanner::new(options)
        .scan_dir(root, &mut |_| {})
        .expect("scans")
        .findings
        .into_iter()
        .map(|f| f.location.path)
        .collect()
}

#[test]
fn gitignored_files_are_skipped_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, ".gitignore", b"build/\n*.local\n");
    write(root, "src/a.py", SECRET.as_bytes());
    write(root, "build/gen.py", SECRET.as_bytes());
    write(root, "settings.local", SECRET.as_bytes());
    write(root, ".env", b"API_TOKEN=Zq8Xk2m9Qp4Lr7\n");
    assert_eq!(
        paths(ScanOptions::default(), root),
        vec![".env", "src/a.py"]
    );
    let all = ScanOptions {
        respect_gitignore: false,
        ..ScanOptions::default()
    };
    assert_eq!(
        paths(all, root),
        vec![".env", "build/gen.py", "settings.local", "src/a.py"]
    );
}

#[test]
fn binaries_and_large_files_are_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut binary = b"\x7fELF\0\0\0".to_vec();
    binary.extend_from_slice(SECRET.as_bytes());
    write(root, "bin/tool", &binary);
    let mut big = SECRET.to_string();
    big.push_str(&"x".repeat(4096));
    write(root, "big.py", big.as_bytes());
    write(root, "small.py", SECRET.as_bytes());
    let options = ScanOptions {
        max_file_size: 1024,
        ..ScanOptions::default()
    };
    let report = Scanner::new(options)
        .scan_dir(root, &mut |_| {})
        .expect("scans");
    let found: Vec<_> = report
        .findings
        .iter()
        .map(|f| f.location.path.as_str())
        .collect();
    assert_eq!(found, vec!["small.py"]);
    assert_eq!(report.stats.skipped_files, 2);
    assert_eq!(report.stats.files_scanned, 1);
    assert_eq!(report.stats.bytes_scanned, SECRET.len() as u64);
}

#[test]
fn a_single_file_can_be_scanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "one.py", SECRET.as_bytes());
    assert_eq!(
        paths(ScanOptions::default(), &dir.path().join("one.py")),
        vec!["one.py"]
    );
}

#[test]
fn allowlisted_paths_are_not_scanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "vendor/lib.py", SECRET.as_bytes());
    write(root, "src/a.py", SECRET.as_bytes());
    let options = ScanOptions {
        allowlist: Allowlist::from_yaml("paths: ['^vendor/']").expect("valid"),
        ..ScanOptions::default()
    };
    assert_eq!(paths(options, root), vec!["src/a.py"]);
}

#[test]
fn missing_root_is_an_error() {
    let err = Scanner::default()
        .scan_dir(Path::new("/nonexistent/coffer-scan"), &mut |_| {})
        .expect_err("missing root");
    assert!(
        err.to_string().contains("/nonexistent/coffer-scan"),
        "{err}"
    );
}

#[test]
fn progress_counts_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.txt", b"a\n");
    write(dir.path(), "b.txt", b"bb\n");
    let mut last = (0, 0);
    Scanner::default()
        .scan_dir(dir.path(), &mut |p| last = (p.files, p.bytes))
        .expect("scans");
    assert_eq!(last, (2, 5));
}
