//! The labelled corpus in `tests/corpus/`: every finding listed in `EXPECTED.tsv` is reported,
//! and nothing else is (each file also holds placeholders and near-misses that must stay quiet;
//! see `tests/corpus/README.md`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use coffer_scan::{Format, Report, ScanOptions, Scanner, Severity};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn scan(options: ScanOptions) -> Report {
    Scanner::new(options)
        .scan_dir(&corpus(), &mut |_| {})
        .expect("corpus scans")
}

fn expected() -> BTreeSet<(String, usize, String)> {
    let text = std::fs::read_to_string(corpus().join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "bad EXPECTED.tsv line {l:?}");
            let line = cols[1].parse().expect("line number");
            (cols[0].to_string(), line, cols[2].to_string())
        })
        .collect()
}

fn found(report: &Report) -> BTreeSet<(String, usize, String)> {
    report
        .findings
        .iter()
        .map(|f| (f.location.path.clone(), f.location.line, f.rule.clone()))
        .collect()
}

#[test]
fn corpus_findings_match_the_labels_exactly() {
    let report = scan(ScanOptions::default());
    let want = expected();
    let got = found(&report);
    let missed: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed (false negatives): {missed:#?}\nextra (false positives): {extra:#?}"
    );
    assert_eq!(report.findings.len(), want.len(), "one finding per label");
    assert_eq!(report.stats.suppressed, 1, "the coffer:ignore line");
}

#[test]
fn guide_example_and_committed_secret_manifest_are_high() {
    let report = scan(ScanOptions::default());
    let high = |path: &str, rule: &str| {
        report
            .findings
            .iter()
            .any(|f| f.location.path == path && f.rule == rule && f.severity == Severity::High)
    };
    assert!(high("src/Db.cs", "generic-password"));
    assert!(high("k8s/secret.yaml", "k8s-secret-data"));
    assert!(report.count_at_least(Severity::High) > 0);
}

#[test]
fn every_secret_finding_is_high_and_redacted() {
    let report = scan(ScanOptions::default());
    for f in &report.findings {
        if f.category == coffer_scan::Category::Secret {
            assert_eq!(f.severity, Severity::High, "{f:?}");
            let r = f.redacted.as_deref().expect("secret findings are redacted");
            assert!(r.ends_with('…') && r.chars().count() <= 5, "{r}");
            assert_eq!(f.fingerprint.len(), 16);
        }
    }
}

#[test]
fn posture_can_be_turned_off() {
    let options = ScanOptions {
        posture: false,
        ..ScanOptions::default()
    };
    let report = scan(options);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.category == coffer_scan::Category::Secret)
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.rule == "k8s-encryption-key")
    );
}

#[test]
fn baseline_from_a_json_report_hides_everything_known() {
    let first = scan(ScanOptions::default());
    let baseline = coffer_scan::Baseline::from_json(&first.render(Format::Json)).expect("baseline");
    let options = ScanOptions {
        baseline: Some(baseline),
        ..ScanOptions::default()
    };
    let second = scan(options);
    assert!(second.findings.is_empty(), "{:#?}", second.findings);
    assert_eq!(second.stats.baselined as usize, first.findings.len());
}
