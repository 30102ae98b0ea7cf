//! Label and field selectors (`reference/k8s-api.md` §8.7).

use std::collections::BTreeMap;

use crate::status::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<(String, Op)>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for term in split_top(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let bad = || {
                ApiError::BadRequest(format!(
                    "unable to parse requirement: found '{term}', expected a valid label selector"
                ))
            };
            let req = if let Some(key) = term.strip_prefix('!') {
                (key.trim().to_owned(), Op::NotExists)
            } else if let Some((k, v)) = term.split_once("!=") {
                (k.trim().to_owned(), Op::NotEq(v.trim().to_owned()))
            } else if let Some((k, v)) = term.split_once("==") {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some((k, v)) = term.split_once('=') {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some((k, set)) = split_word(term, " notin ") {
                (k, Op::NotIn(parse_set(&set).ok_or_else(bad)?))
            } else if let Some((k, set)) = split_word(term, " in ") {
                (k, Op::In(parse_set(&set).ok_or_else(bad)?))
            } else {
                (term.to_owned(), Op::Exists)
            };
            if req.0.is_empty() || req.0.contains(char::is_whitespace) {
                return Err(bad());
            }
            out.push(req);
        }
        Ok(LabelSelector(out))
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.0.iter().all(|(k, op)| {
            let v = labels.get(k);
            match op {
                Op::Eq(x) => v == Some(x),
                Op::NotEq(x) => v != Some(x),
                Op::In(set) => v.is_some_and(|v| set.contains(v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.contains(v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

fn split_top(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

fn split_word(term: &str, word: &str) -> Option<(String, String)> {
    let (k, rest) = term.split_once(word)?;
    Some((k.trim().to_owned(), rest.trim().to_owned()))
}

fn parse_set(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, comma = AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a selector naming only `supported` fields.
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
            out.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(out))
    }

    /// True when every requirement holds; `field` gives a field's value.
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.0
            .iter()
            .all(|(f, equal, v)| (field(f).as_deref() == Some(v.as_str())) == *equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_operators() {
        let l = labels(&[("env", "dev"), ("tier", "db")]);
        for (sel, want) in [
            ("env=dev", true),
            ("env==dev", true),
            ("env!=dev", false),
            ("env in (dev,prod)", true),
            ("env notin (dev)", false),
            ("tier", true),
            ("!tier", false),
            ("env=dev,tier=db", true),
            ("env=dev,tier=web", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).expect(sel).matches(Some(&l)),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors() {
        let s = FieldSelector::parse("type=kubernetes.io/tls", &["type"]).expect("parse");
        assert!(s.matches(|f| (f == "type").then(|| "kubernetes.io/tls".to_owned())));
        let err = FieldSelector::parse("spec.x=1", &["type"]).expect_err("unsupported");
        assert_eq!(err.status()["message"], "field label not supported: spec.x");
    }
}
