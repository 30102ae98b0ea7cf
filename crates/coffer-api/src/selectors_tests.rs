//! Unit tests for `selectors.rs`.

#![allow(clippy::unwrap_used, reason = "tests may unwrap (STYLE.md)")]

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse_err(s: &str) -> String {
    match LabelSelector::parse(s) {
        Ok(sel) => format!("OK {sel:?}"),
        Err(e) => e.to_string(),
    }
}

fn sel(s: &str) -> LabelSelector {
    LabelSelector::parse(s).unwrap()
}

#[test]
fn every_operator_parses_and_matches() {
    let dev = labels(&[("env", "dev"), ("tier", "db"), ("n", "5")]);
    let prod = labels(&[("env", "prod")]);
    let none = labels(&[]);
    let cases: &[(&str, Operator, &[&str], [bool; 3])] = &[
        ("env=dev", Operator::Equals, &["dev"], [true, false, false]),
        ("env==dev", Operator::Equals, &["dev"], [true, false, false]),
        (
            "env!=dev",
            Operator::NotEquals,
            &["dev"],
            [false, true, true],
        ),
        (
            "env in (dev,qa)",
            Operator::In,
            &["dev", "qa"],
            [true, false, false],
        ),
        (
            "env notin (dev, qa)",
            Operator::NotIn,
            &["dev", "qa"],
            [false, true, true],
        ),
        ("tier", Operator::Exists, &[], [true, false, false]),
        ("!tier", Operator::DoesNotExist, &[], [false, true, true]),
        ("n>4", Operator::GreaterThan, &["4"], [true, false, false]),
        ("n<5", Operator::LessThan, &["5"], [false, false, false]),
    ];
    for (text, op, values, want) in cases {
        let s = sel(text);
        assert_eq!(s.requirements.len(), 1, "{text}");
        let r = &s.requirements[0];
        assert_eq!(r.operator, *op, "{text}");
        assert_eq!(r.values, values.to_vec(), "{text}");
        assert_eq!(
            [s.matches(&dev), s.matches(&prod), s.matches(&none)],
            *want,
            "{text}"
        );
    }
}

#[test]
fn and_whitespace_and_empty() {
    let s = sel("  env = dev ,  tier ,!gone ");
    assert_eq!(s.requirements.len(), 3);
    assert!(s.matches(&labels(&[("env", "dev"), ("tier", "x")])));
    assert!(!s.matches(&labels(&[("env", "dev")])));
    assert!(!s.matches(&labels(&[("env", "dev"), ("tier", "x"), ("gone", "")])));
    let empty = sel("");
    assert!(empty.is_empty());
    assert!(empty.matches(&labels(&[])));
    assert!(sel("   ").is_empty());
    // `in` and `notin` are plain words in value position and as keys.
    let s = sel("in=notin");
    assert_eq!(s.requirements[0].key, "in");
    assert_eq!(s.requirements[0].values, ["notin"]);
    // Empty values.
    assert_eq!(sel("env=").requirements[0].values, [""]);
    assert_eq!(sel("env in ()").requirements[0].values, [""]);
    assert_eq!(sel("env in (,a)").requirements[0].values, ["", "a"]);
    assert!(sel("env in (a,)").matches(&labels(&[("env", "")])));
    assert_eq!(
        sel("testsecret-constant=true").requirements[0].key,
        "testsecret-constant"
    );
}

#[test]
fn verified_parse_errors() {
    assert_eq!(
        parse_err("type=app,versionv1.0.1)"),
        "unable to parse requirement: found ')', expected: in, notin, =, ==, !=, gt, lt"
    );
    assert_eq!(
        parse_err("env IN (a)"),
        "unable to parse requirement: found 'IN', expected: in, notin, =, ==, !=, gt, lt"
    );
    assert_eq!(
        parse_err("app:monolith"),
        "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
    assert!(
        parse_err("app.kubernetes_io/name=x").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix part a lowercase RFC 1123 subdomain"
        )
    );
}

#[test]
fn other_parse_errors() {
    assert_eq!(
        parse_err("env in dev"),
        "unable to parse requirement: found 'dev' expected: '('"
    );
    assert_eq!(
        parse_err("env in (a b)"),
        "unable to parse requirement: found 'b', expected: ',' or ')'"
    );
    assert_eq!(
        parse_err("env in (a"),
        "unable to parse requirement: found '', expected: ',' or ')'"
    );
    assert_eq!(
        parse_err("env in (=)"),
        "unable to parse requirement: found '=', expected: ',', ')' or identifier"
    );
    // Verified against kube-apiserver output quoted in public reports.
    assert_eq!(
        parse_err("invalid=label=value"),
        "found '=', expected: ',' or 'end of string'"
    );
    assert_eq!(
        parse_err("env=a=b"),
        "found '=', expected: ',' or 'end of string'"
    );
    assert_eq!(
        parse_err("!env=a"),
        "found '=', expected: ',' or 'end of string'"
    );
    assert_eq!(
        parse_err("env,"),
        "found '', expected: identifier after ','"
    );
    assert_eq!(
        parse_err("=a"),
        "found '=', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(
        parse_err("!,"),
        "unable to parse requirement: found ',', expected: identifier"
    );
    assert_eq!(
        parse_err("n>x"),
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
    );
    assert_eq!(
        parse_err("env=a b"),
        "found 'b', expected: ',' or 'end of string'"
    );
    assert!(parse_err("env=-bad").starts_with(
        "unable to parse requirement: values[0][env]: Invalid value: \"-bad\": a valid label must be an empty string"
    ));
}
