//! Conversion between JSON record values and bound SQL values / result columns, per storage class.
//!
//! Storage per dialect (documented in docs/dev/data-api.md): text, reference ids -> TEXT; integers ->
//! INTEGER / BIGINT; decimals -> REAL / DOUBLE PRECISION (currency -> NUMERIC(p,s) on PostgreSQL);
//! booleans -> BOOLEAN; date, datetime, time -> TEXT in ISO form on SQLite (`YYYY-MM-DD`,
//! `YYYY-MM-DDTHH:MM:SS.sssZ`, `HH:MM:SS`, which sort correctly as text) and DATE / TIMESTAMPTZ /
//! TIME on PostgreSQL; json and multi-valued fields -> TEXT / JSONB.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use objectos_spec::object::Storage;
use sea_orm::{QueryResult, Value};
use serde_json::Value as Json;

use crate::db::Dialect;
use crate::meta::Column;
use crate::util::format_ts;

/// A typed SQL NULL for a storage class (PostgreSQL wants the right type even for NULL).
pub(crate) fn null_of(storage: Storage, dialect: Dialect) -> Value {
    match (storage, dialect) {
        (Storage::Integer, _) => Value::BigInt(None),
        (Storage::Decimal, _) => Value::Double(None),
        (Storage::Boolean, _) => Value::Bool(None),
        (Storage::Date, Dialect::Postgres) => Value::ChronoDate(None),
        (Storage::DateTime, Dialect::Postgres) => Value::ChronoDateTimeUtc(None),
        (Storage::Time, Dialect::Postgres) => Value::ChronoTime(None),
        (Storage::Json, Dialect::Postgres) => Value::Json(None),
        _ => Value::String(None),
    }
}

fn expected(storage: Storage) -> &'static str {
    match storage {
        Storage::Text | Storage::ReferenceId => "a string",
        Storage::Integer => "an integer",
        Storage::Decimal => "a number",
        Storage::Boolean => "true or false",
        Storage::Date => "a date like 2026-01-31",
        Storage::DateTime => "a date-time like 2026-01-31T09:30:00Z",
        Storage::Time => "a time like 09:30:00",
        Storage::Json => "a JSON value",
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Parses a date-time leniently: RFC 3339, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM[:SS]` (UTC) or a date (midnight UTC).
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_datetime(s).map(|d| d.date_naive()))
}

pub(crate) fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .ok()
        .or_else(|| NaiveTime::parse_from_str(s, "%H:%M").ok())
}

/// Converts a JSON value into the bound value for a column; the error says what was expected.
pub(crate) fn to_db(storage: Storage, dialect: Dialect, v: &Json) -> Result<Value, String> {
    if v.is_null() {
        return Ok(null_of(storage, dialect));
    }
    let bad = || format!("expected {}, received {}", expected(storage), kind_of(v));
    Ok(match storage {
        Storage::Text | Storage::ReferenceId => match v {
            Json::String(s) => Value::String(Some(s.clone())),
            Json::Number(n) => Value::String(Some(n.to_string())),
            Json::Bool(b) => Value::String(Some(b.to_string())),
            // An expanded lookup sent back as an object: keep its id.
            Json::Object(m) if storage == Storage::ReferenceId => match m.get("id") {
                Some(Json::String(s)) => Value::String(Some(s.clone())),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        },
        Storage::Integer => match v {
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::BigInt(Some(i)),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        Value::BigInt(Some(f as i64))
                    }
                    _ => return Err(bad()),
                },
            },
            Json::String(s) => Value::BigInt(Some(s.trim().parse::<i64>().map_err(|_| bad())?)),
            _ => return Err(bad()),
        },
        Storage::Decimal => match v {
            Json::Number(n) => Value::Double(Some(n.as_f64().ok_or_else(bad)?)),
            Json::String(s) => {
                let f = s.trim().parse::<f64>().map_err(|_| bad())?;
                if !f.is_finite() {
                    return Err(bad());
                }
                Value::Double(Some(f))
            }
            _ => return Err(bad()),
        },
        Storage::Boolean => match v {
            Json::Bool(b) => Value::Bool(Some(*b)),
            Json::String(s) if s == "true" => Value::Bool(Some(true)),
            Json::String(s) if s == "false" => Value::Bool(Some(false)),
            Json::Number(n) if n.as_i64() == Some(1) => Value::Bool(Some(true)),
            Json::Number(n) if n.as_i64() == Some(0) => Value::Bool(Some(false)),
            _ => return Err(bad()),
        },
        Storage::Date => {
            let d = v.as_str().and_then(parse_date).ok_or_else(bad)?;
            match dialect {
                Dialect::Postgres => Value::ChronoDate(Some(d)),
                Dialect::Sqlite => Value::String(Some(d.format("%Y-%m-%d").to_string())),
            }
        }
        Storage::DateTime => {
            let d = v.as_str().and_then(parse_datetime).ok_or_else(bad)?;
            match dialect {
                Dialect::Postgres => Value::ChronoDateTimeUtc(Some(d)),
                Dialect::Sqlite => Value::String(Some(format_ts(d))),
            }
        }
        Storage::Time => {
            let t = v.as_str().and_then(parse_time).ok_or_else(bad)?;
            match dialect {
                Dialect::Postgres => Value::ChronoTime(Some(t)),
                Dialect::Sqlite => Value::String(Some(t.format("%H:%M:%S").to_string())),
            }
        }
        Storage::Json => match dialect {
            Dialect::Postgres => Value::Json(Some(Box::new(v.clone()))),
            Dialect::Sqlite => Value::String(Some(v.to_string())),
        },
    })
}

/// A JSON number from an f64, printed as an integer when it is one (`80`, not `80.0`).
pub(crate) fn json_number(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

/// Reads column `idx` of a row as JSON according to its storage.
pub(crate) fn from_row(row: &QueryResult, idx: usize, col: &Column, dialect: Dialect) -> Json {
    read(row, idx, col.storage, dialect).unwrap_or(Json::Null)
}

fn read(row: &QueryResult, idx: usize, storage: Storage, dialect: Dialect) -> Option<Json> {
    Some(match storage {
        Storage::Text | Storage::ReferenceId => {
            Json::String(row.try_get_by_index::<Option<String>>(idx).ok()??)
        }
        Storage::Integer => match row.try_get_by_index::<Option<i64>>(idx) {
            Ok(v) => Json::from(v?),
            Err(_) => json_number(row.try_get_by_index::<Option<f64>>(idx).ok()??),
        },
        Storage::Decimal => match row.try_get_by_index::<Option<f64>>(idx) {
            Ok(v) => json_number(v?),
            Err(_) => Json::from(row.try_get_by_index::<Option<i64>>(idx).ok()??),
        },
        Storage::Boolean => Json::Bool(row.try_get_by_index::<Option<bool>>(idx).ok()??),
        Storage::Date => match dialect {
            Dialect::Postgres => Json::String(
                row.try_get_by_index::<Option<NaiveDate>>(idx)
                    .ok()??
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            Dialect::Sqlite => Json::String(row.try_get_by_index::<Option<String>>(idx).ok()??),
        },
        Storage::DateTime => match dialect {
            Dialect::Postgres => Json::String(format_ts(
                row.try_get_by_index::<Option<DateTime<Utc>>>(idx).ok()??,
            )),
            Dialect::Sqlite => Json::String(row.try_get_by_index::<Option<String>>(idx).ok()??),
        },
        Storage::Time => match dialect {
            Dialect::Postgres => Json::String(
                row.try_get_by_index::<Option<NaiveTime>>(idx)
                    .ok()??
                    .format("%H:%M:%S")
                    .to_string(),
            ),
            Dialect::Sqlite => Json::String(row.try_get_by_index::<Option<String>>(idx).ok()??),
        },
        Storage::Json => match dialect {
            Dialect::Postgres => row.try_get_by_index::<Option<Json>>(idx).ok()??,
            Dialect::Sqlite => {
                let s = row.try_get_by_index::<Option<String>>(idx).ok()??;
                serde_json::from_str(&s).unwrap_or(Json::String(s))
            }
        },
    })
}

/// Reads an aggregate result (count, sum, ...) as a JSON number whatever SQL type it came back as.
pub(crate) fn read_number(row: &QueryResult, idx: usize) -> Json {
    if let Ok(v) = row.try_get_by_index::<Option<i64>>(idx) {
        return v.map(Json::from).unwrap_or(Json::Null);
    }
    if let Ok(v) = row.try_get_by_index::<Option<f64>>(idx) {
        return v.map(json_number).unwrap_or(Json::Null);
    }
    if let Ok(v) = row.try_get_by_index::<Option<String>>(idx) {
        return v
            .and_then(|s| s.parse::<f64>().ok())
            .map(json_number)
            .unwrap_or(Json::Null);
    }
    Json::Null
}
