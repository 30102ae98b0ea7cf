//! Name and key syntax checks (apimachinery's `util/validation`), each returning the list of
//! problem strings kube-apiserver would report, empty when the input is valid.
//!
//! The texts are built the way apimachinery builds them (`RegexError`, `MaxLenError`,
//! `EmptyError`). The config-key, DNS-1123 subdomain and DNS-1123 label texts are verified against
//! `reference/k8s-api.md` §8.4/§8.6/§10; the qualified-name (`name part …`, `prefix part …`) and
//! label-value texts match kube-apiserver output quoted in public bug reports; the path-segment
//! texts are best knowledge of upstream. Matching is hand-written, no regex engine.

/// Longest DNS-1123 subdomain (and Secret name, and config key).
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
/// Longest DNS-1123 label (Namespace names).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;
/// Longest name part of a qualified name (label keys) and longest label value.
pub const QUALIFIED_NAME_MAX_LEN: usize = 63;
/// Random suffix length of a generated name.
pub const GENERATED_SUFFIX_LEN: usize = 5;
/// Longest `generateName` prefix kept before the random suffix (63 − 5).
pub const MAX_GENERATED_PREFIX_LEN: usize = 58;
/// Alphabet of the generated-name suffix (no vowels, no look-alikes).
pub const GENERATED_NAME_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Problems with `value` as a DNS-1123 subdomain (≤ 253 chars,
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`). Verified texts (§8.6).
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LEN));
    }
    if !value.split('.').all(is_label_syntax) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Problems with `value` as a DNS-1123 label (≤ 63 chars, `[a-z0-9]([-a-z0-9]*[a-z0-9])?`).
/// Verified texts (§8.6).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LEN {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LEN));
    }
    if !is_label_syntax(value) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// Problems with `value` as a Secret/ConfigMap data key (§8.4): ≤ 253 chars, `[-._a-zA-Z0-9]+`,
/// not `.`, not `..`, not starting with `..`. Verified texts (§8.4, §18.2).
pub fn is_config_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LEN));
    }
    let charset_ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !charset_ok {
        errs.push(regex_error(
            CONFIG_KEY_MSG,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if value == "." {
        errs.push("must not be '.'".to_owned());
    } else if value == ".." {
        errs.push("must not be '..'".to_owned());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_owned());
    }
    errs
}

/// Problems with `value` as a qualified name (label and annotation keys, finalizers): an optional
/// DNS-1123 subdomain prefix and `/`, then a name of ≤ 63 chars matching
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                for msg in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {msg}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LEN {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LEN)
        ));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Problems with `value` as a label value: ≤ 63 chars, empty or like a qualified name part.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > QUALIFIED_NAME_MAX_LEN {
        errs.push(max_len_error(QUALIFIED_NAME_MAX_LEN));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Problems with `value` as a path segment name (RBAC objects, §8.6): not `.` or `..`, and no
/// `/` or `%`. Texts: best knowledge of upstream (`IsValidPathSegmentName`).
pub fn is_path_segment_name(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if value.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Name-validation mode of an object kind: how `metadata.name` and `generateName` are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameRule {
    /// DNS-1123 subdomain (Secret, ConfigMap, ServiceAccount).
    Dns1123Subdomain,
    /// DNS-1123 label (Namespace).
    Dns1123Label,
    /// Path segment only (Role, ClusterRole, bindings).
    PathSegment,
}

impl NameRule {
    /// Problems with `name`; with `prefix` set it is a `generateName` prefix, where a trailing `-`
    /// is allowed (apimachinery masks it before checking).
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            Self::PathSegment if prefix => ["/", "%"]
                .into_iter()
                .filter(|bad| name.contains(bad))
                .map(|bad| format!("may not contain '{bad}'"))
                .collect(),
            Self::PathSegment => is_path_segment_name(name),
            Self::Dns1123Subdomain | Self::Dns1123Label => {
                let masked;
                let name = if prefix {
                    masked = mask_trailing_dash(name);
                    masked.as_str()
                } else {
                    name
                };
                if self == Self::Dns1123Subdomain {
                    is_dns1123_subdomain(name)
                } else {
                    is_dns1123_label(name)
                }
            }
        }
    }
}

/// The name kube-apiserver generates from `generateName` (§8.2 step 4): `prefix` cut to 58 bytes
/// (at a character boundary) followed by 5 characters of [`GENERATED_NAME_ALPHABET`], each
/// picked as `random() % 27`.
pub fn generate_name(prefix: &str, mut random: impl FnMut() -> u32) -> String {
    let mut cut = prefix.len().min(MAX_GENERATED_PREFIX_LEN);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    let alphabet = GENERATED_NAME_ALPHABET.as_bytes();
    let mut name = prefix[..cut].to_owned();
    for _ in 0..GENERATED_SUFFIX_LEN {
        // A u32 always fits in usize on the 32/64-bit targets Coffer supports.
        let i = random() as usize % alphabet.len();
        name.push(char::from(alphabet[i]));
    }
    name
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without a length limit.
fn is_label_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, without a length limit.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// apimachinery's `maskTrailingDash`: a prefix ending in `-` has its last two bytes replaced by
/// `a` so that the trailing dash passes the end-character rule.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let mut cut = name.len() - 2;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}a", &name[..cut])
    } else {
        name.to_owned()
    }
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn empty_error() -> &'static str {
    "must be non-empty"
}

/// apimachinery's `RegexError`: `msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`.
/// The double space before `or` is upstream's.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_owned();
    if examples.is_empty() {
        out.push_str(&format!(" (regex used for validation is '{fmt}')"));
        return out;
    }
    out.push_str(" (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{ex}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    #[test]
    fn config_keys() {
        for ok in ["a", "A-_.9", ".a", "_x", &"k".repeat(253)] {
            assert!(is_config_key(ok).is_empty(), "{ok}");
        }
        assert_eq!(is_config_key("a b"), vec![KEY_MSG]);
        assert_eq!(is_config_key(""), vec![KEY_MSG]);
        assert_eq!(is_config_key("a/b"), vec![KEY_MSG]);
        assert_eq!(is_config_key("."), vec!["must not be '.'"]);
        assert_eq!(is_config_key(".."), vec!["must not be '..'"]);
        assert_eq!(is_config_key("..a"), vec!["must not start with '..'"]);
        assert_eq!(
            is_config_key(&"k".repeat(254)),
            vec!["must be no more than 253 characters"]
        );
    }

    #[test]
    fn subdomains() {
        for ok in ["s1", "a.b", "0-x", &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(ok).is_empty(), "{ok}");
        }
        for bad in ["BadName", "-a", "a-", "a..b", "a_b", "", ".a", "a."] {
            assert_eq!(is_dns1123_subdomain(bad), vec![SUBDOMAIN_MSG], "{bad}");
        }
        assert_eq!(
            is_dns1123_subdomain(&"a".repeat(254)),
            vec!["must be no more than 253 characters"]
        );
    }

    #[test]
    fn labels() {
        assert!(is_dns1123_label("team-a").is_empty());
        assert!(is_dns1123_label(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_dns1123_label("a.b"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn qualified_names_and_values() {
        for ok in [
            "app",
            "example.com/App_1",
            "a.b-c",
            "kubernetes.io/metadata.name",
        ] {
            assert!(is_qualified_name(ok).is_empty(), "{ok}");
        }
        let name_regex = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        assert_eq!(is_qualified_name("-a"), vec![name_regex]);
        assert_eq!(
            is_qualified_name("a/"),
            vec![
                "name part must be non-empty".to_owned(),
                name_regex.to_owned()
            ]
        );
        assert_eq!(
            is_qualified_name("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            is_qualified_name("Ex.com/a"),
            vec![format!("prefix part {SUBDOMAIN_MSG}")]
        );
        assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist"));
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("v1.2_x").is_empty());
        assert_eq!(
            is_valid_label_value("a b"),
            vec![
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ]
        );
    }

    #[test]
    fn generate_name_prefix_rules() {
        assert!(NameRule::Dns1123Subdomain.check("gen-", true).is_empty());
        assert!(!NameRule::Dns1123Subdomain.check("gen-", false).is_empty());
        assert!(NameRule::Dns1123Label.check("ns-", true).is_empty());
        assert!(!NameRule::Dns1123Subdomain.check("Gen-", true).is_empty());
        assert!(NameRule::PathSegment.check("system:foo", false).is_empty());
        assert_eq!(
            NameRule::PathSegment.check("a/b%", false),
            vec!["may not contain '/'", "may not contain '%'"]
        );
        assert_eq!(
            NameRule::PathSegment.check("..", false),
            vec!["may not be '..'"]
        );
    }

    #[test]
    fn generated_names() {
        let mut n = 0_u32;
        let name = generate_name("gen-", || {
            n += 1;
            n
        });
        assert_eq!(name, "gen-cdfgh");
        let long = generate_name(&"p".repeat(70), || 26);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("99999"));
        assert!(long.starts_with(&"p".repeat(58)));
        let all = generate_name("", || 27 * 1000 + 3);
        assert_eq!(all, "fffff");
    }
}
