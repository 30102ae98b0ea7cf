//! False-positive filters: Shannon entropy, placeholders and sensitive key names.
//!
//! The rules for what is *not* a secret (documented here once, used by every rule):
//!
//! - **Templates and references**: `${X}`, `$X`, `$(cmd)`, `{{ x }}`, `%(x)s`, `%s`, a name in
//!   `<…>`, `[…]` or `{…}`, `process.env…`, `os.environ…`, `ENC[…]` (SOPS ciphertext), `vault:`
//!   and `ref+` references.
//! - **Stop-words**: the whole value (case-insensitive, ignoring `-`, `_`, `.`, spaces) is a
//!   known placeholder such as `changeme`, `password`, `secret`, `example`, `dummy`, `redacted`,
//!   `todo`, `none`, `null`, `test`, or it contains `example`, `placeholder`, `your`, `xxxx`,
//!   `****`, `dummy`, `sample`, `fake` or `redacted`.
//! - **Degenerate**: one repeated character, or prose (two or more spaces, or only letters and
//!   a space).
//! - **Identifiers**: `CONSTANT_NAME` or `snake_case`/`dotted.name` without digits, as in
//!   `ClientSecret => "CLIENT_SECRET"`.
//! - **Low entropy**: rules with a threshold drop values below it (see [`shannon_entropy`]).

/// Shannon entropy of `s` in bits per character (0 for the empty string).
///
/// Random base64 of 40 characters scores about 5; `MyStrongPassword` about 3.6; `aaaa` 0.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::<char, usize>::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Whole values (normalized: lower case, `-_. ` removed) that are placeholders, not secrets.
const STOP_WORDS: &[&str] = &[
    "changeme",
    "changeit",
    "password",
    "passw0rd",
    "passwd",
    "secret",
    "mysecret",
    "mypassword",
    "token",
    "apikey",
    "example",
    "dummy",
    "redacted",
    "removed",
    "hidden",
    "todo",
    "fixme",
    "tbd",
    "none",
    "null",
    "nil",
    "undefined",
    "empty",
    "test",
    "testing",
    "default",
    "string",
    "value",
    "placeholder",
    "notasecret",
    "secretvalue",
    "insertpasswordhere",
    "pass",
    "true",
    "false",
];

/// Substrings (lower case) that mark a placeholder wherever they appear.
const STOP_SUBSTRINGS: &[&str] = &[
    "example",
    "placeholder",
    "your",
    "xxxx",
    "****",
    "••••",
    "dummy",
    "sample",
    "fake",
    "redacted",
    "replace",
    "changeme",
];

/// True when `value` is a template, reference, stop-word or otherwise not a real secret.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    let templated = v.contains("${")
        || v.contains("{{")
        || v.contains("%(")
        || v.contains("%s")
        || (v.starts_with('$')
            && v[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'))
        || wrapped_name(v)
        || v.starts_with("$(")
        || v.starts_with('`')
        || lower.starts_with("process.env")
        || lower.starts_with("os.environ")
        || lower.starts_with("os.getenv")
        || lower.starts_with("env(")
        || lower.starts_with("enc[")
        || lower.starts_with("vault:")
        || lower.starts_with("ref+");
    if templated {
        return true;
    }
    let normalized: String = lower
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .collect();
    if STOP_WORDS.contains(&normalized.as_str()) {
        return true;
    }
    if STOP_SUBSTRINGS.iter().any(|s| lower.contains(s)) {
        return true;
    }
    let mut chars = v.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return true;
    }
    is_identifier(v) || v.matches(' ').count() >= 2 || is_words(v)
}

/// `<your-password>`, `[REDACTED]`, `{password}`: a name in angle, square or curly brackets
/// (letters, digits, `_-. `), not structured data such as a JSON object.
fn wrapped_name(v: &str) -> bool {
    let inner = match (v.chars().next(), v.chars().last()) {
        (Some('<'), Some('>')) | (Some('['), Some(']')) | (Some('{'), Some('}'))
            if v.len() >= 2 =>
        {
            &v[1..v.len() - 1]
        }
        _ => return false,
    };
    inner
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
}

/// `CONSTANT_NAME`, `snake_case.name`: a name in code, not a value
/// (e.g. `ClientSecret => "CLIENT_SECRET"`).
fn is_identifier(v: &str) -> bool {
    let upper = v.contains('_')
        && v.starts_with(|c: char| c.is_ascii_uppercase())
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let lower = (v.contains('_') || v.contains('.'))
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && !v.ends_with(['_', '.'])
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
    upper || lower
}

/// Letters and a space only (`PRIVATE KEY`, `Bearer token`): words, not a secret.
fn is_words(v: &str) -> bool {
    v.contains(' ') && v.chars().all(|c| c.is_ascii_alphabetic() || c == ' ')
}

/// True when a key or variable name says it holds a credential
/// (`password`, `DB_PASS`, `apiKey`, `client_secret`, `GITHUB_TOKEN`, `credentials`,
/// `private_key`, `dbPassword`).
///
/// The name is split into words (`_`, `-`, `.`, camelCase). It is sensitive when a word is, or
/// ends with, `password`, `passwd`, `secret`, `token`, `apikey`, `credential(s)`, `passphrase`,
/// `privatekey`, `accesskey` or `connectionstring`, or is `pwd`/`pass`, or when two adjacent
/// words are `api key`, `access key`, `private key`, `auth key` or `connection string`. So
/// `tokenizer`, `author` and `passport` are not sensitive.
///
/// Names that only *refer* to a secret are excluded: those ending in `name`, `ref`, `file`,
/// `path`, `url`, `uri`, `type`, `length`, `field`, `label`, `prompt`, `hint`, `format`, `header`,
/// `env`, `dir`, `policy`, `mode`, `key_id`, `count`, `ttl`, `expiry`, `version` (e.g.
/// Kubernetes' `secretName`, `secretKeyRef`).
pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase().replace(['-', '.'], "_");
    const REFERS: &[&str] = &[
        "name", "ref", "file", "path", "url", "uri", "type", "length", "field", "label", "prompt",
        "hint", "format", "header", "env", "dir", "policy", "mode", "keyid", "key_id", "count",
        "ttl", "expiry", "expires", "version",
    ];
    if REFERS.iter().any(|s| lower.ends_with(s)) {
        return false;
    }
    const ENDINGS: &[&str] = &[
        "password",
        "passwords",
        "passwd",
        "secret",
        "secrets",
        "token",
        "tokens",
        "apikey",
        "credential",
        "credentials",
        "passphrase",
        "privatekey",
        "accesskey",
        "connectionstring",
    ];
    const PAIRS: &[(&str, &str)] = &[
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("auth", "key"),
        ("connection", "string"),
    ];
    let words = split_words(name);
    let word_hit = |w: &str| {
        let w = w.trim_end_matches(|c: char| c.is_ascii_digit());
        w == "pwd" || w == "pass" || ENDINGS.iter().any(|e| w.ends_with(e))
    };
    words.iter().any(|w| word_hit(w))
        || words
            .windows(2)
            .any(|p| PAIRS.contains(&(p[0].as_str(), p[1].as_str())))
}

/// Lower-case words of an identifier: split on `_`, `-`, `.`, spaces and lower→upper camelCase.
fn split_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.' | ' ' | '/' | ':') {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_ranks_random_above_words() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        let word = shannon_entropy("MyStrongPassword");
        let random = shannon_entropy("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzKq8Zp3vQe");
        assert!((3.5..3.7).contains(&word), "{word}");
        assert!(random > 4.5, "{random}");
    }

    #[test]
    fn placeholders_are_recognized() {
        for p in [
            "changeme",
            "${PASSWORD}",
            "<your-password>",
            "{{ .Values.password }}",
            "$DB_PASSWORD",
            "password",
            "Pass-Word",
            "xxxxxxxx",
            "AKIAIOSFODNN7EXAMPLE",
            "ENC[AES256_GCM,data:abc,type:str]",
            "process.env.DB_PASSWORD",
            "Enter your password here",
            "********",
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "shared_secret",
            "db.password",
            "PRIVATE KEY",
            "[REDACTED]",
            "{db_password}",
            "",
        ] {
            assert!(is_placeholder(p), "{p} should be a placeholder");
        }
    }

    #[test]
    fn real_looking_values_are_not_placeholders() {
        for v in [
            "MyStrongPassword",
            "hunter2!",
            "s3cr3t-Pa55",
            "wJalrXUtnFEMI/K7MDENG",
            "prod_db_2024",
            "Correct-Horse",
            "{\"auth\":\"Kx9pL2mQ7r\"}",
        ] {
            assert!(!is_placeholder(v), "{v} should not be a placeholder");
        }
    }

    #[test]
    fn words() {
        assert_eq!(split_words("dbPassword"), vec!["db", "password"]);
        assert_eq!(split_words("X-Api-Key"), vec!["x", "api", "key"]);
        assert_eq!(
            split_words("spring.datasource.password"),
            vec!["spring", "datasource", "password"]
        );
    }

    #[test]
    fn sensitive_names() {
        for n in [
            "password",
            "DB_PASSWORD",
            "apiKey",
            "client_secret",
            "GITHUB_TOKEN",
            "pwd",
        ] {
            assert!(is_sensitive_name(n), "{n}");
        }
        for n in [
            "secretName",
            "secretKeyRef",
            "password_file",
            "username",
            "host",
            "token_url",
            "author",
            "passport",
            "tokenizer",
            "bypass",
            "keyboard",
        ] {
            assert!(!is_sensitive_name(n), "{n}");
        }
    }
}
