//! The executor: walks the tree with a dot, a variable stack and an output budget
//! (`text/template/exec.go`, with `missingkey=error` as ESO sets it).

use std::collections::BTreeMap;

use super::TemplateError;
use super::funcs;
use super::parse::{Block, BlockKind, Command, Node, Operand, Pipeline};
use super::value::Value;

/// At most this many bytes of output per template (a Secret is at most 1 MiB).
const MAX_OUTPUT: usize = 4 << 20;
/// At most this many evaluation steps per template.
const MAX_STEPS: u64 = 2_000_000;

pub(super) struct Exec<'a> {
    pub src: &'a str,
    pub vars: Vec<(String, Value)>,
    pub out: String,
    pub steps: u64,
}

impl Exec<'_> {
    pub fn err(&self, pos: usize, msg: &str) -> TemplateError {
        TemplateError::at(self.src, pos, msg)
    }

    fn step(&mut self, pos: usize) -> Result<(), TemplateError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.err(pos, "template takes too many steps"));
        }
        Ok(())
    }

    pub fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => self.emit(t, 0)?,
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        let text = v.print();
                        self.emit(&text, p.pos)?;
                    }
                }
                Node::Block(b) => self.block(b, dot)?,
            }
        }
        Ok(())
    }

    fn emit(&mut self, text: &str, pos: usize) -> Result<(), TemplateError> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(self.err(pos, "template output is larger than 4 MiB"));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn block(&mut self, b: &Block, dot: &Value) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        let result = self.block_inner(b, dot);
        self.vars.truncate(mark);
        result
    }

    fn block_inner(&mut self, b: &Block, dot: &Value) -> Result<(), TemplateError> {
        match b.kind {
            BlockKind::If | BlockKind::With => {
                let v = self.pipeline(&b.pipe, dot)?;
                if v.truthy() {
                    let inner = if b.kind == BlockKind::With { &v } else { dot };
                    self.walk(&b.body, inner)
                } else {
                    self.walk(&b.other, dot)
                }
            }
            BlockKind::Range => {
                // The declared variables are the key/index and element, not the whole value.
                let decl = b.pipe.decl.clone();
                let mut pipe = b.pipe.clone();
                pipe.decl.clear();
                let v = self.pipeline(&pipe, dot)?;
                let items: Vec<(Value, Value)> = match v {
                    Value::List(l) => l
                        .into_iter()
                        .enumerate()
                        .map(|(k, v)| (Value::Int(k as i64), v))
                        .collect(),
                    Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                    Value::Int(n) => (0..n.max(0))
                        .map(|k| (Value::Int(k), Value::Int(k)))
                        .collect(),
                    Value::Nil => Vec::new(),
                    other => {
                        return Err(self.err(
                            b.pipe.pos,
                            &format!("range can't iterate over {}", other.type_name()),
                        ));
                    }
                };
                if items.is_empty() {
                    return self.walk(&b.other, dot);
                }
                let mark = self.vars.len();
                for (key, elem) in items {
                    self.step(b.pipe.pos)?;
                    match decl.as_slice() {
                        [] => {}
                        [one] => self.vars.push((one.clone(), elem.clone())),
                        [k, e, ..] => {
                            self.vars.push((k.clone(), key));
                            self.vars.push((e.clone(), elem.clone()));
                        }
                    }
                    self.walk(&b.body, &elem)?;
                    self.vars.truncate(mark);
                }
                Ok(())
            }
        }
    }

    pub fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        self.step(p.pos)?;
        let mut piped: Option<Value> = None;
        for cmd in &p.cmds {
            piped = Some(self.command(cmd, dot, piped)?);
        }
        let value = piped.unwrap_or(Value::Nil);
        if let Some(name) = p.decl.first() {
            if p.assign {
                let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) else {
                    return Err(self.err(p.pos, &format!("undefined variable: ${name}")));
                };
                slot.1 = value.clone();
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn command(
        &mut self,
        cmd: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        self.step(cmd.pos)?;
        let (first, rest) = match cmd.args.split_first() {
            Some(x) => x,
            None => return Err(self.err(cmd.pos, "empty command")),
        };
        if let Operand::Func(name, pos) = first {
            if name == "and" || name == "or" {
                return self.and_or(name, *pos, rest, dot, piped);
            }
            let mut args = Vec::with_capacity(rest.len() + 1);
            for a in rest {
                args.push(self.operand(a, dot, cmd.pos)?);
            }
            args.extend(piped);
            return funcs::call(name, args).map_err(|m| self.err(*pos, &format!("{name}: {m}")));
        }
        if !rest.is_empty() || piped.is_some() {
            return Err(self.err(cmd.pos, "can't give argument to non-function"));
        }
        self.operand(first, dot, cmd.pos)
    }

    /// `and`/`or` evaluate their arguments lazily, as Go 1.18+ does.
    fn and_or(
        &mut self,
        name: &str,
        pos: usize,
        rest: &[Operand],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let count = rest.len() + usize::from(piped.is_some());
        if count == 0 {
            return Err(self.err(
                pos,
                &format!("{name}: wrong number of args: want at least 1"),
            ));
        }
        let want_truthy = name == "or";
        let mut last = Value::Nil;
        for a in rest {
            last = self.operand(a, dot, pos)?;
            if last.truthy() == want_truthy {
                return Ok(last);
            }
        }
        if let Some(p) = piped {
            last = p;
        }
        Ok(last)
    }

    fn operand(&mut self, op: &Operand, dot: &Value, pos: usize) -> Result<Value, TemplateError> {
        Ok(match op {
            Operand::Field(path) => self.field(dot, path, pos)?,
            Operand::Var(name, path) => {
                let base = if name.is_empty() {
                    self.vars.first().map(|(_, v)| v.clone())
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                };
                let Some(base) = base else {
                    return Err(self.err(pos, &format!("undefined variable: ${name}")));
                };
                self.field(&base, path, pos)?
            }
            Operand::Str(s) => Value::Str(s.clone()),
            Operand::Num(v, true) => Value::Int(*v as i64),
            Operand::Num(v, false) => Value::Float(*v),
            Operand::Bool(b) => Value::Bool(*b),
            Operand::Nil => return Err(self.err(pos, "nil is not a command")),
            Operand::Func(name, pos) => funcs::call(name, Vec::new())
                .map_err(|m| self.err(*pos, &format!("{name}: {m}")))?,
            Operand::Sub(p, chain) => {
                let v = self.pipeline(p, dot)?;
                self.field(&v, chain, p.pos)?
            }
        })
    }

    fn field(&self, base: &Value, path: &[String], pos: usize) -> Result<Value, TemplateError> {
        let mut cur = base;
        for name in path {
            cur = match cur {
                Value::Map(m) => lookup(m, name)
                    .ok_or_else(|| self.err(pos, &format!("map has no entry for key {name:?}")))?,
                Value::Nil => {
                    return Err(self.err(
                        pos,
                        &format!("nil pointer evaluating interface {{}}.{name}"),
                    ));
                }
                other => {
                    return Err(self.err(
                        pos,
                        &format!("can't evaluate field {name} in type {}", other.type_name()),
                    ));
                }
            };
        }
        Ok(cur.clone())
    }
}

fn lookup<'m>(m: &'m BTreeMap<String, Value>, name: &str) -> Option<&'m Value> {
    m.get(name)
}
