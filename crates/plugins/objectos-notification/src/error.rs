//! The notification plugin's errors, each with the HTTP status and stable code a route answers.

use salvo::http::StatusCode;

/// Everything a notification request, a delivery or the plugin's start can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    PermissionDenied(String),
    /// A malformed request; the message names the field.
    #[error("{0}")]
    Validation(String),
    /// The client's `read` query parameter was not `true` or `false`.
    #[error("`read` must be true or false")]
    InvalidBoolean,
    #[error("template `{0}` not found")]
    TemplateNotFound(String),
    /// A template failed to render (a missing variable, a helper error).
    #[error("template `{name}`: {message}")]
    Render { name: String, message: String },
    #[error("the notification plugin is not started")]
    NotStarted,
    /// The SMTP server or webhook receiver failed; `retryable` when another attempt may work.
    #[error("delivery failed: {message}")]
    Delivery { message: String, retryable: bool },
    #[error("database: {0}")]
    Data(#[from] objectos_data::DataError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("job queue: {0}")]
    Queue(String),
    /// Another request holds the idempotency key and has not finished queueing its message.
    #[error("{0}")]
    Conflict(String),
    /// An unsubscribe token that is malformed or not signed by this server.
    #[error("the unsubscribe link is not valid")]
    InvalidToken,
}

impl NotificationError {
    /// The stable code of the wire error.
    pub fn code(&self) -> &str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::InvalidBoolean => "invalid_boolean",
            Self::TemplateNotFound(_) => "TEMPLATE_NOT_FOUND",
            Self::Render { .. } => "TEMPLATE_RENDER_FAILED",
            Self::NotStarted => "SERVICE_UNAVAILABLE",
            Self::Delivery { .. } => "DELIVERY_FAILED",
            Self::Data(e) => e.code(),
            Self::Config(_) | Self::Queue(_) => "NOTIFICATION_ERROR",
            Self::Conflict(_) => "IDEMPOTENCY_CONFLICT",
            Self::InvalidToken => "INVALID_TOKEN",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::Validation(_) | Self::InvalidBoolean | Self::Render { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::TemplateNotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::InvalidToken => StatusCode::BAD_REQUEST,
            Self::NotStarted => StatusCode::SERVICE_UNAVAILABLE,
            Self::Data(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Delivery { .. } | Self::Config(_) | Self::Queue(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl From<NotificationError> for objectos_kernel::PluginError {
    fn from(e: NotificationError) -> Self {
        objectos_kernel::PluginError::msg(e.to_string())
    }
}
