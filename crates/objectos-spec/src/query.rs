//! QueryAST and filters: the three filter forms normalised into one tree, sort, paging, expand,
//! aggregations, and the GET list parameters that build a query.
//!
//! Engines receive a [`QueryAst`] whose [`Filter`] is already normalised; nothing here knows which
//! fields an object has (that is the data engine's job, see [`QueryAst::validate_against`]).

mod ast;
mod error;
mod filter;
mod params;

pub use ast::{
    AggregateFunction, Aggregation, Cursor, FieldSelection, MAX_EXPAND_DEPTH, MAX_LIMIT,
    MAX_LIST_ITEMS, MAX_OFFSET, QueryAst, SearchQuery, SortNode, SortOrder,
};
pub use error::{QueryError, QueryErrorKind};
pub use filter::{
    Condition, Filter, FilterFields, FilterValue, MAX_FIELD_PATH_SEGMENTS, MAX_FILTER_CONDITIONS,
    MAX_FILTER_DEPTH, MAX_IN_VALUES, Operator, is_valid_field_path,
};
pub use params::{RESERVED_PARAMS, is_reserved_param, parse_list_params};
