//! The one expression engine: formula fields, validation-rule conditions, automation criteria and workflow guards.
//!
//! The dialect is Excel-like:
//!
//! - Bare field names (`amount`) and dotted paths through lookups or JSON objects (`account.name`).
//! - Literals: numbers (`12`, `1.5`, `1e3`), `'single'` or `"double"` quoted strings (with `\n \t \r
//!   \\ \' \"` escapes; any other backslash is kept, so `'^\d+$'` works as a regex), `TRUE`/`FALSE`
//!   and `NULL` (keywords are case-insensitive).
//! - Operators, loosest first: `OR`/`||`; `AND`/`&&`; prefix `NOT`; comparisons `= == != <> < > <= >=`;
//!   `+ -`; `* / %`; prefix `-`/`+`. Parentheses group. Text is joined with `CONCAT`, never `&`.
//! - Functions (case-insensitive): see [`FUNCTIONS`].
//!
//! Semantics:
//!
//! - Numbers are `f64`; results are cleaned to 15 significant digits when they leave the engine,
//!   so `0.1 + 0.2` is `0.3` and `1200.5` never prints as `1200.4999…`.
//! - `NULL` propagates through arithmetic and text functions (`NULL + 1` is `NULL`); ordering
//!   comparisons with `NULL` are false; `x = NULL` is true only when `x` is null and `x != NULL`
//!   only when it is not. `AND`, `OR`, `NOT`, `IF` and [`Expr::eval_bool`] treat `NULL` as false.
//! - Division (and `%`/`MOD`) by zero gives `NULL` rather than an error, so one empty denominator
//!   does not break a whole record.
//! - Dates are `YYYY-MM-DD` text or date values, date-times RFC 3339; text that looks like a date
//!   is read as one where a date is needed (`close_date - TODAY()` is a number of days).
//!   `date ± n` adds days, `date - date` gives days.
//! - Type mismatches are evaluation errors that quote the offending sub-expression.
//! - Sandboxing: source length, AST depth, evaluation steps and text size are bounded by
//!   [`Limits`]; exceeding one is an error, never a stack overflow or a hang.

mod eval;
#[doc(hidden)]
pub mod fuzzing;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;
mod value;

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};

pub use value::{Value, format_number};

/// Names of the built-in functions, as accepted by the parser (case-insensitive).
pub const FUNCTIONS: &[&str] = &[
    "UPPER",
    "LOWER",
    "TRIM",
    "CONCAT",
    "CONCATENATE",
    "TEXT",
    "LEN",
    "LEFT",
    "RIGHT",
    "MID",
    "SUBSTITUTE",
    "CONTAINS",
    "BEGINS",
    "SUM",
    "AVERAGE",
    "MIN",
    "MAX",
    "ROUND",
    "CEILING",
    "FLOOR",
    "ABS",
    "MOD",
    "POWER",
    "SQRT",
    "TODAY",
    "NOW",
    "YEAR",
    "MONTH",
    "DAY",
    "ADDDAYS",
    "DATEDIFF",
    "IF",
    "AND",
    "OR",
    "NOT",
    "ISBLANK",
    "ISNULL",
    "BLANKVALUE",
    "REGEX",
    "VALUE",
];

/// Sandbox limits for parsing and evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum source length in bytes.
    pub max_source_len: usize,
    /// Maximum nesting depth of the syntax tree (and of parentheses).
    pub max_depth: usize,
    /// Maximum number of evaluation steps (nodes visited plus list items processed).
    pub max_steps: u64,
    /// Maximum length in bytes of any text value produced during evaluation.
    pub max_string_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_source_len: 8 * 1024,
            max_depth: 64,
            max_steps: 100_000,
            max_string_len: 1024 * 1024,
        }
    }
}

/// Which stage produced an [`ExprError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprErrorKind {
    /// The source could not be tokenised or parsed.
    Parse,
    /// Evaluation failed (type mismatch, bad argument, out-of-range date...).
    Eval,
    /// A sandbox limit ([`Limits`]) was exceeded.
    Limit,
}

/// A parse or evaluation error with the 1-based column (in characters) where it was found.
///
/// Parse messages read like `unexpected `)` at column 12; expected an expression`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub kind: ExprErrorKind,
    /// 1-based column in characters of the offending token or sub-expression.
    pub column: usize,
    pub message: String,
}

impl ExprError {
    /// A syntax error: `{what} at column {n}; {expected}`.
    pub(crate) fn syntax(
        src: &str,
        offset: usize,
        what: impl fmt::Display,
        expected: impl fmt::Display,
    ) -> Self {
        let column = column(src, offset);
        Self {
            kind: ExprErrorKind::Parse,
            column,
            message: format!("{what} at column {column}; {expected}"),
        }
    }

    pub(crate) fn limit(src: &str, offset: usize, message: String) -> Self {
        Self {
            kind: ExprErrorKind::Limit,
            column: column(src, offset),
            message,
        }
    }

    pub(crate) fn eval(src: &str, offset: usize, message: String) -> Self {
        Self {
            kind: ExprErrorKind::Eval,
            column: column(src, offset),
            message,
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExprError {}

/// 1-based character column of a byte offset.
pub(crate) fn column(src: &str, offset: usize) -> usize {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    src[..offset].chars().count() + 1
}

/// Shortens text for messages, cutting on a character boundary.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Resolves dotted paths that go through lookups (`account.owner.name`) to related records'
/// values. The engine pre-loads what a formula needs (see [`Expr::fields`]) and answers here.
pub trait FieldResolver {
    /// Returns the value at `path` (the full dotted path, e.g. `account.name`) for the record
    /// being evaluated, or `None` when it is unknown (evaluated as `NULL`).
    fn resolve(
        &self,
        record: &serde_json::Map<String, serde_json::Value>,
        path: &str,
    ) -> Option<serde_json::Value>;
}

/// What an expression is evaluated against: the record, the clock and optional related records.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    pub record: &'a serde_json::Map<String, serde_json::Value>,
    /// The clock read by `TODAY()` and `NOW()`; passed in so evaluation is deterministic.
    pub now: DateTime<Utc>,
    pub resolver: Option<&'a dyn FieldResolver>,
}

impl fmt::Debug for EvalContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvalContext")
            .field("record", &self.record)
            .field("now", &self.now)
            .field("resolver", &self.resolver.map(|_| "dyn FieldResolver"))
            .finish()
    }
}

impl<'a> EvalContext<'a> {
    pub fn new(record: &'a serde_json::Map<String, serde_json::Value>, now: DateTime<Utc>) -> Self {
        Self {
            record,
            now,
            resolver: None,
        }
    }

    pub fn with_resolver(mut self, resolver: &'a dyn FieldResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Looks a field path up: an exact key first, then a walk through nested JSON objects
    /// (expanded lookups), then the resolver. Unknown paths are `NULL`.
    pub fn lookup(&self, path: &str) -> serde_json::Value {
        if let Some(v) = self.record.get(path) {
            return v.clone();
        }
        if path.contains('.') {
            let mut segments = path.split('.');
            let mut current = segments.next().and_then(|first| self.record.get(first));
            for segment in segments {
                current = match current {
                    Some(serde_json::Value::Object(map)) => map.get(segment),
                    _ => None,
                };
            }
            if let Some(v) = current {
                return v.clone();
            }
            if let Some(resolver) = self.resolver
                && let Some(v) = resolver.resolve(self.record, path)
            {
                return v;
            }
        }
        serde_json::Value::Null
    }
}

/// A parsed expression, cheap to evaluate many times.
#[derive(Debug, Clone)]
pub struct Expr {
    src: String,
    root: parser::Node,
    limits: Limits,
    /// Regular expressions given as literals to REGEX, compiled once at parse time.
    regexes: HashMap<String, regex::Regex>,
}

impl Expr {
    /// Parses with the default [`Limits`].
    pub fn parse(src: &str) -> Result<Expr, ExprError> {
        Self::parse_with_limits(src, Limits::default())
    }

    /// Parses with explicit limits (which also apply when this expression is evaluated).
    pub fn parse_with_limits(src: &str, limits: Limits) -> Result<Expr, ExprError> {
        if src.len() > limits.max_source_len {
            return Err(ExprError {
                kind: ExprErrorKind::Limit,
                column: 1,
                message: format!(
                    "expression is {} bytes long; the limit is {} bytes",
                    src.len(),
                    limits.max_source_len
                ),
            });
        }
        let tokens = lexer::tokenize(src)?;
        let root = parser::Parser::new(src, tokens, limits).parse_all()?;
        let mut regexes = HashMap::new();
        eval::precompile_regexes(src, &root, &mut regexes)?;
        Ok(Expr {
            src: src.to_owned(),
            root,
            limits,
            regexes,
        })
    }

    /// The source text this expression was parsed from.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Field paths referenced by the expression, each once, in order of first appearance.
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![&self.root];
        // Depth-first, left to right: push children in reverse so the leftmost is visited first.
        while let Some(node) = stack.pop() {
            match &node.kind {
                parser::Kind::Field(name) if !out.contains(name) => out.push(name.clone()),
                parser::Kind::Unary(_, a) => stack.push(a),
                parser::Kind::Binary(_, a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                parser::Kind::Call(_, _, args) => stack.extend(args.iter().rev()),
                _ => {}
            }
        }
        out
    }

    /// True when the expression reads the clock (`TODAY()`/`NOW()`).
    pub fn uses_clock(&self) -> bool {
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            match &node.kind {
                parser::Kind::Call(parser::Func::Today | parser::Func::Now, ..) => return true,
                parser::Kind::Call(_, _, args) => stack.extend(args.iter()),
                parser::Kind::Unary(_, a) => stack.push(a),
                parser::Kind::Binary(_, a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
                _ => {}
            }
        }
        false
    }

    /// Evaluates the expression.
    pub fn eval(&self, cx: &EvalContext<'_>) -> Result<Value, ExprError> {
        eval::Evaluator::new(self, cx).run()
    }

    /// Evaluates and converts the result to JSON (numbers cleaned, dates as ISO text).
    pub fn eval_json(&self, cx: &EvalContext<'_>) -> Result<serde_json::Value, ExprError> {
        Ok(self.eval(cx)?.to_json())
    }

    /// Evaluates a condition: `NULL` is false; anything other than a boolean is an error.
    pub fn eval_bool(&self, cx: &EvalContext<'_>) -> Result<bool, ExprError> {
        match self.eval(cx)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(ExprError::eval(
                &self.src,
                self.root.start,
                format!(
                    "a condition must be TRUE or FALSE, but `{}` is {}",
                    truncate(&self.src, 60),
                    other.describe()
                ),
            )),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}
