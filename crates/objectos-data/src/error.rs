//! The data engine's one error enum, with the stable wire codes and HTTP statuses the REST layer maps it to.

use serde::Serialize;

/// One problem with one field of a record, as sent in the `fields` array of a 400 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// API name of the field (`name`, `account.email` for nested checks); for a validation rule
    /// that concerns no field (its condition reads none), the rule's name.
    pub field: String,
    /// Stable machine code: `required`, `invalid_type`, `invalid_option`, `too_long`, `too_short`,
    /// `too_small`, `too_large`, `invalid_format`, `duplicate_value`, `readonly`, `unknown_field`,
    /// `invalid_reference`, `rule_failed`, `invalid_transition`, `unsupported_media_type`.
    pub code: String,
    /// Human message naming the field by its label, e.g. `Name is required`.
    pub message: String,
    /// The field's label, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Extra detail (violated constraint, allowed options); boxed so `Result<_, FieldError>` stays small.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<FieldErrorDetail>>,
}

/// The optional parts of a [`FieldError`], flattened into it on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrorDetail {
    /// The violated constraint, e.g. `{"allowed": "new, active, closed"}` or `{"max": 200}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<serde_json::Value>,
    /// For choice fields: the allowed option values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// The validation rule that failed. A rule over several fields gives one error per field it
    /// concerns (so a form highlights each), all naming the same rule (so a list shows it once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
            label: None,
            detail: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Attaches the violated constraint (`{"max": 200}`).
    pub fn with_constraint(mut self, constraint: serde_json::Value) -> Self {
        self.detail.get_or_insert_with(Box::default).constraint = Some(constraint);
        self
    }

    /// Attaches the allowed option values of a choice field.
    pub fn with_options(mut self, options: Vec<String>) -> Self {
        self.detail.get_or_insert_with(Box::default).options = Some(options);
        self
    }

    /// Names the validation rule that failed.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.detail.get_or_insert_with(Box::default).rule = Some(rule.into());
        self
    }

    /// The validation rule that failed, for errors of rules.
    pub fn rule(&self) -> Option<&str> {
        self.detail.as_ref()?.rule.as_deref()
    }
}

/// Everything that can go wrong in the data engine.
///
/// User mistakes map to 4xx with a stable code; only `Database` and `Internal` are 5xx, and their
/// messages never carry SQL or connection details to the client (see [`DataError::public_message`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("Object '{object}' is not registered")]
    ObjectNotFound { object: String },
    #[error("Record {id} not found in {object}")]
    RecordNotFound { object: String, id: String },
    /// The record failed field validation or a validation rule; `message` is the first problem.
    #[error("{message}")]
    Validation {
        object: String,
        message: String,
        fields: Vec<FieldError>,
    },
    /// A filter, sort, select, expand, paging or aggregation problem; `param` names the query parameter.
    #[error("{message}")]
    InvalidQuery {
        object: String,
        param: String,
        code: String,
        message: String,
    },
    /// Malformed request body (not an object, wrong shape).
    #[error("{message}")]
    InvalidBody { object: String, message: String },
    /// A value whose media type its field does not accept: a file written into a `file` or
    /// `image` field whose content type is not among the field's allowed types (415).
    #[error("{message}")]
    UnsupportedMediaType {
        object: String,
        message: String,
        fields: Vec<FieldError>,
    },
    /// A unique field or unique rule would be violated.
    #[error("{message}")]
    Duplicate {
        object: String,
        message: String,
        fields: Vec<FieldError>,
    },
    /// `If-Match` did not match the record's current version.
    #[error(
        "Record {id} in {object} was modified by someone else (expected version {expected}, found {found})"
    )]
    ConcurrentModification {
        object: String,
        id: String,
        expected: String,
        found: String,
    },
    /// Delete refused because `deleteBehavior: restrict` children exist.
    #[error("{message}")]
    DeleteRestricted { object: String, message: String },
    /// The operation is disabled for this object (`enable.apiMethods`).
    #[error("Operation '{operation}' is not enabled for object '{object}'")]
    OperationNotAllowed { object: String, operation: String },
    /// An interceptor (permissions, workflow...) refused the operation.
    #[error("{message}")]
    Forbidden { object: String, message: String },
    #[error("{message}")]
    Unauthenticated { message: String },
    /// Metadata could not be loaded; every diagnostic is listed.
    #[error("metadata has {} error(s):\n{}", diagnostics.len(), diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Metadata {
        diagnostics: Vec<objectos_spec::Diagnostic>,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bulk request with more records than one request may write (`createMany`, `batch`).
    #[error("A request may write at most {limit} records at once, this one has {got}")]
    TooManyRecords {
        object: String,
        limit: usize,
        got: usize,
    },
    /// One operation held a SQLite file's writer longer than `data.maxWriteMillis` allows and
    /// was rolled back, so that it does not stall everybody else's writes.
    #[error(
        "The operation held the database writer longer than {limit_ms} ms and was rolled back; split it into smaller requests"
    )]
    WriteTimeout { limit_ms: u64 },
    /// The caller (or its organization) wrote more than its configured rate allows.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The database's storage is full (disk, quota or size limit): nothing of the write was
    /// stored; retrying after space is freed succeeds. The detail is for the log only.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The database is unreachable, busy or failed in a way that says nothing about the
    /// request (lost connection, pool exhausted, busy timeout, I/O error): nothing of the write
    /// was stored; retrying later may succeed. The detail is for the log only.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DataError {
    /// Stable wire code (the reference server's upper-case spelling).
    pub fn code(&self) -> &str {
        match self {
            Self::ObjectNotFound { .. } => "OBJECT_NOT_FOUND",
            Self::RecordNotFound { .. } => "RECORD_NOT_FOUND",
            Self::Validation { .. } => "VALIDATION_FAILED",
            Self::UnsupportedMediaType { .. } => "UNSUPPORTED_MEDIA_TYPE",
            Self::InvalidQuery { .. } => "INVALID_QUERY",
            Self::InvalidBody { .. } => "INVALID_BODY",
            Self::Duplicate { .. } => "DUPLICATE_VALUE",
            Self::ConcurrentModification { .. } => "CONCURRENT_MODIFICATION",
            Self::DeleteRestricted { .. } => "DELETE_RESTRICTED",
            Self::OperationNotAllowed { .. } => "OPERATION_NOT_ALLOWED",
            Self::Forbidden { .. } => "PERMISSION_DENIED",
            Self::Unauthenticated { .. } => "UNAUTHENTICATED",
            Self::Metadata { .. } => "INVALID_METADATA",
            Self::Config(_) => "INVALID_CONFIGURATION",
            Self::TooManyRecords { .. } => "BATCH_TOO_LARGE",
            Self::WriteTimeout { .. } => "OPERATION_TOO_LARGE",
            Self::RateLimited { .. } => "RATE_LIMIT_EXCEEDED",
            Self::StorageFull(_) => "STORAGE_FULL",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Database(_) | Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// Spec error category (`validation`, `not_found`, ...).
    pub fn category(&self) -> &'static str {
        match self {
            Self::ObjectNotFound { .. } | Self::RecordNotFound { .. } => "not_found",
            Self::Validation { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::InvalidQuery { .. }
            | Self::InvalidBody { .. }
            | Self::Metadata { .. }
            | Self::Config(_) => "validation",
            Self::Duplicate { .. }
            | Self::ConcurrentModification { .. }
            | Self::DeleteRestricted { .. } => "conflict",
            Self::OperationNotAllowed { .. } | Self::Forbidden { .. } => "authorization",
            Self::Unauthenticated { .. } => "authentication",
            Self::TooManyRecords { .. } | Self::WriteTimeout { .. } => "validation",
            Self::RateLimited { .. } => "rate_limit",
            Self::Unavailable(_) => "maintenance",
            Self::StorageFull(_) | Self::Database(_) | Self::Internal(_) => "server",
        }
    }

    /// HTTP status for the category.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::ObjectNotFound { .. } | Self::RecordNotFound { .. } => 404,
            Self::Validation { .. }
            | Self::InvalidQuery { .. }
            | Self::InvalidBody { .. }
            | Self::Metadata { .. }
            | Self::Config(_) => 400,
            Self::UnsupportedMediaType { .. } => 415,
            Self::Duplicate { .. } | Self::DeleteRestricted { .. } => 409,
            Self::ConcurrentModification { .. } => 412,
            Self::OperationNotAllowed { .. } | Self::Forbidden { .. } => 403,
            Self::Unauthenticated { .. } => 401,
            Self::TooManyRecords { .. } | Self::WriteTimeout { .. } => 413,
            Self::RateLimited { .. } => 429,
            Self::StorageFull(_) => 507,
            Self::Unavailable(_) => 503,
            Self::Database(_) | Self::Internal(_) => 500,
        }
    }

    /// The object the error is about, if any.
    pub fn object(&self) -> Option<&str> {
        match self {
            Self::ObjectNotFound { object }
            | Self::RecordNotFound { object, .. }
            | Self::Validation { object, .. }
            | Self::UnsupportedMediaType { object, .. }
            | Self::InvalidQuery { object, .. }
            | Self::InvalidBody { object, .. }
            | Self::Duplicate { object, .. }
            | Self::ConcurrentModification { object, .. }
            | Self::DeleteRestricted { object, .. }
            | Self::OperationNotAllowed { object, .. }
            | Self::TooManyRecords { object, .. }
            | Self::Forbidden { object, .. } => Some(object),
            _ => None,
        }
    }

    /// Field-level problems, if any.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Validation { fields, .. }
            | Self::UnsupportedMediaType { fields, .. }
            | Self::Duplicate { fields, .. } => fields,
            _ => &[],
        }
    }

    /// True when retrying the same request may succeed: transient failures (nothing of the
    /// write was stored) and lost optimistic-concurrency races. A plain database error is a
    /// failure of the statement itself and would fail again.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::StorageFull(_)
                | Self::Unavailable(_)
                | Self::RateLimited { .. }
                | Self::ConcurrentModification { .. }
        )
    }

    /// Seconds a client should wait before retrying (the `Retry-After` header), for the errors
    /// that are only about timing.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Unavailable(_) => Some(1),
            // Space is freed by an operator, not by the next second.
            Self::StorageFull(_) => Some(30),
            Self::RateLimited {
                retry_after_secs, ..
            } => Some((*retry_after_secs).max(1)),
            _ => None,
        }
    }

    /// The message safe to send to a client: server-side errors are replaced by a generic text
    /// (the detail goes to the log with the request id).
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(_) | Self::Internal(_) => {
                "An internal error occurred; the server log has the details".to_owned()
            }
            Self::StorageFull(_) => {
                "The server's storage is full; nothing was saved. Retry once space is freed"
                    .to_owned()
            }
            Self::Unavailable(_) => {
                "The database is temporarily unavailable; nothing was saved. Retry shortly"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<sea_orm::DbErr> for DataError {
    fn from(err: sea_orm::DbErr) -> Self {
        crate::db::map_db_err(err)
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
