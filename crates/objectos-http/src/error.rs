//! The HTTP crate's one error enum and its JSON rendering (`{error, code, message, object?, fields?}`).
//!
//! Every error that reaches a client goes through [`HttpError`]'s `Scribe` impl, so the wire shape is
//! decided in exactly one place. Engine errors are wrapped explicitly (no `#[from]`) so internal
//! details never leak: server-side failures are logged and replaced by a generic message.

use objectos_data::{DataError, FieldError};
use salvo::http::StatusCode;
use salvo::prelude::{Json, Response, Scribe};
use serde::Serialize;

/// Everything the HTTP layer can answer with an error status, plus start-up failures of the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// An error from the data engine; its code and status come from [`DataError`].
    #[error("{0}")]
    Data(DataError),
    /// The request body is not what the route expects (malformed JSON, not an object, wrong shape).
    #[error("{message}")]
    InvalidBody {
        object: Option<String>,
        message: String,
    },
    /// A query-string problem detected before the engine runs; `param` names the parameter.
    #[error("{message}")]
    InvalidQuery {
        object: Option<String>,
        param: String,
        message: String,
    },
    /// The body is larger than the configured limit.
    #[error("Request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// A cross-object batch with more operations than allowed.
    #[error("A batch may hold at most {limit} operations, this one has {got}")]
    BatchTooLarge { limit: usize, got: usize },
    /// Operation `index` of a cross-object batch failed (nothing was written); code, status and
    /// fields are the operation's own error's.
    #[error("operations[{index}] ({operation} {object}): {source}")]
    Operation {
        index: usize,
        operation: String,
        object: String,
        source: Box<HttpError>,
    },
    /// The body is not JSON.
    #[error("Content-Type '{content_type}' is not supported; send application/json")]
    UnsupportedMediaType { content_type: String },
    /// A write authenticated by the session cookie from a page that is not ours or a trusted
    /// origin (or from a client that names no origin): refused as a possible cross-site request
    /// forgery.
    #[error("{message}")]
    CsrfOrigin { message: &'static str },
    /// A write authenticated by the session cookie whose body is not declared as JSON: HTML
    /// forms and `text/plain` fetches can be sent cross-site without a preflight, JSON cannot.
    #[error(
        "A request authenticated by the session cookie must send its body as application/json (received {received})"
    )]
    CookieBodyNotJson { received: String },
    /// A route, metadata type or metadata item that does not exist.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// No route for this path with this method.
    #[error("Method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// The route exists but the operation is not supported by this server.
    #[error("{message}")]
    NotImplemented { message: String },
    /// The server is not ready or a required service is missing.
    #[error("{message}")]
    Unavailable { message: String },
    /// Any other error status without a more specific meaning (from the catcher).
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    /// A bug or an unexpected failure; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// The HTTP configuration is invalid.
    #[error("invalid HTTP configuration: {0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T, E = HttpError> = std::result::Result<T, E>;

impl HttpError {
    /// Wraps an engine error.
    pub fn data(err: DataError) -> Self {
        Self::Data(err)
    }

    /// A 400 `INVALID_BODY` naming the object.
    pub fn invalid_body(object: Option<&str>, message: impl Into<String>) -> Self {
        Self::InvalidBody {
            object: object.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Stable wire code.
    pub fn code(&self) -> &str {
        match self {
            Self::Data(e) => e.code(),
            Self::InvalidBody { .. } => "INVALID_BODY",
            Self::InvalidQuery { .. } => "INVALID_QUERY",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::BatchTooLarge { .. } => "BATCH_TOO_LARGE",
            Self::Operation { source, .. } => source.code(),
            Self::UnsupportedMediaType { .. } | Self::CookieBodyNotJson { .. } => {
                "UNSUPPORTED_MEDIA_TYPE"
            }
            Self::CsrfOrigin { .. } => "CSRF_ORIGIN_MISMATCH",
            Self::NotFound { code, .. } => code,
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::NotImplemented { .. } => "NOT_IMPLEMENTED",
            Self::Unavailable { .. } => "SERVICE_UNAVAILABLE",
            Self::Status { status, .. } => match status.as_u16() {
                400 => "BAD_REQUEST",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                405 => "METHOD_NOT_ALLOWED",
                406 => "NOT_ACCEPTABLE",
                408 => "REQUEST_TIMEOUT",
                409 => "CONFLICT",
                429 => "RATE_LIMIT_EXCEEDED",
                _ => "HTTP_ERROR",
            },
            Self::Internal(_) | Self::Bind { .. } | Self::Config(_) => "INTERNAL_ERROR",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Data(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::InvalidBody { .. } | Self::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } | Self::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Operation { source, .. } => source.status(),
            Self::UnsupportedMediaType { .. } | Self::CookieBodyNotJson { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::CsrfOrigin { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Status { status, .. } => *status,
            Self::Internal(_) | Self::Bind { .. } | Self::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The message safe to show a client.
    pub fn public_message(&self) -> String {
        match self {
            Self::Data(e) => e.public_message(),
            Self::Operation {
                index,
                operation,
                object,
                source,
            } => format!(
                "operations[{index}] ({operation} {object}): {}",
                source.public_message()
            ),
            Self::Internal(_) | Self::Bind { .. } | Self::Config(_) => {
                "An internal error occurred; the server log has the details".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn object(&self) -> Option<&str> {
        match self {
            Self::Data(e) => e.object(),
            Self::Operation { object, .. } => Some(object),
            Self::InvalidBody { object, .. } | Self::InvalidQuery { object, .. } => {
                object.as_deref()
            }
            _ => None,
        }
    }

    /// True when the same request may succeed later (the spec envelope's `retryable`).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Data(e) => e.retryable(),
            Self::Operation { source, .. } => source.retryable(),
            Self::Unavailable { .. } => true,
            _ => false,
        }
    }

    /// Seconds to send as `Retry-After`, for errors that are only about timing.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Data(e) => e.retry_after_secs(),
            Self::Operation { source, .. } => source.retry_after_secs(),
            Self::Unavailable { .. } => Some(1),
            _ => None,
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::Operation { source, .. } => source.param(),
            Self::InvalidQuery { param, .. } => Some(param),
            Self::Data(DataError::InvalidQuery { param, .. }) if !param.is_empty() => Some(param),
            _ => None,
        }
    }

    /// The JSON body sent for this error.
    pub fn body(&self) -> ErrorBody<'_> {
        let message = self.public_message();
        let fields = match self {
            Self::Data(e) => e.field_errors(),
            Self::Operation { source, .. } => match source.as_ref() {
                Self::Data(e) => e.field_errors(),
                _ => &[],
            },
            _ => &[],
        };
        let index = match self {
            Self::Operation { index, .. } => Some(*index),
            _ => None,
        };
        ErrorBody {
            error: message.clone(),
            code: self.code(),
            message,
            object: self.object(),
            param: self.param(),
            fields: (!fields.is_empty()).then_some(fields),
            index,
            retryable: self.retryable(),
        }
    }
}

/// Wire form of an error (reference transcript exchanges 20, 21, 24-26).
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: String,
    pub code: &'a str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<&'a str>,
    /// The query parameter at fault (`filter`, `sort`, `select`, `expand`, `top`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<&'a [FieldError]>,
    /// The failing operation of a cross-object batch (`POST /api/v1/batch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Sent (as `true`) only when retrying the same request may succeed: a full disk, a lost
    /// database connection, a busy database, a rate limit (the spec envelope's `retryable`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
}

impl Scribe for HttpError {
    fn render(self, res: &mut Response) {
        let status = self.status();
        if status.is_server_error() {
            // The detail stays in the log; the client gets the generic message. A transient
            // failure (full disk, lost database) is the environment's, not a bug: a warning.
            if self.retryable() {
                tracing::warn!(error = %self, code = self.code(), "Request failed with a transient server error.");
            } else {
                tracing::error!(error = %self, code = self.code(), "Request failed with a server error.");
            }
        }
        res.status_code(status);
        if let Some(secs) = self.retry_after_secs()
            && let Ok(value) = salvo::http::HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut()
                .insert(salvo::http::header::RETRY_AFTER, value);
        }
        res.render(Json(self.body()));
    }
}
