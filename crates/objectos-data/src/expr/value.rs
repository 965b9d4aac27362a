//! Runtime values of the expression engine and their conversions to and from JSON and text.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// A value produced or consumed by an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// A JSON array (multiselect values, `multiple` lookups).
    List(Vec<Value>),
    /// A JSON object (json fields, expanded records); only blank checks, equality and TEXT apply.
    Object(serde_json::Map<String, serde_json::Value>),
}

/// Rounds away binary noise by keeping 15 significant digits (`0.1 + 0.2` becomes `0.3`).
pub(crate) fn clean(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { 0.0 } else { x };
    }
    format!("{x:.14e}").parse().unwrap_or(x)
}

/// Formats a number the way it is shown to people: no binary noise, integers without `.0`.
pub fn format_number(x: f64) -> String {
    let c = clean(x);
    if c.fract() == 0.0 && c.abs() < 1e15 {
        // Exact: the value is an integer well inside i64's range.
        format!("{}", c as i64)
    } else {
        format!("{c}")
    }
}

/// Reads `YYYY-MM-DD` as a date or RFC 3339 as a date-time.
pub(crate) fn parse_temporal(text: &str) -> Option<Value> {
    let t = text.trim();
    if t.len() == 10
        && let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d")
    {
        return Some(Value::Date(d));
    }
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|dt| Value::DateTime(dt.with_timezone(&Utc)))
}

impl Value {
    /// Converts a JSON value; strings stay text (they are read as dates only where a date is needed).
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => n.as_f64().map_or(Value::Null, Value::Number),
            serde_json::Value::String(s) => Value::Text(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Object(map.clone()),
        }
    }

    /// Converts to JSON: numbers are cleaned (integers become JSON integers), dates become
    /// `YYYY-MM-DD`, date-times RFC 3339 UTC with milliseconds, non-finite numbers `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => number_to_json(*n),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Date(d) => serde_json::Value::String(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(dt) => {
                serde_json::Value::String(dt.to_rfc3339_opts(SecondsFormat::Millis, true))
            }
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(map) => serde_json::Value::Object(map.clone()),
        }
    }

    /// True for `NULL`, empty text and empty lists.
    pub fn is_blank(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(s) => s.is_empty(),
            Value::List(items) => items.is_empty(),
            Value::Object(map) => map.is_empty(),
            _ => false,
        }
    }

    /// Text form used by CONCAT and TEXT: `NULL` is empty, numbers are cleaned.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
            Value::Number(n) => format_number(*n),
            Value::Text(s) => s.clone(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::DateTime(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
            Value::List(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(", "),
            Value::Object(map) => serde_json::Value::Object(map.clone()).to_string(),
        }
    }

    /// The value's type with an article, for messages (`a number`, `text`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Text(_) => "text",
            Value::Date(_) => "a date",
            Value::DateTime(_) => "a date-time",
            Value::List(_) => "a list",
            Value::Object(_) => "an object",
        }
    }

    /// The value with its type, for messages (`text `abc``, `number 5`).
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "NULL".to_owned(),
            Value::Bool(b) => format!("boolean {}", if *b { "TRUE" } else { "FALSE" }),
            Value::Number(n) => format!("number {}", format_number(*n)),
            Value::Text(s) => format!("text `{}`", super::truncate(s, 40)),
            Value::Date(_) => format!("date {}", self.to_text()),
            Value::DateTime(_) => format!("date-time {}", self.to_text()),
            Value::List(items) => format!("a list of {} item(s)", items.len()),
            Value::Object(_) => "an object".to_owned(),
        }
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    let c = clean(n);
    if !c.is_finite() {
        return serde_json::Value::Null;
    }
    if c.fract() == 0.0 && c.abs() < 9.0e15 {
        // Exact: integral and inside the range where f64 represents every integer.
        return serde_json::Value::from(c as i64);
    }
    serde_json::Number::from_f64(c).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
