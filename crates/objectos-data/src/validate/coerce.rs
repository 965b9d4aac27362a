//! Input coercion: per-FieldType normalisation and type checks of the values a client sent.

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use objectos_spec::object::{Field, FieldType, ObjectSchema};
use serde_json::Value;

use super::{Record, field_label, is_engine_managed};
use crate::error::FieldError;

/// Normalises and type-checks every value of `record` against `schema`; see [`super::coerce()`].
pub(crate) fn coerce(schema: &ObjectSchema, record: &mut Record) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    for (key, value) in record.iter_mut() {
        if is_engine_managed(schema, key) {
            continue;
        }
        let Some(field) = schema.field(key) else {
            errors.push(FieldError::new(
                key.clone(),
                "unknown_field",
                format!("Unknown field `{key}` on {}", schema.name),
            ));
            continue;
        };
        if let Err(e) = coerce_value(field, value) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// True when a JSON value holds a NUL character (`\u0000`) in any string or object key, at any
/// depth. PostgreSQL refuses NUL in `TEXT` and `JSONB` (`invalid byte sequence`), so such a value
/// would fail as a server error; SQLite would store it and cut it short in some functions. No
/// field type has a use for it, so it is refused before any SQL. `str::contains(char)` is a
/// `memchr` scan: cheap enough to run on every value of every write and filter.
pub(crate) fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The field error for a value holding a NUL character (code `invalid_character`).
pub(crate) fn nul_error(name: &str, label: &str) -> FieldError {
    FieldError::new(
        name,
        "invalid_character",
        format!("{label} contains a NUL character (\\u0000), which cannot be stored"),
    )
    .with_label(label)
}

fn fail(field: &Field, code: &str, message: String) -> FieldError {
    FieldError::new(field.name.clone(), code, message).with_label(field_label(field))
}

fn invalid_type(field: &Field, expected: &str, got: &Value) -> FieldError {
    fail(
        field,
        "invalid_type",
        format!(
            "{} must be {expected} but got {}",
            field_label(field),
            json_kind(got)
        ),
    )
}

/// How a JSON value is named in messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON number, as an integer when the value is integral.
pub(crate) fn json_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        // Exact: integral and inside the range where f64 represents every integer.
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Coerces one value in place. `null` is accepted for every writable field (it clears the value;
/// `required` is checked by validation).
fn coerce_value(field: &Field, value: &mut Value) -> Result<(), FieldError> {
    let kind = field.kind;
    if kind.is_computed() {
        return Err(fail(
            field,
            "readonly",
            format!(
                "{} is computed by the server and cannot be set",
                field_label(field)
            ),
        ));
    }
    if value.is_null() {
        return Ok(());
    }
    if has_nul(value) {
        return Err(nul_error(&field.name, &field_label(field)));
    }
    if kind.is_multi_choice() || (field.multiple && !is_json_like(kind)) {
        return coerce_list(field, value);
    }
    coerce_single(field, value)?;
    // An empty unique value means "no value": stored as NULL, which unique indexes never compare,
    // just as the uniqueness pre-check skips it; so any number of records may leave it empty
    // (stored as "", the second one would hit the index).
    if field.unique && value.as_str().is_some_and(str::is_empty) {
        *value = Value::Null;
    }
    Ok(())
}

/// Types that hold arbitrary JSON, where `multiple` changes nothing.
fn is_json_like(kind: FieldType) -> bool {
    matches!(
        kind,
        FieldType::Json
            | FieldType::Object
            | FieldType::Location
            | FieldType::Address
            | FieldType::Composite
            | FieldType::Repeater
            | FieldType::Record
            | FieldType::Vector
            | FieldType::Tags
    )
}

/// A list-valued field: a single value is wrapped; every item is coerced as a single value.
fn coerce_list(field: &Field, value: &mut Value) -> Result<(), FieldError> {
    if !value.is_array() {
        *value = Value::Array(vec![value.take()]);
    }
    let Value::Array(items) = value else {
        return Ok(());
    };
    let mut bad_options = false;
    for item in items.iter_mut() {
        if item.is_null() {
            return Err(fail(
                field,
                "invalid_type",
                format!("{} cannot contain null items", field_label(field)),
            ));
        }
        match coerce_single(field, item) {
            Ok(()) => {}
            Err(e) if e.code == "invalid_option" => bad_options = true,
            Err(e) => return Err(e),
        }
    }
    if bad_options {
        return Err(option_error(field));
    }
    Ok(())
}

/// `Status must be one of: new, active, closed`.
fn option_error(field: &Field) -> FieldError {
    let values: Vec<String> = field.option_values().map(|v| v.to_string()).collect();
    let allowed = values.join(", ");
    fail(
        field,
        "invalid_option",
        format!("{} must be one of: {allowed}", field_label(field)),
    )
    .with_constraint(serde_json::json!({ "allowed": allowed }))
    .with_options(values)
}

fn coerce_single(field: &Field, value: &mut Value) -> Result<(), FieldError> {
    let label = field_label(field);
    match field.kind {
        kind if kind.is_text() => {
            let Value::String(s) = value else {
                return Err(invalid_type(field, "text", value));
            };
            if s.is_empty() {
                return Ok(());
            }
            let problem = match kind {
                FieldType::Email if !is_email(s) => {
                    Some("a valid email address such as name@example.com")
                }
                FieldType::Url if !is_url(s) => Some("a valid URL such as https://example.com"),
                FieldType::Phone if !is_phone(s) => {
                    Some("a valid phone number such as +1 555 0100")
                }
                _ => None,
            };
            match problem {
                Some(what) => Err(fail(
                    field,
                    "invalid_format",
                    format!("{label} must be {what}"),
                )),
                None => Ok(()),
            }
        }
        kind if kind.is_numeric() => {
            let n = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
                _ => None,
            };
            match n {
                Some(x) => {
                    *value = json_number(x);
                    Ok(())
                }
                None => Err(invalid_type(field, "a number", value)),
            }
        }
        FieldType::Boolean | FieldType::Toggle => {
            let b = match value {
                Value::Bool(b) => Some(*b),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            };
            match b {
                Some(b) => {
                    *value = Value::Bool(b);
                    Ok(())
                }
                None => Err(invalid_type(field, "true or false", value)),
            }
        }
        FieldType::Date => {
            let parsed = value.as_str().and_then(parse_date);
            match parsed {
                Some(d) => {
                    *value = Value::String(d.format("%Y-%m-%d").to_string());
                    Ok(())
                }
                None => Err(fail(
                    field,
                    "invalid_format",
                    format!("{label} must be a date in the form YYYY-MM-DD"),
                )),
            }
        }
        FieldType::Datetime => match value.as_str().and_then(parse_datetime) {
            Some(dt) => {
                *value = Value::String(dt.to_rfc3339_opts(SecondsFormat::Millis, true));
                Ok(())
            }
            None => Err(fail(
                field,
                "invalid_format",
                format!(
                    "{label} must be a date-time in RFC 3339 form such as 2026-11-23T16:45:10.709Z"
                ),
            )),
        },
        FieldType::Time => match value.as_str().and_then(parse_time) {
            Some(t) => {
                *value = Value::String(t);
                Ok(())
            }
            None => Err(fail(
                field,
                "invalid_format",
                format!("{label} must be a time in the form HH:MM or HH:MM:SS"),
            )),
        },
        FieldType::Select | FieldType::Radio | FieldType::Multiselect | FieldType::Checkboxes => {
            let Value::String(s) = value else {
                return Err(invalid_type(field, "one of the option values", value));
            };
            if field.options.is_empty() || field.option_values().any(|o| o == s) {
                Ok(())
            } else {
                Err(option_error(field))
            }
        }
        kind if kind.is_reference() => match value {
            Value::String(s) if !s.is_empty() => Ok(()),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                *value = Value::String(n.to_string());
                Ok(())
            }
            // An expanded record sent back: keep its id.
            Value::Object(map) => match map.get("id").or_else(|| map.get("_id")) {
                Some(Value::String(id)) if !id.is_empty() => {
                    *value = Value::String(id.clone());
                    Ok(())
                }
                _ => Err(invalid_type(field, "a record id", value)),
            },
            _ => Err(invalid_type(field, "a record id", value)),
        },
        kind if kind.is_media() => match value {
            Value::String(_) | Value::Object(_) => Ok(()),
            _ => Err(invalid_type(
                field,
                "a file reference (text or object)",
                value,
            )),
        },
        FieldType::Tags => {
            if let Value::String(_) = value {
                *value = Value::Array(vec![value.take()]);
            }
            match value {
                Value::Array(items) if items.iter().all(Value::is_string) => Ok(()),
                _ => Err(invalid_type(field, "a list of text tags", value)),
            }
        }
        FieldType::Vector => {
            let Value::Array(items) = value else {
                return Err(invalid_type(field, "a list of numbers", value));
            };
            if !items.iter().all(Value::is_number) {
                return Err(invalid_type(field, "a list of numbers", value));
            }
            match field.vector_config.as_ref().map(|c| c.dimensions as usize) {
                Some(dims) if dims != items.len() => Err(fail(
                    field,
                    "invalid_format",
                    format!(
                        "{label} must have {dims} dimensions but has {}",
                        items.len()
                    ),
                )),
                _ => Ok(()),
            }
        }
        // json, object, location, address, composite, repeater, record: any JSON.
        _ => Ok(()),
    }
}

/// `YYYY-MM-DD`, or an RFC 3339 date-time reduced to its UTC date.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.len() == 10 {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|dt| dt.with_timezone(&Utc).date_naive())
}

/// RFC 3339 (any offset, converted to UTC), or a bare `YYYY-MM-DD` as midnight UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    if s.len() == 10 {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(NaiveTime::MIN).and_utc());
    }
    None
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fff`, normalised to `HH:MM:SS` (keeping milliseconds when set).
pub(crate) fn parse_time(s: &str) -> Option<String> {
    let s = s.trim();
    let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()?;
    let millis = t.format("%.3f").to_string();
    Some(if millis == ".000" {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%H:%M:%S%.3f").to_string()
    })
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub(crate) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// An absolute URL: `scheme://host...` with a letter-led scheme, or `mailto:`.
pub(crate) fn is_url(s: &str) -> bool {
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    if let Some(rest) = s.strip_prefix("mailto:") {
        return is_email(rest);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !rest.starts_with('/')
}

/// Digits with common separators, an optional leading `+` and an optional extension; 3 to 20 digits.
pub(crate) fn is_phone(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let (main, ext) = match lower.split_once("ext").or_else(|| lower.split_once('x')) {
        Some((m, e)) => (m, Some(e.trim_start_matches('.').trim())),
        None => (lower.as_str(), None),
    };
    let main = main.trim();
    let body = main.strip_prefix('+').unwrap_or(main);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let ext_ok = ext.is_none_or(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    body.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.' | '/'))
        && (3..=20).contains(&digits)
        && ext_ok
}
