//! Go `text/template` as ESO's v2 engine runs it (`runtime/template/v2/template.go`):
//! `{{ .key }}`, pipelines, `if`/`else if`/`else`, `range`, `with`, variables, quoted and raw
//! strings, `{{-`/`-}}` trimming, comments, and `missingkey=error` (a missing key is an
//! error, not `<no value>`).
//!
//! Not supported: `define`/`template`/`block`, `break`/`continue`, method calls, and the
//! Sprig/ESO functions outside [`FUNCTIONS`] (PKCS#12, PEM, JWK, `htpasswd`, crypto and
//! date helpers); using one is a parse-time-like error naming it.
//!
//! Every input either renders or gives a [`TemplateError`] naming line and column; nothing
//! panics, recursion is bounded, and output is capped at 4 MiB. Error texts describe the
//! template, never the values it was given.

mod exec;
mod funcs;
mod lex;
mod parse;
mod value;

use std::collections::BTreeMap;
use std::fmt;

pub use funcs::FUNCTIONS;
pub use value::Value;

/// A parsed template.
#[derive(Clone)]
pub struct Template {
    src: String,
    nodes: Vec<parse::Node>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("len", &self.src.len())
            .finish_non_exhaustive()
    }
}

/// A template that does not parse or run, with where (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template:{line}:{column}: {message}")]
pub struct TemplateError {
    /// The line.
    pub line: usize,
    /// The column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl TemplateError {
    pub(crate) fn at(src: &str, pos: usize, message: &str) -> Self {
        let mut pos = pos.min(src.len());
        while !src.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &src[..pos];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            line,
            column,
            message: message.to_owned(),
        }
    }
}

impl Template {
    /// Parses `src`.
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let toks = lex::lex(src)?;
        let nodes = parse::parse(src, toks)?;
        Ok(Self {
            src: src.to_owned(),
            nodes,
        })
    }

    /// Runs the template with `data` as dot (and `$`).
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut ex = exec::Exec {
            src: &self.src,
            vars: vec![(String::new(), data.clone())],
            out: String::new(),
            steps: 0,
        };
        ex.walk(&self.nodes, data)?;
        Ok(ex.out)
    }
}

/// The dot ESO gives templates: every fetched key as a string.
pub fn data_value<'a>(data: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Value {
    Value::Map(
        data.into_iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    Value::Str(String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Parses and runs `src` once.
pub fn render(src: &str, data: &Value) -> Result<String, TemplateError> {
    Template::parse(src)?.render(data)
}

#[cfg(test)]
mod tests;
