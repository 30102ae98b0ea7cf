//! The error text Go's `json.Unmarshal(data, &map[string]interface{}{})` gives, used as the
//! detail of `.dockercfg`/`.dockerconfigjson` errors (`reference/k8s-api.md` §8.3).
//!
//! Texts follow Go's `encoding/json` scanner (`invalid character 'o' in literal null (expecting
//! 'u')`, `unexpected end of JSON input`, …) and decoder (`json: cannot unmarshal array into Go
//! value of type map[string]interface {}`). The `looking for beginning of value` and `looking for
//! beginning of object key string` forms match kube-apiserver output quoted in public bug
//! reports; the rest is best knowledge of Go's behaviour. Only the error text is returned; the
//! input is never echoed, so Secret bytes cannot leak through it (upstream, too, shows the one
//! offending character).

use crate::field_error::go_quote;

/// `None` when Go would decode `data` into a `map[string]interface{}` (a JSON object, or `null`),
/// else Go's error text.
pub fn json_object_error(data: &[u8]) -> Option<String> {
    let mut s = Scanner { data, pos: 0 };
    if let Err(e) = s.check_valid() {
        return Some(e);
    }
    let first = data
        .iter()
        .copied()
        .find(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
    let kind = match first {
        Some(b'{') | Some(b'n') => return None,
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't') | Some(b'f') => "bool",
        _ => "number",
    };
    Some(format!(
        "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    ))
}

/// Open containers while scanning.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Object,
    Array,
}

struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
}

type ScanResult = Result<(), String>;

impl Scanner<'_> {
    fn check_valid(&mut self) -> ScanResult {
        let mut stack: Vec<Open> = Vec::new();
        'value: loop {
            self.skip_ws();
            match self.next() {
                None => return Err(eof()),
                Some(b'{') => {
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.object_key()?;
                        stack.push(Open::Object);
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        stack.push(Open::Array);
                        continue 'value;
                    }
                }
                Some(b'"') => self.string()?,
                Some(c @ (b'-' | b'0'..=b'9')) => self.number(c)?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(c) => return Err(invalid(c, "looking for beginning of value")),
            }
            // A value ended; close containers until one wants another value.
            loop {
                self.skip_ws();
                let Some(top) = stack.last().copied() else {
                    return match self.next() {
                        None => Ok(()),
                        Some(c) => Err(invalid(c, "after top-level value")),
                    };
                };
                match (top, self.next()) {
                    (_, None) => return Err(eof()),
                    (Open::Object, Some(b',')) => {
                        self.object_key()?;
                        continue 'value;
                    }
                    (Open::Object, Some(b'}')) | (Open::Array, Some(b']')) => {
                        stack.pop();
                    }
                    (Open::Array, Some(b',')) => continue 'value,
                    (Open::Object, Some(c)) => {
                        return Err(invalid(c, "after object key:value pair"));
                    }
                    (Open::Array, Some(c)) => return Err(invalid(c, "after array element")),
                }
            }
        }
    }

    /// `"key"` then `:`.
    fn object_key(&mut self) -> ScanResult {
        self.skip_ws();
        match self.next() {
            None => return Err(eof()),
            Some(b'"') => self.string()?,
            Some(c) => return Err(invalid(c, "looking for beginning of object key string")),
        }
        self.skip_ws();
        match self.next() {
            None => Err(eof()),
            Some(b':') => Ok(()),
            Some(c) => Err(invalid(c, "after object key")),
        }
    }

    /// The rest of a string after its opening quote.
    fn string(&mut self) -> ScanResult {
        loop {
            match self.next() {
                None => return Err(eof()),
                Some(b'"') => return Ok(()),
                Some(b'\\') => match self.next_or_space() {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let c = self.next_or_space();
                            if !c.is_ascii_hexdigit() {
                                return Err(invalid(c, "in \\u hexadecimal character escape"));
                            }
                        }
                    }
                    c => return Err(invalid(c, "in string escape code")),
                },
                Some(c) if c < 0x20 => return Err(invalid(c, "in string literal")),
                Some(_) => {}
            }
        }
    }

    /// The rest of a number whose first byte was `first`; stops before the byte after it.
    fn number(&mut self, first: u8) -> ScanResult {
        let mut c = first;
        if c == b'-' {
            c = self.next_or_space();
            if !c.is_ascii_digit() {
                return Err(invalid(c, "in numeric literal"));
            }
        }
        if c != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let d = self.next_or_space();
            if !d.is_ascii_digit() {
                return Err(invalid(d, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            let mut d = self.next_or_space();
            if d == b'+' || d == b'-' {
                d = self.next_or_space();
            }
            if !d.is_ascii_digit() {
                return Err(invalid(d, "in exponent of numeric literal"));
            }
            self.digits();
        }
        Ok(())
    }

    /// The rest of `true`/`false`/`null` after its first byte.
    fn literal(&mut self, word: &str) -> ScanResult {
        for expected in word.bytes().skip(1) {
            let c = self.next_or_space();
            if c != expected {
                let ctx = format!("in literal {word} (expecting {})", quote_char(expected));
                return Err(invalid(c, &ctx));
            }
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Go's scanner feeds a space at end of input, so a token cut short reports `' '`.
    fn next_or_space(&mut self) -> u8 {
        self.next().unwrap_or(b' ')
    }
}

fn eof() -> String {
    "unexpected end of JSON input".to_owned()
}

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's `quoteChar`: the byte as a rune, single-quoted with `strconv.Quote` escaping.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        _ => {
            let q = go_quote(&char::from(c).to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        json_object_error(s.as_bytes()).unwrap_or_else(|| "OK".to_owned())
    }

    #[test]
    fn accepts_objects_and_null() {
        for ok in [
            "{}",
            " {\"auths\":{\"r\":{\"auth\":\"dTpw\"}}} ",
            "null",
            "{\"a\":[1,-2.5e+3,true,false,null,\"\\u00e9\\n\"]}",
        ] {
            assert_eq!(err(ok), "OK", "{ok}");
        }
    }

    #[test]
    fn syntax_errors_worded_as_go() {
        let cases = [
            (
                "not json",
                "invalid character 'o' in literal null (expecting 'u')",
            ),
            ("", "unexpected end of JSON input"),
            ("{\"a\":", "unexpected end of JSON input"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            (
                "{a:1}",
                "invalid character 'a' looking for beginning of object key string",
            ),
            (
                "[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            ("{} x", "invalid character 'x' after top-level value"),
            ("x", "invalid character 'x' looking for beginning of value"),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            ("\"\\q\"", "invalid character 'q' in string escape code"),
            (
                "\"\\u12g4\"",
                "invalid character 'g' in \\u hexadecimal character escape",
            ),
            ("-", "invalid character ' ' in numeric literal"),
            (
                "1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            (
                "1e+",
                "invalid character ' ' in exponent of numeric literal",
            ),
            ("01", "invalid character '1' after top-level value"),
            (
                "tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            (
                "'",
                "invalid character '\\'' looking for beginning of value",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(input), want, "input {input:?}");
        }
    }

    #[test]
    fn type_errors_worded_as_go() {
        let t = |k: &str| {
            format!("json: cannot unmarshal {k} into Go value of type map[string]interface {{}}")
        };
        assert_eq!(err("[1]"), t("array"));
        assert_eq!(err("\"s\""), t("string"));
        assert_eq!(err("12"), t("number"));
        assert_eq!(err("true"), t("bool"));
    }
}
