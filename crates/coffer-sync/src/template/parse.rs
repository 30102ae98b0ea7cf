//! The parser: tokens → a tree of text, actions, `if`/`range`/`with` blocks and variable
//! declarations (`text/template/parse/parse.go`, without `define`/`template`/`block`).

use super::TemplateError;
use super::lex::{Spanned, Tok};

/// A node of the tree.
#[derive(Clone, Debug)]
pub(super) enum Node {
    /// Literal text.
    Text(String),
    /// `{{ pipeline }}`: printed unless it declares variables.
    Action(Pipeline),
    /// `if`, `with` or `range`.
    Block(Box<Block>),
}

/// Which block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BlockKind {
    If,
    With,
    Range,
}

/// `{{ if p }} body {{ else }} other {{ end }}`; `else if` nests another block in `other`.
#[derive(Clone, Debug)]
pub(super) struct Block {
    pub kind: BlockKind,
    pub pipe: Pipeline,
    pub body: Vec<Node>,
    pub other: Vec<Node>,
}

/// `$a, $b := cmd | cmd`.
#[derive(Clone, Debug)]
pub(super) struct Pipeline {
    pub pos: usize,
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Command>,
}

/// One command of a pipeline: a function and its arguments, or a single operand.
#[derive(Clone, Debug)]
pub(super) struct Command {
    pub pos: usize,
    pub args: Vec<Operand>,
}

/// An operand.
#[derive(Clone, Debug)]
pub(super) enum Operand {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(f64, bool),
    Bool(bool),
    Nil,
    Func(String, usize),
    /// `(pipeline).a.b`.
    Sub(Box<Pipeline>, Vec<String>),
}

const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Spanned>,
    i: usize,
    depth: usize,
}

/// Parses the whole template.
pub(super) fn parse(src: &str, toks: Vec<Spanned>) -> Result<Vec<Node>, TemplateError> {
    let mut p = Parser {
        src,
        toks,
        i: 0,
        depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        End::Eof => Ok(nodes),
        End::Stop(pos) => Err(p.err(pos, "unexpected {{end}}")),
        End::Else(pos, _) => Err(p.err(pos, "unexpected {{else}}")),
    }
}

enum End {
    Eof,
    Stop(usize),
    /// `{{else}}` or `{{else if ...}}` (the keyword after else, if any).
    Else(usize, Option<BlockKind>),
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: &str) -> TemplateError {
        TemplateError::at(self.src, pos, msg)
    }

    fn peek(&self) -> Option<&Spanned> {
        self.toks.get(self.i)
    }

    fn next_pos(&self) -> usize {
        self.peek().map_or(self.src.len(), |t| t.pos)
    }

    fn bump(&mut self) -> Option<Spanned> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn expect_close(&mut self) -> Result<(), TemplateError> {
        let pos = self.next_pos();
        match self.bump() {
            Some(Spanned {
                tok: Tok::Close, ..
            }) => Ok(()),
            _ => Err(self.err(pos, "expected }}")),
        }
    }

    /// Nodes up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, End), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(self.next_pos(), "blocks nested too deeply"));
        }
        let mut nodes = Vec::new();
        let end = loop {
            let Some(t) = self.bump() else { break End::Eof };
            match t.tok {
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::Open => {
                    let kw = match self.peek() {
                        Some(Spanned {
                            tok: Tok::Ident(k), ..
                        }) => Some(k.clone()),
                        _ => None,
                    };
                    match kw.as_deref() {
                        Some("end") => {
                            self.i += 1;
                            self.expect_close()?;
                            break End::Stop(t.pos);
                        }
                        Some("else") => {
                            self.i += 1;
                            let nested = match self.peek().map(|s| &s.tok) {
                                Some(Tok::Ident(k)) if k == "if" => Some(BlockKind::If),
                                Some(Tok::Ident(k)) if k == "with" => Some(BlockKind::With),
                                _ => None,
                            };
                            if nested.is_some() {
                                self.i += 1;
                            } else {
                                self.expect_close()?;
                            }
                            break End::Else(t.pos, nested);
                        }
                        Some(k @ ("if" | "with" | "range")) => {
                            let kind = match k {
                                "if" => BlockKind::If,
                                "with" => BlockKind::With,
                                _ => BlockKind::Range,
                            };
                            self.i += 1;
                            nodes.push(Node::Block(Box::new(self.block(kind, t.pos)?)));
                        }
                        Some(k @ ("define" | "template" | "block" | "break" | "continue")) => {
                            return Err(self.err(t.pos, &format!("{{{{{k}}}}} is not supported")));
                        }
                        _ => {
                            let pipe = self.pipeline(true)?;
                            self.expect_close()?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                _ => return Err(self.err(t.pos, "unexpected token outside an action")),
            }
        };
        self.depth -= 1;
        Ok((nodes, end))
    }

    /// After `{{if` / `{{with` / `{{range` (or `{{else if`): the rest of the block.
    fn block(&mut self, kind: BlockKind, pos: usize) -> Result<Block, TemplateError> {
        let pipe = self.pipeline(true)?;
        if pipe.cmds.is_empty() {
            return Err(self.err(pos, "missing value for block"));
        }
        self.expect_close()?;
        let (body, end) = self.list()?;
        let other = match end {
            End::Eof => return Err(self.err(pos, "unclosed block: missing {{end}}")),
            End::Stop(_) => Vec::new(),
            End::Else(epos, None) => {
                let (other, end2) = self.list()?;
                match end2 {
                    End::Stop(_) => other,
                    End::Else(p2, _) => return Err(self.err(p2, "expected {{end}} after {{else}}")),
                    End::Eof => return Err(self.err(epos, "unclosed {{else}}: missing {{end}}")),
                }
            }
            End::Else(epos, Some(nested)) => {
                if kind == BlockKind::Range {
                    return Err(self.err(epos, "{{else if}} is not allowed in range"));
                }
                // `{{else if x}} ... {{end}}` closes both blocks with one end.
                vec![Node::Block(Box::new(self.block(nested, epos)?))]
            }
        };
        Ok(Block {
            kind,
            pipe,
            body,
            other,
        })
    }

    /// `[$a[, $b] (:= | =)] command [| command]...` up to `}}` or `)`.
    fn pipeline(&mut self, allow_decl: bool) -> Result<Pipeline, TemplateError> {
        let pos = self.next_pos();
        let mut decl = Vec::new();
        let mut assign = false;
        if allow_decl {
            let save = self.i;
            let mut names = Vec::new();
            while let Some(Spanned {
                tok: Tok::Var(name, path),
                ..
            }) = self.peek().cloned()
            {
                if !path.is_empty() {
                    break;
                }
                self.i += 1;
                names.push(name);
                match self.peek().map(|t| &t.tok) {
                    Some(Tok::Comma) if names.len() < 2 => {
                        self.i += 1;
                    }
                    _ => break,
                }
            }
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Declare) if !names.is_empty() => {
                    self.i += 1;
                    decl = names;
                }
                Some(Tok::Assign) if !names.is_empty() => {
                    self.i += 1;
                    decl = names;
                    assign = true;
                }
                _ => self.i = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            match self.peek().map(|t| &t.tok) {
                None => return Err(self.err(pos, "unclosed action")),
                Some(Tok::Close | Tok::RParen) => break,
                _ => {}
            }
            cmds.push(self.command()?);
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Pipe) => {
                    self.i += 1;
                }
                Some(Tok::Close | Tok::RParen) | None => break,
                _ => return Err(self.err(self.next_pos(), "unexpected token in pipeline")),
            }
        }
        if cmds.is_empty() && !decl.is_empty() {
            return Err(self.err(pos, "missing value for declaration"));
        }
        Ok(Pipeline {
            pos,
            decl,
            assign,
            cmds,
        })
    }

    fn command(&mut self) -> Result<Command, TemplateError> {
        let pos = self.next_pos();
        let mut args = Vec::new();
        loop {
            match self.peek().map(|t| &t.tok) {
                None | Some(Tok::Close | Tok::RParen | Tok::Pipe) => break,
                _ => {}
            }
            if !args.is_empty() && self.peek().is_some_and(|t| !t.space_before) {
                return Err(self.err(self.next_pos(), "missing space between arguments"));
            }
            args.push(self.operand()?);
        }
        if args.is_empty() {
            return Err(self.err(pos, "empty command"));
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> Result<Operand, TemplateError> {
        let pos = self.next_pos();
        let Some(t) = self.bump() else {
            return Err(self.err(pos, "unexpected end of template"));
        };
        Ok(match t.tok {
            Tok::Field(p) => Operand::Field(p),
            Tok::Var(n, p) => Operand::Var(n, p),
            Tok::Str(s) => Operand::Str(s),
            Tok::Num(v, int) => Operand::Num(v, int),
            Tok::Char(c) => Operand::Num(f64::from(u32::from(c)), true),
            Tok::Ident(name) => match name.as_str() {
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                "nil" => Operand::Nil,
                "if" | "else" | "end" | "range" | "with" => {
                    return Err(self.err(t.pos, &format!("unexpected {name:?} in command")));
                }
                _ => Operand::Func(name, t.pos),
            },
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err(t.pos, "parentheses nested too deeply"));
                }
                let inner = self.pipeline(false)?;
                self.depth -= 1;
                match self.bump() {
                    Some(Spanned {
                        tok: Tok::RParen, ..
                    }) => {}
                    _ => return Err(self.err(t.pos, "unclosed left paren")),
                }
                if inner.cmds.is_empty() {
                    return Err(self.err(t.pos, "empty parenthesized pipeline"));
                }
                // `(x).a.b`: a field chain right after the paren.
                let chain = match self.peek() {
                    Some(Spanned {
                        tok: Tok::Field(p),
                        space_before: false,
                        ..
                    }) if !p.is_empty() => {
                        let p = p.clone();
                        self.i += 1;
                        p
                    }
                    _ => Vec::new(),
                };
                Operand::Sub(Box::new(inner), chain)
            }
            _ => return Err(self.err(t.pos, "unexpected token in operand")),
        })
    }
}
