//! Reading JSON request bodies with errors that say where the JSON broke and what was expected,
//! and writing JSON response bodies in one contiguous buffer.

use salvo::http::header::{CONTENT_TYPE, HeaderValue};
use salvo::http::{ParseError, ResBody};
use salvo::hyper::body::Bytes;
use salvo::prelude::{Request, Response, Scribe};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::HttpError;

/// Reads the raw body, mapping an over-limit body to 413. The buffer salvo collected is shared,
/// not copied: a copy was a second body-sized allocation per request, which concurrent large
/// bodies turned into resident memory.
async fn read_bytes(req: &mut Request, object: Option<&str>) -> Result<Bytes, HttpError> {
    let limit = req.secure_max_size();
    match req.payload().await {
        Ok(bytes) => Ok(bytes.clone()),
        Err(ParseError::PayloadTooLarge) => Err(HttpError::PayloadTooLarge {
            limit: limit as u64,
        }),
        Err(e) => Err(HttpError::invalid_body(
            object,
            format!("Cannot read the request body: {e}"),
        )),
    }
}

/// Checks the body's JSON syntax without building anything. A `Value` tree is many times the
/// size of its text (32 bytes a value, vectors grown by doubling), and serde builds it up to the
/// point where malformed input breaks: a 1 MiB `[0,0,0,...` without its `]` cost ~30 MiB before
/// the error, per concurrent request. Skipping through with `IgnoredAny` allocates nothing, so
/// malformed bodies are refused at the cost of their buffer alone; for a well-formed body the
/// extra pass is a fraction of the parse that follows.
fn check_syntax(bytes: &[u8], object: Option<&str>, expected: &str) -> Result<(), HttpError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| {
            HttpError::invalid_body(
                object,
                format!(
                    "Malformed JSON in the request body at line {}, column {}: {e}; expected {expected}",
                    e.line(),
                    e.column()
                ),
            )
        })
}

/// Parses the body as any JSON value; an empty body is an error naming what was expected.
pub async fn json_value(
    req: &mut Request,
    object: Option<&str>,
    expected: &str,
) -> Result<Value, HttpError> {
    let bytes = read_bytes(req, object).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError::invalid_body(
            object,
            format!("The request body is empty; expected {expected}"),
        ));
    }
    check_syntax(&bytes, object, expected)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        HttpError::invalid_body(
            object,
            format!(
                "Malformed JSON in the request body at line {}, column {}: {e}; expected {expected}",
                e.line(),
                e.column()
            ),
        )
    })
}

/// Parses the body as a JSON object (a record, a patch, a query).
pub async fn json_object(
    req: &mut Request,
    object: Option<&str>,
    expected: &str,
) -> Result<Map<String, Value>, HttpError> {
    match json_value(req, object, expected).await? {
        Value::Object(map) => Ok(map),
        other => Err(HttpError::invalid_body(
            object,
            format!(
                "The request body must be a JSON object ({expected}), received {}",
                kind(&other)
            ),
        )),
    }
}

/// Parses an optional JSON object body: an empty body is an empty object.
pub async fn json_object_or_empty(
    req: &mut Request,
    object: Option<&str>,
    expected: &str,
) -> Result<Map<String, Value>, HttpError> {
    let bytes = read_bytes(req, object).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    check_syntax(&bytes, object, expected)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        HttpError::invalid_body(
            object,
            format!(
                "Malformed JSON in the request body at line {}, column {}: {e}; expected {expected}",
                e.line(),
                e.column()
            ),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(HttpError::invalid_body(
            object,
            format!(
                "The request body must be a JSON object ({expected}), received {}",
                kind(&other)
            ),
        )),
    }
}

/// Parses the body into a typed request, with the serde path of the first mismatch.
pub async fn json_typed<T: DeserializeOwned>(
    req: &mut Request,
    object: Option<&str>,
    expected: &str,
) -> Result<T, HttpError> {
    let value = json_value(req, object, expected).await?;
    if !value.is_object() {
        return Err(HttpError::invalid_body(
            object,
            format!(
                "The request body must be a JSON object ({expected}), received {}",
                kind(&value)
            ),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        HttpError::invalid_body(
            object,
            format!("Invalid request body: {e}; expected {expected}"),
        )
    })
}

/// JSON type name of a value, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON response body serialized into one buffer sized up front.
///
/// salvo's `Json` writes through a chunking writer (one call per JSON token, 8 KiB chunks, a
/// final shrink), which showed up at 3 % of a list request; a plain `Vec` with a capacity hint
/// (`capacity`: the expected body size) takes one allocation for a page of records.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    pub capacity: usize,
}

impl<T: Serialize> JsonBody<T> {
    pub fn new(value: T, capacity: usize) -> Self {
        Self { value, capacity }
    }
}

impl<T: Serialize + Send> Scribe for JsonBody<T> {
    fn render(self, res: &mut Response) {
        let mut buf = Vec::with_capacity(self.capacity);
        match serde_json::to_writer(&mut buf, &self.value) {
            Ok(()) => {
                res.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                res.body(ResBody::Once(buf.into()));
            }
            Err(e) => {
                // Records are JSON values already, so this cannot happen short of a bug.
                res.render(HttpError::Internal(format!(
                    "cannot serialize the response body: {e}"
                )));
            }
        }
    }
}
