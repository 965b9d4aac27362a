//! The jobs crate's one error enum.

use objectos_kernel::contracts::JobError;

/// Everything the jobs plugin can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// A database statement failed; `context` names the statement's purpose.
    #[error("job storage: {context}: {message}")]
    Database { context: String, message: String },
    /// A stored row could not be read back.
    #[error("job row {id}: {message}")]
    Corrupt { id: String, message: String },
    /// The plugin's settings are invalid.
    #[error("invalid jobs configuration: {0}")]
    Config(String),
    /// RabbitMQ refused or dropped a call (the text never contains the URL's password).
    #[error("RabbitMQ: {0}")]
    Broker(String),
    /// Job definitions (`*.job.yml`) that cannot run; every problem with file and YAML path.
    #[error("invalid job definitions:\n{}", .0.join("\n"))]
    Definitions(Vec<String>),
    /// The data engine is not available yet (the data plugin has not started).
    #[error("the data engine is not available; is com.objectos.data started?")]
    EngineUnavailable,
    /// A queue operation was refused (unknown handler, wrong state, ...).
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Result alias of this crate.
pub type Result<T, E = JobsError> = std::result::Result<T, E>;

impl JobsError {
    pub(crate) fn db(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::Database {
            context: context.into(),
            message: err.to_string(),
        }
    }

    /// The error as the contract's error.
    pub fn into_job_error(self) -> JobError {
        match self {
            Self::Job(e) => e,
            Self::EngineUnavailable => JobError::Unavailable(self.to_string()),
            other => JobError::Backend(other.to_string()),
        }
    }
}

impl From<JobsError> for JobError {
    fn from(e: JobsError) -> Self {
        e.into_job_error()
    }
}
