//! `remoteRef.property`: ESO's gjson lookup. A property with dots is first tried as one
//! literal key (`escapeDotsIfRequired` in ESO's AWS provider; Vault checks the map key
//! first), then as a path: `a.b` walks objects, `friends.1` indexes arrays, `\.` escapes a
//! dot, `#` is an array's length. Strings come out as their text; numbers, booleans, objects
//! and arrays as JSON, as gjson's `String()` gives them.

use super::{ProviderError, SecretValue};

/// Looks `property` up in the JSON `value` of remote secret `key`.
pub fn extract_property(
    value: &SecretValue,
    property: &str,
    key: &str,
) -> Result<SecretValue, ProviderError> {
    let missing = || ProviderError::PropertyMissing {
        property: property.to_owned(),
        key: key.to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_slice(value.expose_secret()).map_err(|_| missing())?;
    let found = if property.contains('.') {
        json.get(property)
            .or_else(|| walk(&json, &split_path(property)))
    } else {
        walk(&json, &split_path(property))
    };
    match found {
        None | Some(serde_json::Value::Null) => Err(missing()),
        Some(serde_json::Value::String(s)) => Ok(SecretValue::new(s.as_bytes().to_vec())),
        Some(other) => Ok(SecretValue::new(
            serde_json::to_vec(other).map_err(|_| missing())?,
        )),
    }
}

fn split_path(path: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(p)) = (chars.next(), parts.last_mut()) {
                    p.push(n);
                }
            }
            '.' => parts.push(String::new()),
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
            }
        }
    }
    parts
}

fn walk<'v>(root: &'v serde_json::Value, parts: &[String]) -> Option<&'v serde_json::Value> {
    let mut cur = root;
    for part in parts {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) if part == "#" => {
                // gjson's `#` is the length; represent it through a leaked-free lookup below.
                return LENGTHS.get(a.len());
            }
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Static JSON numbers for `#` (array lengths up to 1024) so `walk` can return a reference.
static LENGTHS: std::sync::LazyLock<Vec<serde_json::Value>> =
    std::sync::LazyLock::new(|| (0..=1024).map(serde_json::Value::from).collect());

#[cfg(test)]
mod tests {
    use super::*;

    fn get(json: &str, prop: &str) -> Result<String, ProviderError> {
        extract_property(&SecretValue::from(json), prop, "k")
            .map(|v| String::from_utf8_lossy(v.expose_secret()).into_owned())
    }

    #[test]
    fn gjson_paths_as_eso_uses_them() {
        // ESO's documented AWS example: friendslist.
        let doc = r#"{"name":{"first":"Tom","last":"Anderson"},"friends":[{"first":"Dale"},{"first":"Roger"}],"age":37,"ok":true,"a.b":"literal"}"#;
        assert_eq!(get(doc, "name.first").expect("path"), "Tom");
        assert_eq!(get(doc, "friends.1.first").expect("index"), "Roger");
        assert_eq!(get(doc, "age").expect("number"), "37");
        assert_eq!(get(doc, "ok").expect("bool"), "true");
        assert_eq!(
            get(doc, "name").expect("object"),
            r#"{"first":"Tom","last":"Anderson"}"#
        );
        assert_eq!(
            get(doc, "a.b").expect("literal dotted key first"),
            "literal"
        );
        assert_eq!(get(doc, r"a\.b").expect("escaped"), "literal");
        assert_eq!(get(doc, "friends.#").expect("length"), "2");
        let e = get(doc, "name.middle").expect_err("missing");
        assert_eq!(
            e.to_string(),
            r#"key "name.middle" does not exist in secret "k""#
        );
        assert!(
            get("not json supersecret", "x")
                .expect_err("not json")
                .to_string()
                .find("supersecret")
                .is_none()
        );
    }
}
