//! `dataFrom[].rewrite`: key rewrites applied in order (ESO's `runtime/esutils` rewrite):
//! `regexp{source, target}` replaces every match in each key (`${1}` groups, as Go's
//! `ReplaceAllString`), and `transform{template}` renders each key through a template where
//! `.value` is the key. `merge` is refused by name.

use std::collections::BTreeMap;

use super::resolve::SyncError;
use crate::provider::SecretValue;
use crate::template::{Template, Value};
use crate::types::Rewrite;

/// Applies one rule to every key of `map`.
pub fn apply(
    rule: &Rewrite,
    map: BTreeMap<String, SecretValue>,
) -> Result<BTreeMap<String, SecretValue>, SyncError> {
    if let Some(r) = &rule.regexp {
        let re = regex::Regex::new(&r.source).map_err(|_| {
            SyncError::Invalid(format!(
                "rewrite.regexp.source {:?} is not a valid regular expression",
                r.source
            ))
        })?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| (re.replace_all(&k, r.target.as_str()).into_owned(), v))
            .collect());
    }
    if let Some(t) = &rule.transform {
        let tpl = Template::parse(&t.template).map_err(|source| SyncError::Template {
            key: "rewrite.transform".into(),
            source,
        })?;
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let dot = Value::Map([("value".to_owned(), Value::Str(k))].into_iter().collect());
            let key = tpl.render(&dot).map_err(|source| SyncError::Template {
                key: "rewrite.transform".into(),
                source,
            })?;
            out.insert(key, v);
        }
        return Ok(out);
    }
    if rule.merge.is_some() {
        return Err(SyncError::Unsupported("dataFrom[].rewrite[].merge".into()));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{RewriteRegexp, RewriteTransform};

    fn keys(m: &BTreeMap<String, SecretValue>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn regexp_and_transform_as_esos_examples() {
        let map: BTreeMap<String, SecretValue> = [
            ("path/to/my-key".to_owned(), SecretValue::from("v")),
            ("exp-abc-ression".to_owned(), SecretValue::from("w")),
        ]
        .into_iter()
        .collect();
        let rule = Rewrite {
            regexp: Some(RewriteRegexp {
                source: "exp-(.*?)-ression".into(),
                target: "rewriting-${1}-with-groups".into(),
            }),
            ..Rewrite::default()
        };
        let out = apply(&rule, map).expect("regexp");
        assert_eq!(keys(&out), ["path/to/my-key", "rewriting-abc-with-groups"]);
        let rule = Rewrite {
            regexp: Some(RewriteRegexp {
                source: "path/to/".into(),
                target: String::new(),
            }),
            ..Rewrite::default()
        };
        let out = apply(&rule, out).expect("remove path");
        let rule = Rewrite {
            transform: Some(RewriteTransform {
                template: r#"{{ .value | upper | replace "-" "_" }}"#.into(),
            }),
            ..Rewrite::default()
        };
        let out = apply(&rule, out).expect("transform");
        assert_eq!(keys(&out), ["MY_KEY", "REWRITING_ABC_WITH_GROUPS"]);
    }
}
