//! The query error type: a stable machine code, the parameter it came from and a located message.

use std::fmt;

/// Which part of a query was wrong; each kind has a stable snake_case code sent to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryErrorKind {
    /// The `where`/`filter` tree (or `having`, or an equality parameter) is malformed.
    InvalidFilter,
    /// `sort`/`orderBy` is malformed.
    InvalidSort,
    /// `select`/`fields` is malformed.
    InvalidSelect,
    /// `expand`/`populate` is malformed.
    InvalidExpand,
    /// `limit`/`offset`/`top`/`skip`/`cursor` is malformed or out of range.
    InvalidPaging,
    /// `aggregations`/`groupBy` is malformed.
    InvalidAggregation,
    /// Anything else: unknown or repeated parameters, a body that is not an object, and so on.
    InvalidQuery,
}

impl QueryErrorKind {
    /// The stable machine code, as used in the `code` of an error response.
    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalid_filter",
            Self::InvalidSort => "invalid_sort",
            Self::InvalidSelect => "invalid_select",
            Self::InvalidExpand => "invalid_expand",
            Self::InvalidPaging => "invalid_paging",
            Self::InvalidAggregation => "invalid_aggregation",
            Self::InvalidQuery => "invalid_query",
        }
    }
}

impl fmt::Display for QueryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A query that cannot be accepted.
///
/// It displays as `path: message`, where the path starts with the parameter or body key the problem
/// came from and then walks into it, e.g. `filter.$and[1].amount: operator $gtx is unknown; ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct QueryError {
    kind: QueryErrorKind,
    param: String,
    path: String,
    message: String,
}

impl QueryError {
    /// Builds an error; `path` should start with `param`.
    pub fn new(
        kind: QueryErrorKind,
        param: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            param: param.into(),
            path: path.into(),
            message: message.into(),
        }
    }

    /// The kind of problem.
    pub const fn kind(&self) -> QueryErrorKind {
        self.kind
    }

    /// The stable machine code such as `invalid_filter`.
    pub const fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The query parameter or body key the problem came from, as the client spelled it.
    pub fn param(&self) -> &str {
        &self.param
    }

    /// Where inside the parameter the problem is, starting with the parameter name.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong and what is expected, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}
