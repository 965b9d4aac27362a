//! The QueryAST: selection, filter, search, sort, paging, aggregation and expand, with a lenient
//! reader that accepts the spellings of every client generation and reports located errors.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::{QueryError, QueryErrorKind};
use super::filter::{
    Filter, MAX_FILTER_CONDITIONS, describe, field_name_message, is_identifier, is_valid_field_path,
};

/// Largest page size accepted in `limit`/`top`.
pub const MAX_LIMIT: u64 = 10_000;
/// Largest `offset`/`skip` accepted; it must fit a signed 64-bit SQL parameter.
pub const MAX_OFFSET: u64 = i64::MAX as u64;
/// Deepest nesting of `expand` subqueries (`owner.manager.department`).
pub const MAX_EXPAND_DEPTH: usize = 3;
/// Most entries accepted in `fields`, `orderBy`, `groupBy`, `aggregations` and `expand` each.
pub const MAX_LIST_ITEMS: usize = 1000;

/// A query against one object, as sent to `POST /api/v1/data/:o/query` (and built from the GET
/// list parameters by [`super::parse_list_params`]).
///
/// It serialises in the canonical camelCase spelling; reading (serde or [`QueryAst::from_json`])
/// also accepts the aliases listed in protocol.md section 2.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryAst {
    /// The object name; optional because the URL usually names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Fields to return; empty means all readable fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldSelection>,
    /// The record filter (`where` on the wire; `filter`, `filters`, `$filter` are accepted).
    #[serde(rename = "where", skip_serializing_if = "Filter::is_true")]
    pub filter: Filter,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchQuery>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<SortNode>,
    /// Page size (`top` is accepted); at most [`MAX_LIMIT`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Rows to skip (`skip` is accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Keyset paging position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<Aggregation>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Filter on aggregated rows; its field names are group fields or aggregation aliases.
    #[serde(skip_serializing_if = "Filter::is_true")]
    pub having: Filter,
    #[serde(skip_serializing_if = "is_false")]
    pub distinct: bool,
    /// Lookup fields to expand, each with a subquery on the related object.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub expand: IndexMap<String, QueryAst>,
    /// Whether the caller wants the total row count.
    #[serde(skip_serializing_if = "is_false")]
    pub count: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One selected field: a name (or dotted lookup path), or a lookup with its own selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldSelection {
    Field(String),
    Nested {
        field: String,
        fields: Vec<FieldSelection>,
    },
}

impl FieldSelection {
    /// The selected field name.
    pub fn name(&self) -> &str {
        match self {
            Self::Field(name) | Self::Nested { field: name, .. } => name,
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SortNode {
    pub field: String,
    #[serde(default)]
    pub order: SortOrder,
}

impl SortNode {
    pub fn new(field: impl Into<String>, order: SortOrder) -> Self {
        Self {
            field: field.into(),
            order,
        }
    }
}

/// Full-text search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SearchQuery {
    pub query: String,
    /// Fields to search; empty means the object's searchable fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub fuzzy: bool,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
    ArrayAgg,
    StringAgg,
}

impl AggregateFunction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::CountDistinct => "count_distinct",
            Self::ArrayAgg => "array_agg",
            Self::StringAgg => "string_agg",
        }
    }

    /// Accepts snake_case, camelCase and any letter case (`count_distinct`, `countDistinct`).
    fn parse(text: &str) -> Option<Self> {
        let key: String = text
            .chars()
            .filter(|c| *c != '_')
            .collect::<String>()
            .to_lowercase();
        Some(match key.as_str() {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "countdistinct" => Self::CountDistinct,
            "arrayagg" => Self::ArrayAgg,
            "stringagg" => Self::StringAgg,
            _ => return None,
        })
    }
}

/// One aggregation column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Aggregation {
    pub function: AggregateFunction,
    /// The aggregated field; required for everything but `count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The output column name; defaults to `count` or `<function>_<field>` when not given.
    pub alias: String,
    #[serde(skip_serializing_if = "is_false")]
    pub distinct: bool,
    /// Only rows matching this filter are aggregated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

/// A keyset paging position: the opaque token a server handed out, or the raw key values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Cursor {
    Token(String),
    Keyset(IndexMap<String, Value>),
}

impl<'de> Deserialize<'de> for QueryAst {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        QueryAst::from_json(&value).map_err(serde::de::Error::custom)
    }
}

impl QueryAst {
    /// Reads a QueryAST body, accepting every alias (`top`/`skip`, `filter`/`filters`,
    /// `sort`/`$orderby`, `populate`, ...) and checking limits. Unknown keys are ignored so newer
    /// clients keep working, except `joins` and `windowFunctions`, which are refused because
    /// silently dropping them would change the result.
    pub fn from_json(value: &Value) -> Result<Self, QueryError> {
        from_json_at(value, "", 0)
    }

    /// Checks every field this query references on its own object against `known` (which gets
    /// the name or dotted path as written). Field existence belongs to the data engine; this is a
    /// convenience for it. `having` (aliases) and the subqueries of `expand` (other objects) are
    /// not checked.
    pub fn validate_against(&self, known: &dyn Fn(&str) -> bool) -> Result<(), QueryError> {
        let unknown = |kind: QueryErrorKind, param: &str, field: &str| {
            QueryError::new(
                kind,
                param,
                param,
                format!(
                    "field {} does not exist on this object",
                    Value::String(field.to_owned())
                ),
            )
        };
        if let Some(f) = self
            .fields
            .iter()
            .map(FieldSelection::name)
            .find(|f| !known(f))
        {
            return Err(unknown(QueryErrorKind::InvalidSelect, "fields", f));
        }
        if let Some(f) = self.filter.fields().find(|f| !known(f)) {
            return Err(unknown(QueryErrorKind::InvalidFilter, "where", f));
        }
        if let Some(s) = self.order_by.iter().find(|s| !known(&s.field)) {
            return Err(unknown(QueryErrorKind::InvalidSort, "orderBy", &s.field));
        }
        if let Some(f) = self.group_by.iter().find(|f| !known(f)) {
            return Err(unknown(QueryErrorKind::InvalidAggregation, "groupBy", f));
        }
        for agg in &self.aggregations {
            let referenced = agg.field.iter().map(String::as_str);
            let in_filter = agg.filter.iter().flat_map(Filter::fields);
            if let Some(f) = referenced.chain(in_filter).find(|f| !known(f)) {
                return Err(unknown(
                    QueryErrorKind::InvalidAggregation,
                    "aggregations",
                    f,
                ));
            }
        }
        if let Some(search) = &self.search
            && let Some(f) = search.fields.iter().find(|f| !known(f))
        {
            return Err(unknown(QueryErrorKind::InvalidQuery, "search", f));
        }
        if let Some(f) = self.expand.keys().find(|f| !known(f)) {
            return Err(unknown(QueryErrorKind::InvalidExpand, "expand", f));
        }
        Ok(())
    }
}

/// The canonical parts of a query; two keys that fill the same slot may not both be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Object,
    Fields,
    Filter,
    Search,
    Sort,
    Limit,
    Offset,
    Cursor,
    Aggregations,
    GroupBy,
    Having,
    Distinct,
    Expand,
    Count,
    Unsupported,
}

/// Maps a body key or query parameter to its slot; `None` for keys that are not part of a query.
pub(crate) fn slot_of(key: &str) -> Option<Slot> {
    Some(match key {
        "object" => Slot::Object,
        "fields" | "select" | "$select" => Slot::Fields,
        "where" | "filter" | "filters" | "$filter" => Slot::Filter,
        "search" | "$search" => Slot::Search,
        "orderBy" | "orderby" | "sort" | "$orderby" | "$orderBy" => Slot::Sort,
        "limit" | "top" | "$top" => Slot::Limit,
        "offset" | "skip" | "$skip" => Slot::Offset,
        "cursor" => Slot::Cursor,
        "aggregations" => Slot::Aggregations,
        "groupBy" | "groupby" => Slot::GroupBy,
        "having" => Slot::Having,
        "distinct" => Slot::Distinct,
        "expand" | "$expand" | "populate" => Slot::Expand,
        "count" | "$count" => Slot::Count,
        "joins" | "windowFunctions" => Slot::Unsupported,
        _ => return None,
    })
}

/// Accumulates one query while its keys are read, remembering which key filled which slot.
pub(crate) struct Builder {
    pub(crate) query: QueryAst,
    prefix: String,
    depth: usize,
    seen: Vec<(Slot, String)>,
}

impl Builder {
    pub(crate) fn new(prefix: &str, depth: usize) -> Self {
        Self {
            query: QueryAst::default(),
            prefix: prefix.to_owned(),
            depth,
            seen: Vec::new(),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The parameter name errors are attributed to: the top-level key (`expand` inside subqueries).
    fn param<'a>(&'a self, key: &'a str) -> &'a str {
        match self.prefix.split(['.', '[']).next() {
            Some(top) if !top.is_empty() => top,
            _ => key,
        }
    }

    /// Applies one key; returns `false` when the key is not part of a query.
    pub(crate) fn apply(&mut self, key: &str, value: &Value) -> Result<bool, QueryError> {
        let Some(slot) = slot_of(key) else {
            return Ok(false);
        };
        let path = self.path(key);
        let param = self.param(key).to_owned();
        let err = |kind: QueryErrorKind, message: String| {
            QueryError::new(kind, param.as_str(), path.as_str(), message)
        };
        if slot != Slot::Filter {
            if let Some((_, first)) = self.seen.iter().find(|(s, _)| *s == slot) {
                let message = if first == key {
                    format!("{key} is given more than once")
                } else {
                    format!("{key} and {first} mean the same thing; give only one of them")
                };
                return Err(err(QueryErrorKind::InvalidQuery, message));
            }
            self.seen.push((slot, key.to_owned()));
        }
        let q = &mut self.query;
        match slot {
            Slot::Object => match value {
                Value::String(s) if is_identifier(s) => q.object = Some(s.clone()),
                other => {
                    return Err(err(
                        QueryErrorKind::InvalidQuery,
                        format!(
                            "expected an object name such as \"account\", got {}",
                            describe(other)
                        ),
                    ));
                }
            },
            Slot::Fields => q.fields = parse_fields(value, &param, &path)?,
            Slot::Filter => {
                let filter = match value {
                    Value::String(text) => Filter::parse_str_at(text, &param, &path)?,
                    other => Filter::parse_at(other, &param, &path)?,
                };
                let combined = std::mem::take(&mut q.filter).and(filter);
                if combined.condition_count() > MAX_FILTER_CONDITIONS {
                    return Err(QueryError::new(
                        QueryErrorKind::InvalidFilter,
                        param.as_str(),
                        path.as_str(),
                        format!("filter has more than {MAX_FILTER_CONDITIONS} conditions"),
                    ));
                }
                q.filter = combined;
            }
            Slot::Having => {
                q.having = match value {
                    Value::String(text) => Filter::parse_str_at(text, &param, &path)?,
                    other => Filter::parse_at(other, &param, &path)?,
                };
            }
            Slot::Search => q.search = parse_search(value, &param, &path)?,
            Slot::Sort => q.order_by = parse_sort(value, &param, &path)?,
            Slot::Limit => {
                q.limit = Some(parse_integer(value, key, MAX_LIMIT, &param, &path)?);
            }
            Slot::Offset => {
                q.offset = Some(parse_integer(value, key, MAX_OFFSET, &param, &path)?);
            }
            Slot::Cursor => {
                q.cursor = match value {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) => Some(Cursor::Token(s.clone())),
                    Value::Object(m) => Some(Cursor::Keyset(
                        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    )),
                    other => {
                        return Err(err(
                            QueryErrorKind::InvalidPaging,
                            format!(
                                "expected a cursor string or an object of key values, got {}",
                                describe(other)
                            ),
                        ));
                    }
                };
            }
            Slot::Aggregations => q.aggregations = parse_aggregations(value, &param, &path)?,
            Slot::GroupBy => {
                q.group_by = parse_names(value, &param, &path, QueryErrorKind::InvalidAggregation)?;
            }
            Slot::Distinct => q.distinct = parse_bool(value, &param, &path)?,
            Slot::Count => q.count = parse_bool(value, &param, &path)?,
            Slot::Expand => {
                let mut expand = IndexMap::new();
                parse_expand(value, &param, &path, self.depth, &mut expand)?;
                self.query.expand = expand;
            }
            Slot::Unsupported => {
                let empty = match value {
                    Value::Null => true,
                    Value::Array(items) => items.is_empty(),
                    Value::String(s) => s.trim().is_empty() || s.trim() == "[]",
                    _ => false,
                };
                if !empty {
                    return Err(err(
                        QueryErrorKind::InvalidQuery,
                        format!(
                            "{key} is not supported by this server; use expand for related \
                             records and aggregations with groupBy for summaries"
                        ),
                    ));
                }
            }
        }
        Ok(true)
    }
}

fn from_json_at(value: &Value, prefix: &str, depth: usize) -> Result<QueryAst, QueryError> {
    let Value::Object(map) = value else {
        let (param, path) = if prefix.is_empty() {
            ("body", "body")
        } else {
            ("expand", prefix)
        };
        return Err(QueryError::new(
            QueryErrorKind::InvalidQuery,
            param,
            path,
            format!("expected a query object, got {}", describe(value)),
        ));
    };
    let mut builder = Builder::new(prefix, depth);
    for (key, v) in map {
        builder.apply(key, v)?;
    }
    Ok(builder.query)
}

fn err(kind: QueryErrorKind, param: &str, path: &str, message: impl Into<String>) -> QueryError {
    QueryError::new(kind, param, path, message)
}

/// Parses JSON text given in a query parameter where a structured value is expected.
fn json_text(
    text: &str,
    kind: QueryErrorKind,
    param: &str,
    path: &str,
    expected: &str,
) -> Result<Value, QueryError> {
    serde_json::from_str(text.trim()).map_err(|e| {
        err(
            kind,
            param,
            path,
            format!("expected {expected}, but the text is not valid JSON: {e}"),
        )
    })
}

/// Splits a comma-separated list, trimming items and dropping empty ones (trailing commas).
fn csv(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('[') || t.starts_with('{')
}

fn check_list_len(
    len: usize,
    kind: QueryErrorKind,
    param: &str,
    path: &str,
) -> Result<(), QueryError> {
    if len > MAX_LIST_ITEMS {
        return Err(err(
            kind,
            param,
            path,
            format!("at most {MAX_LIST_ITEMS} entries are accepted, got {len}"),
        ));
    }
    Ok(())
}

fn parse_fields(value: &Value, param: &str, path: &str) -> Result<Vec<FieldSelection>, QueryError> {
    const KIND: QueryErrorKind = QueryErrorKind::InvalidSelect;
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if looks_like_json(text) => {
            let parsed = json_text(text, KIND, param, path, "a list of field names")?;
            parse_fields(&parsed, param, path)
        }
        Value::String(text) if text.trim() == "*" => Ok(Vec::new()),
        Value::String(text) => {
            let names: Vec<&str> = csv(text).collect();
            check_list_len(names.len(), KIND, param, path)?;
            names
                .into_iter()
                .enumerate()
                .map(|(i, name)| {
                    if is_valid_field_path(name) {
                        Ok(FieldSelection::Field(name.to_owned()))
                    } else {
                        Err(err(
                            KIND,
                            param,
                            &format!("{path}[{i}]"),
                            field_name_message(name),
                        ))
                    }
                })
                .collect()
        }
        Value::Array(items) => {
            check_list_len(items.len(), KIND, param, path)?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_field_selection(item, param, &format!("{path}[{i}]"), 0))
                .collect()
        }
        other => Err(err(
            KIND,
            param,
            path,
            format!(
                "expected a comma-separated list or an array of field names, got {}",
                describe(other)
            ),
        )),
    }
}

fn parse_field_selection(
    value: &Value,
    param: &str,
    path: &str,
    depth: usize,
) -> Result<FieldSelection, QueryError> {
    const KIND: QueryErrorKind = QueryErrorKind::InvalidSelect;
    match value {
        Value::String(name) if is_valid_field_path(name) => Ok(FieldSelection::Field(name.clone())),
        Value::String(name) => Err(err(KIND, param, path, field_name_message(name))),
        Value::Object(map) => {
            let field = match map.get("field") {
                Some(Value::String(name)) if is_valid_field_path(name) => name.clone(),
                Some(Value::String(name)) => {
                    return Err(err(
                        KIND,
                        param,
                        &format!("{path}.field"),
                        field_name_message(name),
                    ));
                }
                _ => {
                    return Err(err(
                        KIND,
                        param,
                        path,
                        "a nested selection is written {\"field\": \"owner\", \"fields\": [\"name\"]}",
                    ));
                }
            };
            if depth >= MAX_EXPAND_DEPTH {
                return Err(err(
                    KIND,
                    param,
                    path,
                    format!("nested selections go at most {MAX_EXPAND_DEPTH} levels deep"),
                ));
            }
            let fields = match map.get("fields") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => {
                    check_list_len(items.len(), KIND, param, path)?;
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            parse_field_selection(
                                item,
                                param,
                                &format!("{path}.fields[{i}]"),
                                depth + 1,
                            )
                        })
                        .collect::<Result<_, _>>()?
                }
                Some(other) => {
                    return Err(err(
                        KIND,
                        param,
                        &format!("{path}.fields"),
                        format!("expected an array of field names, got {}", describe(other)),
                    ));
                }
            };
            Ok(FieldSelection::Nested { field, fields })
        }
        other => Err(err(
            KIND,
            param,
            path,
            format!(
                "expected a field name or {{\"field\", \"fields\"}}, got {}",
                describe(other)
            ),
        )),
    }
}

fn parse_sort(value: &Value, param: &str, path: &str) -> Result<Vec<SortNode>, QueryError> {
    const KIND: QueryErrorKind = QueryErrorKind::InvalidSort;
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if looks_like_json(text) => {
            let parsed = json_text(
                text,
                KIND,
                param,
                path,
                "a JSON array of {\"field\", \"order\"}",
            )?;
            parse_sort(&parsed, param, path)
        }
        Value::String(text) => {
            let items: Vec<&str> = csv(text).collect();
            check_list_len(items.len(), KIND, param, path)?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_sort_item(item, param, &format!("{path}[{i}]")))
                .collect()
        }
        Value::Array(items) => {
            check_list_len(items.len(), KIND, param, path)?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::String(text) => parse_sort_item(text, param, &item_path),
                        Value::Object(map) => parse_sort_object(map, param, &item_path),
                        other => Err(err(
                            KIND,
                            param,
                            &item_path,
                            format!(
                                "expected {{\"field\": \"name\", \"order\": \"asc\"}} or \"-name\", got {}",
                                describe(other)
                            ),
                        )),
                    }
                })
                .collect()
        }
        // The Mongo-style map form: {"amount": -1, "name": "asc"}.
        Value::Object(map) => {
            check_list_len(map.len(), KIND, param, path)?;
            map.iter()
                .map(|(field, dir)| {
                    let item_path = format!("{path}.{field}");
                    check_sort_field(field, param, &item_path)?;
                    Ok(SortNode::new(
                        field.clone(),
                        parse_direction(dir, param, &item_path)?,
                    ))
                })
                .collect()
        }
        other => Err(err(
            KIND,
            param,
            path,
            format!(
                "expected \"name asc,created_at desc\", \"-created_at\" or an array of \
                 {{\"field\", \"order\"}}, got {}",
                describe(other)
            ),
        )),
    }
}

fn check_sort_field(field: &str, param: &str, path: &str) -> Result<(), QueryError> {
    if is_valid_field_path(field) {
        Ok(())
    } else {
        Err(err(
            QueryErrorKind::InvalidSort,
            param,
            path,
            field_name_message(field),
        ))
    }
}

/// `name`, `-name`, `+name`, `name desc`.
fn parse_sort_item(text: &str, param: &str, path: &str) -> Result<SortNode, QueryError> {
    let text = text.trim();
    if let Some(field) = text.strip_prefix('-') {
        check_sort_field(field, param, path)?;
        return Ok(SortNode::new(field, SortOrder::Desc));
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    let mut words = text.split_whitespace();
    let field = words.next().unwrap_or_default();
    check_sort_field(field, param, path)?;
    let order = match words.next() {
        None => SortOrder::Asc,
        Some(word) => parse_direction(&Value::String(word.to_owned()), param, path)?,
    };
    if let Some(extra) = words.next() {
        return Err(err(
            QueryErrorKind::InvalidSort,
            param,
            path,
            format!(
                "unexpected {extra:?} after the direction; expected \"field\" or \"field asc|desc\""
            ),
        ));
    }
    Ok(SortNode::new(field, order))
}

fn parse_sort_object(
    map: &Map<String, Value>,
    param: &str,
    path: &str,
) -> Result<SortNode, QueryError> {
    let field = match map.get("field") {
        Some(Value::String(field)) => field,
        _ => {
            return Err(err(
                QueryErrorKind::InvalidSort,
                param,
                path,
                "a sort entry needs a field: {\"field\": \"name\", \"order\": \"asc\"}",
            ));
        }
    };
    check_sort_field(field, param, &format!("{path}.field"))?;
    let order = match map.get("order").or_else(|| map.get("direction")) {
        None | Some(Value::Null) => SortOrder::Asc,
        Some(dir) => parse_direction(dir, param, &format!("{path}.order"))?,
    };
    Ok(SortNode::new(field.clone(), order))
}

fn parse_direction(value: &Value, param: &str, path: &str) -> Result<SortOrder, QueryError> {
    let order = match value {
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "asc" | "ascending" => Some(SortOrder::Asc),
            "desc" | "descending" => Some(SortOrder::Desc),
            _ => None,
        },
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(SortOrder::Asc),
            Some(-1) => Some(SortOrder::Desc),
            _ => None,
        },
        _ => None,
    };
    order.ok_or_else(|| {
        err(
            QueryErrorKind::InvalidSort,
            param,
            path,
            format!("sort direction {value} is unknown; expected asc or desc"),
        )
    })
}

fn parse_integer(
    value: &Value,
    key: &str,
    max: u64,
    param: &str,
    path: &str,
) -> Result<u64, QueryError> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let Some(n) = parsed else {
        return Err(err(
            QueryErrorKind::InvalidPaging,
            param,
            path,
            format!(
                "{key} must be a non-negative integer, got {}",
                describe(value)
            ),
        ));
    };
    if n > max {
        return Err(err(
            QueryErrorKind::InvalidPaging,
            param,
            path,
            format!("{key} {n} is above the maximum of {max}"),
        ));
    }
    Ok(n)
}

fn parse_bool(value: &Value, param: &str, path: &str) -> Result<bool, QueryError> {
    let parsed = match value {
        Value::Bool(b) => Some(*b),
        Value::Null => Some(false),
        // A bare `?count` arrives as an empty string and means "yes".
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        err(
            QueryErrorKind::InvalidQuery,
            param,
            path,
            format!("expected true or false, got {}", describe(value)),
        )
    })
}

fn parse_search(value: &Value, param: &str, path: &str) -> Result<Option<SearchQuery>, QueryError> {
    const KIND: QueryErrorKind = QueryErrorKind::InvalidQuery;
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(SearchQuery {
            query: s.clone(),
            fields: Vec::new(),
            fuzzy: false,
        })),
        Value::Object(map) => {
            let query = match map.get("query") {
                Some(Value::String(s)) => s.clone(),
                other => {
                    return Err(err(
                        KIND,
                        param,
                        &format!("{path}.query"),
                        format!(
                            "search needs the text to look for as a string, got {}",
                            other.map_or("nothing".into(), describe)
                        ),
                    ));
                }
            };
            let fields = match map.get("fields") {
                None => Vec::new(),
                Some(v) => parse_names(v, param, &format!("{path}.fields"), KIND)?,
            };
            let fuzzy = match map.get("fuzzy") {
                None => false,
                Some(v) => parse_bool(v, param, &format!("{path}.fuzzy"))?,
            };
            Ok(Some(SearchQuery {
                query,
                fields,
                fuzzy,
            }))
        }
        other => Err(err(
            KIND,
            param,
            path,
            format!(
                "expected search text or {{\"query\", \"fields\", \"fuzzy\"}}, got {}",
                describe(other)
            ),
        )),
    }
}

/// A list of field names: CSV text, JSON array text, or an array.
fn parse_names(
    value: &Value,
    param: &str,
    path: &str,
    kind: QueryErrorKind,
) -> Result<Vec<String>, QueryError> {
    let names: Vec<(String, Value)> = match value {
        Value::Null => Vec::new(),
        Value::String(text) if looks_like_json(text) => {
            let parsed = json_text(text, kind, param, path, "a list of field names")?;
            return parse_names(&parsed, param, path, kind);
        }
        Value::String(text) => csv(text)
            .map(|s| (s.to_owned(), Value::String(s.to_owned())))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| (v.as_str().unwrap_or_default().to_owned(), v.clone()))
            .collect(),
        other => {
            return Err(err(
                kind,
                param,
                path,
                format!("expected a list of field names, got {}", describe(other)),
            ));
        }
    };
    check_list_len(names.len(), kind, param, path)?;
    names
        .into_iter()
        .enumerate()
        .map(|(i, (name, raw))| {
            let item_path = format!("{path}[{i}]");
            if !raw.is_string() {
                Err(err(
                    kind,
                    param,
                    &item_path,
                    format!("expected a field name, got {}", describe(&raw)),
                ))
            } else if !is_valid_field_path(&name) {
                Err(err(kind, param, &item_path, field_name_message(&name)))
            } else {
                Ok(name)
            }
        })
        .collect()
}

fn parse_aggregations(
    value: &Value,
    param: &str,
    path: &str,
) -> Result<Vec<Aggregation>, QueryError> {
    const KIND: QueryErrorKind = QueryErrorKind::InvalidAggregation;
    const SHAPE: &str = "an array of {\"function\", \"field\"?, \"alias\"} entries, e.g. \
         [{\"function\": \"sum\", \"field\": \"amount\", \"alias\": \"total\"}]";
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::String(text) => {
            let parsed = json_text(text, KIND, param, path, SHAPE)?;
            return parse_aggregations(&parsed, param, path);
        }
        Value::Array(items) => items,
        other => {
            return Err(err(
                KIND,
                param,
                path,
                format!("expected {SHAPE}, got {}", describe(other)),
            ));
        }
    };
    check_list_len(items.len(), KIND, param, path)?;
    let mut out: Vec<Aggregation> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Value::Object(map) = item else {
            return Err(err(
                KIND,
                param,
                &item_path,
                format!("expected {SHAPE}, got {}", describe(item)),
            ));
        };
        let function = match map.get("function") {
            Some(Value::String(f)) => AggregateFunction::parse(f).ok_or_else(|| {
                err(
                    KIND,
                    param,
                    &format!("{item_path}.function"),
                    format!(
                        "aggregate function {f:?} is unknown; expected one of count, sum, avg, \
                         min, max, count_distinct, array_agg, string_agg"
                    ),
                )
            })?,
            other => {
                return Err(err(
                    KIND,
                    param,
                    &format!("{item_path}.function"),
                    format!(
                        "an aggregation needs a function name, got {}",
                        other.map_or("nothing".into(), describe)
                    ),
                ));
            }
        };
        let field = match map.get("field") {
            None | Some(Value::Null) => None,
            Some(Value::String(f)) if is_valid_field_path(f) => Some(f.clone()),
            Some(Value::String(f)) => {
                return Err(err(
                    KIND,
                    param,
                    &format!("{item_path}.field"),
                    field_name_message(f),
                ));
            }
            Some(other) => {
                return Err(err(
                    KIND,
                    param,
                    &format!("{item_path}.field"),
                    format!("expected a field name, got {}", describe(other)),
                ));
            }
        };
        if field.is_none() && function != AggregateFunction::Count {
            return Err(err(
                KIND,
                param,
                &item_path,
                format!("aggregate function {} needs a field", function.as_str()),
            ));
        }
        let alias = match map.get("alias") {
            None | Some(Value::Null) => match &field {
                Some(f) => format!("{}_{}", function.as_str(), f.replace('.', "_")),
                None => function.as_str().to_owned(),
            },
            Some(Value::String(a)) if is_identifier(a) => a.clone(),
            Some(other) => {
                return Err(err(
                    KIND,
                    param,
                    &format!("{item_path}.alias"),
                    format!(
                        "alias must be a plain identifier (letters, digits, _), got {}",
                        describe(other)
                    ),
                ));
            }
        };
        if out.iter().any(|a| a.alias == alias) {
            return Err(err(
                KIND,
                param,
                &format!("{item_path}.alias"),
                format!("alias {alias} is used by an earlier aggregation; aliases must be unique"),
            ));
        }
        let distinct = match map.get("distinct") {
            None => false,
            Some(v) => parse_bool(v, param, &format!("{item_path}.distinct"))
                .map_err(|e| err(KIND, e.param(), e.path(), e.message()))?,
        };
        let filter = match map.get("filter") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Filter::parse_at(v, param, &format!("{item_path}.filter"))?),
        };
        out.push(Aggregation {
            function,
            field,
            alias,
            distinct,
            filter,
        });
    }
    Ok(out)
}

fn parse_expand(
    value: &Value,
    param: &str,
    path: &str,
    depth: usize,
    out: &mut IndexMap<String, QueryAst>,
) -> Result<(), QueryError> {
    const KIND: QueryErrorKind = QueryErrorKind::InvalidExpand;
    match value {
        Value::Null => Ok(()),
        Value::String(text) if looks_like_json(text) => {
            let parsed = json_text(text, KIND, param, path, "a list of lookup fields")?;
            parse_expand(&parsed, param, path, depth, out)
        }
        Value::String(text) => {
            for (i, item) in csv(text).enumerate() {
                insert_expand_path(item, param, &format!("{path}[{i}]"), depth, out)?;
            }
            check_list_len(out.len(), KIND, param, path)
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                match item {
                    Value::String(name) => insert_expand_path(name, param, &item_path, depth, out)?,
                    other => {
                        return Err(err(
                            KIND,
                            param,
                            &item_path,
                            format!("expected a lookup field name, got {}", describe(other)),
                        ));
                    }
                }
            }
            check_list_len(out.len(), KIND, param, path)
        }
        Value::Object(map) => {
            check_list_len(map.len(), KIND, param, path)?;
            if depth >= MAX_EXPAND_DEPTH {
                return Err(err(
                    KIND,
                    param,
                    path,
                    format!("expand goes at most {MAX_EXPAND_DEPTH} levels deep"),
                ));
            }
            for (field, sub) in map {
                let item_path = format!("{path}.{field}");
                if !is_identifier(field) {
                    return Err(err(
                        KIND,
                        param,
                        &item_path,
                        format!(
                            "expand key {field:?} must be a lookup field name; nest deeper \
                             lookups as {{\"owner\": {{\"expand\": {{\"manager\": {{}}}}}}}}"
                        ),
                    ));
                }
                let subquery = match sub {
                    Value::Bool(false) => continue,
                    Value::Null | Value::Bool(true) => QueryAst::default(),
                    Value::Object(_) => from_json_at(sub, &item_path, depth + 1)?,
                    other => {
                        return Err(err(
                            KIND,
                            param,
                            &item_path,
                            format!(
                                "expected a subquery object or true, got {}",
                                describe(other)
                            ),
                        ));
                    }
                };
                out.insert(field.clone(), subquery);
            }
            Ok(())
        }
        other => Err(err(
            KIND,
            param,
            path,
            format!(
                "expected a comma-separated list of lookup fields or an object of subqueries, got {}",
                describe(other)
            ),
        )),
    }
}

/// Inserts `owner.manager` as `{owner: {expand: {manager: {}}}}`, merging with what is there.
fn insert_expand_path(
    dotted: &str,
    param: &str,
    path: &str,
    depth: usize,
    out: &mut IndexMap<String, QueryAst>,
) -> Result<(), QueryError> {
    let segments: Vec<&str> = dotted.trim().split('.').collect();
    if let Some(bad) = segments.iter().find(|s| !is_identifier(s)) {
        return Err(err(
            QueryErrorKind::InvalidExpand,
            param,
            path,
            format!(
                "{:?} in expand {:?} is not a lookup field name; expected names such as owner or \
                 owner.manager",
                bad, dotted
            ),
        ));
    }
    if depth + segments.len() > MAX_EXPAND_DEPTH {
        return Err(err(
            QueryErrorKind::InvalidExpand,
            param,
            path,
            format!("expand goes at most {MAX_EXPAND_DEPTH} levels deep"),
        ));
    }
    let mut level = out;
    for segment in segments {
        level = &mut level.entry(segment.to_owned()).or_default().expand;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::query::{FilterValue, Operator};

    fn q(v: Value) -> QueryAst {
        match QueryAst::from_json(&v) {
            Ok(q) => q,
            Err(e) => panic!("{v} should parse: {e}"),
        }
    }

    fn fail(v: Value) -> (&'static str, String, String) {
        match QueryAst::from_json(&v) {
            Ok(q) => panic!("{v} should fail, got {q:?}"),
            Err(e) => (e.code(), e.param().to_owned(), e.to_string()),
        }
    }

    #[test]
    fn transcript_7c_body() {
        let query = q(json!({
            "where": {"status": "active", "amount": {"$gte": 100}},
            "orderBy": [{"field": "amount", "order": "desc"}],
            "limit": 5
        }));
        assert_eq!(
            query.filter,
            Filter::all([
                Filter::eq("status", "active"),
                Filter::condition("amount", Operator::Gte, FilterValue::Value(json!(100))),
            ])
        );
        assert_eq!(
            query.order_by,
            vec![SortNode::new("amount", SortOrder::Desc)]
        );
        assert_eq!(query.limit, Some(5));
        // Serialising gives the canonical spelling back.
        assert_eq!(
            serde_json::to_value(&query).unwrap(),
            json!({
                "where": {"$and": [{"status": "active"}, {"amount": {"$gte": 100}}]},
                "orderBy": [{"field": "amount", "order": "desc"}],
                "limit": 5
            })
        );
    }

    #[test]
    fn transcript_10b_aggregations_body() {
        let query: QueryAst =
            serde_json::from_value(json!({"aggregations": [{"function": "count", "alias": "n"}]}))
                .unwrap();
        assert_eq!(query.aggregations.len(), 1);
        assert_eq!(query.aggregations[0].function, AggregateFunction::Count);
        assert_eq!(query.aggregations[0].alias, "n");
    }

    #[test]
    fn protocol_example_and_aliases() {
        let query = q(json!({
            "object": "opportunity",
            "where": {"$and": [{"stage": {"$in": ["proposal"]}}, {"amount": {"$gte": 10000}}]},
            "orderBy": [{"field": "amount", "order": "desc"}],
            "top": 20,
            "skip": "40",
            "expand": {"owner": {"object": "user", "fields": ["name"], "expand": ["manager"]}},
            "count": true,
            "distinct": false,
            "search": {"query": "acme", "fields": ["name"], "fuzzy": true},
            "cursor": {"amount": 10, "id": "x"},
            "groupBy": ["stage"],
            "having": {"total": {"$gt": 5}},
            "aggregations": [
                {"function": "sum", "field": "amount", "alias": "total", "filter": ["won", "=", true]},
                {"function": "countDistinct", "field": "owner", "distinct": true},
                {"function": "count"}
            ],
            "fields": ["name", {"field": "owner", "fields": ["name", "email"]}],
            "joins": [],
            "unknownFutureKey": 1
        }));
        assert_eq!(query.object.as_deref(), Some("opportunity"));
        assert_eq!((query.limit, query.offset), (Some(20), Some(40)));
        let owner = &query.expand["owner"];
        assert_eq!(owner.object.as_deref(), Some("user"));
        assert_eq!(owner.fields, vec![FieldSelection::Field("name".into())]);
        assert_eq!(owner.expand.keys().collect::<Vec<_>>(), ["manager"]);
        assert!(query.count);
        assert_eq!(query.search.as_ref().map(|s| s.fuzzy), Some(true));
        assert!(matches!(query.cursor, Some(Cursor::Keyset(ref m)) if m.len() == 2));
        assert_eq!(query.having.fields().collect::<Vec<_>>(), ["total"]);
        assert_eq!(
            query.aggregations[1].function,
            AggregateFunction::CountDistinct
        );
        assert_eq!(query.aggregations[1].alias, "count_distinct_owner");
        assert_eq!(query.aggregations[2].alias, "count");
        assert_eq!(query.aggregations[0].filter, Some(Filter::eq("won", true)));

        // What serialises reads back identically.
        let text = serde_json::to_string(&query).unwrap();
        let back: QueryAst = serde_json::from_str(&text).unwrap();
        assert_eq!(back, query);

        // Other spellings of the same slots.
        let alt = q(
            json!({"filter": ["a", "=", 1], "sort": "-a", "$top": 3, "$skip": 1,
                           "populate": "owner", "select": "a,b", "filters": {"b": 2}}),
        );
        assert_eq!(
            alt.filter,
            Filter::all([Filter::eq("a", 1), Filter::eq("b", 2)])
        );
        assert_eq!(alt.order_by, vec![SortNode::new("a", SortOrder::Desc)]);
        assert_eq!((alt.limit, alt.offset), (Some(3), Some(1)));
        assert_eq!(alt.expand.keys().collect::<Vec<_>>(), ["owner"]);
        assert_eq!(alt.fields.len(), 2);
        assert_eq!(
            q(json!({"orderBy": {"amount": -1, "name": "asc"}})).order_by,
            vec![
                SortNode::new("amount", SortOrder::Desc),
                SortNode::new("name", SortOrder::Asc)
            ]
        );
        assert_eq!(
            q(json!({"expand": {"a": true, "b": false, "c": null}}))
                .expand
                .len(),
            2
        );
        assert_eq!(q(json!({})), QueryAst::default());
        assert_eq!(
            serde_json::to_value(QueryAst::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn body_errors() {
        let cases = [
            (
                json!([1]),
                "invalid_query",
                "body",
                "body: expected a query object, got an array",
            ),
            (
                json!({"limit": -5}),
                "invalid_paging",
                "limit",
                "limit: limit must be a non-negative integer, got the number -5",
            ),
            (
                json!({"limit": 2.5}),
                "invalid_paging",
                "limit",
                "limit: limit must be a non-negative integer, got the number 2.5",
            ),
            (
                json!({"limit": 1, "top": 2}),
                "invalid_query",
                "top",
                "top: top and limit mean the same thing; give only one of them",
            ),
            (
                json!({"where": {"a": {"$in": 1}}}),
                "invalid_filter",
                "where",
                "where.a: operator $in needs an array of values, got the number 1",
            ),
            (
                json!({"having": ["x", "??", 1]}),
                "invalid_filter",
                "having",
                "having[1]: operator ?? is unknown; expected one of =, ==, !=, <>, >, >=, <, <=, in, nin, not_in, between, contains, like, not_contains, starts_with, ends_with, is_null, is_not_null",
            ),
            (
                json!({"expand": {"owner": {"where": {"a": {"$bad": 1}}}}}),
                "invalid_filter",
                "expand",
                "expand.owner.where.a: operator $bad is unknown; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $between, $contains, $notContains, $startsWith, $endsWith, $null, $exists, $field, $not",
            ),
            (
                json!({"expand": {"owner": {"limit": 99999}}}),
                "invalid_paging",
                "expand",
                "expand.owner.limit: limit 99999 is above the maximum of 10000",
            ),
            (
                json!({"expand": {"owner": 3}}),
                "invalid_expand",
                "expand",
                "expand.owner: expected a subquery object or true, got the number 3",
            ),
            (
                json!({"expand": {"a": {"expand": {"b": {"expand": {"c": {"expand": {"d": {}}}}}}}}}),
                "invalid_expand",
                "expand",
                "expand.a.expand.b.expand.c.expand: expand goes at most 3 levels deep",
            ),
            (
                json!({"expand": {"a.b": {}}}),
                "invalid_expand",
                "expand",
                "expand.a.b: expand key \"a.b\" must be a lookup field name; nest deeper lookups as {\"owner\": {\"expand\": {\"manager\": {}}}}",
            ),
            (
                json!({"fields": [1]}),
                "invalid_select",
                "fields",
                "fields[0]: expected a field name or {\"field\", \"fields\"}, got the number 1",
            ),
            (
                json!({"fields": [{"fields": ["a"]}]}),
                "invalid_select",
                "fields",
                "fields[0]: a nested selection is written {\"field\": \"owner\", \"fields\": [\"name\"]}",
            ),
            (
                json!({"orderBy": [{"field": "a", "order": "up"}]}),
                "invalid_sort",
                "orderBy",
                "orderBy[0].order: sort direction \"up\" is unknown; expected asc or desc",
            ),
            (
                json!({"orderBy": [{"order": "asc"}]}),
                "invalid_sort",
                "orderBy",
                "orderBy[0]: a sort entry needs a field: {\"field\": \"name\", \"order\": \"asc\"}",
            ),
            (
                json!({"search": {"fields": ["a"]}}),
                "invalid_query",
                "search",
                "search.query: search needs the text to look for as a string, got nothing",
            ),
            (
                json!({"aggregations": {"function": "count"}}),
                "invalid_aggregation",
                "aggregations",
                "aggregations: expected an array of {\"function\", \"field\"?, \"alias\"} entries, e.g. [{\"function\": \"sum\", \"field\": \"amount\", \"alias\": \"total\"}], got an object",
            ),
            (
                json!({"aggregations": [{"function": "sum", "field": "a", "alias": "x y"}]}),
                "invalid_aggregation",
                "aggregations",
                "aggregations[0].alias: alias must be a plain identifier (letters, digits, _), got the string \"x y\"",
            ),
            (
                json!({"aggregations": [{"function": "sum", "field": "a", "distinct": "no way"}]}),
                "invalid_aggregation",
                "aggregations",
                "aggregations[0].distinct: expected true or false, got the string \"no way\"",
            ),
            (
                json!({"cursor": 5}),
                "invalid_paging",
                "cursor",
                "cursor: expected a cursor string or an object of key values, got the number 5",
            ),
            (
                json!({"windowFunctions": [{"function": "rank"}]}),
                "invalid_query",
                "windowFunctions",
                "windowFunctions: windowFunctions is not supported by this server; use expand for related records and aggregations with groupBy for summaries",
            ),
            (
                json!({"object": "no such"}),
                "invalid_query",
                "object",
                "object: expected an object name such as \"account\", got the string \"no such\"",
            ),
        ];
        for (input, code, param, message) in cases {
            let (c, p, m) = fail(input.clone());
            assert_eq!(
                (c, p.as_str(), m.as_str()),
                (code, param, message),
                "{input}"
            );
        }
        let serde_err = serde_json::from_value::<QueryAst>(json!({"limit": -1})).unwrap_err();
        assert_eq!(
            serde_err.to_string(),
            "limit: limit must be a non-negative integer, got the number -1"
        );
    }

    #[test]
    fn validate_against_known_fields() {
        let known = |f: &str| ["name", "amount", "owner", "stage"].contains(&f);
        let good = q(
            json!({"fields": ["name"], "where": {"amount": {"$gt": {"$field": "amount"}}},
                            "orderBy": "-name", "groupBy": ["stage"], "expand": "owner",
                            "aggregations": [{"function": "sum", "field": "amount"}]}),
        );
        assert_eq!(good.validate_against(&known), Ok(()));
        let cases = [
            (
                json!({"fields": ["nope"]}),
                "invalid_select",
                "fields: field \"nope\" does not exist on this object",
            ),
            (
                json!({"where": {"name": {"$gt": {"$field": "nope"}}}}),
                "invalid_filter",
                "where: field \"nope\" does not exist on this object",
            ),
            (
                json!({"orderBy": "nope"}),
                "invalid_sort",
                "orderBy: field \"nope\" does not exist on this object",
            ),
            (
                json!({"groupBy": "nope"}),
                "invalid_aggregation",
                "groupBy: field \"nope\" does not exist on this object",
            ),
            (
                json!({"aggregations": [{"function": "count", "filter": {"nope": 1}}]}),
                "invalid_aggregation",
                "aggregations: field \"nope\" does not exist on this object",
            ),
            (
                json!({"search": {"query": "x", "fields": ["nope"]}}),
                "invalid_query",
                "search: field \"nope\" does not exist on this object",
            ),
            (
                json!({"expand": ["nope"]}),
                "invalid_expand",
                "expand: field \"nope\" does not exist on this object",
            ),
        ];
        for (input, code, message) in cases {
            let e = q(input.clone()).validate_against(&known).unwrap_err();
            assert_eq!(
                (e.code(), e.to_string().as_str()),
                (code, message),
                "{input}"
            );
        }
    }

    #[test]
    fn json_schema_exports() {
        let schema = schemars::schema_for!(QueryAst);
        let value = serde_json::to_value(&schema).unwrap();
        let props = &value["properties"];
        for key in [
            "object",
            "fields",
            "where",
            "search",
            "orderBy",
            "limit",
            "offset",
            "cursor",
            "aggregations",
            "groupBy",
            "having",
            "distinct",
            "expand",
            "count",
        ] {
            assert!(props.get(key).is_some(), "schema lacks {key}: {value}");
        }
        assert_eq!(
            value.get("required"),
            None,
            "every key is optional: {value}"
        );
        let filter = serde_json::to_value(schemars::schema_for!(Filter)).unwrap();
        assert_eq!(filter["type"], json!(["object", "array", "null"]));
    }
}
