//! Precedence-climbing parser for the formula dialect: tokens in, span-annotated AST out.

use super::lexer::{Tok, Token};
use super::{ExprError, Limits};

/// Binary operators, in the dialect's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Plus,
    Not,
}

/// Built-in functions. Names are matched case-insensitively at parse time so evaluation never
/// looks names up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Upper,
    Lower,
    Trim,
    Concat,
    Text,
    Len,
    Left,
    Right,
    Mid,
    Substitute,
    Contains,
    Begins,
    Sum,
    Average,
    Min,
    Max,
    Round,
    Ceiling,
    Floor,
    Abs,
    Mod,
    Power,
    Sqrt,
    Today,
    Now,
    Year,
    Month,
    Day,
    AddDays,
    DateDiff,
    If,
    And,
    Or,
    Not,
    IsBlank,
    IsNull,
    BlankValue,
    Regex,
    Value,
}

/// Upper bound for "any number of arguments".
const MANY: usize = usize::MAX;

/// Function table: name, variant, minimum and maximum argument counts.
const FUNCTIONS: &[(&str, Func, usize, usize)] = &[
    ("UPPER", Func::Upper, 1, 1),
    ("LOWER", Func::Lower, 1, 1),
    ("TRIM", Func::Trim, 1, 1),
    ("CONCAT", Func::Concat, 0, MANY),
    ("CONCATENATE", Func::Concat, 0, MANY),
    ("TEXT", Func::Text, 1, 2),
    ("LEN", Func::Len, 1, 1),
    ("LEFT", Func::Left, 2, 2),
    ("RIGHT", Func::Right, 2, 2),
    ("MID", Func::Mid, 3, 3),
    ("SUBSTITUTE", Func::Substitute, 3, 3),
    ("CONTAINS", Func::Contains, 2, 2),
    ("BEGINS", Func::Begins, 2, 2),
    ("SUM", Func::Sum, 1, MANY),
    ("AVERAGE", Func::Average, 1, MANY),
    ("MIN", Func::Min, 1, MANY),
    ("MAX", Func::Max, 1, MANY),
    ("ROUND", Func::Round, 1, 2),
    ("CEILING", Func::Ceiling, 1, 2),
    ("FLOOR", Func::Floor, 1, 2),
    ("ABS", Func::Abs, 1, 1),
    ("MOD", Func::Mod, 2, 2),
    ("POWER", Func::Power, 2, 2),
    ("SQRT", Func::Sqrt, 1, 1),
    ("TODAY", Func::Today, 0, 0),
    ("NOW", Func::Now, 0, 0),
    ("YEAR", Func::Year, 1, 1),
    ("MONTH", Func::Month, 1, 1),
    ("DAY", Func::Day, 1, 1),
    ("ADDDAYS", Func::AddDays, 2, 2),
    ("DATEDIFF", Func::DateDiff, 2, 3),
    ("IF", Func::If, 2, 3),
    ("AND", Func::And, 1, MANY),
    ("OR", Func::Or, 1, MANY),
    ("NOT", Func::Not, 1, 1),
    ("ISBLANK", Func::IsBlank, 1, 1),
    ("ISNULL", Func::IsNull, 1, 1),
    ("BLANKVALUE", Func::BlankValue, 2, 2),
    ("REGEX", Func::Regex, 2, 2),
    ("VALUE", Func::Value, 1, 1),
];

/// Names of every built-in function, for documentation and error messages.
pub(crate) fn function_names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|(name, ..)| *name)
}

/// Looks a function up by name (case-insensitive).
fn lookup_function(name: &str) -> Option<(&'static str, Func, usize, usize)> {
    FUNCTIONS
        .iter()
        .copied()
        .find(|(n, ..)| n.eq_ignore_ascii_case(name))
}

/// AST node kinds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
    Field(String),
    Unary(UnOp, Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    Call(Func, &'static str, Vec<Node>),
}

/// An AST node with its byte span in the source and its subtree depth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) depth: usize,
}

/// Binding powers, lowest first.
const BP_OR: u8 = 1;
const BP_AND: u8 = 2;
const BP_NOT: u8 = 3;
const BP_CMP: u8 = 4;
const BP_ADD: u8 = 5;
const BP_MUL: u8 = 6;
const BP_UNARY: u8 = 7;

fn infix(tok: &Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Or | Tok::OrOr => (BinOp::Or, BP_OR),
        Tok::And | Tok::AndAnd => (BinOp::And, BP_AND),
        Tok::Eq => (BinOp::Eq, BP_CMP),
        Tok::Ne => (BinOp::Ne, BP_CMP),
        Tok::Lt => (BinOp::Lt, BP_CMP),
        Tok::Gt => (BinOp::Gt, BP_CMP),
        Tok::Le => (BinOp::Le, BP_CMP),
        Tok::Ge => (BinOp::Ge, BP_CMP),
        Tok::Plus => (BinOp::Add, BP_ADD),
        Tok::Minus => (BinOp::Sub, BP_ADD),
        Tok::Star => (BinOp::Mul, BP_MUL),
        Tok::Slash => (BinOp::Div, BP_MUL),
        Tok::Percent => (BinOp::Rem, BP_MUL),
        _ => return None,
    })
}

/// Parser state over a token list.
pub(crate) struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    limits: Limits,
}

impl<'s> Parser<'s> {
    pub(crate) fn new(src: &'s str, tokens: Vec<Token>, limits: Limits) -> Self {
        Self {
            src,
            tokens,
            pos: 0,
            limits,
        }
    }

    /// Parses the whole input as one expression.
    pub(crate) fn parse_all(mut self) -> Result<Node, ExprError> {
        if matches!(self.peek().tok, Tok::Eof) {
            return Err(ExprError::syntax(
                self.src,
                0,
                "empty expression",
                "expected an expression",
            ));
        }
        let node = self.expr(0, 1)?;
        let t = self.peek();
        if !matches!(t.tok, Tok::Eof) {
            let hint = if matches!(t.tok, Tok::RParen) {
                "there is no matching `(`"
            } else {
                "expected an operator or the end of the expression"
            };
            return Err(self.unexpected(hint));
        }
        Ok(node)
    }

    fn peek(&self) -> &Token {
        // The lexer always ends the list with Eof, and `bump` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> ExprError {
        let t = self.peek();
        let what = format!("unexpected {}", t.tok.describe(self.src, t.start, t.end));
        ExprError::syntax(self.src, t.start, what, expected)
    }

    fn too_deep(&self, at: usize) -> ExprError {
        ExprError::limit(
            self.src,
            at,
            format!(
                "expression is nested too deeply (more than {} levels) at column {}; simplify it or split it into several formula fields",
                self.limits.max_depth,
                super::column(self.src, at)
            ),
        )
    }

    fn node(&self, kind: Kind, start: usize, end: usize) -> Result<Node, ExprError> {
        let child_depth = match &kind {
            Kind::Unary(_, a) => a.depth,
            Kind::Binary(_, a, b) => a.depth.max(b.depth),
            Kind::Call(_, _, args) => args.iter().map(|a| a.depth).max().unwrap_or(0),
            _ => 0,
        };
        let depth = child_depth + 1;
        if depth > self.limits.max_depth {
            return Err(self.too_deep(start));
        }
        Ok(Node {
            kind,
            start,
            end,
            depth,
        })
    }

    /// Precedence climbing: parses operators binding at least as tightly as `min_bp`.
    /// `level` counts parser recursion so that deeply nested input fails instead of overflowing.
    fn expr(&mut self, min_bp: u8, level: usize) -> Result<Node, ExprError> {
        if level > self.limits.max_depth {
            return Err(self.too_deep(self.peek().start));
        }
        let mut lhs = self.prefix(level)?;
        while let Some((op, bp)) = infix(&self.peek().tok)
            && bp >= min_bp
        {
            self.bump();
            let rhs = self.expr(bp + 1, level + 1)?;
            let (start, end) = (lhs.start, rhs.end);
            lhs = self.node(Kind::Binary(op, Box::new(lhs), Box::new(rhs)), start, end)?;
        }
        Ok(lhs)
    }

    fn prefix(&mut self, level: usize) -> Result<Node, ExprError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Num(n) => {
                self.bump();
                self.node(Kind::Num(n), t.start, t.end)
            }
            Tok::Str(s) => {
                self.bump();
                self.node(Kind::Str(s), t.start, t.end)
            }
            Tok::True | Tok::False => {
                self.bump();
                self.node(Kind::Bool(matches!(t.tok, Tok::True)), t.start, t.end)
            }
            Tok::Null => {
                self.bump();
                self.node(Kind::Null, t.start, t.end)
            }
            Tok::Minus | Tok::Plus => {
                self.bump();
                let operand = self.expr(BP_UNARY, level + 1)?;
                let op = if matches!(t.tok, Tok::Minus) {
                    UnOp::Neg
                } else {
                    UnOp::Plus
                };
                let end = operand.end;
                self.node(Kind::Unary(op, Box::new(operand)), t.start, end)
            }
            Tok::Not => {
                // `NOT(x)` is the function, so `NOT(a) = b` compares NOT(a) with b as in Excel;
                // the bare keyword form `NOT a = b` negates the whole comparison.
                if self
                    .tokens
                    .get(self.pos + 1)
                    .is_some_and(|n| matches!(n.tok, Tok::LParen))
                {
                    self.bump();
                    return self.call("NOT", t.start, level);
                }
                self.bump();
                let operand = self.expr(BP_NOT, level + 1)?;
                let end = operand.end;
                self.node(Kind::Unary(UnOp::Not, Box::new(operand)), t.start, end)
            }
            Tok::And | Tok::Or => {
                if self
                    .tokens
                    .get(self.pos + 1)
                    .is_some_and(|n| matches!(n.tok, Tok::LParen))
                {
                    let name = if matches!(t.tok, Tok::And) {
                        "AND"
                    } else {
                        "OR"
                    };
                    self.bump();
                    self.call(name, t.start, level)
                } else {
                    Err(self.unexpected("expected an expression before the operator"))
                }
            }
            Tok::LParen => {
                self.bump();
                let inner = self.expr(0, level + 1)?;
                if !matches!(self.peek().tok, Tok::RParen) {
                    let open = super::column(self.src, t.start);
                    return Err(
                        self.unexpected(&format!("expected `)` to close the `(` at column {open}"))
                    );
                }
                let close = self.bump();
                // Parentheses only group; the span widens so messages quote them.
                Ok(Node {
                    start: t.start,
                    end: close.end,
                    ..inner
                })
            }
            Tok::Ident(name) => {
                self.bump();
                if matches!(self.peek().tok, Tok::LParen) {
                    self.call(&name, t.start, level)
                } else {
                    self.node(Kind::Field(name), t.start, t.end)
                }
            }
            _ => Err(self.unexpected("expected an expression")),
        }
    }

    /// Parses a call's argument list; the current token is the `(` after the name.
    fn call(&mut self, name: &str, start: usize, level: usize) -> Result<Node, ExprError> {
        let Some((canonical, func, min, max)) = lookup_function(name) else {
            let hint = if name.contains('.') {
                "field paths cannot be called; expected a function name such as UPPER or IF"
                    .to_owned()
            } else {
                format!(
                    "expected one of {}",
                    function_names().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(ExprError::syntax(
                self.src,
                start,
                format!("unknown function `{}`", super::truncate(name, 40)),
                hint,
            ));
        };
        self.bump(); // the `(`
        let mut args = Vec::new();
        if matches!(self.peek().tok, Tok::RParen) {
            self.bump();
        } else {
            loop {
                args.push(self.expr(0, level + 1)?);
                match self.peek().tok {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RParen => {
                        self.bump();
                        break;
                    }
                    _ => {
                        return Err(self.unexpected(&format!(
                            "expected `,` or `)` in the arguments of {canonical}"
                        )));
                    }
                }
            }
        }
        let end = self.tokens[self.pos.saturating_sub(1)].end;
        if args.len() < min || args.len() > max {
            let expected = match (min, max) {
                (a, b) if a == b => format!("{a} argument{}", if a == 1 { "" } else { "s" }),
                (a, MANY) => format!("at least {a} argument{}", if a == 1 { "" } else { "s" }),
                (a, b) => format!("{a} to {b} arguments"),
            };
            return Err(ExprError::syntax(
                self.src,
                start,
                format!(
                    "{canonical} called with {} argument{}",
                    args.len(),
                    if args.len() == 1 { "" } else { "s" }
                ),
                format!("{canonical} expects {expected}"),
            ));
        }
        self.node(Kind::Call(func, canonical, args), start, end)
    }
}
