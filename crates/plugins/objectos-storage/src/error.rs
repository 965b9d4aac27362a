//! The storage plugin's errors: each carries the HTTP status and the stable code the official
//! `service-storage` answers (`FILE_NOT_FOUND`, `INVALID_TOKEN`, `UPLOAD_SESSION_EXPIRED`, ...).

use salvo::http::StatusCode;

/// Everything a storage request or the plugin's start can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("authentication required")]
    AuthRequired,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("file `{0}` not found")]
    FileNotFound(String),
    #[error("upload session `{0}` not found")]
    SessionNotFound(String),
    #[error("upload session `{0}` has expired; start a new upload")]
    SessionExpired(String),
    #[error("the signed URL is invalid or has expired")]
    InvalidToken,
    #[error("the resume token does not match upload session `{0}`")]
    InvalidResumeToken(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the storage plugin is not started")]
    NotStarted,
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("database: {0}")]
    Data(#[from] objectos_data::DataError),
    #[error("configuration: {0}")]
    Config(String),
}

impl From<objectos_kernel::KernelError> for StorageError {
    fn from(e: objectos_kernel::KernelError) -> Self {
        Self::Backend(e.to_string())
    }
}

impl StorageError {
    /// The stable code of the wire error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::InvalidRequest(_) => "INVALID_REQUEST",
            Self::FileNotFound(_) => "FILE_NOT_FOUND",
            Self::SessionNotFound(_) => "UPLOAD_SESSION_NOT_FOUND",
            Self::SessionExpired(_) => "UPLOAD_SESSION_EXPIRED",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::InvalidResumeToken(_) => "INVALID_RESUME_TOKEN",
            Self::TooLarge(_) => "FILE_TOO_LARGE",
            Self::QuotaExceeded(_) => "QUOTA_EXCEEDED",
            Self::UnsupportedType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::Conflict(_) => "INVALID_STATE",
            Self::NotStarted => "SERVICE_UNAVAILABLE",
            Self::Data(_) | Self::Backend(_) | Self::Config(_) => "STORAGE_ERROR",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::AuthRequired => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::FileNotFound(_) | Self::SessionNotFound(_) => StatusCode::NOT_FOUND,
            Self::SessionExpired(_) => StatusCode::GONE,
            Self::InvalidToken | Self::InvalidResumeToken(_) => StatusCode::FORBIDDEN,
            Self::TooLarge(_) | Self::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotStarted => StatusCode::SERVICE_UNAVAILABLE,
            // The engine's own status: 503 / 507 stay retryable, a refused write stays 4xx.
            Self::Data(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Backend(_) | Self::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
