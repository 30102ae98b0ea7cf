//! Credential rules run over one file's text, producing [`Candidate`]s.
//!
//! A candidate still holds the secret value; it lives only until the scanner has applied the
//! allowlist and turned it into a [`Finding`](crate::Finding). Nothing outside the crate sees one.

use std::ops::Range;

use crate::heuristics::{is_placeholder, is_sensitive_name, shannon_entropy};
use crate::rules::{Files, RULES, is_config_file};

/// A possible secret before suppression. Crate-private: it holds the value.
pub(crate) struct Candidate {
    pub rule: &'static str,
    pub value: String,
    /// 1-based line.
    pub line: usize,
    /// Byte range of the value in the file, when found by a text rule.
    pub span: Option<Range<usize>>,
    /// Extra context for the message (a key or object name, never the value).
    pub detail: Option<String>,
}

/// Maps byte offsets to 1-based line numbers.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// The text of 1-based `line`, without its newline (empty past the end).
    pub fn line_text<'t>(&self, text: &'t str, line: usize) -> &'t str {
        let Some(&start) = self.starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self.starts.get(line).map_or(text.len(), |&e| e);
        text[start..end].trim_end_matches(['\n', '\r'])
    }
}

/// Runs every credential rule over `text` (the file at `path`).
///
/// Keeps a match only when its value is not a placeholder, has the rule's minimum entropy, is
/// at least 6 characters for generic rules, and (generic rules) its variable name is sensitive.
/// Later matches that overlap an earlier kept one are dropped, so a specific rule wins over
/// `generic-password` on the same value.
pub(crate) fn detect(path: &str, text: &str, lines: &LineIndex) -> Vec<Candidate> {
    let lower = text.to_ascii_lowercase();
    let config = is_config_file(path);
    let mut out: Vec<Candidate> = Vec::new();
    for rule in RULES.iter() {
        if rule.files == Files::Config && !config {
            continue;
        }
        if !rule.keywords.iter().any(|k| lower.contains(k)) {
            continue;
        }
        for caps in rule.regex.captures_iter(text) {
            let Some(secret) = caps.name("secret") else {
                continue;
            };
            let value = secret.as_str().trim();
            if is_placeholder(value) || shannon_entropy(value) < rule.min_entropy {
                continue;
            }
            let mut detail = None;
            if rule.keyed {
                let key = caps.name("key").map_or("", |k| k.as_str());
                if !is_sensitive_name(key) || value.chars().count() < 6 {
                    continue;
                }
                detail = Some(format!("`{key}`"));
            }
            let span = secret.range();
            let start = caps.get(0).map_or(span.start, |m| m.start());
            if out
                .iter()
                .any(|c| c.span.as_ref().is_some_and(|s| overlaps(s, &span)))
            {
                continue;
            }
            out.push(Candidate {
                rule: rule.id,
                value: value.to_string(),
                line: lines.line_of(start),
                span: Some(span),
                detail,
            });
        }
    }
    out
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_hit(path: &str, text: &str) -> Vec<(&'static str, usize)> {
        let idx = LineIndex::new(text);
        detect(path, text, &idx)
            .into_iter()
            .map(|c| (c.rule, c.line))
            .collect()
    }

    #[test]
    fn line_index() {
        let t = "a\nbb\r\nccc";
        let idx = LineIndex::new(t);
        assert_eq!(idx.line_of(0), 1);
        assert_eq!(idx.line_of(2), 2);
        assert_eq!(idx.line_of(7), 3);
        assert_eq!(idx.line_text(t, 2), "bb");
        assert_eq!(idx.line_text(t, 9), "");
    }

    #[test]
    fn guide_csharp_example_is_found() {
        let src = "class Db {\n    string password = \"MyStrongPassword\";\n}\n";
        assert_eq!(rules_hit("Db.cs", src), vec![("generic-password", 2)]);
    }

    #[test]
    fn assignments_in_many_languages() {
        let cases = [
            ("a.py", "DB_PASSWORD = 'hunter2-prod'\n"), // coffer:ignore (test fixture)
            ("a.js", "const apiKey = \"q8Zp3vQeR2tY\";\n"),
            ("a.go", "token := \"Zm9vYmFyYmF6cXV4\"\n"),
            ("a.php", "$password = 'Tr0ub4dor&3';\n"), // coffer:ignore (test fixture)
            ("a.json", "{\"client_secret\": \"kX9pL2mQ7rT4\"}\n"),
            ("a.rb", "password: 'n0t-a-w0rd'\n"), // coffer:ignore (test fixture)
            (
                "Main.java",
                "String password = new String(\"J4vaPassw0rd\");\n",
            ),
            (".env", "DB_PASSWORD=SuperS3cretValue\n"),
            ("app.properties", "spring.datasource.password=Pr0pS3cret\n"),
        ];
        for (path, src) in cases {
            assert_eq!(
                rules_hit(path, src),
                vec![("generic-password", 1)],
                "{path}"
            );
        }
    }

    #[test]
    fn well_known_formats() {
        let cases = [
            ("aws-access-key-id", "key = AKIAQWERTYUIOPASDF23\n".to_string()), // coffer:ignore (test fixture)
            ("github-token", format!("t: ghp_{}\n", "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5")),
            ("gitlab-token", "GL=glpat-Xk2m9Qp4Lr7Tz1Vb8Nw3\n".to_string()), // coffer:ignore (test fixture)
            ("slack-token", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp\n".to_string()), // coffer:ignore (test fixture)
            ("jwt", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk\n".to_string()), // coffer:ignore (test fixture)
            ("connection-string-url", "url = \"postgres://app:Xk2m9Qp4@db.internal:5432/app\"\n".to_string()), // coffer:ignore (test fixture)
            ("connection-string-kv", "Server=db;Database=app;User Id=sa;Password=Xk2m9Qp4Lr;\n".to_string()), // coffer:ignore (test fixture)
            ("private-key", format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n{}\n-----END RSA PRIVATE KEY-----\n", "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2Bz8xX9sW4u1", "qQk7rJt0fYv6Lp3Hc8Nd2Ge5Kb1Wm9Xa4Zs7Ty0Uo3Ri6Ej")),
        ];
        for (rule, src) in cases {
            let hits = rules_hit("x.txt", &src);
            assert_eq!(hits.first().map(|h| h.0), Some(rule), "{rule}: {hits:?}");
        }
    }

    #[test]
    fn placeholders_are_not_reported() {
        let src = r#"
password = "changeme"
password = "${PASSWORD}"
password = "<your-password>"
password = "{{ .Values.db.password }}"
api_key = "YOUR_API_KEY_HERE"
aws_key = "AKIAIOSFODNN7EXAMPLE"
password = os.environ["DB_PASSWORD"]
password = getPassword()
url = "postgres://user:password@localhost/db"
url = "postgres://app:${DB_PASS}@db/app"
secretName: db-secret
token = "aaaaaaaa"
"#;
        assert_eq!(rules_hit("config.py", src), vec![]);
    }

    #[test]
    fn unquoted_values_in_code_are_expressions() {
        assert_eq!(rules_hit("a.py", "password = Ld-Pw-From-V4ult\n"), vec![]);
        assert_eq!(
            rules_hit("a.yaml", "password = Ld-Pw-From-V4ult\n"),
            vec![("generic-password", 1)]
        );
    }

    #[test]
    fn specific_rule_wins_over_generic() {
        let src = "aws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzKq8Zp3vQe\"\n";
        assert_eq!(rules_hit("a.py", src), vec![("aws-secret-access-key", 1)]);
    }
}
