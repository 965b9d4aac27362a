//! The audit crate's one error enum.

use objectos_data::DataError;

/// Everything the audit plugin can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A database statement failed; the text names the statement's purpose and the driver error.
    #[error("audit storage: {context}: {message}")]
    Database { context: String, message: String },
    /// A stored row could not be read back (a column has an unexpected type or bad JSON).
    #[error("audit row {id}: column `{column}` is invalid: {message}")]
    Corrupt {
        id: String,
        column: String,
        message: String,
    },
    /// A query parameter is malformed; `param` names it and `message` says what is expected.
    #[error("invalid parameter `{param}`: {message}")]
    InvalidParam { param: String, message: String },
    /// The plugin configuration is invalid.
    #[error("invalid audit configuration: {0}")]
    Config(String),
    /// The data engine is not available yet (the data plugin has not started).
    #[error("the data engine is not available; is com.objectos.data started?")]
    EngineUnavailable,
}

/// Result alias of this crate.
pub type Result<T, E = AuditError> = std::result::Result<T, E>;

impl AuditError {
    pub(crate) fn db(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::Database {
            context: context.into(),
            message: err.to_string(),
        }
    }

    /// The error as a data-engine error, so an interceptor failure aborts the operation.
    pub fn into_data_error(self) -> DataError {
        DataError::Internal(self.to_string())
    }
}
