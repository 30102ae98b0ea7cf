//! The functions templates can call: Go's builtins and the Sprig functions ESO's documented
//! examples use, plus ESO's own `toYaml`/`fromYaml`. Errors describe the call, never the
//! values (they may be secrets).
//!
//! Where Sprig differs from safety: `b64dec` of bad input returns Sprig's error text as the
//! value; here it is an error.

use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::Digest as _;

use super::value::{Value, format_float, go_json, go_quote};

/// Every function name [`call`] knows, for documentation and `coffer sync --help`.
pub const FUNCTIONS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "toString",
    "toJson",
    "toPrettyJson",
    "fromJson",
    "toYaml",
    "fromYaml",
    "b64enc",
    "b64dec",
    "upper",
    "lower",
    "title",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "quote",
    "squote",
    "default",
    "empty",
    "coalesce",
    "ternary",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "splitList",
    "join",
    "list",
    "append",
    "dict",
    "get",
    "hasKey",
    "keys",
    "indent",
    "nindent",
    "repeat",
    "sha256sum",
    "nospace",
    "int",
    "float64",
    "add",
    "sub",
];

type R = Result<Value, String>;

fn arity(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("wrong number of args: want {n} got {}", args.len()))
    }
}

/// Sprig's `strval`: strings as they are, everything else as `%v`.
pub fn strval(v: &Value) -> String {
    v.print()
}

fn s(v: String) -> R {
    Ok(Value::Str(v))
}

/// Calls `name` with `args` (the piped value, if any, is last).
pub fn call(name: &str, args: Vec<Value>) -> R {
    match name {
        "not" => {
            arity(&args, 1)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "len" => {
            arity(&args, 1)?;
            Ok(Value::Int(match &args[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => return Err(format!("len of type {}", other.type_name())),
            } as i64))
        }
        "index" => index(args),
        "print" => s(go_print(&args)),
        "println" => s(args.iter().map(strval).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => printf(args),
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            Ok(Value::Bool(args[1..].iter().any(|b| equal(&args[0], b))))
        }
        "ne" => {
            arity(&args, 2)?;
            Ok(Value::Bool(!equal(&args[0], &args[1])))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(&args, 2)?;
            let ord = compare(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            }))
        }
        "toString" => {
            arity(&args, 1)?;
            s(strval(&args[0]))
        }
        "toJson" | "toPrettyJson" => {
            arity(&args, 1)?;
            s(go_json(&args[0].to_json(), name == "toPrettyJson"))
        }
        "fromJson" => {
            arity(&args, 1)?;
            let v: serde_json::Value = serde_json::from_str(&strval(&args[0])).map_err(|e| {
                format!(
                    "input is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )
            })?;
            Ok(Value::from_json(v))
        }
        "toYaml" => {
            arity(&args, 1)?;
            let text = serde_yaml::to_string(&args[0].to_json())
                .map_err(|_| "value cannot be written as YAML".to_owned())?;
            s(text.trim_end_matches('\n').to_owned())
        }
        "fromYaml" => {
            arity(&args, 1)?;
            let v: serde_json::Value = serde_yaml::from_str(&strval(&args[0]))
                .map_err(|_| "input is not YAML".to_owned())?;
            Ok(Value::from_json(v))
        }
        "b64enc" => {
            arity(&args, 1)?;
            s(base64::engine::general_purpose::STANDARD.encode(strval(&args[0])))
        }
        "b64dec" => {
            arity(&args, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(strval(&args[0]).as_bytes())
                .map_err(|_| "input is not base64".to_owned())?;
            s(String::from_utf8_lossy(&bytes).into_owned())
        }
        "upper" | "lower" | "title" | "trim" | "nospace" | "sha256sum" => {
            arity(&args, 1)?;
            let t = strval(&args[0]);
            s(match name {
                "upper" => t.to_uppercase(),
                "lower" => t.to_lowercase(),
                "title" => title(&t),
                "trim" => t.trim().to_owned(),
                "nospace" => t.chars().filter(|c| !c.is_whitespace()).collect(),
                _ => hex(&sha2_256(t.as_bytes())),
            })
        }
        "trimAll" | "trimPrefix" | "trimSuffix" => {
            arity(&args, 2)?;
            let (cut, t) = (strval(&args[0]), strval(&args[1]));
            s(match name {
                "trimAll" => t.trim_matches(|c| cut.contains(c)).to_owned(),
                "trimPrefix" => t.strip_prefix(cut.as_str()).unwrap_or(&t).to_owned(),
                _ => t.strip_suffix(cut.as_str()).unwrap_or(&t).to_owned(),
            })
        }
        "replace" => {
            arity(&args, 3)?;
            s(strval(&args[2]).replace(&strval(&args[0]), &strval(&args[1])))
        }
        "quote" | "squote" => {
            let parts: Vec<String> = args
                .iter()
                .filter(|v| **v != Value::Nil)
                .map(|v| {
                    if name == "quote" {
                        go_quote(&strval(v))
                    } else {
                        format!("'{}'", strval(v))
                    }
                })
                .collect();
            s(parts.join(" "))
        }
        "default" => match args.len() {
            1 => Ok(args.into_iter().next().unwrap_or(Value::Nil)),
            2 => {
                let mut it = args.into_iter();
                let (d, given) = (
                    it.next().unwrap_or(Value::Nil),
                    it.next().unwrap_or(Value::Nil),
                );
                Ok(if given.truthy() { given } else { d })
            }
            n => Err(format!("wrong number of args: want 1 or 2 got {n}")),
        },
        "empty" => {
            arity(&args, 1)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "coalesce" => Ok(args.into_iter().find(Value::truthy).unwrap_or(Value::Nil)),
        "ternary" => {
            arity(&args, 3)?;
            let mut it = args.into_iter();
            let (t, f, c) = (it.next(), it.next(), it.next());
            Ok(if c.as_ref().is_some_and(Value::truthy) {
                t
            } else {
                f
            }
            .unwrap_or(Value::Nil))
        }
        "contains" | "hasPrefix" | "hasSuffix" => {
            arity(&args, 2)?;
            let (needle, hay) = (strval(&args[0]), strval(&args[1]));
            Ok(Value::Bool(match name {
                "contains" => hay.contains(&needle),
                "hasPrefix" => hay.starts_with(&needle),
                _ => hay.ends_with(&needle),
            }))
        }
        "splitList" => {
            arity(&args, 2)?;
            let (sep, t) = (strval(&args[0]), strval(&args[1]));
            Ok(Value::List(
                t.split(sep.as_str())
                    .map(|p| Value::Str(p.to_owned()))
                    .collect(),
            ))
        }
        "join" => {
            arity(&args, 2)?;
            let sep = strval(&args[0]);
            match &args[1] {
                Value::List(l) => s(l.iter().map(strval).collect::<Vec<_>>().join(&sep)),
                other => s(strval(other)),
            }
        }
        "list" => Ok(Value::List(args)),
        "append" => {
            arity(&args, 2)?;
            let mut it = args.into_iter();
            match (it.next(), it.next()) {
                (Some(Value::List(mut l)), Some(v)) => {
                    l.push(v);
                    Ok(Value::List(l))
                }
                (Some(Value::Nil), Some(v)) => Ok(Value::List(vec![v])),
                (Some(other), _) => Err(format!("cannot append to {}", other.type_name())),
                _ => Err("wrong number of args".into()),
            }
        }
        "dict" => {
            let mut m = BTreeMap::new();
            let mut it = args.into_iter();
            while let Some(k) = it.next() {
                m.insert(strval(&k), it.next().unwrap_or(Value::Str(String::new())));
            }
            Ok(Value::Map(m))
        }
        "get" | "hasKey" => {
            arity(&args, 2)?;
            let key = strval(&args[1]);
            let Value::Map(m) = &args[0] else {
                return Err(format!(
                    "first argument is {}, not a map",
                    args[0].type_name()
                ));
            };
            Ok(if name == "get" {
                m.get(&key).cloned().unwrap_or(Value::Str(String::new()))
            } else {
                Value::Bool(m.contains_key(&key))
            })
        }
        "keys" => {
            let mut out = Vec::new();
            for a in &args {
                let Value::Map(m) = a else {
                    return Err(format!("argument is {}, not a map", a.type_name()));
                };
                out.extend(m.keys().map(|k| Value::Str(k.clone())));
            }
            Ok(Value::List(out))
        }
        "indent" | "nindent" => {
            arity(&args, 2)?;
            let n = args[0].as_f64().ok_or("first argument must be a number")?;
            let pad = " ".repeat(n.clamp(0.0, 1024.0) as usize);
            let body = format!(
                "{pad}{}",
                strval(&args[1]).replace('\n', &format!("\n{pad}"))
            );
            s(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "repeat" => {
            arity(&args, 2)?;
            let n = args[0].as_f64().ok_or("first argument must be a number")?;
            let t = strval(&args[1]);
            if n < 0.0 || (n as usize).saturating_mul(t.len()) > 4 << 20 {
                return Err("result would be too large".into());
            }
            s(t.repeat(n as usize))
        }
        "int" | "float64" => {
            arity(&args, 1)?;
            let f = match &args[0] {
                Value::Str(t) => t.trim().parse::<f64>().unwrap_or(0.0),
                v => v.as_f64().unwrap_or(0.0),
            };
            Ok(if name == "int" {
                Value::Int(f as i64)
            } else {
                Value::Float(f)
            })
        }
        "add" | "sub" => {
            arity(&args, 2)?;
            let (a, b) = (
                args[0].as_f64().ok_or("arguments must be numbers")?,
                args[1].as_f64().ok_or("arguments must be numbers")?,
            );
            let r = if name == "add" { a + b } else { a - b };
            Ok(Value::Int(r as i64))
        }
        "and" | "or" => Err("internal: evaluated by the executor".into()),
        _ => Err(format!("function {name:?} not defined")),
    }
}

fn index(args: Vec<Value>) -> R {
    let mut it = args.into_iter();
    let Some(mut cur) = it.next() else {
        return Err("wrong number of args: want at least 1".into());
    };
    for key in it {
        cur = match (&cur, &key) {
            (Value::Map(m), k) => m.get(&strval(k)).cloned().unwrap_or(Value::Nil),
            (Value::List(l), k) => {
                let i = k.as_f64().ok_or("list index is not a number")?;
                if i < 0.0 || i as usize >= l.len() {
                    return Err(format!("index out of range: {i}"));
                }
                l[i as usize].clone()
            }
            (Value::Nil, _) => return Err("index of untyped nil".into()),
            (other, _) => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(cur)
}

/// Go's `fmt.Sprint`: spaces only between operands when neither is a string.
fn go_print(args: &[Value]) -> String {
    let mut out = String::new();
    for (k, a) in args.iter().enumerate() {
        if k > 0 && !matches!(a, Value::Str(_)) && !matches!(args[k - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.print());
    }
    out
}

fn printf(args: Vec<Value>) -> R {
    let Some((fmt, rest)) = args.split_first() else {
        return Err("wrong number of args: want at least 1".into());
    };
    let fmt = strval(fmt);
    let mut out = String::new();
    let mut next = rest.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = next.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        match verb {
            's' | 'v' => out.push_str(&strval(arg)),
            'q' => out.push_str(&go_quote(&strval(arg))),
            'd' => match arg.as_f64() {
                Some(f) => out.push_str(&(f as i64).to_string()),
                None => out.push_str(&format!("%!d({})", arg.type_name())),
            },
            'f' => match arg.as_f64() {
                Some(f) => out.push_str(&format!("{f:.6}")),
                None => out.push_str(&format!("%!f({})", arg.type_name())),
            },
            'g' => match arg.as_f64() {
                Some(f) => out.push_str(&format_float(f)),
                None => out.push_str(&format!("%!g({})", arg.type_name())),
            },
            'x' => match arg {
                Value::Str(t) => out.push_str(&hex(t.as_bytes())),
                v => match v.as_f64() {
                    Some(f) => out.push_str(&format!("{:x}", f as i64)),
                    None => out.push_str(&format!("%!x({})", v.type_name())),
                },
            },
            't' => out.push_str(&strval(arg)),
            other => out.push_str(&format!("%!{other}({})", arg.type_name())),
        }
    }
    if next.next().is_some() {
        out.push_str("%!(EXTRA)");
    }
    s(out)
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x
                .partial_cmp(&y)
                .ok_or_else(|| "incomparable numbers".into()),
            _ => Err(format!(
                "incompatible types for comparison: {} and {}",
                a.type_name(),
                b.type_name()
            )),
        },
    }
}

fn title(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut at_start = true;
    for c in t.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !c.is_alphanumeric() && c != '\'';
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha2_256(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}
