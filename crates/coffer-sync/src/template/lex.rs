//! The lexer: Go `text/template` text and actions, with `{{-`/`-}}` trim markers and
//! `{{/* comments */}}` (`text/template/parse/lex.go`). Works on bytes; every token carries
//! its byte offset so errors can name a line and column. Never panics on any input.

use super::TemplateError;

/// One token.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// Plain text outside actions (after trimming).
    Text(String),
    /// `{{`.
    Open,
    /// `}}`.
    Close,
    /// A keyword or function name.
    Ident(String),
    /// `.a.b` (empty path: `.`).
    Field(Vec<String>),
    /// `$x.a.b` (name without `$`; `$` alone has an empty name).
    Var(String, Vec<String>),
    /// A string literal, unquoted.
    Str(String),
    /// A number literal.
    Num(f64, bool),
    /// A character literal.
    Char(char),
    /// `|`.
    Pipe,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `:=`.
    Declare,
    /// `=`.
    Assign,
    /// `,`.
    Comma,
}

/// A token, where it starts, and whether whitespace came just before it.
#[derive(Clone, Debug)]
pub(super) struct Spanned {
    pub tok: Tok,
    pub pos: usize,
    pub space_before: bool,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

/// Splits `src` into tokens.
pub(super) fn lex(src: &str) -> Result<Vec<Spanned>, TemplateError> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut trim_next_text = false;
    while i <= src.len() {
        let rest = &src[i..];
        let Some(open) = rest.find(LEFT) else {
            push_text(&mut out, rest, i, trim_next_text, false);
            break;
        };
        let after = &rest[open + LEFT.len()..];
        let trim_left = after.starts_with("- ")
            || after.starts_with("-\t")
            || after.starts_with("-\n")
            || after.starts_with("-\r");
        push_text(&mut out, &rest[..open], i, trim_next_text, trim_left);
        let action_start = i + open;
        let mut j = action_start + LEFT.len() + if trim_left { 1 } else { 0 };
        // A comment must be the whole action.
        let inner = src[j..].trim_start();
        if inner.starts_with("/*") {
            let cstart = src.len() - inner.len();
            let Some(cend) = src[cstart..].find("*/") else {
                return Err(TemplateError::at(src, action_start, "unclosed comment"));
            };
            let mut k = cstart + cend + 2;
            let tail = src[k..].trim_start();
            let mut trim_right = false;
            let tail_start = src.len() - tail.len();
            if tail.starts_with("-}}") && tail_start > k {
                trim_right = true;
                k = tail_start + 1;
            } else {
                k = tail_start;
            }
            if !src[k..].starts_with(RIGHT) {
                return Err(TemplateError::at(
                    src,
                    k,
                    "comment ends before closing delimiter",
                ));
            }
            trim_next_text = trim_right;
            i = k + RIGHT.len();
            continue;
        }
        out.push(Spanned {
            tok: Tok::Open,
            pos: action_start,
            space_before: false,
        });
        let mut space = false;
        loop {
            let Some(c) = src[j..].chars().next() else {
                return Err(TemplateError::at(src, action_start, "unclosed action"));
            };
            let here = &src[j..];
            if here.starts_with(" -}}") || here.starts_with("\t-}}") || here.starts_with("\n-}}") {
                out.push(Spanned {
                    tok: Tok::Close,
                    pos: j + 2,
                    space_before: true,
                });
                trim_next_text = true;
                j += 4;
                break;
            }
            if here.starts_with(RIGHT) {
                out.push(Spanned {
                    tok: Tok::Close,
                    pos: j,
                    space_before: space,
                });
                trim_next_text = false;
                j += 2;
                break;
            }
            if c.is_whitespace() {
                space = true;
                j += c.len_utf8();
                continue;
            }
            let start = j;
            let (tok, len) = lex_one(src, j)?;
            out.push(Spanned {
                tok,
                pos: start,
                space_before: space,
            });
            space = false;
            j += len;
        }
        i = j;
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Spanned>, text: &str, pos: usize, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start();
    }
    if trim_end {
        t = t.trim_end();
    }
    if !t.is_empty() {
        out.push(Spanned {
            tok: Tok::Text(t.to_owned()),
            pos,
            space_before: false,
        });
    }
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes one token at `j` (not whitespace, not `}}`): the token and its byte length.
fn lex_one(src: &str, j: usize) -> Result<(Tok, usize), TemplateError> {
    let here = &src[j..];
    let c = here.chars().next().unwrap_or('\0');
    let simple = |t| Ok((t, 1));
    match c {
        '|' => simple(Tok::Pipe),
        '(' => simple(Tok::LParen),
        ')' => simple(Tok::RParen),
        ',' => simple(Tok::Comma),
        '=' => simple(Tok::Assign),
        ':' if here.starts_with(":=") => Ok((Tok::Declare, 2)),
        '"' => lex_quoted(src, j),
        '`' => match here[1..].find('`') {
            Some(end) => Ok((Tok::Str(here[1..1 + end].to_owned()), end + 2)),
            None => Err(TemplateError::at(src, j, "unterminated raw quoted string")),
        },
        '\'' => lex_char(src, j),
        '.' if !here[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            let (path, len) = lex_path(here);
            Ok((Tok::Field(path), len))
        }
        '$' => {
            let name_len = here[1..]
                .find(|c: char| !is_ident_char(c))
                .unwrap_or(here.len() - 1);
            let name = here[1..1 + name_len].to_owned();
            let (path, plen) = lex_path(&here[1 + name_len..]);
            Ok((Tok::Var(name, path), 1 + name_len + plen))
        }
        c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => lex_number(src, j),
        c if is_ident_char(c) => {
            let len = here.find(|c: char| !is_ident_char(c)).unwrap_or(here.len());
            Ok((Tok::Ident(here[..len].to_owned()), len))
        }
        other => Err(TemplateError::at(
            src,
            j,
            &format!("unexpected {other:?} in action"),
        )),
    }
}

/// `.a.b.c` → (["a","b","c"], len); a lone `.` → ([], 1); `""` → ([], 0).
fn lex_path(s: &str) -> (Vec<String>, usize) {
    let mut path = Vec::new();
    let mut k = 0;
    if s == "." || (s.starts_with('.') && !s[1..].starts_with(is_ident_char)) {
        return (path, if s.starts_with('.') { 1 } else { 0 });
    }
    while s[k..].starts_with('.') {
        let seg = &s[k + 1..];
        let len = seg.find(|c: char| !is_ident_char(c)).unwrap_or(seg.len());
        if len == 0 {
            break;
        }
        path.push(seg[..len].to_owned());
        k += 1 + len;
    }
    (path, k)
}

fn lex_quoted(src: &str, j: usize) -> Result<(Tok, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = src[j + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((Tok::Str(out), k + 2)),
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..n {
                            let d = chars.next().and_then(|(_, h)| h.to_digit(16)).ok_or_else(
                                || TemplateError::at(src, j, "bad escape in quoted string"),
                            )?;
                            code = code * 16 + d;
                        }
                        out.push(char::from_u32(code).ok_or_else(|| {
                            TemplateError::at(src, j, "bad escape in quoted string")
                        })?);
                    }
                    _ => return Err(TemplateError::at(src, j, "unknown escape in quoted string")),
                }
            }
            c => out.push(c),
        }
    }
    Err(TemplateError::at(src, j, "unterminated quoted string"))
}

fn lex_char(src: &str, j: usize) -> Result<(Tok, usize), TemplateError> {
    let here = &src[j + 1..];
    let mut it = here.chars();
    let c = match it.next() {
        Some('\\') => match it.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('\\') => '\\',
            Some('\'') => '\'',
            _ => return Err(TemplateError::at(src, j, "bad character constant")),
        },
        Some(c) if c != '\'' => c,
        _ => return Err(TemplateError::at(src, j, "bad character constant")),
    };
    let used = here.len() - it.as_str().len();
    if !here[used..].starts_with('\'') {
        return Err(TemplateError::at(src, j, "unterminated character constant"));
    }
    Ok((Tok::Char(c), used + 2))
}

fn lex_number(src: &str, j: usize) -> Result<(Tok, usize), TemplateError> {
    let here = &src[j..];
    let len = here
        .char_indices()
        .find(|&(k, c)| {
            !(c.is_ascii_alphanumeric()
                || c == '.'
                || c == '_'
                || ((c == '-' || c == '+') && (k == 0 || here[..k].ends_with(['e', 'E']))))
        })
        .map_or(here.len(), |(k, _)| k);
    let text = here[..len].replace('_', "");
    let (sign, digits) = match text.strip_prefix('-') {
        Some(d) => (-1.0, d),
        None => (1.0, text.strip_prefix('+').unwrap_or(&text)),
    };
    let parsed = if let Some(hex) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok().map(|v| (v as f64, true))
    } else if let Ok(v) = digits.parse::<i64>() {
        Some((v as f64, true))
    } else {
        digits.parse::<f64>().ok().map(|v| (v, false))
    };
    match parsed {
        Some((v, int)) if v.is_finite() => Ok((Tok::Num(sign * v, int), len)),
        _ => Err(TemplateError::at(src, j, "bad number syntax")),
    }
}
