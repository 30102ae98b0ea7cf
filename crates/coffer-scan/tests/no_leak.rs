//! No output format ever contains a secret value: not the raw value, not its base64 form.

use std::path::Path;

use coffer_scan::{Format, ScanOptions, Scanner};

/// Every secret value planted in `tests/corpus`, as written there or decoded from it.
const PLANTED: &[&str] = &[
    "MyStrongPassword",
    "TXlTdHJvbmdQYXNzd29yZA==",
    "AKIAGMXGEDN73U55XTPL", // coffer:ignore (test fixture)
    "FkM+R5Kjp1vRt/1fjORS+6ilI8ihN5KXSc7Tvo+h",
    "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d", // coffer:ignore (test fixture)
    "Qm9ndXNTaWduYXR1cmVGb3JUZXN0czEyMw",
    "Pg-Pr0d-9xQ2",
    "J4va-Pr0d-Pa55",
    "xoxb-2048301772-5829301847-nXsiVpzz63FfkCzJr4i0B3Jr", // coffer:ignore (test fixture)
    "S3cr3t-Env-Value",
    "Pr0pS3cret!x",
    "Sq1-Srv-P4ss",
    "1TWDtkwtDDb/xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWtGSU8po/799NksnR",
    "glpat-KLzdocJ2isAjIhKtJ0Rl", // coffer:ignore (test fixture)
    "Tq7wZp2Lm9Xc4Rv8",
    "Cm-Pl41n-S3cret",
    "Dp-L1t3ral-V4lue",
    "Iy8h8oEmh3hpduv8wyf1kxdlJ0upgptEBvYf+Ikyb/o=",
    "Kx9pL2mQ7rT4",
];

/// The shortest piece of a value that would count as a leak: the redacted form keeps at most
/// 4 leading characters, so any 6-character window of a value is checked.
fn windows(value: &str) -> Vec<String> {
    let chars: Vec<char> = value.chars().collect();
    (0..chars.len().saturating_sub(5))
        .map(|i| chars[i..i + 6].iter().collect())
        .collect()
}

#[test]
fn no_format_contains_a_secret_value() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let report = Scanner::new(ScanOptions::default())
        .scan_dir(&root, &mut |_| {})
        .expect("corpus scans");
    assert!(
        report.findings.len() >= 20,
        "the corpus must produce findings"
    );
    let outputs = [
        report.render(Format::Text),
        report.render(Format::Json),
        report.render(Format::Sarif),
        format!("{report:?}"),
    ];
    let catalog_text: String = coffer_scan::CATALOG
        .iter()
        .map(|r| format!("{} {}\n", r.title, r.fix))
        .collect();
    for value in PLANTED {
        for out in &outputs {
            assert!(!out.contains(value), "an output contains a planted value");
            for w in windows(value) {
                // Skip plain words and public format prefixes (`glpat-`) that the fixed
                // rule titles and hints also use.
                if w.chars().all(|c| c.is_ascii_alphabetic()) || catalog_text.contains(&w) {
                    continue;
                }
                assert!(
                    !out.contains(&w),
                    "an output contains part of a planted value"
                );
            }
        }
    }
}

#[test]
fn every_planted_value_is_actually_in_the_corpus() {
    // Guards the test above: a typo in PLANTED would make it pass vacuously.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut all = String::new();
    for entry in walk(&root) {
        all.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
    }
    for value in PLANTED {
        if *value == "MyStrongPassword" {
            continue; // appears in src/Db.cs and base64-encoded in k8s/secret.yaml
        }
        assert!(all.contains(value), "{value:.4}… is not in the corpus");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
