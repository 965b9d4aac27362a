//! The RLS predicate language (`owner_id = current_user.id AND status != 'archived'`): a parser
//! into a small tree with `current_user` placeholders, binding into a spec [`Filter`] whose values
//! the engine's SQL compiler binds as parameters, and an in-memory evaluator for `check` on one
//! written record.

use std::cmp::Ordering;

use objectos_data::Record;
use objectos_spec::query::{Filter, FilterValue, Operator};
use serde_json::Value;

/// The attributes of `current_user` a predicate may use.
pub const USER_ATTRIBUTES: &[&str] = &[
    "id",
    "organization_id",
    "tenant_id",
    "roles",
    "permission_sets",
];

/// The values `current_user.*` stands for while binding one request.
#[derive(Debug, Clone, Default)]
pub struct UserValues {
    pub id: Option<String>,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub permission_sets: Vec<String>,
}

impl UserValues {
    fn get(&self, attr: &str) -> Value {
        let text = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        let list = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        match attr {
            "id" => text(&self.id),
            "organization_id" | "tenant_id" => text(&self.tenant),
            "roles" => list(&self.roles),
            "permission_sets" => list(&self.permission_sets),
            _ => Value::Null,
        }
    }
}

/// A right-hand side before binding.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    User(String),
    Field(String),
    List(Vec<Operand>),
}

/// A parsed predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Const(bool),
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    Compare {
        field: String,
        op: Operator,
        rhs: Operand,
    },
}

/// The filter that matches no row (`NOT (1=1)` in SQL).
pub fn match_nothing() -> Filter {
    Filter::Not(Box::new(Filter::True))
}

impl Predicate {
    /// Every field the predicate reads (left-hand sides and field references).
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Const(_) => {}
            Self::And(items) | Self::Or(items) => items.iter().for_each(|i| i.collect_fields(out)),
            Self::Not(inner) => inner.collect_fields(out),
            Self::Compare { field, rhs, .. } => {
                out.push(field);
                if let Operand::Field(f) = rhs {
                    out.push(f);
                }
            }
        }
    }

    /// Substitutes the user's values and builds a filter. A comparison against a `current_user`
    /// attribute the request does not have (no tenant, anonymous) matches nothing.
    pub fn bind(&self, user: &UserValues) -> Filter {
        match self {
            Self::Const(true) => Filter::True,
            Self::Const(false) => match_nothing(),
            Self::And(items) => Filter::all(items.iter().map(|i| i.bind(user))),
            Self::Or(items) => {
                let mut out: Option<Filter> = None;
                for item in items {
                    let f = item.bind(user);
                    out = Some(match out {
                        None => f,
                        Some(prev) => prev.or(f),
                    });
                }
                out.unwrap_or_else(match_nothing)
            }
            Self::Not(inner) => match inner.bind(user) {
                Filter::True => match_nothing(),
                other => other.negate(),
            },
            Self::Compare { field, op, rhs } => {
                let value = match rhs {
                    Operand::Field(f) => FilterValue::Field(f.clone()),
                    other => {
                        let v = resolve(other, user);
                        let missing = match &v {
                            Value::Null => !matches!(op, Operator::IsNull | Operator::IsNotNull),
                            Value::Array(items) => items.iter().any(Value::is_null),
                            _ => false,
                        };
                        if missing {
                            return match_nothing();
                        }
                        FilterValue::Value(v)
                    }
                };
                let (op, value) = match (op, value) {
                    // A list-valued user attribute on `=` means membership.
                    (Operator::Eq, FilterValue::Value(Value::Array(items))) => {
                        (Operator::In, FilterValue::Value(Value::Array(items)))
                    }
                    (Operator::In | Operator::Nin, FilterValue::Value(Value::Array(items)))
                        if items.is_empty() =>
                    {
                        return if *op == Operator::In {
                            match_nothing()
                        } else {
                            Filter::True
                        };
                    }
                    (op, value) => (*op, value),
                };
                Filter::condition(field.clone(), op, value)
            }
        }
    }
}

fn resolve(operand: &Operand, user: &UserValues) -> Value {
    match operand {
        Operand::Literal(v) => v.clone(),
        Operand::User(attr) => user.get(attr),
        Operand::Field(_) => Value::Null,
        Operand::List(items) => {
            let mut out = Vec::new();
            for item in items {
                match resolve(item, user) {
                    Value::Array(inner) => out.extend(inner),
                    v => out.push(v),
                }
            }
            Value::Array(out)
        }
    }
}

// ----------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Value),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => out.push(Tok::LParen),
            ')' => out.push(Tok::RParen),
            ',' => out.push(Tok::Comma),
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".to_owned()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => break,
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' => {
                if chars.get(i + 1) == Some(&'=') {
                    i += 1;
                }
                out.push(Tok::Op("="));
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                out.push(Tok::Op("!="));
            }
            '<' | '>' => {
                let next = chars.get(i + 1);
                let op = match (c, next) {
                    ('<', Some('=')) => "<=",
                    ('<', Some('>')) => "!=",
                    ('>', Some('=')) => ">=",
                    ('<', _) => "<",
                    _ => ">",
                };
                if op.len() == 2 {
                    i += 1;
                }
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                let v: Value =
                    serde_json::from_str(&raw).map_err(|_| format!("{raw} is not a number"))?;
                out.push(Tok::Num(v));
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
                continue;
            }
            other => return Err(format!("unexpected character {other:?} at offset {i}")),
        }
        i += 1;
    }
    Ok(out)
}

// ----------------------------------------------------------------- parser

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// Parses an RLS `using`/`check` predicate or a sharing-rule condition.
///
/// Grammar: `or := and (OR and)*`, `and := unary (AND unary)*`, `unary := NOT unary | '(' or ')'
/// | true | false | comparison`; comparisons are `field op value`, `field [NOT] IN (v, ...)`,
/// `field [NOT] LIKE 'text'`, `field BETWEEN v AND v`, `field IS [NOT] NULL`; values are
/// `'strings'`, numbers, `true`, `false`, `NULL`, `current_user.<attr>` or another field.
pub fn parse(text: &str) -> Result<Predicate, String> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err("predicate is empty".to_owned());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let pred = p.or()?;
    if let Some(t) = p.toks.get(p.pos) {
        return Err(format!("unexpected {} after the predicate", describe(t)));
    }
    Ok(pred)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("word {s:?}"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Op(o) => format!("operator {o}"),
        Tok::LParen => "(".to_owned(),
        Tok::RParen => ")".to_owned(),
        Tok::Comma => ",".to_owned(),
    }
}

fn keyword(t: Option<&Tok>, word: &str) -> bool {
    matches!(t, Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(word))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat_kw(&mut self, word: &str) -> bool {
        if keyword(self.peek(), word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Predicate, String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err("predicate is nested too deeply (at most 32 levels)".to_owned());
        }
        let mut items = vec![self.and()?];
        while self.eat_kw("or") {
            items.push(self.and()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Predicate::Or(items)
        })
    }

    fn and(&mut self) -> Result<Predicate, String> {
        let mut items = vec![self.unary()?];
        while self.eat_kw("and") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Predicate::And(items)
        })
    }

    fn unary(&mut self) -> Result<Predicate, String> {
        if self.eat_kw("not") {
            return Ok(Predicate::Not(Box::new(self.unary()?)));
        }
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(inner),
                    _ => Err("expected ) to close (".to_owned()),
                }
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("true") => Ok(Predicate::Const(true)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("false") => Ok(Predicate::Const(false)),
            Some(Tok::Ident(field)) => self.comparison(field),
            Some(t) => Err(format!("expected a field name, found {}", describe(&t))),
            None => Err("predicate ends early; expected a field name".to_owned()),
        }
    }

    fn comparison(&mut self, field: String) -> Result<Predicate, String> {
        if field.starts_with("current_user") {
            return Err(format!(
                "{field} must be on the right-hand side, e.g. owner_id = {field}"
            ));
        }
        if !objectos_spec::query::is_valid_field_path(&field) {
            return Err(format!("{field:?} is not a valid field name"));
        }
        let cmp = |op, rhs| Predicate::Compare {
            field: field.clone(),
            op,
            rhs,
        };
        if self.eat_kw("is") {
            let negated = self.eat_kw("not");
            if !self.eat_kw("null") {
                return Err(format!(
                    "expected NULL after IS in the condition on {field}"
                ));
            }
            let op = if negated {
                Operator::IsNotNull
            } else {
                Operator::IsNull
            };
            return Ok(cmp(op, Operand::Literal(Value::Null)));
        }
        let negated = self.eat_kw("not");
        if self.eat_kw("in") {
            let list = self.list()?;
            return Ok(cmp(
                if negated { Operator::Nin } else { Operator::In },
                list,
            ));
        }
        if self.eat_kw("like") {
            let Some(Tok::Str(pattern)) = self.next() else {
                return Err(format!("expected a 'pattern' after LIKE on {field}"));
            };
            let starts = pattern.starts_with('%');
            let ends = pattern.ends_with('%') && pattern.len() > 1;
            let core = pattern.trim_matches('%').to_owned();
            let op = match (starts, ends, negated) {
                (true, true, false) => Operator::Contains,
                (true, true, true) => Operator::NotContains,
                (false, true, false) => Operator::StartsWith,
                (true, false, false) => Operator::EndsWith,
                (false, false, false) => Operator::Eq,
                (false, false, true) => Operator::Ne,
                _ => return Err(format!("NOT LIKE on {field} supports only '%text%'")),
            };
            return Ok(cmp(op, Operand::Literal(Value::String(core))));
        }
        if negated {
            return Err(format!("expected IN or LIKE after NOT on {field}"));
        }
        if self.eat_kw("between") {
            let low = self.value(&field)?;
            if !self.eat_kw("and") {
                return Err(format!("expected AND in BETWEEN on {field}"));
            }
            let high = self.value(&field)?;
            return Ok(cmp(Operator::Between, Operand::List(vec![low, high])));
        }
        let op = match self.next() {
            Some(Tok::Op("=")) => Operator::Eq,
            Some(Tok::Op("!=")) => Operator::Ne,
            Some(Tok::Op("<")) => Operator::Lt,
            Some(Tok::Op("<=")) => Operator::Lte,
            Some(Tok::Op(">")) => Operator::Gt,
            Some(Tok::Op(">=")) => Operator::Gte,
            Some(t) => {
                return Err(format!(
                    "expected an operator (=, !=, <, <=, >, >=, IN, LIKE, BETWEEN, IS) after {field}, found {}",
                    describe(&t)
                ));
            }
            None => return Err(format!("expected an operator after {field}")),
        };
        let rhs = self.value(&field)?;
        Ok(match (&rhs, op) {
            (Operand::Literal(Value::Null), Operator::Eq) => cmp(Operator::IsNull, rhs),
            (Operand::Literal(Value::Null), Operator::Ne) => cmp(Operator::IsNotNull, rhs),
            (Operand::Literal(Value::Null), _) => {
                return Err(format!("NULL can only be compared with = or != on {field}"));
            }
            _ => cmp(op, rhs),
        })
    }

    fn list(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Tok::LParen) => {}
            // `owner_id IN current_user.roles` style: a list-valued attribute.
            Some(Tok::Ident(w)) if w.starts_with("current_user.") => {
                return user_operand(&w);
            }
            _ => return Err("expected ( after IN".to_owned()),
        }
        let mut items = Vec::new();
        loop {
            items.push(self.value("IN list")?);
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RParen) => break,
                _ => return Err("expected , or ) in the IN list".to_owned()),
            }
        }
        Ok(Operand::List(items))
    }

    fn value(&mut self, field: &str) -> Result<Operand, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Operand::Literal(Value::String(s))),
            Some(Tok::Num(n)) => Ok(Operand::Literal(n)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("null") => {
                Ok(Operand::Literal(Value::Null))
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("true") => {
                Ok(Operand::Literal(Value::Bool(true)))
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("false") => {
                Ok(Operand::Literal(Value::Bool(false)))
            }
            Some(Tok::Ident(w)) if w.starts_with("current_user") => user_operand(&w),
            Some(Tok::Ident(w)) if objectos_spec::query::is_valid_field_path(&w) => {
                Ok(Operand::Field(w))
            }
            Some(t) => Err(format!(
                "expected a value for {field}, found {}",
                describe(&t)
            )),
            None => Err(format!("expected a value for {field}")),
        }
    }
}

fn user_operand(word: &str) -> Result<Operand, String> {
    match word.strip_prefix("current_user.") {
        Some(attr) if USER_ATTRIBUTES.contains(&attr) => Ok(Operand::User(attr.to_owned())),
        _ => Err(format!(
            "{word} is unknown; expected current_user.{}",
            USER_ATTRIBUTES.join(" | current_user.")
        )),
    }
}

// ----------------------------------------------------------------- evaluation

/// Whether `record` satisfies `filter`, for `check` policies on one written record. Paths
/// through lookups cannot be evaluated here and count as not satisfied (deny).
pub fn matches(filter: &Filter, record: &Record) -> bool {
    match filter {
        Filter::True => true,
        Filter::And(items) => items.iter().all(|f| matches(f, record)),
        Filter::Or(items) => items.iter().any(|f| matches(f, record)),
        Filter::Not(inner) => !matches(inner, record),
        Filter::Condition(c) => {
            if c.field.contains('.') {
                return false;
            }
            let left = record.get(&c.field).unwrap_or(&Value::Null);
            let right = match &c.value {
                FilterValue::Value(v) => v.clone(),
                FilterValue::Field(f) => record.get(f).cloned().unwrap_or(Value::Null),
            };
            let text = |v: &Value| match v {
                Value::String(s) => s.to_lowercase(),
                other => other.to_string(),
            };
            match c.op {
                Operator::Eq => !left.is_null() && equal(left, &right),
                Operator::Ne => !equal(left, &right),
                Operator::Gt => compare(left, &right) == Some(Ordering::Greater),
                Operator::Gte => matches!(
                    compare(left, &right),
                    Some(Ordering::Greater | Ordering::Equal)
                ),
                Operator::Lt => compare(left, &right) == Some(Ordering::Less),
                Operator::Lte => {
                    matches!(
                        compare(left, &right),
                        Some(Ordering::Less | Ordering::Equal)
                    )
                }
                Operator::In => right
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| equal(left, i))),
                Operator::Nin => right
                    .as_array()
                    .is_some_and(|items| !items.iter().any(|i| equal(left, i))),
                Operator::Between => right.as_array().is_some_and(|b| {
                    b.len() == 2
                        && matches!(
                            compare(left, &b[0]),
                            Some(Ordering::Greater | Ordering::Equal)
                        )
                        && matches!(compare(left, &b[1]), Some(Ordering::Less | Ordering::Equal))
                }),
                Operator::Contains => !left.is_null() && text(left).contains(&text(&right)),
                Operator::NotContains => left.is_null() || !text(left).contains(&text(&right)),
                Operator::StartsWith => !left.is_null() && text(left).starts_with(&text(&right)),
                Operator::EndsWith => !left.is_null() && text(left).ends_with(&text(&right)),
                Operator::IsNull => left.is_null(),
                Operator::IsNotNull => !left.is_null(),
                Operator::Exists => left.is_null() != right.as_bool().unwrap_or(true),
            }
        }
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> UserValues {
        UserValues {
            id: Some("u1".into()),
            tenant: Some("t1".into()),
            roles: vec!["sales".into()],
            permission_sets: vec![],
        }
    }

    #[test]
    fn parses_and_binds() {
        let p = parse("status != 'archived' AND owner_id = current_user.id").unwrap();
        let f = p.bind(&user());
        assert_eq!(
            f.to_json(),
            json!({"$and": [{"status": {"$ne": "archived"}}, {"owner_id": "u1"}]})
        );
        let p = parse("organization_id = current_user.organization_id").unwrap();
        assert_eq!(p.bind(&user()).to_json(), json!({"organization_id": "t1"}));
        let p = parse("(a = 1 OR b IN ('x', 'y')) AND NOT c IS NULL").unwrap();
        assert_eq!(p.fields(), vec!["a", "b", "c"]);
    }

    #[test]
    fn injection_is_only_a_value() {
        let p = parse("name = 'x'' OR 1=1 --'").unwrap();
        assert_eq!(p.bind(&user()).to_json(), json!({"name": "x' OR 1=1 --"}));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "owner_id =",
            "owner_id = current_user.password",
            "current_user.id = owner_id",
            "a = 'x",
            "a = 1 b = 2",
            "a ; DROP TABLE x",
            "(a = 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_user_values_match_nothing() {
        let p = parse("owner_id = current_user.id").unwrap();
        assert_eq!(p.bind(&UserValues::default()), match_nothing());
    }

    #[test]
    fn evaluates() {
        let f = parse("status != 'archived' AND owner_id = current_user.id")
            .unwrap()
            .bind(&user());
        let rec = |v: Value| v.as_object().unwrap().clone();
        assert!(matches(
            &f,
            &rec(json!({"status": "open", "owner_id": "u1"}))
        ));
        assert!(!matches(
            &f,
            &rec(json!({"status": "archived", "owner_id": "u1"}))
        ));
        assert!(!matches(
            &f,
            &rec(json!({"status": "open", "owner_id": "u2"}))
        ));
    }
}
