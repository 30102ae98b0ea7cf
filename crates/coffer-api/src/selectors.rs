//! Label selectors (`reference/k8s-api.md` §8.7), parsed and worded as apimachinery's
//! `labels.Parse`, and the [`SelectorError`] shared with [`crate::FieldSelector`].
//!
//! Grammar: requirements joined by `,` (AND), each one of `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`, plus `k>N`/`k<N` (integer compare); spaces, tabs and newlines are
//! ignored between tokens. The empty selector matches everything.
//!
//! Error texts verified against kube-apiserver output quoted in public bug reports:
//! `unable to parse requirement: found '…', expected: in, notin, =, ==, !=, gt, lt`,
//! `unable to parse requirement: <nil>: Invalid value: "…": …` (bad key) and
//! `found '…', expected: ',' or 'end of string'`. The other parser texts follow apimachinery's
//! parser from knowledge of its source (best guesses, same construction).

use std::collections::BTreeMap;

use crate::field_error::{FieldError, FieldValue, aggregate, key_path};
use crate::names::{is_qualified_name, is_valid_label_value};

/// A selector that failed to parse; `Display` is the 400 message text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// A requirement of a label selector is malformed.
    #[error("unable to parse requirement: {0}")]
    Requirement(RequirementError),
    /// A label selector token sits where it cannot (between requirements).
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        /// The offending token text (`` for end of input).
        found: String,
        /// What the parser wanted.
        expected: &'static str,
    },
    /// A field selector term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that failed.
        term: String,
    },
    /// A field selector value has a backslash escape other than `\\`, `\,` or `\=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    FieldEscape(String),
    /// A field selector value has a bare `=`; holds its code point, which Go prints as a
    /// number (`61`).
    #[error("invalid field selector: unescaped character in value: {0}")]
    FieldUnescaped(u32),
    /// A field selector names a field this resource does not support.
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
}

/// Why one label requirement failed (shown after `unable to parse requirement: `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequirementError {
    /// A token other than the expected one.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        /// The offending token text.
        found: String,
        /// What the parser wanted.
        expected: &'static str,
    },
    /// A set requirement not starting with `(` (upstream has no comma in this text).
    #[error("found '{0}' expected: '('")]
    ExpectedOpenParen(String),
    /// The key or a value failed validation; holds the aggregated field error text.
    #[error("{0}")]
    Invalid(String),
}

/// A label requirement operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
    /// `in (…)`.
    In,
    /// `notin (…)`.
    NotIn,
    /// Bare key.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>N`.
    GreaterThan,
    /// `key<N`.
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values, sorted and de-duplicated (empty for Exists/DoesNotExist).
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let in_set = |v: &String| self.values.contains(v);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(in_set),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(in_set),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A parsed label selector: requirements ANDed together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, sorted by key.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a `labelSelector` query value.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            tokens: lex(selector),
            pos: 0,
        };
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = p.peek();
            match tok {
                Tok::Ident | Tok::Not => {
                    requirements.push(p.requirement().map_err(SelectorError::Requirement)?);
                    let (tok, lit) = p.next();
                    match tok {
                        Tok::End => break,
                        Tok::Comma => {
                            let (t2, l2) = p.peek();
                            if t2 != Tok::Ident && t2 != Tok::Not {
                                return Err(unexpected(l2, "identifier after ','"));
                            }
                        }
                        _ => return Err(unexpected(lit, "',' or 'end of string'")),
                    }
                }
                Tok::End => break,
                _ => return Err(unexpected(lit, "!, identifier, or 'end of string'")),
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every requirement; the empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Label selector tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Ident,
    In,
    NotIn,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

/// Whether the parser wants values (where `in`/`notin` are plain identifiers) or an operator.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    Values,
    Operator,
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn peek_in(&self, ctx: Context) -> (Tok, String) {
        let (tok, lit) = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        match tok {
            Tok::In | Tok::NotIn if ctx == Context::Values => (Tok::Ident, lit),
            _ => (tok, lit),
        }
    }

    fn next_in(&mut self, ctx: Context) -> (Tok, String) {
        let t = self.peek_in(ctx);
        self.pos += 1;
        t
    }

    fn peek(&self) -> (Tok, String) {
        self.peek_in(Context::Values)
    }

    fn next(&mut self) -> (Tok, String) {
        self.next_in(Context::Values)
    }

    fn requirement(&mut self) -> Result<Requirement, RequirementError> {
        let (mut tok, mut key) = self.next();
        let negated = tok == Tok::Not;
        if negated {
            (tok, key) = self.next();
        }
        if tok != Tok::Ident {
            return Err(req_unexpected(key, "identifier"));
        }
        let key_errs = is_qualified_name(&key);
        if !key_errs.is_empty() {
            let e = FieldError::invalid("<nil>", key.as_str(), key_errs.join("; "));
            return Err(RequirementError::Invalid(e.to_string()));
        }
        let (ahead, _) = self.peek();
        if negated {
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        if matches!(ahead, Tok::End | Tok::Comma) {
            return Ok(Requirement {
                key,
                operator: Operator::Exists,
                values: Vec::new(),
            });
        }
        let (op_tok, op_lit) = self.next_in(Context::Operator);
        let operator = match op_tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Eq | Tok::DoubleEq => Operator::Equals,
            Tok::NotEq => Operator::NotEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            _ => return Err(req_unexpected(op_lit, "in, notin, =, ==, !=, gt, lt")),
        };
        let mut values = if matches!(operator, Operator::In | Operator::NotIn) {
            self.set_values()?
        } else {
            self.exact_value()?
        };
        values.sort();
        values.dedup();
        check_requirement(&key, operator, &values)?;
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    fn set_values(&mut self) -> Result<Vec<String>, RequirementError> {
        let (tok, lit) = self.next();
        if tok != Tok::Open {
            return Err(RequirementError::ExpectedOpenParen(lit));
        }
        let (tok, first_lit) = self.peek();
        match tok {
            Tok::Ident | Tok::Comma => {
                let values = self.identifier_list()?;
                if self.next().0 != Tok::Close {
                    // Upstream reports the first token inside the parentheses here.
                    return Err(req_unexpected(first_lit, "')'"));
                }
                Ok(values)
            }
            Tok::Close => {
                self.next();
                Ok(vec![String::new()])
            }
            _ => Err(req_unexpected(first_lit, "',', ')' or identifier")),
        }
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, RequirementError> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next();
            match tok {
                Tok::Ident => {
                    values.push(lit);
                    let (t2, l2) = self.peek();
                    match t2 {
                        Tok::Comma => continue,
                        Tok::Close => return Ok(values),
                        _ => return Err(req_unexpected(l2, "',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.peek().0 {
                        Tok::Close => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Tok::Comma => {
                            self.next();
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(req_unexpected(lit, "',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, RequirementError> {
        if matches!(self.peek().0, Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.next() {
            (Tok::Ident, lit) => Ok(vec![lit]),
            (_, lit) => Err(req_unexpected(lit, "identifier")),
        }
    }
}

/// apimachinery's `NewRequirement` checks on values (the key was checked by the parser).
fn check_requirement(key: &str, op: Operator, values: &[String]) -> Result<(), RequirementError> {
    let mut errs = Vec::new();
    let list = || FieldValue::Json(serde_json::json!(values));
    match op {
        Operator::In | Operator::NotIn if values.is_empty() => errs.push(FieldError::invalid(
            "values",
            list(),
            "for 'in', 'notin' operators, values set can't be empty",
        )),
        Operator::GreaterThan | Operator::LessThan => {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(FieldError::invalid(
                        format!("values[{i}]"),
                        v.as_str(),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let problems = is_valid_label_value(v);
        if !problems.is_empty() {
            let path = key_path(&format!("values[{i}]"), key);
            errs.push(FieldError::invalid(path, v.as_str(), problems.join("; ")));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(RequirementError::Invalid(aggregate(&errs)))
    }
}

fn unexpected(found: String, expected: &'static str) -> SelectorError {
    SelectorError::Unexpected { found, expected }
}

fn req_unexpected(found: String, expected: &'static str) -> RequirementError {
    RequirementError::Unexpected { found, expected }
}

/// The only whitespace the label lexer skips.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn special_token(s: &str) -> Option<Tok> {
    Some(match s {
        "=" => Tok::Eq,
        "==" => Tok::DoubleEq,
        "!" => Tok::Not,
        "!=" => Tok::NotEq,
        ">" => Tok::Gt,
        "<" => Tok::Lt,
        "(" => Tok::Open,
        ")" => Tok::Close,
        "," => Tok::Comma,
        _ => return None,
    })
}

/// Splits a label selector into tokens; runs of symbols take the longest known token.
fn lex(input: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_space(c) {
            i += 1;
        } else if is_special(c) {
            let mut best: Option<(Tok, usize)> = None;
            let mut j = i;
            let mut buf = String::new();
            while j < chars.len() && is_special(chars[j]) {
                buf.push(chars[j]);
                match special_token(&buf) {
                    Some(t) => best = Some((t, j + 1)),
                    None if best.is_some() => break,
                    None => {}
                }
                j += 1;
            }
            // Every single symbol is a token, so `best` is always set here.
            let (tok, end) = best.unwrap_or((Tok::End, chars.len()));
            out.push((tok, chars[i..end].iter().collect()));
            i = end;
        } else {
            let start = i;
            while i < chars.len() && !is_special(chars[i]) && !is_space(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            out.push((tok, word));
        }
    }
    out
}

#[cfg(test)]
#[path = "selectors_tests.rs"]
mod tests;
