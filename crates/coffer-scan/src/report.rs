//! Rendering a [`Report`]: human text, JSON and SARIF 2.1.0.
//!
//! Every renderer reads only [`Finding`]s, which hold no secret values, so no format can print
//! one.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::finding::{Finding, Severity};
use crate::rules::CATALOG;
use crate::scanner::Report;

/// Version of the JSON report layout (`"version"` field).
pub const JSON_VERSION: u32 = 1;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// Readable report grouped by severity, with a fix hint per finding.
    #[default]
    Text,
    /// `{"version", "summary", "stats", "findings"}`; also the baseline file format.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.
    Sarif,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            other => Err(format!("unknown format {other:?} (text, json, sarif)")),
        }
    }
}

impl Report {
    /// Renders the report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Json => self.to_json().to_string(),
            Format::Sarif => self.to_sarif().to_string(),
        }
    }

    fn counts(&self) -> [usize; 3] {
        let n = |s| self.findings.iter().filter(|f| f.severity == s).count();
        [n(Severity::High), n(Severity::Medium), n(Severity::Low)]
    }

    fn to_text(&self) -> String {
        let [high, medium, low] = self.counts();
        let s = &self.stats;
        let mut out = String::new();
        let commits = if s.commits_scanned > 0 {
            format!(", {} commits", s.commits_scanned)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "coffer scan: {} finding(s): {high} high, {medium} medium, {low} low ({} files, {} bytes{commits}; {} suppressed, {} in baseline)",
            self.findings.len(),
            s.files_scanned,
            s.bytes_scanned,
            s.suppressed,
            s.baselined,
        );
        for severity in [Severity::High, Severity::Medium, Severity::Low] {
            let group: Vec<&Finding> = self
                .findings
                .iter()
                .filter(|f| f.severity == severity)
                .collect();
            if group.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n{} ({})",
                severity.as_str().to_uppercase(),
                group.len()
            );
            for f in group {
                let _ = writeln!(
                    out,
                    "  {}:{}  [{}]",
                    f.location.path, f.location.line, f.rule
                );
                let _ = writeln!(out, "    {}", f.message);
                if let Some(r) = &f.redacted {
                    let _ = writeln!(out, "    secret: {r}  fingerprint: {}", f.fingerprint);
                }
                if let Some(c) = &f.location.commit {
                    let short = c.id.get(..12).unwrap_or(&c.id);
                    let _ = writeln!(out, "    commit: {short} by {} <{}>", c.author, c.email);
                }
                let _ = writeln!(out, "    fix: {}", f.fix);
            }
        }
        out
    }

    fn to_json(&self) -> Value {
        let [high, medium, low] = self.counts();
        json!({
            "version": JSON_VERSION,
            "tool": "coffer-scan",
            "summary": {"total": self.findings.len(), "high": high, "medium": medium, "low": low},
            "stats": self.stats,
            "findings": self.findings,
        })
    }

    fn to_sarif(&self) -> Value {
        let rules: Vec<Value> = CATALOG
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "name": r.id,
                    "shortDescription": {"text": r.title},
                    "help": {"text": r.fix},
                    "defaultConfiguration": {"level": level(r.severity)},
                    "properties": {
                        "tags": ["security", category(r.category)],
                        "security-severity": security_severity(r.severity),
                    },
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let index = CATALOG.iter().position(|r| r.id == f.rule);
                let mut props = serde_json::Map::new();
                if let Some(r) = &f.redacted {
                    props.insert("redacted".into(), json!(r));
                }
                if let Some(c) = &f.location.commit {
                    props.insert("commit".into(), json!(c));
                }
                let mut result = json!({
                    "ruleId": f.rule,
                    "level": level(f.severity),
                    "message": {"text": format!("{} Fix: {}", f.message, f.fix)},
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri(&f.location.path)},
                            "region": {"startLine": f.location.line.max(1)},
                        }
                    }],
                    "partialFingerprints": {"cofferFingerprint/v1": f.fingerprint},
                    "properties": props,
                });
                if let (Some(i), Some(obj)) = (index, result.as_object_mut()) {
                    obj.insert("ruleIndex".into(), json!(i));
                }
                result
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "coffer-scan",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://example.invalid/coffer",
                    "rules": rules,
                }},
                "results": results,
            }],
        })
    }
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

fn category(c: crate::finding::Category) -> &'static str {
    match c {
        crate::finding::Category::Secret => "secret",
        crate::finding::Category::Posture => "posture",
    }
}

/// GitHub code scanning reads `security-severity` as a number in a string (9+ critical,
/// 7+ high, 4+ medium).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::High => "8.0",
        Severity::Medium => "5.0",
        Severity::Low => "2.0",
    }
}

/// A relative URI reference for a path: characters outside the unreserved set and `/` are
/// percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::Scanner;

    const SRC: &str = "class Db {\n    string password = \"MyStrongPassword\";\n}\n";

    #[test]
    fn formats_parse() {
        assert_eq!("SARIF".parse::<Format>(), Ok(Format::Sarif));
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn text_groups_by_severity_with_fix() {
        let r = Scanner::default().scan_text("Db.cs", SRC);
        let text = r.render(Format::Text);
        assert!(
            text.starts_with("coffer scan: 1 finding(s): 1 high"),
            "{text}"
        );
        assert!(
            text.contains("\nHIGH (1)\n  Db.cs:2  [generic-password]"),
            "{text}"
        );
        assert!(text.contains("secret: My…"), "{text}");
        assert!(text.contains("fix: Remove the value"), "{text}");
    }

    #[test]
    fn json_has_summary_and_findings() {
        let r = Scanner::default().scan_text("Db.cs", SRC);
        let v: Value = serde_json::from_str(&r.render(Format::Json)).expect("json");
        assert_eq!(v["summary"]["high"], 1);
        assert_eq!(v["findings"][0]["rule"], "generic-password");
        assert_eq!(v["findings"][0]["location"]["line"], 2);
        assert_eq!(v["findings"][0]["severity"], "high");
    }

    #[test]
    fn sarif_shape() {
        let r = Scanner::default().scan_text("My Src/Db.cs", SRC);
        let v: Value = serde_json::from_str(&r.render(Format::Sarif)).expect("json");
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        let result = &run["results"][0];
        let i = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(run["tool"]["driver"]["rules"][i]["id"], result["ruleId"]);
        assert_eq!(result["level"], "error");
        let loc = &result["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "My%20Src/Db.cs");
        assert_eq!(loc["region"]["startLine"], 2);
        assert!(result["partialFingerprints"]["cofferFingerprint/v1"].is_string());
    }
}
