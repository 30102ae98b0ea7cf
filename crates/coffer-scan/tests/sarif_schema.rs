//! SARIF output validates against the official SARIF 2.1.0 JSON schema.
//!
//! Needs a real validator and the schema file, so it is ignored by default. Run it with:
//!
//! ```sh
//! pip install jsonschema
//! npm pack @microsoft/jest-sarif && tar xzf microsoft-jest-sarif-*.tgz   # ships the schema
//! SARIF_SCHEMA=$PWD/package/lib/schemas/sarif-2.1.0-rtm.5.json \
//!   cargo test -p coffer-scan --test sarif_schema -- --include-ignored
//! ```

use std::path::Path;
use std::process::Command;

use coffer_scan::{Format, ScanOptions, Scanner};

const VALIDATE: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc))
for e in errors[:20]:
    print(list(e.path), e.message[:300])
sys.exit(1 if errors else 0)
"#;

#[test]
#[ignore = "needs python3 with jsonschema and SARIF_SCHEMA=<path to sarif-schema-2.1.0.json>"]
fn corpus_sarif_validates_against_the_2_1_0_schema() {
    let schema = std::env::var("SARIF_SCHEMA").expect("set SARIF_SCHEMA to the schema file");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let report = Scanner::new(ScanOptions::default())
        .scan_dir(&root, &mut |_| {})
        .expect("corpus scans");
    assert!(!report.findings.is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let sarif = dir.path().join("corpus.sarif");
    std::fs::write(&sarif, report.render(Format::Sarif)).expect("write");
    let out = Command::new("python3")
        .args(["-c", VALIDATE, &schema])
        .arg(&sarif)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "SARIF does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
