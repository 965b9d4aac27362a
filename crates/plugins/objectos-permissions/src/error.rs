//! The permissions plugin's one error enum.

use objectos_data::DataError;

/// Everything that can go wrong while loading security metadata or storing assignments.
#[derive(Debug, thiserror::Error)]
pub enum PermissionsError {
    /// Security metadata is invalid; every problem is listed as `file: path: message`.
    #[error("security metadata has {} error(s):\n{}", .0.len(), .0.join("\n"))]
    Metadata(Vec<String>),
    /// A metadata folder or file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The assignment store failed.
    #[error("assignment store: {0}")]
    Store(String),
    /// An assignment request names something unknown or is malformed.
    #[error("{0}")]
    InvalidAssignment(String),
    /// The user of an assignment is not a member of the organization it is made in; answered
    /// like an unknown id (`404 RECORD_NOT_FOUND` on object `user`) so membership elsewhere is
    /// not revealed.
    #[error("user {0} not found")]
    UnknownUser(String),
    /// The data engine refused an operation.
    #[error(transparent)]
    Data(#[from] DataError),
}
