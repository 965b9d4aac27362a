//! Tree-walking evaluator for parsed expressions, with step and text-size limits.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Utc};

use super::parser::{BinOp, Func, Kind, Node, UnOp};
use super::value::{clean, format_number, parse_temporal};
use super::{EvalContext, Expr, ExprError, Value, truncate};

/// Compiled-size cap for regular expressions, so a hostile pattern cannot use much memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn build_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// Compiles the literal patterns given to REGEX so that bad patterns fail at parse time and
/// evaluation does not recompile them.
pub(crate) fn precompile_regexes(
    src: &str,
    root: &Node,
    out: &mut HashMap<String, regex::Regex>,
) -> Result<(), ExprError> {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match &node.kind {
            Kind::Call(func, _, args) => {
                if *func == Func::Regex
                    && let Some(Node {
                        kind: Kind::Str(pattern),
                        start,
                        ..
                    }) = args.get(1)
                    && !out.contains_key(pattern)
                {
                    let re = build_regex(pattern).map_err(|e| {
                        ExprError::syntax(
                            src,
                            *start,
                            "invalid regular expression",
                            truncate(&e, 200),
                        )
                    })?;
                    out.insert(pattern.clone(), re);
                }
                stack.extend(args.iter());
            }
            Kind::Unary(_, a) => stack.push(a),
            Kind::Binary(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            _ => {}
        }
    }
    Ok(())
}

/// One evaluation run: the expression, the context and the step counter.
pub(crate) struct Evaluator<'e, 'c, 'a> {
    expr: &'e Expr,
    cx: &'c EvalContext<'a>,
    steps: u64,
}

type R = Result<Value, ExprError>;

impl<'e, 'c, 'a> Evaluator<'e, 'c, 'a> {
    pub(crate) fn new(expr: &'e Expr, cx: &'c EvalContext<'a>) -> Self {
        Self { expr, cx, steps: 0 }
    }

    pub(crate) fn run(mut self) -> R {
        let root = &self.expr.root;
        self.eval(root)
    }

    fn snippet(&self, n: &Node) -> String {
        truncate(self.expr.src.get(n.start..n.end).unwrap_or(""), 60)
    }

    fn err(&self, n: &Node, message: String) -> ExprError {
        ExprError::eval(&self.expr.src, n.start, message)
    }

    fn step(&mut self, n: &Node, count: u64) -> Result<(), ExprError> {
        self.steps = self.steps.saturating_add(count);
        if self.steps > self.expr.limits.max_steps {
            return Err(ExprError::limit(
                &self.expr.src,
                n.start,
                format!(
                    "evaluation of `{}` took more than {} steps; simplify the expression",
                    truncate(&self.expr.src, 60),
                    self.expr.limits.max_steps
                ),
            ));
        }
        Ok(())
    }

    fn text(&self, n: &Node, s: String) -> R {
        if s.len() > self.expr.limits.max_string_len {
            return Err(self.text_too_long(n, s.len()));
        }
        Ok(Value::Text(s))
    }

    fn text_too_long(&self, n: &Node, len: usize) -> ExprError {
        ExprError::limit(
            &self.expr.src,
            n.start,
            format!(
                "`{}` would produce {len} bytes of text; the limit is {} bytes",
                self.snippet(n),
                self.expr.limits.max_string_len
            ),
        )
    }

    fn number(&self, n: &Node, x: f64) -> R {
        if x.is_finite() {
            Ok(Value::Number(x))
        } else {
            Err(self.err(
                n,
                format!(
                    "the result of `{}` is too large to represent as a number",
                    self.snippet(n)
                ),
            ))
        }
    }

    fn eval(&mut self, n: &Node) -> R {
        self.step(n, 1)?;
        match &n.kind {
            Kind::Num(x) => Ok(Value::Number(*x)),
            Kind::Str(s) => Ok(Value::Text(s.clone())),
            Kind::Bool(b) => Ok(Value::Bool(*b)),
            Kind::Null => Ok(Value::Null),
            Kind::Field(path) => {
                let v = Value::from_json(&self.cx.lookup(path));
                if let Value::List(items) = &v {
                    self.step(n, items.len() as u64)?;
                }
                if let Value::Text(s) = &v
                    && s.len() > self.expr.limits.max_string_len
                {
                    return Err(self.text_too_long(n, s.len()));
                }
                Ok(v)
            }
            Kind::Unary(op, a) => {
                let v = self.eval(a)?;
                match (op, v) {
                    (UnOp::Not, v) => Ok(Value::Bool(!self.truth(a, &v)?)),
                    (_, Value::Null) => Ok(Value::Null),
                    (UnOp::Neg, Value::Number(x)) => Ok(Value::Number(-x)),
                    (UnOp::Plus, Value::Number(x)) => Ok(Value::Number(x)),
                    (_, other) => Err(self.err(
                        n,
                        format!(
                            "cannot negate {} in `{}`; expected a number",
                            other.describe(),
                            self.snippet(n)
                        ),
                    )),
                }
            }
            Kind::Binary(BinOp::And, a, b) => {
                let l = self.eval(a)?;
                if !self.truth(a, &l)? {
                    return Ok(Value::Bool(false));
                }
                let r = self.eval(b)?;
                Ok(Value::Bool(self.truth(b, &r)?))
            }
            Kind::Binary(BinOp::Or, a, b) => {
                let l = self.eval(a)?;
                if self.truth(a, &l)? {
                    return Ok(Value::Bool(true));
                }
                let r = self.eval(b)?;
                Ok(Value::Bool(self.truth(b, &r)?))
            }
            Kind::Binary(op, a, b) => {
                let l = self.eval(a)?;
                let r = self.eval(b)?;
                match op {
                    BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                        let null_literal =
                            matches!(a.kind, Kind::Null) || matches!(b.kind, Kind::Null);
                        self.compare(n, *op, &l, &r, null_literal).map(Value::Bool)
                    }
                    _ => self.arith(n, *op, l, r),
                }
            }
            Kind::Call(func, name, args) => self.call(n, *func, name, args),
        }
    }

    /// Reads a condition: booleans as themselves, `NULL` as false, anything else is an error.
    fn truth(&self, n: &Node, v: &Value) -> Result<bool, ExprError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            other => Err(self.err(
                n,
                format!(
                    "expected TRUE or FALSE but `{}` is {}",
                    self.snippet(n),
                    other.describe()
                ),
            )),
        }
    }

    fn compare(
        &self,
        n: &Node,
        op: BinOp,
        l: &Value,
        r: &Value,
        null_literal: bool,
    ) -> Result<bool, ExprError> {
        if l == &Value::Null || r == &Value::Null {
            // `x = NULL` / `x != NULL` test for null; any other comparison involving a null
            // value is false, as in SQL, so filters and formulas agree.
            let both = l == &Value::Null && r == &Value::Null;
            return Ok(match op {
                BinOp::Eq if null_literal => both,
                BinOp::Ne if null_literal => !both,
                _ => false,
            });
        }
        let ord = match (l, r) {
            (Value::Number(x), Value::Number(y)) => clean(*x).partial_cmp(&clean(*y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
            (Value::List(_), Value::List(_)) | (Value::Object(_), Value::Object(_)) => {
                if matches!(op, BinOp::Eq | BinOp::Ne) {
                    let same = l.to_json() == r.to_json();
                    return Ok((op == BinOp::Eq) == same);
                }
                return Err(self.err(
                    n,
                    format!(
                        "cannot order {} in `{}`; only = and != apply",
                        l.type_name(),
                        self.snippet(n)
                    ),
                ));
            }
            _ => match (as_instant(l), as_instant(r)) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => None,
            },
        };
        let Some(ord) = ord else {
            return Err(self.err(
                n,
                format!(
                    "cannot compare {} with {} in `{}`",
                    l.describe(),
                    r.describe(),
                    self.snippet(n)
                ),
            ));
        };
        Ok(match op {
            BinOp::Eq => ord == Ordering::Equal,
            BinOp::Ne => ord != Ordering::Equal,
            BinOp::Lt => ord == Ordering::Less,
            BinOp::Gt => ord == Ordering::Greater,
            BinOp::Le => ord != Ordering::Greater,
            _ => ord != Ordering::Less,
        })
    }

    fn arith(&self, n: &Node, op: BinOp, l: Value, r: Value) -> R {
        if l == Value::Null || r == Value::Null {
            return Ok(Value::Null);
        }
        if let (Value::Number(x), Value::Number(y)) = (&l, &r) {
            let (x, y) = (*x, *y);
            return match op {
                BinOp::Add => self.number(n, x + y),
                BinOp::Sub => self.number(n, x - y),
                BinOp::Mul => self.number(n, x * y),
                BinOp::Div if y == 0.0 => Ok(Value::Null),
                BinOp::Div => self.number(n, x / y),
                _ => Ok(modulo(x, y)),
            };
        }
        match op {
            BinOp::Add => {
                if let (Some(t), Value::Number(d)) = (as_temporal(&l), &r) {
                    return self.add_days(n, &t, *d);
                }
                if let (Value::Number(d), Some(t)) = (&l, as_temporal(&r)) {
                    return self.add_days(n, &t, *d);
                }
                let hint = if matches!((&l, &r), (Value::Text(_), Value::Text(_))) {
                    "; use CONCAT(a, b) to join text"
                } else {
                    ""
                };
                Err(self.err(
                    n,
                    format!(
                        "cannot add {} to {} in `{}`{hint}",
                        l.describe(),
                        r.type_name(),
                        self.snippet(n)
                    ),
                ))
            }
            BinOp::Sub => {
                if let (Some(t), Value::Number(d)) = (as_temporal(&l), &r) {
                    return self.add_days(n, &t, -*d);
                }
                if let (Some(a), Some(b)) = (as_temporal(&l), as_temporal(&r)) {
                    return Ok(Value::Number(days_between(&b, &a)));
                }
                Err(self.err(
                    n,
                    format!(
                        "cannot subtract {} from {} in `{}`",
                        r.describe(),
                        l.describe(),
                        self.snippet(n)
                    ),
                ))
            }
            BinOp::Mul => Err(self.err(
                n,
                format!(
                    "cannot multiply {} by {} in `{}`",
                    l.describe(),
                    r.describe(),
                    self.snippet(n)
                ),
            )),
            BinOp::Div => Err(self.err(
                n,
                format!(
                    "cannot divide {} by {} in `{}`",
                    l.describe(),
                    r.describe(),
                    self.snippet(n)
                ),
            )),
            _ => Err(self.err(
                n,
                format!(
                    "cannot take the remainder of {} divided by {} in `{}`",
                    l.describe(),
                    r.describe(),
                    self.snippet(n)
                ),
            )),
        }
    }

    fn add_days(&self, n: &Node, t: &Value, days: f64) -> R {
        let out_of_range = || {
            self.err(
                n,
                format!("the date computed by `{}` is out of range", self.snippet(n)),
            )
        };
        match t {
            Value::Date(d) => {
                // Whole days only: a date plus 1.5 days is still a date.
                let delta = TimeDelta::try_days(days.trunc() as i64).ok_or_else(out_of_range)?;
                d.checked_add_signed(delta)
                    .map(Value::Date)
                    .ok_or_else(out_of_range)
            }
            Value::DateTime(dt) => {
                let delta = TimeDelta::try_milliseconds((days * 86_400_000.0).round() as i64)
                    .ok_or_else(out_of_range)?;
                dt.checked_add_signed(delta)
                    .map(Value::DateTime)
                    .ok_or_else(out_of_range)
            }
            _ => Err(out_of_range()),
        }
    }

    // ---- functions -------------------------------------------------------------------------

    fn call(&mut self, n: &Node, func: Func, name: &str, args: &[Node]) -> R {
        // Lazy functions evaluate only the arguments they need.
        match func {
            Func::If => {
                let c = self.eval(&args[0])?;
                return if self.truth(&args[0], &c)? {
                    self.eval(&args[1])
                } else if let Some(e) = args.get(2) {
                    self.eval(e)
                } else {
                    Ok(Value::Null)
                };
            }
            Func::And | Func::Or => {
                let want = func == Func::Or;
                for a in args {
                    let v = self.eval(a)?;
                    if self.truth(a, &v)? == want {
                        return Ok(Value::Bool(want));
                    }
                }
                return Ok(Value::Bool(!want));
            }
            Func::BlankValue => {
                let v = self.eval(&args[0])?;
                return if v.is_blank() {
                    self.eval(&args[1])
                } else {
                    Ok(v)
                };
            }
            _ => {}
        }
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval(a)?);
        }
        let arg = |i: usize| vals.get(i).cloned().unwrap_or(Value::Null);
        match func {
            Func::Upper | Func::Lower | Func::Trim => {
                let Some(s) = self.text_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let out = match func {
                    Func::Upper => s.to_uppercase(),
                    Func::Lower => s.to_lowercase(),
                    _ => s.trim().to_owned(),
                };
                self.text(n, out)
            }
            Func::Concat => {
                let mut out = String::new();
                for v in &vals {
                    let piece = v.to_text();
                    if out.len() + piece.len() > self.expr.limits.max_string_len {
                        return Err(self.text_too_long(n, out.len() + piece.len()));
                    }
                    out.push_str(&piece);
                }
                Ok(Value::Text(out))
            }
            Func::Text => {
                let v = arg(0);
                if v == Value::Null {
                    return Ok(Value::Null);
                }
                match (vals.get(1), &v) {
                    (None, _) => self.text(n, v.to_text()),
                    (Some(Value::Text(fmt)), Value::Number(x)) => {
                        let Some(decimals) = number_format_decimals(fmt) else {
                            return Err(self.err(
                                n,
                                format!(
                                    "TEXT format `{}` is not supported in `{}`; expected a number format such as `0` or `0.00`",
                                    truncate(fmt, 20),
                                    self.snippet(n)
                                ),
                            ));
                        };
                        let rounded = round_to(*x, decimals as i32);
                        self.text(n, format!("{rounded:.decimals$}"))
                    }
                    (Some(other), _) => Err(self.err(
                        n,
                        format!(
                            "TEXT with a format needs a number and a format text, got {} and {} in `{}`",
                            v.describe(),
                            other.describe(),
                            self.snippet(n)
                        ),
                    )),
                }
            }
            Func::Len => match self.text_arg(n, name, &arg(0))? {
                None => Ok(Value::Number(0.0)),
                Some(s) => Ok(Value::Number(s.chars().count() as f64)),
            },
            Func::Left | Func::Right => {
                let Some(s) = self.text_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let Some(count) = self.count_arg(n, name, &arg(1))? else {
                    return Ok(Value::Null);
                };
                let total = s.chars().count();
                let out: String = if func == Func::Left {
                    s.chars().take(count).collect()
                } else {
                    s.chars().skip(total.saturating_sub(count)).collect()
                };
                Ok(Value::Text(out))
            }
            Func::Mid => {
                let Some(s) = self.text_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let Some(start) = self.count_arg(n, name, &arg(1))? else {
                    return Ok(Value::Null);
                };
                let Some(count) = self.count_arg(n, name, &arg(2))? else {
                    return Ok(Value::Null);
                };
                if start < 1 {
                    return Err(self.err(
                        n,
                        format!(
                            "MID start position must be 1 or more in `{}`",
                            self.snippet(n)
                        ),
                    ));
                }
                Ok(Value::Text(s.chars().skip(start - 1).take(count).collect()))
            }
            Func::Substitute => {
                let Some(s) = self.text_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let old = self.text_arg(n, name, &arg(1))?.unwrap_or_default();
                let new = self.text_arg(n, name, &arg(2))?.unwrap_or_default();
                if old.is_empty() {
                    return Ok(Value::Text(s));
                }
                let hits = s.matches(old.as_str()).count();
                let projected =
                    (s.len() - hits * old.len()).saturating_add(hits.saturating_mul(new.len()));
                if projected > self.expr.limits.max_string_len {
                    return Err(self.text_too_long(n, projected));
                }
                Ok(Value::Text(s.replace(old.as_str(), &new)))
            }
            Func::Contains | Func::Begins => {
                let needle = match self.text_arg(n, name, &arg(1))? {
                    Some(s) => s,
                    None => return Ok(Value::Bool(false)),
                };
                let hay = arg(0);
                if let (Func::Contains, Value::List(items)) = (func, &hay) {
                    return Ok(Value::Bool(items.iter().any(|i| i.to_text() == needle)));
                }
                let Some(hay) = self.text_arg(n, name, &hay)? else {
                    return Ok(Value::Bool(false));
                };
                Ok(Value::Bool(if func == Func::Contains {
                    hay.contains(needle.as_str())
                } else {
                    hay.starts_with(needle.as_str())
                }))
            }
            Func::Sum | Func::Average | Func::Min | Func::Max => {
                let nums = self.numbers(n, name, &vals)?;
                if nums.is_empty() {
                    return Ok(if func == Func::Sum {
                        Value::Number(0.0)
                    } else {
                        Value::Null
                    });
                }
                let out = match func {
                    Func::Sum => nums.iter().sum(),
                    Func::Average => nums.iter().sum::<f64>() / nums.len() as f64,
                    Func::Min => nums.iter().copied().fold(f64::INFINITY, f64::min),
                    _ => nums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                };
                self.number(n, out)
            }
            Func::Round | Func::Ceiling | Func::Floor => {
                let Some(x) = self.num_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let second = if vals.len() > 1 {
                    self.num_arg(n, name, &arg(1))?
                } else {
                    None
                };
                match func {
                    Func::Round => {
                        let digits = second.unwrap_or(0.0).trunc().clamp(-300.0, 300.0) as i32;
                        self.number(n, round_to(x, digits))
                    }
                    _ => {
                        let sig = second.unwrap_or(1.0);
                        if sig == 0.0 {
                            return Ok(Value::Number(0.0));
                        }
                        let q = clean(x / sig);
                        let q = if func == Func::Ceiling {
                            q.ceil()
                        } else {
                            q.floor()
                        };
                        self.number(n, clean(q * sig))
                    }
                }
            }
            Func::Abs => match self.num_arg(n, name, &arg(0))? {
                Some(x) => Ok(Value::Number(x.abs())),
                None => Ok(Value::Null),
            },
            Func::Mod => {
                let (Some(x), Some(y)) = (
                    self.num_arg(n, name, &arg(0))?,
                    self.num_arg(n, name, &arg(1))?,
                ) else {
                    return Ok(Value::Null);
                };
                Ok(modulo(x, y))
            }
            Func::Power => {
                let (Some(x), Some(y)) = (
                    self.num_arg(n, name, &arg(0))?,
                    self.num_arg(n, name, &arg(1))?,
                ) else {
                    return Ok(Value::Null);
                };
                let out = x.powf(y);
                if out.is_nan() {
                    return Err(self.err(n, format!("`{}` is not a real number", self.snippet(n))));
                }
                self.number(n, out)
            }
            Func::Sqrt => {
                let Some(x) = self.num_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                if x < 0.0 {
                    return Err(self.err(
                        n,
                        format!(
                            "SQRT of the negative number {} in `{}`",
                            format_number(x),
                            self.snippet(n)
                        ),
                    ));
                }
                Ok(Value::Number(x.sqrt()))
            }
            Func::Today => Ok(Value::Date(self.cx.now.date_naive())),
            Func::Now => Ok(Value::DateTime(self.cx.now)),
            Func::Year | Func::Month | Func::Day => {
                let Some(t) = self.date_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let d = match t {
                    Value::DateTime(dt) => dt.date_naive(),
                    Value::Date(d) => d,
                    _ => return Ok(Value::Null),
                };
                let part = match func {
                    Func::Year => d.year() as f64,
                    Func::Month => d.month() as f64,
                    _ => d.day() as f64,
                };
                Ok(Value::Number(part))
            }
            Func::AddDays => {
                let Some(t) = self.date_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let Some(days) = self.num_arg(n, name, &arg(1))? else {
                    return Ok(Value::Null);
                };
                self.add_days(n, &t, days)
            }
            Func::DateDiff => {
                let Some(a) = self.date_arg(n, name, &arg(0))? else {
                    return Ok(Value::Null);
                };
                let Some(b) = self.date_arg(n, name, &arg(1))? else {
                    return Ok(Value::Null);
                };
                let unit = match vals.get(2) {
                    None => "days".to_owned(),
                    Some(v) => self
                        .text_arg(n, name, v)?
                        .unwrap_or_else(|| "days".to_owned())
                        .to_ascii_lowercase(),
                };
                let (Some(x), Some(y)) = (as_instant(&a), as_instant(&b)) else {
                    return Ok(Value::Null);
                };
                let span = y - x;
                let out = match unit.as_str() {
                    "day" | "days" | "d" => span.num_days() as f64,
                    "hour" | "hours" | "h" => span.num_hours() as f64,
                    "minute" | "minutes" | "mi" => span.num_minutes() as f64,
                    "month" | "months" | "m" => months_between(x, y) as f64,
                    "year" | "years" | "y" => (months_between(x, y) / 12) as f64,
                    other => {
                        return Err(self.err(
                            n,
                            format!(
                                "DATEDIFF unit `{}` is not supported in `{}`; expected days, hours, minutes, months or years",
                                truncate(other, 20),
                                self.snippet(n)
                            ),
                        ));
                    }
                };
                Ok(Value::Number(out))
            }
            Func::Not => Ok(Value::Bool(!self.truth(&args[0], &arg(0))?)),
            Func::IsBlank => Ok(Value::Bool(arg(0).is_blank())),
            Func::IsNull => Ok(Value::Bool(arg(0) == Value::Null)),
            Func::Regex => {
                let Some(s) = self.text_arg(n, name, &arg(0))? else {
                    return Ok(Value::Bool(false));
                };
                let Some(pattern) = self.text_arg(n, name, &arg(1))? else {
                    return Ok(Value::Bool(false));
                };
                if let Some(re) = self.expr.regexes.get(&pattern) {
                    return Ok(Value::Bool(re.is_match(&s)));
                }
                let re = build_regex(&pattern).map_err(|e| {
                    self.err(
                        n,
                        format!(
                            "invalid regular expression in `{}`: {}",
                            self.snippet(n),
                            truncate(&e, 200)
                        ),
                    )
                })?;
                Ok(Value::Bool(re.is_match(&s)))
            }
            Func::Value => match arg(0) {
                Value::Null => Ok(Value::Null),
                Value::Number(x) => Ok(Value::Number(x)),
                Value::Text(s) => match s.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(Value::Number(x)),
                    _ if s.trim().is_empty() => Ok(Value::Null),
                    _ => Err(self.err(
                        n,
                        format!(
                            "VALUE cannot read text `{}` as a number in `{}`",
                            truncate(&s, 40),
                            self.snippet(n)
                        ),
                    )),
                },
                other => Err(self.err(
                    n,
                    format!(
                        "VALUE expects text but got {} in `{}`",
                        other.describe(),
                        self.snippet(n)
                    ),
                )),
            },
            // Lazy functions returned above.
            Func::If | Func::And | Func::Or | Func::BlankValue => Ok(Value::Null),
        }
    }

    /// A text argument: scalars convert to text, `NULL` is `None`, lists and objects are errors.
    fn text_arg(&self, n: &Node, name: &str, v: &Value) -> Result<Option<String>, ExprError> {
        match v {
            Value::Null => Ok(None),
            Value::List(_) | Value::Object(_) => Err(self.err(
                n,
                format!(
                    "{name} expects text but got {} in `{}`",
                    v.describe(),
                    self.snippet(n)
                ),
            )),
            other => Ok(Some(other.to_text())),
        }
    }

    fn num_arg(&self, n: &Node, name: &str, v: &Value) -> Result<Option<f64>, ExprError> {
        match v {
            Value::Null => Ok(None),
            Value::Number(x) => Ok(Some(*x)),
            other => Err(self.err(
                n,
                format!(
                    "{name} expects a number but got {} in `{}`",
                    other.describe(),
                    self.snippet(n)
                ),
            )),
        }
    }

    /// A non-negative whole count (LEFT/RIGHT/MID); fractions are truncated.
    fn count_arg(&self, n: &Node, name: &str, v: &Value) -> Result<Option<usize>, ExprError> {
        let Some(x) = self.num_arg(n, name, v)? else {
            return Ok(None);
        };
        if x < 0.0 {
            return Err(self.err(
                n,
                format!(
                    "{name} needs a count of 0 or more but got {} in `{}`",
                    format_number(x),
                    self.snippet(n)
                ),
            ));
        }
        Ok(Some(x.trunc().min(usize::MAX as f64) as usize))
    }

    fn date_arg(&self, n: &Node, name: &str, v: &Value) -> Result<Option<Value>, ExprError> {
        if *v == Value::Null {
            return Ok(None);
        }
        as_temporal(v).map(Some).ok_or_else(|| {
            self.err(
                n,
                format!(
                    "{name} expects a date (YYYY-MM-DD) or date-time (RFC 3339) but got {} in `{}`",
                    v.describe(),
                    self.snippet(n)
                ),
            )
        })
    }

    /// Flattens numeric arguments (lists included), skipping nulls.
    fn numbers(&mut self, n: &Node, name: &str, vals: &[Value]) -> Result<Vec<f64>, ExprError> {
        let mut out = Vec::new();
        for v in vals {
            match v {
                Value::List(items) => {
                    self.step(n, items.len() as u64)?;
                    for item in items {
                        if let Some(x) = self.num_arg(n, name, item)? {
                            out.push(x);
                        }
                    }
                }
                other => {
                    if let Some(x) = self.num_arg(n, name, other)? {
                        out.push(x);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Modulo with the sign of the divisor (as in Excel's MOD); zero divisor gives `NULL`.
fn modulo(x: f64, y: f64) -> Value {
    if y == 0.0 {
        return Value::Null;
    }
    Value::Number(clean(x - y * clean(x / y).floor()))
}

/// Rounds half away from zero to `digits` decimals, on the cleaned decimal value so that
/// `ROUND(1.005, 2)` is `1.01`.
fn round_to(x: f64, digits: i32) -> f64 {
    if !x.is_finite() || digits > 15 {
        return x;
    }
    let factor = 10f64.powi(digits);
    if factor == 0.0 || !factor.is_finite() {
        return 0.0;
    }
    clean(clean(clean(x) * factor).round() / factor)
}

/// Number of decimals in a TEXT number format such as `0`, `0.00`, `#.##`.
fn number_format_decimals(fmt: &str) -> Option<usize> {
    let (int, frac) = fmt.split_once('.').unwrap_or((fmt, ""));
    let int_ok = !int.is_empty() && int.chars().all(|c| c == '0' || c == '#');
    let frac_ok = frac.chars().all(|c| c == '0' || c == '#') && frac.len() <= 15;
    (int_ok && frac_ok).then_some(frac.len())
}

/// Date, date-time, or text readable as either.
fn as_temporal(v: &Value) -> Option<Value> {
    match v {
        Value::Date(_) | Value::DateTime(_) => Some(v.clone()),
        Value::Text(s) => parse_temporal(s),
        _ => None,
    }
}

/// A temporal value as an instant (dates at midnight UTC).
fn as_instant(v: &Value) -> Option<DateTime<Utc>> {
    match as_temporal(v)? {
        Value::Date(d) => Some(midnight(d)),
        Value::DateTime(dt) => Some(dt),
        _ => None,
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

/// `to - from` in days: whole days between dates, fractional when a time is involved.
fn days_between(from: &Value, to: &Value) -> f64 {
    match (from, to) {
        (Value::Date(a), Value::Date(b)) => (*b - *a).num_days() as f64,
        _ => match (as_instant(from), as_instant(to)) {
            (Some(a), Some(b)) => clean((b - a).num_milliseconds() as f64 / 86_400_000.0),
            _ => 0.0,
        },
    }
}

/// Whole calendar months from `a` to `b` (negative when `b` is earlier).
fn months_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    let (earlier, later, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
    let mut months = i64::from(later.year() - earlier.year()) * 12 + i64::from(later.month())
        - i64::from(earlier.month());
    // A month only counts once its day (and time) has been reached.
    if (later.day(), later.time()) < (earlier.day(), earlier.time()) {
        months -= 1;
    }
    sign * months
}
