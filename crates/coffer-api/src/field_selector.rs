//! Field selectors (`reference/k8s-api.md` §8.7): `a=b`, `a==b`, `a!=b`, joined by `,` (AND),
//! with `\\`, `\,` and `\=` escapes in values, as apimachinery's `fields.ParseSelector`.
//!
//! Texts: `invalid selector: '…'; can't understand '…'`, `invalid field selector: invalid escape
//! sequence: …` and `invalid field selector: unescaped character in value: <code point>` follow
//! apimachinery's source (best knowledge); `field label not supported: <label>` matches
//! kube-apiserver output quoted in public bug reports. Terms are sorted before parsing, as upstream does, so the
//! first error reported is that of the first term in sorted order.

use crate::selectors::SelectorError;

/// One field selector term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `metadata.name`.
    pub field: String,
    /// `true` for `!=`, `false` for `=`/`==`.
    pub negated: bool,
    /// The unescaped value.
    pub value: String,
}

/// A parsed field selector: terms ANDed together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms, in sorted term order as upstream keeps them.
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value; every field must be in `supported_fields`
    /// (for Secrets: `metadata.name`, `metadata.namespace`, `type`).
    pub fn parse(selector: &str, supported_fields: &[&str]) -> Result<Self, SelectorError> {
        let mut terms = split_unescaped_commas(selector);
        terms.sort();
        let mut requirements = Vec::new();
        for term in terms.iter().filter(|t| !t.is_empty()) {
            let Some((field, negated, raw)) = split_term(term) else {
                return Err(SelectorError::FieldTerm {
                    selector: selector.to_owned(),
                    term: term.clone(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                negated,
                value: unescape_field_value(raw)?,
            });
        }
        if let Some(r) = requirements
            .iter()
            .find(|r| !supported_fields.contains(&r.field.as_str()))
        {
            return Err(SelectorError::FieldLabelNotSupported(r.field.clone()));
        }
        Ok(Self { requirements })
    }

    /// Whether an object matches; `field` returns a field's value (a missing value counts as
    /// the empty string, as upstream's `fields.Set` does).
    pub fn matches(&self, mut field: impl FnMut(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = field(&r.field).unwrap_or_default();
            (have == r.value) != r.negated
        })
    }

    /// `Some(name)` when the selector is exactly `metadata.name=<name>` (or `==`), the form
    /// kubectl uses to list and watch one object.
    pub fn single_name(&self) -> Option<&str> {
        match self.requirements.as_slice() {
            [r] if r.field == "metadata.name" && !r.negated => Some(&r.value),
            _ => None,
        }
    }

    /// Whether this selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Splits on commas not preceded by a backslash escape.
fn split_unescaped_commas(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// `(field, negated, raw value)` at the first operator position; `!=` and `==` win over `=`.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], negated, value));
            }
        }
    }
    None
}

fn unescape_field_value(raw: &str) -> Result<String, SelectorError> {
    if !raw.contains(['\\', '=', ',']) {
        return Ok(raw.to_owned());
    }
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(SelectorError::FieldEscape(format!("\\{e}"))),
                None => return Err(SelectorError::FieldEscape("\\".to_owned())),
            },
            '=' | ',' => return Err(SelectorError::FieldUnescaped(u32::from(c))),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests may unwrap (STYLE.md)")]

    use super::*;

    #[test]
    fn field_selectors() {
        const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
        let f =
            FieldSelector::parse("type=kubernetes.io/tls,metadata.name!=a", SECRET_FIELDS).unwrap();
        assert_eq!(f.requirements.len(), 2);
        let get = |name: &'static str, ty: &'static str| {
            move |field: &str| match field {
                "metadata.name" => Some(name.to_owned()),
                "type" => Some(ty.to_owned()),
                _ => None,
            }
        };
        assert!(f.matches(get("b", "kubernetes.io/tls")));
        assert!(!f.matches(get("a", "kubernetes.io/tls")));
        assert!(!f.matches(get("b", "Opaque")));
        assert!(f.single_name().is_none());

        let one = FieldSelector::parse("metadata.name==s1", SECRET_FIELDS).unwrap();
        assert_eq!(one.single_name(), Some("s1"));
        assert_eq!(
            FieldSelector::parse("metadata.name=s1", SECRET_FIELDS)
                .unwrap()
                .single_name(),
            Some("s1")
        );
        assert!(
            FieldSelector::parse("metadata.name!=s1", SECRET_FIELDS)
                .unwrap()
                .single_name()
                .is_none()
        );
        let empty = FieldSelector::parse("", SECRET_FIELDS).unwrap();
        assert!(empty.is_empty() && empty.matches(|_| None));

        let err = |s: &str| {
            FieldSelector::parse(s, SECRET_FIELDS)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err("spec.x=1"), "field label not supported: spec.x");
        // Verified against kube-apiserver output: `>=` is not an operator, `=` splits the term.
        assert_eq!(
            err("metadata.creationTimestamp>=2026-07-07T13:09:47-04:00"),
            "field label not supported: metadata.creationTimestamp>"
        );
        assert_eq!(err("type=a,zzz=b,aaa=c"), "field label not supported: aaa");
        assert_eq!(
            err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            err("type=a\\b"),
            "invalid field selector: invalid escape sequence: \\b"
        );
        assert_eq!(
            err("type=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
        let escaped = FieldSelector::parse("type=a\\,b\\=c", SECRET_FIELDS).unwrap();
        assert_eq!(escaped.requirements[0].value, "a,b=c");
    }
}
