//! Template tests: Go `text/template` behaviour on ESO's documented examples, each function,
//! errors with positions, and robustness on hostile input.

use super::*;

fn data(pairs: &[(&str, &str)]) -> Value {
    data_value(pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
}

fn run(src: &str, pairs: &[(&str, &str)]) -> String {
    render(src, &data(pairs)).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

fn fails(src: &str, pairs: &[(&str, &str)]) -> TemplateError {
    match render(src, &data(pairs)) {
        Ok(out) => panic!("{src:?} rendered {out:?}"),
        Err(e) => e,
    }
}

#[test]
fn eso_documented_examples() {
    // docs/snippets/full-external-secret.yaml
    assert_eq!(
        run(
            "database:\n  connection: postgres://{{ .username }}:{{ .password }}@{{ .database_host }}:5432/payments\n",
            &[
                ("username", "u"),
                ("password", "p"),
                ("database_host", "db")
            ]
        ),
        "database:\n  connection: postgres://u:p@db:5432/payments\n"
    );
    // docs/snippets/datafrom-rewrite-transform.yaml
    assert_eq!(
        run(
            r#"{{ .value | upper | replace "-" "_" }}"#,
            &[("value", "db-pass")]
        ),
        "DB_PASS"
    );
    // docs/snippets/multikey / templating guide
    assert_eq!(
        run(r#"{{ .password | b64dec }}"#, &[("password", "c2VjcmV0")]),
        "secret"
    );
    assert_eq!(run("{{ .foobar | toString }}", &[("foobar", "x")]), "x");
    assert_eq!(
        run(
            r#"{{ .dburl | replace "postgres://" "postgresql://" }}"#,
            &[("dburl", "postgres://h/db")]
        ),
        "postgresql://h/db"
    );
    assert_eq!(
        run(
            r#"{{ index (.data | fromJson) "service-account-token" }}"#,
            &[("data", r#"{"service-account-token":"t"}"#)]
        ),
        "t"
    );
    assert_eq!(
        run(
            r#"{{ index (.data | fromJson) "absent" }}"#,
            &[("data", "{}")]
        ),
        "<nil>",
        "index of a missing key is nil, not an error (unlike a field)"
    );
}

#[test]
fn json_range_and_variables() {
    let src = "{{- range $key, $val := . }}{{- $json := $val | fromJson }}{{ $key }}={{ $json.cert }};{{- end }}";
    assert_eq!(
        run(src, &[("a", r#"{"cert":"A"}"#), ("b", r#"{"cert":"B"}"#)]),
        "a=A;b=B;"
    );
    let src = r#"{{- $creds := list }}{{- range $user, $pw := . }}{{- $creds = append $creds (printf "%s:%s" $user $pw) }}{{- end }}{{ $creds | join "\n" | quote }}"#;
    assert_eq!(run(src, &[("u1", "p1"), ("u2", "p2")]), r#""u1:p1\nu2:p2""#);
    assert_eq!(
        run(
            r#"{{ (.j | fromJson).a.b }}"#,
            &[("j", r#"{"a":{"b":5432}}"#)]
        ),
        "5432"
    );
    assert_eq!(
        run(
            r#"{{ .j | fromJson | toJson }}"#,
            &[("j", r#"{"b":1,"a":"<x>"}"#)]
        ),
        r#"{"a":"\u003cx\u003e","b":1}"#
    );
}

#[test]
fn conditionals_and_with() {
    let src = r#"{{ if eq .env "prod" }}P{{ else if eq .env "dev" }}D{{ else }}O{{ end }}"#;
    assert_eq!(run(src, &[("env", "prod")]), "P");
    assert_eq!(run(src, &[("env", "dev")]), "D");
    assert_eq!(run(src, &[("env", "x")]), "O");
    assert_eq!(
        run(
            r#"{{ with .a }}[{{ . }}]{{ else }}none{{ end }}"#,
            &[("a", "")]
        ),
        "none"
    );
    assert_eq!(
        run(r#"{{ with .a }}[{{ . }}]{{ end }}"#, &[("a", "v")]),
        "[v]"
    );
    assert_eq!(
        run(
            r#"{{ and .a .b }}|{{ or .a .b }}|{{ not .a }}"#,
            &[("a", ""), ("b", "y")]
        ),
        "|y|true"
    );
    assert_eq!(
        run("{{ range list }}x{{ else }}empty{{ end }}", &[]).as_str(),
        "empty"
    );
    assert!(
        render("{{ range .a }}{{ end }}", &data(&[("a", "s")])).is_err(),
        "Go can't range over a string"
    );
}

#[test]
fn functions() {
    let d = &[("s", "  Hello World  "), ("n", "")];
    assert_eq!(run("{{ .s | trim | upper }}", d), "HELLO WORLD");
    assert_eq!(run("{{ .s | trim | lower }}", d), "hello world");
    assert_eq!(run(r#"{{ .n | default "dflt" }}"#, d), "dflt");
    assert_eq!(
        run(r#"{{ "x" | quote }} {{ "x" | squote }}"#, d),
        r#""x" 'x'"#
    );
    assert_eq!(run(r#"{{ "a\tb" | quote }}"#, d), r#""a\tb""#);
    assert_eq!(run(r#"{{ "secret" | b64enc }}"#, d), "c2VjcmV0");
    assert_eq!(run(r#"{{ "a,b" | splitList "," | join "+" }}"#, d), "a+b");
    assert_eq!(run(r#"{{ dict "k" "v" | toJson }}"#, d), r#"{"k":"v"}"#);
    assert_eq!(
        run(
            r#"{{ get (dict "k" "v") "k" }}{{ hasKey (dict "k" "v") "z" }}"#,
            d
        ),
        "vfalse"
    );
    assert_eq!(run(r#"{{ "a\nb" | nindent 2 }}"#, d), "\n  a\n  b");
    assert_eq!(
        run(r#"{{ "abc" | sha256sum }}"#, d),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(run(r#"{{ printf "%s=%d %q" "a" 3 "b" }}"#, d), r#"a=3 "b""#);
    assert_eq!(run(r#"{{ len "abc" }} {{ 1.5 }} {{ 3 }}"#, d), "3 1.5 3");
    assert_eq!(run(r#"{{ "x: 1" | fromYaml | toJson }}"#, d), r#"{"x":1}"#);
    assert_eq!(run(r#"{{ dict "a" "b" | toYaml }}"#, d), "a: b");
    assert_eq!(run(r#"{{ "prefix-x" | trimPrefix "prefix-" }}"#, d), "x");
    assert_eq!(run(r#"{{ ternary "y" "n" true }}"#, d), "y");
    assert_eq!(run(r#"{{ lt 1 2 }} {{ ge "b" "a" }}"#, d), "true true");
    assert_eq!(run(r#"{{ "hello world" | title }}"#, d), "Hello World");
    assert_eq!(
        run(r#"{{/* a comment */}}ok{{- /* trimmed */ -}}  !"#, d),
        "ok!"
    );
    assert_eq!(
        run(r#"{{ `raw {{ not }} string` }}"#, d),
        "raw {{ not }} string"
    );
}

#[test]
fn trim_markers() {
    assert_eq!(run("a  {{- .x -}}  b", &[("x", "X")]), "aXb");
    assert_eq!(run("a  {{ .x }}  b", &[("x", "X")]), "a  X  b");
    assert_eq!(run("{{ 3 -}} {{- 4 }}", &[]), "34");
}

#[test]
fn errors_name_position_and_never_values() {
    let e = fails("line1\n  {{ .missing }}", &[("present", "supersecret")]);
    assert_eq!((e.line, e.column), (2, 6), "{e}");
    assert!(e.message.contains("missing"), "{e}");
    let e = fails("{{ .a | nosuchfunc }}", &[("a", "supersecret")]);
    assert!(e.message.contains("nosuchfunc"), "{e}");
    let e = fails("{{ .a | fromJson }}", &[("a", "supersecret-not-json")]);
    assert!(!e.to_string().contains("supersecret"), "{e}");
    let e = fails("{{ .a | b64dec }}", &[("a", "supersecret!")]);
    assert!(!e.to_string().contains("supersecret"), "{e}");
    let e = fails("{{ if .a }}x", &[("a", "v")]);
    assert!(e.message.contains("end"), "{e}");
    let e = fails("ab\n{{ .a ", &[("a", "v")]);
    assert_eq!(e.line, 2, "{e}");
    for bad in [
        "{{",
        "}}{{",
        "{{ ) }}",
        "{{ ( }}",
        "{{ end }}",
        "{{ else }}",
        "{{ \"x }}",
        "{{ `x }}",
        "{{ 'ab' }}",
        "{{ $x }}",
        "{{ $x = 1 }}",
        "{{ .a .b }}",
        "{{ | }}",
        "{{ 1 | 2 }}",
        "{{ define \"x\" }}{{ end }}",
        "{{ range 1 }}{{ else if 1 }}{{ end }}",
        "{{/* x",
        "{{ 0x }}",
        "{{ 1e999 }}",
        "{{ \"\\q\" }}",
    ] {
        let _ = fails(bad, &[("a", "v"), ("b", "w")]);
    }
}

#[test]
fn hostile_input_never_panics() {
    // Every prefix and every single-byte corruption of a rich template: an answer, no panic.
    let src = r#"{{- range $k, $v := . -}}{{ if and (eq $k "a") (ne $v "") }}{{ $v | upper | quote }}{{ else }}{{ printf "%s-%d" $k 3 }}{{ end }}{{/* c */}}{{ `r` }}{{- end }}"#;
    let d = data(&[("a", "x"), ("b", "é")]);
    for cut in 0..=src.len() {
        if src.is_char_boundary(cut) {
            let _ = render(&src[..cut], &d);
        }
    }
    let junk = b"{}()|$.:=,\"`'-+0x1e/* \n\tabcifelsendrange";
    for i in 0..src.len() {
        for &j in junk.iter() {
            let mut bytes = src.as_bytes().to_vec();
            bytes[i] = j;
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = render(s, &d);
            }
        }
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = "{{ if 1 }}".repeat(500) + &"{{ end }}".repeat(500);
    assert!(render(&deep, &d).is_err());
    let parens = "{{ ".to_owned() + &"(".repeat(500) + "1" + &")".repeat(500) + " }}";
    assert!(render(&parens, &d).is_err());
    // Runaway output is capped.
    let big =
        r#"{{ range $i := .l }}{{ range $j := $.l }}{{ repeat 100000 "x" }}{{ end }}{{ end }}"#;
    let mut m = BTreeMap::new();
    m.insert("l".to_owned(), Value::List(vec![Value::Int(1); 100]));
    assert!(render(big, &Value::Map(m)).is_err());
}
