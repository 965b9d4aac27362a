//! Filters: the object form, prefix arrays and legacy infix arrays, all parsed into one normalised tree.
//!
//! Clients send filters in three shapes (see protocol.md section 2). Engines should never see that
//! variety, so [`Filter::parse`] turns all of them into [`Filter`], and [`Filter::to_json`] writes
//! the canonical object form back out. Parsing normalises: nested `$and`/`$or` are flattened,
//! single-child groups collapse, empty filters become [`Filter::True`], and equality with `null`
//! becomes `IsNull`, so `Filter::parse(&f.to_json()) == f` for every parsed filter `f`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::error::{QueryError, QueryErrorKind};

/// Deepest nesting of logic nodes accepted in one filter.
pub const MAX_FILTER_DEPTH: usize = 32;
/// Most conditions (leaves) accepted in one filter.
pub const MAX_FILTER_CONDITIONS: usize = 1000;
/// Most values accepted in one `$in`/`$nin` list.
pub const MAX_IN_VALUES: usize = 1000;
/// Most segments in a dotted field path: the field itself plus up to three lookups.
pub const MAX_FIELD_PATH_SEGMENTS: usize = 4;

const OBJECT_OPERATORS: &str = "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $between, $contains, \
     $notContains, $startsWith, $endsWith, $null, $exists, $field, $not";
const PREFIX_OPERATORS: &str = "=, ==, !=, <>, >, >=, <, <=, in, nin, not_in, between, contains, \
     like, not_contains, starts_with, ends_with, is_null, is_not_null";
const FIELD_NAME_RULE: &str = "expected letters, digits and _ starting with a letter or _, \
     optionally dotted through up to 3 lookups such as owner.name";

/// A normalised filter tree.
///
/// `True` is the empty filter that matches every record; it only appears at the root of a parsed
/// filter, never inside `And`, `Or` or `Not`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every child must match; always at least two children after parsing.
    And(Vec<Filter>),
    /// At least one child must match; always at least two children after parsing.
    Or(Vec<Filter>),
    /// The child must not match.
    Not(Box<Filter>),
    /// One comparison on one field.
    Condition(Condition),
    /// Matches everything.
    #[default]
    True,
}

/// One comparison: `field op value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// A field name or a dotted path through lookups (`owner.name`), exactly as the client wrote it.
    /// `_id` is kept as is; mapping it to the primary key is the engine's job.
    pub field: String,
    pub op: Operator,
    /// For `IsNull`/`IsNotNull` this is `null`; for `Exists` it is a boolean; for `In`/`Nin` an
    /// array of scalars; for `Between` an array of two scalars; otherwise a scalar or a field.
    pub value: FilterValue,
}

/// The right-hand side of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    /// A literal JSON value.
    Value(Value),
    /// Another field of the same record (`{"$field": "other"}`), for column-to-column comparisons.
    Field(String),
}

impl FilterValue {
    /// The literal, if this is not a field reference.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            Self::Value(v) => Some(v),
            Self::Field(_) => None,
        }
    }

    /// The referenced field, if this is a field reference.
    pub fn as_field(&self) -> Option<&str> {
        match self {
            Self::Field(f) => Some(f),
            Self::Value(_) => None,
        }
    }
}

/// Comparison operators of the normalised tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Between,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    IsNull,
    IsNotNull,
    Exists,
}

impl Operator {
    /// Every operator, in declaration order.
    pub const ALL: [Operator; 16] = [
        Self::Eq,
        Self::Ne,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::In,
        Self::Nin,
        Self::Between,
        Self::Contains,
        Self::NotContains,
        Self::StartsWith,
        Self::EndsWith,
        Self::IsNull,
        Self::IsNotNull,
        Self::Exists,
    ];

    /// The operator key of the object form. `IsNull` and `IsNotNull` share `$null` (with `true`
    /// and `false`).
    pub const fn object_key(self) -> &'static str {
        match self {
            Self::Eq => "$eq",
            Self::Ne => "$ne",
            Self::Gt => "$gt",
            Self::Gte => "$gte",
            Self::Lt => "$lt",
            Self::Lte => "$lte",
            Self::In => "$in",
            Self::Nin => "$nin",
            Self::Between => "$between",
            Self::Contains => "$contains",
            Self::NotContains => "$notContains",
            Self::StartsWith => "$startsWith",
            Self::EndsWith => "$endsWith",
            Self::IsNull | Self::IsNotNull => "$null",
            Self::Exists => "$exists",
        }
    }

    /// The snake_case name, as used by the prefix form and in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::In => "in",
            Self::Nin => "nin",
            Self::Between => "between",
            Self::Contains => "contains",
            Self::NotContains => "not_contains",
            Self::StartsWith => "starts_with",
            Self::EndsWith => "ends_with",
            Self::IsNull => "is_null",
            Self::IsNotNull => "is_not_null",
            Self::Exists => "exists",
        }
    }

    /// Whether the right-hand side may be another field (`{"$field": "other"}`).
    pub const fn accepts_field_ref(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Gt | Self::Gte | Self::Lt | Self::Lte
        )
    }

    fn from_object_key(key: &str) -> Option<Self> {
        Some(match key {
            "$eq" => Self::Eq,
            "$ne" => Self::Ne,
            "$gt" => Self::Gt,
            "$gte" => Self::Gte,
            "$lt" => Self::Lt,
            "$lte" => Self::Lte,
            "$in" => Self::In,
            "$nin" => Self::Nin,
            "$between" => Self::Between,
            "$contains" => Self::Contains,
            "$notContains" => Self::NotContains,
            "$startsWith" => Self::StartsWith,
            "$endsWith" => Self::EndsWith,
            _ => return None,
        })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator as written in the prefix form, before `like` patterns are resolved.
#[derive(Clone, Copy)]
enum PrefixOp {
    Op(Operator),
    Like,
    NotLike,
}

impl PrefixOp {
    fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        Some(match lower.as_str() {
            "=" | "==" | "eq" => Self::Op(Operator::Eq),
            "!=" | "<>" | "ne" => Self::Op(Operator::Ne),
            ">" | "gt" => Self::Op(Operator::Gt),
            ">=" | "gte" => Self::Op(Operator::Gte),
            "<" | "lt" => Self::Op(Operator::Lt),
            "<=" | "lte" => Self::Op(Operator::Lte),
            "in" => Self::Op(Operator::In),
            "nin" | "not_in" | "notin" => Self::Op(Operator::Nin),
            "between" => Self::Op(Operator::Between),
            "contains" => Self::Op(Operator::Contains),
            "not_contains" | "notcontains" => Self::Op(Operator::NotContains),
            "starts_with" | "startswith" => Self::Op(Operator::StartsWith),
            "ends_with" | "endswith" => Self::Op(Operator::EndsWith),
            "is_null" => Self::Op(Operator::IsNull),
            "is_not_null" => Self::Op(Operator::IsNotNull),
            "exists" => Self::Op(Operator::Exists),
            "like" => Self::Like,
            "not_like" | "notlike" => Self::NotLike,
            _ => return None,
        })
    }
}

/// Whether `name` is an acceptable field name or dotted lookup path (at most
/// [`MAX_FIELD_PATH_SEGMENTS`] segments, each `[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_valid_field_path(name: &str) -> bool {
    let mut segments = 0;
    for segment in name.split('.') {
        segments += 1;
        if segments > MAX_FIELD_PATH_SEGMENTS || !is_identifier(segment) {
            return false;
        }
    }
    true
}

/// Whether `name` is a single identifier `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The error message for a bad field name, shared with the other query parameters.
pub(crate) fn field_name_message(name: &str) -> String {
    format!(
        "field name {} is invalid; {FIELD_NAME_RULE}",
        Value::String(name.to_owned())
    )
}

/// A short description of a JSON value's type for error messages.
pub(crate) fn describe(value: &Value) -> Cow<'static, str> {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}").into(),
        Value::Number(n) => format!("the number {n}").into(),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {value}").into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

impl Filter {
    /// Parses a filter in any of the three forms; errors are located under `filter`.
    pub fn parse(value: &Value) -> Result<Filter, QueryError> {
        Self::parse_param(value, "filter")
    }

    /// Parses the JSON text of a query parameter such as `?filter=[...]`.
    pub fn parse_str(text: &str) -> Result<Filter, QueryError> {
        Self::parse_str_param(text, "filter")
    }

    /// Like [`Filter::parse`], with errors located under `param` (e.g. `where`, `having`, `$filter`).
    pub fn parse_param(value: &Value, param: &str) -> Result<Filter, QueryError> {
        Self::parse_at(value, param, param)
    }

    /// Parses with errors attributed to `param` and located under `root_path` (which differs from
    /// `param` inside expand subqueries, e.g. `expand.owner.where`).
    pub(crate) fn parse_at(
        value: &Value,
        param: &str,
        root_path: &str,
    ) -> Result<Filter, QueryError> {
        if value.is_null() {
            return Ok(Filter::True);
        }
        let mut parser = Parser {
            param,
            conditions: 0,
        };
        parser.node(value, root_path, 0)
    }

    /// Like [`Filter::parse_str`], with errors located under `param`.
    pub fn parse_str_param(text: &str, param: &str) -> Result<Filter, QueryError> {
        Self::parse_str_at(text, param, param)
    }

    /// Parses filter JSON text with errors attributed to `param` and located under `path`.
    pub(crate) fn parse_str_at(text: &str, param: &str, path: &str) -> Result<Filter, QueryError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(Filter::True);
        }
        let value: Value = serde_json::from_str(trimmed).map_err(|e| {
            // OData clients send `$filter=name eq 'x'`; say plainly that only JSON is understood.
            let hint = if param == "$filter" {
                "; OData expressions such as name eq 'x' are not supported"
            } else {
                ""
            };
            QueryError::new(
                QueryErrorKind::InvalidFilter,
                param,
                path,
                format!(
                    "expected the filter as JSON (an object such as {{\"status\":\"open\"}} or an \
                     array such as [\"amount\",\">\",100]), but it is not valid JSON: {e}{hint}"
                ),
            )
        })?;
        Self::parse_at(&value, param, path)
    }

    /// A single condition.
    pub fn condition(field: impl Into<String>, op: Operator, value: FilterValue) -> Filter {
        Filter::Condition(Condition {
            field: field.into(),
            op,
            value,
        })
    }

    /// `field = value`; a `null` value becomes `IsNull`, as the parser does.
    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        let value = value.into();
        if value.is_null() {
            Filter::condition(field, Operator::IsNull, FilterValue::Value(Value::Null))
        } else {
            Filter::condition(field, Operator::Eq, FilterValue::Value(value))
        }
    }

    /// Whether this is the match-everything filter.
    pub fn is_true(&self) -> bool {
        matches!(self, Filter::True)
    }

    /// Both filters must match; `True` is dropped and nested `And`s are flattened, so RLS
    /// policies can be ANDed in without growing the tree needlessly.
    pub fn and(self, other: Filter) -> Filter {
        Filter::all([self, other])
    }

    /// Either filter must match; `True` on either side makes the result `True`.
    pub fn or(self, other: Filter) -> Filter {
        any_of(vec![self, other])
    }

    /// The negation. Negating `True` yields `Not(True)`, which matches nothing; the parser never
    /// produces it, but engines must treat it as "no rows".
    pub fn negate(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// ANDs any number of filters with the same normalisation as [`Filter::and`].
    pub fn all(items: impl IntoIterator<Item = Filter>) -> Filter {
        let mut out = Vec::new();
        for item in items {
            match item {
                Filter::True => {}
                Filter::And(children) => out.extend(children),
                other => out.push(other),
            }
        }
        collapse(out, Filter::And)
    }

    /// Every field name the filter references, including the right-hand side of `{"$field": ...}`
    /// comparisons, in document order and with repeats. Use it to validate fields and check FLS.
    pub fn fields(&self) -> FilterFields<'_> {
        FilterFields {
            stack: vec![self],
            pending: None,
        }
    }

    /// Calls `f` on every field name (both sides of field comparisons), so an engine can rename
    /// fields in place, e.g. map `_id` to its primary key.
    pub fn for_each_field_mut(&mut self, f: &mut dyn FnMut(&mut String)) {
        match self {
            Filter::And(children) | Filter::Or(children) => {
                for child in children {
                    child.for_each_field_mut(f);
                }
            }
            Filter::Not(child) => child.for_each_field_mut(f),
            Filter::Condition(c) => {
                f(&mut c.field);
                if let FilterValue::Field(other) = &mut c.value {
                    f(other);
                }
            }
            Filter::True => {}
        }
    }

    /// How many conditions (leaves) the filter has.
    pub fn condition_count(&self) -> usize {
        match self {
            Filter::And(children) | Filter::Or(children) => {
                children.iter().map(Filter::condition_count).sum()
            }
            Filter::Not(child) => child.condition_count(),
            Filter::Condition(_) => 1,
            Filter::True => 0,
        }
    }

    /// The canonical object form (form A).
    pub fn to_json(&self) -> Value {
        match self {
            Filter::True => Value::Object(Map::new()),
            Filter::And(children) => {
                json!({ "$and": children.iter().map(Filter::to_json).collect::<Vec<_>>() })
            }
            Filter::Or(children) => {
                json!({ "$or": children.iter().map(Filter::to_json).collect::<Vec<_>>() })
            }
            Filter::Not(child) => json!({ "$not": child.to_json() }),
            Filter::Condition(c) => c.to_json(),
        }
    }
}

impl Condition {
    /// The canonical object form of this one condition: `{field: value}` for plain equality,
    /// otherwise `{field: {"$op": operand}}`.
    pub fn to_json(&self) -> Value {
        let operand = match &self.value {
            FilterValue::Field(other) => json!({ "$field": other }),
            FilterValue::Value(v) => v.clone(),
        };
        let inner = match (self.op, &self.value) {
            (Operator::Eq, FilterValue::Field(_)) => operand,
            (Operator::Eq, FilterValue::Value(v)) if is_scalar(v) && !v.is_null() => operand,
            (Operator::IsNull, _) => json!({ "$null": true }),
            (Operator::IsNotNull, _) => json!({ "$null": false }),
            (op, _) => {
                let mut m = Map::new();
                m.insert(op.object_key().to_owned(), operand);
                Value::Object(m)
            }
        };
        let mut m = Map::new();
        m.insert(self.field.clone(), inner);
        Value::Object(m)
    }
}

impl fmt::Display for Filter {
    /// The canonical object form as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Filter {
    fn schema_name() -> Cow<'static, str> {
        "Filter".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A filter in object form ({\"status\": \"open\", \"amount\": {\"$gte\": 100}}, with $and/$or/$not), prefix-array form ([\"amount\", \">\", 100], [\"and\", c1, c2]) or legacy infix form ([c1, \"and\", c2]).",
            "type": ["object", "array", "null"]
        })
    }
}

/// Iterator over the field names of a filter; see [`Filter::fields`].
#[derive(Debug)]
pub struct FilterFields<'a> {
    stack: Vec<&'a Filter>,
    pending: Option<&'a str>,
}

impl<'a> Iterator for FilterFields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if let Some(field) = self.pending.take() {
            return Some(field);
        }
        while let Some(node) = self.stack.pop() {
            match node {
                Filter::And(children) | Filter::Or(children) => {
                    self.stack.extend(children.iter().rev());
                }
                Filter::Not(child) => self.stack.push(child),
                Filter::Condition(c) => {
                    self.pending = c.value.as_field();
                    return Some(&c.field);
                }
                Filter::True => {}
            }
        }
        None
    }
}

/// ORs filters: `True` absorbs everything, nested `Or`s are flattened. `items` must not be empty.
fn any_of(items: Vec<Filter>) -> Filter {
    let mut out = Vec::new();
    for item in items {
        match item {
            Filter::True => return Filter::True,
            Filter::Or(children) => out.extend(children),
            other => out.push(other),
        }
    }
    collapse(out, Filter::Or)
}

fn collapse(mut items: Vec<Filter>, group: fn(Vec<Filter>) -> Filter) -> Filter {
    match items.len() {
        0 => Filter::True,
        1 => items.pop().unwrap_or_default(),
        _ => group(items),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// Recursive-descent state: which parameter we are in (for errors) and how many conditions so far.
struct Parser<'p> {
    param: &'p str,
    conditions: usize,
}

impl Parser<'_> {
    fn err(&self, path: &str, message: impl Into<String>) -> QueryError {
        QueryError::new(QueryErrorKind::InvalidFilter, self.param, path, message)
    }

    fn node(&mut self, value: &Value, path: &str, depth: usize) -> Result<Filter, QueryError> {
        if depth > MAX_FILTER_DEPTH {
            return Err(self.err(
                path,
                format!("filter is nested more than {MAX_FILTER_DEPTH} levels deep"),
            ));
        }
        match value {
            Value::Object(map) => self.object(map, path, depth),
            Value::Array(items) => self.array(items, path, depth),
            other => Err(self.err(
                path,
                format!(
                    "expected a filter (an object or an array), got {}",
                    describe(other)
                ),
            )),
        }
    }

    // ----- form A: objects -----

    fn object(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Filter, QueryError> {
        let mut parts = Vec::with_capacity(map.len());
        for (key, value) in map {
            let key_path = format!("{path}.{key}");
            match key.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = value else {
                        return Err(self.err(
                            &key_path,
                            format!("{key} needs an array of filters, got {}", describe(value)),
                        ));
                    };
                    let mut children = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        children.push(self.node(item, &format!("{key_path}[{i}]"), depth + 1)?);
                    }
                    if key == "$and" {
                        parts.push(Filter::all(children));
                    } else if children.is_empty() {
                        return Err(self.err(&key_path, "$or needs at least one filter"));
                    } else {
                        parts.push(any_of(children));
                    }
                }
                "$not" => {
                    let inner = self.node(value, &key_path, depth + 1)?;
                    parts.push(self.negate(inner, &key_path)?);
                }
                _ if key.starts_with('$') => {
                    return Err(self.err(
                        path,
                        format!(
                            "operator {key} is unknown here; expected $and, $or, $not or a field name"
                        ),
                    ));
                }
                _ => {
                    self.check_field(key, &key_path)?;
                    parts.push(self.field_value(key, value, &key_path, depth)?);
                }
            }
        }
        Ok(Filter::all(parts))
    }

    fn negate(&self, inner: Filter, path: &str) -> Result<Filter, QueryError> {
        if inner.is_true() {
            return Err(self.err(
                path,
                "$not of an empty filter would match nothing; give the filter to negate",
            ));
        }
        Ok(inner.negate())
    }

    /// The value under a field key: a scalar (equality) or an operator object.
    fn field_value(
        &mut self,
        field: &str,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Filter, QueryError> {
        match value {
            Value::Object(ops) => self.operator_object(field, ops, path, depth),
            Value::Array(_) => Err(self.err(
                path,
                "expected a scalar value or an operator object, got an array; to match any of a \
                 list use {\"$in\": [...]}",
            )),
            scalar => self.leaf(
                field,
                Operator::Eq,
                FilterValue::Value(scalar.clone()),
                path,
            ),
        }
    }

    fn operator_object(
        &mut self,
        field: &str,
        ops: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Filter, QueryError> {
        if ops.is_empty() {
            return Err(self.err(
                path,
                format!("operator object is empty; expected one of {OBJECT_OPERATORS}"),
            ));
        }
        if !ops.keys().any(|k| k.starts_with('$')) {
            return Err(self.err(
                path,
                "objects are not filter values; expected a scalar or an operator object such as \
                 {\"$gt\": 1} (to filter through a lookup use a dotted path such as owner.name)",
            ));
        }
        let mut parts = Vec::with_capacity(ops.len());
        for (key, value) in ops {
            let part = match key.as_str() {
                "$null" => match value {
                    Value::Bool(true) => self.leaf(field, Operator::IsNull, null(), path)?,
                    Value::Bool(false) => self.leaf(field, Operator::IsNotNull, null(), path)?,
                    other => {
                        return Err(self.err(
                            path,
                            format!(
                                "operator $null needs true or false, got {}",
                                describe(other)
                            ),
                        ));
                    }
                },
                "$exists" => match value {
                    Value::Bool(_) => self.leaf(
                        field,
                        Operator::Exists,
                        FilterValue::Value(value.clone()),
                        path,
                    )?,
                    other => {
                        return Err(self.err(
                            path,
                            format!(
                                "operator $exists needs true or false, got {}",
                                describe(other)
                            ),
                        ));
                    }
                },
                "$field" => {
                    let operand =
                        self.operand(Operator::Eq, "$eq", &json!({"$field": value}), path)?;
                    self.leaf(field, Operator::Eq, operand, path)?
                }
                "$not" => {
                    if depth + 1 > MAX_FILTER_DEPTH {
                        return Err(self.err(
                            path,
                            format!("filter is nested more than {MAX_FILTER_DEPTH} levels deep"),
                        ));
                    }
                    let inner = self.field_value(field, value, path, depth + 1)?;
                    self.negate(inner, path)?
                }
                _ => {
                    let Some(op) = Operator::from_object_key(key) else {
                        return Err(self.err(
                            path,
                            if key.starts_with('$') {
                                format!(
                                    "operator {key} is unknown; expected one of {OBJECT_OPERATORS}"
                                )
                            } else {
                                format!(
                                    "key {key} cannot be mixed with operators; an operator object \
                                     holds only keys such as $gt"
                                )
                            },
                        ));
                    };
                    let operand = self.operand(op, key, value, path)?;
                    self.leaf(field, op, operand, path)?
                }
            };
            parts.push(part);
        }
        Ok(Filter::all(parts))
    }

    // ----- forms B and C: arrays -----

    fn array(&mut self, items: &[Value], path: &str, depth: usize) -> Result<Filter, QueryError> {
        let Some(first) = items.first() else {
            return Ok(Filter::True);
        };
        if let Value::String(head) = first {
            return self.string_headed(head, items, path, depth);
        }
        // A list of nodes: legacy infix when "and"/"or" words sit between them, else implicit AND.
        let infix = items.iter().skip(1).step_by(2).any(Value::is_string);
        if infix {
            return self.infix(items, path, depth);
        }
        let mut children = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            children.push(self.node(item, &format!("{path}[{i}]"), depth + 1)?);
        }
        Ok(Filter::all(children))
    }

    /// An array starting with a string: a condition `[field, op, value]` or a logic node.
    fn string_headed(
        &mut self,
        head: &str,
        items: &[Value],
        path: &str,
        depth: usize,
    ) -> Result<Filter, QueryError> {
        // A known operator in second place makes this a condition even when the field is called
        // "and" or "or"; that is the only reading under which such an array makes sense.
        let op_text = items.get(1).and_then(Value::as_str);
        let prefix_op = op_text.and_then(PrefixOp::parse);
        if let (Some(op_text), Some(op)) = (op_text, prefix_op) {
            if items.len() > 3 {
                return Err(self.err(
                    path,
                    format!(
                        "a condition has 3 elements [field, operator, value], got {}",
                        items.len()
                    ),
                ));
            }
            return self.prefix_condition(head, op, op_text, items.get(2), path);
        }
        match head.to_ascii_lowercase().as_str() {
            "and" | "or" | "not" => {
                let word = head.to_ascii_lowercase();
                let mut children = Vec::with_capacity(items.len() - 1);
                for (i, item) in items.iter().enumerate().skip(1) {
                    children.push(self.node(item, &format!("{path}[{i}]"), depth + 1)?);
                }
                match word.as_str() {
                    "and" => Ok(Filter::all(children)),
                    "or" if children.is_empty() => {
                        Err(self.err(path, "[\"or\", ...] needs at least one filter"))
                    }
                    "or" => Ok(any_of(children)),
                    _ => {
                        if children.len() != 1 {
                            return Err(self.err(
                                path,
                                format!(
                                    "[\"not\", filter] takes exactly one filter, got {}",
                                    children.len()
                                ),
                            ));
                        }
                        let inner = children.pop().unwrap_or_default();
                        self.negate(inner, path)
                    }
                }
            }
            _ => match op_text {
                Some(op_text) => Err(self.err(
                    &format!("{path}[1]"),
                    format!("operator {op_text} is unknown; expected one of {PREFIX_OPERATORS}"),
                )),
                None if items.len() == 1 => Err(self.err(
                    path,
                    format!(
                        "condition [{}] has no operator; expected [field, operator, value]",
                        Value::String(head.to_owned())
                    ),
                )),
                None => Err(self.err(
                    path,
                    "expected a condition [field, operator, value], a logic node [\"and\"|\"or\", \
                     ...] or a list of filters",
                )),
            },
        }
    }

    fn prefix_condition(
        &mut self,
        field: &str,
        op: PrefixOp,
        op_text: &str,
        value: Option<&Value>,
        path: &str,
    ) -> Result<Filter, QueryError> {
        self.check_field(field, &format!("{path}[0]"))?;
        let value_path = format!("{path}[2]");
        match op {
            PrefixOp::Op(op @ (Operator::IsNull | Operator::IsNotNull)) => {
                let positive = match value {
                    None | Some(Value::Null) | Some(Value::Bool(true)) => true,
                    Some(Value::Bool(false)) => false,
                    Some(other) => {
                        return Err(self.err(
                            &value_path,
                            format!(
                                "operator {op_text} takes no value or a boolean, got {}",
                                describe(other)
                            ),
                        ));
                    }
                };
                let is_null = (op == Operator::IsNull) == positive;
                let op = if is_null {
                    Operator::IsNull
                } else {
                    Operator::IsNotNull
                };
                self.leaf(field, op, null(), path)
            }
            PrefixOp::Op(Operator::Exists) => match value {
                None | Some(Value::Null) => self.leaf(
                    field,
                    Operator::Exists,
                    FilterValue::Value(Value::Bool(true)),
                    path,
                ),
                Some(b @ Value::Bool(_)) => {
                    self.leaf(field, Operator::Exists, FilterValue::Value(b.clone()), path)
                }
                Some(other) => Err(self.err(
                    &value_path,
                    format!(
                        "operator {op_text} takes no value or a boolean, got {}",
                        describe(other)
                    ),
                )),
            },
            PrefixOp::Op(op) => {
                let Some(value) = value else {
                    return Err(self.err(
                        path,
                        format!(
                            "operator {op_text} needs a value: [field, {}, value]",
                            Value::String(op_text.to_owned())
                        ),
                    ));
                };
                let operand = self.operand(op, op_text, value, &value_path)?;
                self.leaf(field, op, operand, path)
            }
            like @ (PrefixOp::Like | PrefixOp::NotLike) => {
                let Some(Value::String(pattern)) = value else {
                    return Err(self.err(
                        &value_path,
                        format!(
                            "operator {op_text} needs a string pattern, got {}",
                            value.map_or(Cow::Borrowed("nothing"), describe)
                        ),
                    ));
                };
                let (like_op, text) = like_to_op(pattern).ok_or_else(|| {
                    self.err(
                        &value_path,
                        format!(
                            "like pattern {} has a % inside the text; only leading and trailing % \
                             are supported (use contains, starts_with or ends_with)",
                            Value::String(pattern.clone())
                        ),
                    )
                })?;
                let text = FilterValue::Value(Value::String(text));
                match (like, like_op) {
                    (PrefixOp::NotLike, Operator::Contains) => {
                        self.leaf(field, Operator::NotContains, text, path)
                    }
                    (PrefixOp::NotLike, _) => Ok(self.leaf(field, like_op, text, path)?.negate()),
                    _ => self.leaf(field, like_op, text, path),
                }
            }
        }
    }

    /// Legacy infix: `[n0, "and"|"or", n1, ...]`, where "and" binds tighter than "or".
    fn infix(&mut self, items: &[Value], path: &str, depth: usize) -> Result<Filter, QueryError> {
        if items.len().is_multiple_of(2) {
            let last = items.len() - 1;
            return Err(self.err(
                &format!("{path}[{last}]"),
                "an infix filter must alternate filter, \"and\"/\"or\", filter, ... and end with a \
                 filter",
            ));
        }
        let first = self.node(&items[0], &format!("{path}[0]"), depth + 1)?;
        let mut groups: Vec<Vec<Filter>> = vec![vec![first]];
        for i in (1..items.len()).step_by(2) {
            let word = match &items[i] {
                Value::String(s) => s.to_ascii_lowercase(),
                other => {
                    return Err(self.err(
                        &format!("{path}[{i}]"),
                        format!(
                            "expected \"and\" or \"or\" between filters, got {}",
                            describe(other)
                        ),
                    ));
                }
            };
            if word != "and" && word != "or" {
                return Err(self.err(
                    &format!("{path}[{i}]"),
                    format!(
                        "expected \"and\" or \"or\" between filters, got {}",
                        describe(&items[i])
                    ),
                ));
            }
            let node = self.node(&items[i + 1], &format!("{path}[{}]", i + 1), depth + 1)?;
            if word == "or" {
                groups.push(vec![node]);
            } else if let Some(group) = groups.last_mut() {
                group.push(node);
            }
        }
        Ok(any_of(groups.into_iter().map(Filter::all).collect()))
    }

    // ----- leaves -----

    fn check_field(&self, field: &str, path: &str) -> Result<(), QueryError> {
        if is_valid_field_path(field) {
            Ok(())
        } else {
            Err(self.err(path, field_name_message(field)))
        }
    }

    /// Counts and normalises one condition.
    fn leaf(
        &mut self,
        field: &str,
        op: Operator,
        value: FilterValue,
        path: &str,
    ) -> Result<Filter, QueryError> {
        self.conditions += 1;
        if self.conditions > MAX_FILTER_CONDITIONS {
            return Err(self.err(
                path,
                format!("filter has more than {MAX_FILTER_CONDITIONS} conditions"),
            ));
        }
        // Equality with null can never be true in SQL, so it is normalised to the null tests.
        let op = match (op, &value) {
            (Operator::Eq, FilterValue::Value(Value::Null)) => Operator::IsNull,
            (Operator::Ne, FilterValue::Value(Value::Null)) => Operator::IsNotNull,
            (op, _) => op,
        };
        Ok(Filter::condition(field, op, value))
    }

    /// Checks the right-hand side of `op`; `name` is the operator as the client wrote it.
    fn operand(
        &self,
        op: Operator,
        name: &str,
        value: &Value,
        path: &str,
    ) -> Result<FilterValue, QueryError> {
        if let Value::Object(map) = value
            && map.contains_key("$field")
        {
            let other = match (map.len(), map.get("$field")) {
                (1, Some(Value::String(other))) => other,
                _ => {
                    return Err(self.err(
                        path,
                        "a field reference is written {\"$field\": \"other_field\"}",
                    ));
                }
            };
            if !op.accepts_field_ref() {
                return Err(self.err(
                    path,
                    format!(
                        "operator {name} cannot compare with another field; only =, !=, >, >=, <, \
                         <= can"
                    ),
                ));
            }
            self.check_field(other, path)?;
            return Ok(FilterValue::Field(other.clone()));
        }
        match op {
            Operator::In | Operator::Nin => {
                let Value::Array(items) = value else {
                    return Err(self.err(
                        path,
                        format!(
                            "operator {name} needs an array of values, got {}",
                            describe(value)
                        ),
                    ));
                };
                if items.len() > MAX_IN_VALUES {
                    return Err(self.err(
                        path,
                        format!(
                            "operator {name} accepts at most {MAX_IN_VALUES} values, got {}",
                            items.len()
                        ),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    if !is_scalar(item) {
                        return Err(self.err(
                            path,
                            format!(
                                "operator {name} needs scalar values; item [{i}] is {}",
                                describe(item)
                            ),
                        ));
                    }
                }
            }
            Operator::Between => {
                let Value::Array(items) = value else {
                    return Err(self.err(
                        path,
                        format!(
                            "operator {name} needs exactly 2 values [low, high], got {}",
                            describe(value)
                        ),
                    ));
                };
                if items.len() != 2 {
                    return Err(self.err(
                        path,
                        format!(
                            "operator {name} needs exactly 2 values [low, high], got {}",
                            items.len()
                        ),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    if !is_scalar(item) || item.is_null() {
                        return Err(self.err(
                            path,
                            format!(
                                "operator {name} needs non-null scalar bounds; item [{i}] is {}",
                                describe(item)
                            ),
                        ));
                    }
                }
            }
            _ => {
                if !is_scalar(value) {
                    return Err(self.err(
                        path,
                        format!(
                            "operator {name} needs a scalar value (string, number or boolean), got {}",
                            describe(value)
                        ),
                    ));
                }
                if value.is_null() && !matches!(op, Operator::Eq | Operator::Ne) {
                    return Err(self.err(path, format!("operator {name} needs a non-null value")));
                }
            }
        }
        Ok(FilterValue::Value(value.clone()))
    }
}

fn null() -> FilterValue {
    FilterValue::Value(Value::Null)
}

/// Maps a SQL `like` pattern to an operator: `%x%` and `x` are contains (the spec's mapping),
/// `x%` is starts-with and `%x` is ends-with. `None` when a `%` sits inside the text.
fn like_to_op(pattern: &str) -> Option<(Operator, String)> {
    let core = pattern.trim_matches('%');
    if core.contains('%') {
        return None;
    }
    let leading = pattern.starts_with('%');
    let trailing = pattern.ends_with('%') && !core.is_empty();
    let op = match (leading, trailing) {
        (false, true) => Operator::StartsWith,
        (true, false) if !core.is_empty() => Operator::EndsWith,
        _ => Operator::Contains,
    };
    Some((op, core.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Filter {
        match Filter::parse(&v) {
            Ok(f) => f,
            Err(e) => panic!("{v} should parse: {e}"),
        }
    }

    fn e(v: Value) -> String {
        match Filter::parse(&v) {
            Ok(f) => panic!("{v} should fail, parsed as {f:?}"),
            Err(e) => {
                assert_eq!(e.code(), "invalid_filter");
                assert_eq!(e.param(), "filter");
                e.to_string()
            }
        }
    }

    fn c(field: &str, op: Operator, value: Value) -> Filter {
        Filter::condition(field, op, FilterValue::Value(value))
    }

    fn cf(field: &str, op: Operator, other: &str) -> Filter {
        Filter::condition(field, op, FilterValue::Field(other.to_owned()))
    }

    #[test]
    fn object_form_every_operator() {
        use Operator::*;
        let cases = [
            (json!({"a": 1}), c("a", Eq, json!(1))),
            (json!({"a": {"$eq": "x"}}), c("a", Eq, json!("x"))),
            (json!({"a": {"$ne": true}}), c("a", Ne, json!(true))),
            (json!({"a": {"$gt": 1.5}}), c("a", Gt, json!(1.5))),
            (json!({"a": {"$gte": 2}}), c("a", Gte, json!(2))),
            (
                json!({"a": {"$lt": "2024-01-01"}}),
                c("a", Lt, json!("2024-01-01")),
            ),
            (json!({"a": {"$lte": 3}}), c("a", Lte, json!(3))),
            (
                json!({"a": {"$in": [1, "b", null]}}),
                c("a", In, json!([1, "b", null])),
            ),
            (json!({"a": {"$nin": []}}), c("a", Nin, json!([]))),
            (
                json!({"a": {"$between": [1, 9]}}),
                c("a", Between, json!([1, 9])),
            ),
            (
                json!({"a": {"$contains": "x"}}),
                c("a", Contains, json!("x")),
            ),
            (
                json!({"a": {"$notContains": "x"}}),
                c("a", NotContains, json!("x")),
            ),
            (
                json!({"a": {"$startsWith": "x"}}),
                c("a", StartsWith, json!("x")),
            ),
            (
                json!({"a": {"$endsWith": "x"}}),
                c("a", EndsWith, json!("x")),
            ),
            (json!({"a": {"$null": true}}), c("a", IsNull, Value::Null)),
            (
                json!({"a": {"$null": false}}),
                c("a", IsNotNull, Value::Null),
            ),
            (
                json!({"a": {"$exists": false}}),
                c("a", Exists, json!(false)),
            ),
            (json!({"a": null}), c("a", IsNull, Value::Null)),
            (json!({"a": {"$eq": null}}), c("a", IsNull, Value::Null)),
            (json!({"a": {"$ne": null}}), c("a", IsNotNull, Value::Null)),
            (json!({"a": {"$field": "b"}}), cf("a", Eq, "b")),
            (json!({"a": {"$gt": {"$field": "b"}}}), cf("a", Gt, "b")),
            (
                json!({"a": {"$not": {"$gt": 5}}}),
                c("a", Gt, json!(5)).negate(),
            ),
            (json!({"a": {"$not": 5}}), c("a", Eq, json!(5)).negate()),
        ];
        for (input, expected) in cases {
            assert_eq!(p(input.clone()), expected, "{input}");
        }
    }

    #[test]
    fn object_form_logic_and_shorthand() {
        assert_eq!(p(json!({})), Filter::True);
        assert_eq!(p(Value::Null), Filter::True);
        assert_eq!(
            p(json!({"status": "active", "amount": {"$gte": 100}})),
            Filter::And(vec![
                c("status", Operator::Eq, json!("active")),
                c("amount", Operator::Gte, json!(100)),
            ])
        );
        // Several operators on one field are ANDed.
        assert_eq!(
            p(json!({"amount": {"$gte": 1, "$lt": 5}})),
            Filter::And(vec![
                c("amount", Operator::Gte, json!(1)),
                c("amount", Operator::Lt, json!(5)),
            ])
        );
        // Nested $and flattens, single-child groups collapse, empty $and is True.
        assert_eq!(
            p(json!({"$and": [{"$and": [{"a": 1}, {"b": 2}]}, {"$or": [{"c": 3}]}, {"$and": []}]})),
            Filter::And(vec![
                c("a", Operator::Eq, json!(1)),
                c("b", Operator::Eq, json!(2)),
                c("c", Operator::Eq, json!(3)),
            ])
        );
        assert_eq!(
            p(json!({"$or": [{"a": 1}, {"$or": [{"b": 2}, {"c": 3}]}]})),
            Filter::Or(vec![
                c("a", Operator::Eq, json!(1)),
                c("b", Operator::Eq, json!(2)),
                c("c", Operator::Eq, json!(3)),
            ])
        );
        assert_eq!(
            p(json!({"$not": {"$or": [{"a": 1}, {"b": 2}]}})),
            Filter::Or(vec![
                c("a", Operator::Eq, json!(1)),
                c("b", Operator::Eq, json!(2))
            ])
            .negate()
        );
        // `_id` and dotted lookup paths stay as written.
        assert_eq!(p(json!({"_id": "x1"})), c("_id", Operator::Eq, json!("x1")));
        assert_eq!(
            p(json!({"account.owner.name": "Ann"})),
            c("account.owner.name", Operator::Eq, json!("Ann"))
        );
    }

    #[test]
    fn protocol_example_filter() {
        let f = p(json!({"$and":[{"stage":{"$in":["proposal"]}},{"amount":{"$gte":10000}}]}));
        assert_eq!(
            f,
            Filter::And(vec![
                c("stage", Operator::In, json!(["proposal"])),
                c("amount", Operator::Gte, json!(10000)),
            ])
        );
    }

    #[test]
    fn prefix_form_every_operator() {
        use Operator::*;
        let cases = [
            (json!(["a", "=", 1]), c("a", Eq, json!(1))),
            (json!(["a", "==", 1]), c("a", Eq, json!(1))),
            (json!(["a", "!=", 1]), c("a", Ne, json!(1))),
            (json!(["a", "<>", 1]), c("a", Ne, json!(1))),
            (json!(["a", ">", 1]), c("a", Gt, json!(1))),
            (json!(["a", ">=", 1]), c("a", Gte, json!(1))),
            (json!(["a", "<", 1]), c("a", Lt, json!(1))),
            (json!(["a", "<=", 1]), c("a", Lte, json!(1))),
            (json!(["a", "in", [1, 2]]), c("a", In, json!([1, 2]))),
            (json!(["a", "IN", [1, 2]]), c("a", In, json!([1, 2]))),
            (json!(["a", "nin", [1]]), c("a", Nin, json!([1]))),
            (json!(["a", "not_in", [1]]), c("a", Nin, json!([1]))),
            (
                json!(["a", "between", [1, 2]]),
                c("a", Between, json!([1, 2])),
            ),
            (json!(["a", "contains", "x"]), c("a", Contains, json!("x"))),
            (
                json!(["a", "not_contains", "x"]),
                c("a", NotContains, json!("x")),
            ),
            (
                json!(["a", "starts_with", "x"]),
                c("a", StartsWith, json!("x")),
            ),
            (json!(["a", "ends_with", "x"]), c("a", EndsWith, json!("x"))),
            (json!(["a", "is_null"]), c("a", IsNull, Value::Null)),
            (json!(["a", "is_null", true]), c("a", IsNull, Value::Null)),
            (json!(["a", "is_null", null]), c("a", IsNull, Value::Null)),
            (
                json!(["a", "is_null", false]),
                c("a", IsNotNull, Value::Null),
            ),
            (json!(["a", "is_not_null"]), c("a", IsNotNull, Value::Null)),
            (
                json!(["a", "is_not_null", false]),
                c("a", IsNull, Value::Null),
            ),
            (json!(["a", "=", null]), c("a", IsNull, Value::Null)),
            (json!(["a", ">", {"$field": "b"}]), cf("a", Gt, "b")),
            (
                json!(["a", "like", "%ann%"]),
                c("a", Contains, json!("ann")),
            ),
            (json!(["a", "like", "ann"]), c("a", Contains, json!("ann"))),
            (
                json!(["a", "like", "ann%"]),
                c("a", StartsWith, json!("ann")),
            ),
            (json!(["a", "like", "%ann"]), c("a", EndsWith, json!("ann"))),
            (
                json!(["a", "not_like", "%ann%"]),
                c("a", NotContains, json!("ann")),
            ),
            (
                json!(["a", "not_like", "ann%"]),
                c("a", StartsWith, json!("ann")).negate(),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(p(input.clone()), expected, "{input}");
        }
    }

    #[test]
    fn prefix_form_logic_and_ambiguity() {
        let a = c("a", Operator::Eq, json!(1));
        let b = c("b", Operator::Gt, json!(2));
        assert_eq!(
            p(json!(["and", ["a", "=", 1], ["b", ">", 2]])),
            Filter::And(vec![a.clone(), b.clone()])
        );
        assert_eq!(
            p(json!(["or", ["a", "=", 1], ["b", ">", 2]])),
            Filter::Or(vec![a.clone(), b.clone()])
        );
        assert_eq!(p(json!(["not", ["a", "=", 1]])), a.clone().negate());
        // A bare list of conditions is an implicit AND; objects may be mixed in.
        assert_eq!(
            p(json!([["a", "=", 1], {"b": {"$gt": 2}}])),
            Filter::And(vec![a.clone(), b.clone()])
        );
        assert_eq!(p(json!([])), Filter::True);
        // A known operator in second place wins: this is a condition on a field called "and".
        assert_eq!(p(json!(["and", "=", 1])), c("and", Operator::Eq, json!(1)));
        assert_eq!(p(json!(["or", ["a", "=", 1]])), a.clone());
        assert_eq!(
            p(json!([
                "and",
                ["or", ["a", "=", 1], ["b", ">", 2]],
                ["c", "in", [1]]
            ])),
            Filter::And(vec![
                Filter::Or(vec![a.clone(), b.clone()]),
                c("c", Operator::In, json!([1]))
            ])
        );
    }

    #[test]
    fn infix_form_and_precedence() {
        let a = c("a", Operator::Eq, json!(1));
        let b = c("b", Operator::Gt, json!(2));
        let cc = c("c", Operator::Lt, json!(3));
        assert_eq!(
            p(json!([["a", "=", 1], "and", ["b", ">", 2]])),
            Filter::And(vec![a.clone(), b.clone()])
        );
        assert_eq!(
            p(json!([["a", "=", 1], "OR", ["b", ">", 2]])),
            Filter::Or(vec![a.clone(), b.clone()])
        );
        // "and" binds tighter than "or", on either side.
        assert_eq!(
            p(json!([
                ["a", "=", 1],
                "or",
                ["b", ">", 2],
                "and",
                ["c", "<", 3]
            ])),
            Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), cc.clone()])])
        );
        assert_eq!(
            p(json!([
                ["a", "=", 1],
                "and",
                ["b", ">", 2],
                "or",
                ["c", "<", 3]
            ])),
            Filter::Or(vec![Filter::And(vec![a.clone(), b.clone()]), cc.clone()])
        );
        // Parenthesised groups are nested arrays.
        assert_eq!(
            p(json!([
                ["a", "=", 1],
                "and",
                [["b", ">", 2], "or", ["c", "<", 3]]
            ])),
            Filter::And(vec![a.clone(), Filter::Or(vec![b.clone(), cc.clone()])])
        );
    }

    #[test]
    fn error_messages() {
        let cases = [
            (
                json!({"$and": [{"a": 1}, {"amount": {"$gtx": 1}}]}),
                "filter.$and[1].amount: operator $gtx is unknown; expected one of $eq, $ne, $gt, \
                 $gte, $lt, $lte, $in, $nin, $between, $contains, $notContains, $startsWith, \
                 $endsWith, $null, $exists, $field, $not",
            ),
            (
                json!({"$where": "1"}),
                "filter: operator $where is unknown here; expected $and, $or, $not or a field name",
            ),
            (
                json!({"$and": {"a": 1}}),
                "filter.$and: $and needs an array of filters, got an object",
            ),
            (
                json!({"$or": []}),
                "filter.$or: $or needs at least one filter",
            ),
            (
                json!({"$not": {}}),
                "filter.$not: $not of an empty filter would match nothing; give the filter to negate",
            ),
            (
                json!({"a-b": 1}),
                "filter.a-b: field name \"a-b\" is invalid; expected letters, digits and _ \
                 starting with a letter or _, optionally dotted through up to 3 lookups such as \
                 owner.name",
            ),
            (
                json!({"a.b.c.d.e": 1}),
                "filter.a.b.c.d.e: field name \"a.b.c.d.e\" is invalid; expected letters, digits \
                 and _ starting with a letter or _, optionally dotted through up to 3 lookups \
                 such as owner.name",
            ),
            (
                json!({"a": [1, 2]}),
                "filter.a: expected a scalar value or an operator object, got an array; to match \
                 any of a list use {\"$in\": [...]}",
            ),
            (
                json!({"owner": {"name": "x"}}),
                "filter.owner: objects are not filter values; expected a scalar or an operator \
                 object such as {\"$gt\": 1} (to filter through a lookup use a dotted path such \
                 as owner.name)",
            ),
            (
                json!({"a": {}}),
                "filter.a: operator object is empty; expected one of $eq, $ne, $gt, $gte, $lt, \
                 $lte, $in, $nin, $between, $contains, $notContains, $startsWith, $endsWith, \
                 $null, $exists, $field, $not",
            ),
            (
                json!({"a": {"$gt": 1, "b": 2}}),
                "filter.a: key b cannot be mixed with operators; an operator object holds only \
                 keys such as $gt",
            ),
            (
                json!({"a": {"$in": "x"}}),
                "filter.a: operator $in needs an array of values, got the string \"x\"",
            ),
            (
                json!({"a": {"$in": [1, [2]]}}),
                "filter.a: operator $in needs scalar values; item [1] is an array",
            ),
            (
                json!({"a": {"$between": [1, 2, 3]}}),
                "filter.a: operator $between needs exactly 2 values [low, high], got 3",
            ),
            (
                json!({"a": {"$between": [1, null]}}),
                "filter.a: operator $between needs non-null scalar bounds; item [1] is null",
            ),
            (
                json!({"a": {"$gt": null}}),
                "filter.a: operator $gt needs a non-null value",
            ),
            (
                json!({"a": {"$contains": {"x": 1}}}),
                "filter.a: operator $contains needs a scalar value (string, number or boolean), \
                 got an object",
            ),
            (
                json!({"a": {"$null": "yes"}}),
                "filter.a: operator $null needs true or false, got the string \"yes\"",
            ),
            (
                json!({"a": {"$exists": 1}}),
                "filter.a: operator $exists needs true or false, got the number 1",
            ),
            (
                json!({"a": {"$in": {"$field": "b"}}}),
                "filter.a: operator $in cannot compare with another field; only =, !=, >, >=, <, \
                 <= can",
            ),
            (
                json!({"a": {"$field": 3}}),
                "filter.a: a field reference is written {\"$field\": \"other_field\"}",
            ),
            (
                json!(5),
                "filter: expected a filter (an object or an array), got the number 5",
            ),
            (
                json!(["a", "=~", 1]),
                "filter[1]: operator =~ is unknown; expected one of =, ==, !=, <>, >, >=, <, <=, \
                 in, nin, not_in, between, contains, like, not_contains, starts_with, ends_with, \
                 is_null, is_not_null",
            ),
            (
                json!(["a", "="]),
                "filter: operator = needs a value: [field, \"=\", value]",
            ),
            (
                json!(["a", "between", 1, 5]),
                "filter: a condition has 3 elements [field, operator, value], got 4",
            ),
            (
                json!(["a"]),
                "filter: condition [\"a\"] has no operator; expected [field, operator, value]",
            ),
            (
                json!(["a", 1, 2]),
                "filter: expected a condition [field, operator, value], a logic node \
                 [\"and\"|\"or\", ...] or a list of filters",
            ),
            (
                json!(["a", "in", 3]),
                "filter[2]: operator in needs an array of values, got the number 3",
            ),
            (
                json!(["a", "between", [1]]),
                "filter[2]: operator between needs exactly 2 values [low, high], got 1",
            ),
            (
                json!(["a", "is_null", 1]),
                "filter[2]: operator is_null takes no value or a boolean, got the number 1",
            ),
            (
                json!(["a", "like", 5]),
                "filter[2]: operator like needs a string pattern, got the number 5",
            ),
            (
                json!(["a", "like", "a%b"]),
                "filter[2]: like pattern \"a%b\" has a % inside the text; only leading and \
                 trailing % are supported (use contains, starts_with or ends_with)",
            ),
            (
                json!(["1a", "=", 1]),
                "filter[0]: field name \"1a\" is invalid; expected letters, digits and _ starting with a letter or _, optionally dotted through up to 3 lookups such as owner.name",
            ),
            (
                json!(["not", ["a", "=", 1], ["b", "=", 1]]),
                "filter: [\"not\", filter] takes exactly one filter, got 2",
            ),
            (
                json!(["or"]),
                "filter: [\"or\", ...] needs at least one filter",
            ),
            (
                json!([["a", "=", 1], "and"]),
                "filter[1]: an infix filter must alternate filter, \"and\"/\"or\", filter, ... and \
                 end with a filter",
            ),
            (
                json!([["a", "=", 1], "xor", ["b", "=", 1]]),
                "filter[1]: expected \"and\" or \"or\" between filters, got the string \"xor\"",
            ),
            (
                json!([
                    ["a", "=", 1],
                    "and",
                    ["b", "=", 1],
                    ["c", "=", 1],
                    ["d", "=", 1]
                ]),
                "filter[3]: expected \"and\" or \"or\" between filters, got an array",
            ),
            (
                json!([["a", "=", 1], ["b", "=", 1], "and"]),
                "filter[2]: expected a filter (an object or an array), got the string \"and\"",
            ),
            (
                json!({"$or": [{"a": 1}, ["b", "gtx", 1]]}),
                "filter.$or[1][1]: operator gtx is unknown; expected one of =, ==, !=, <>, >, >=, \
                 <, <=, in, nin, not_in, between, contains, like, not_contains, starts_with, \
                 ends_with, is_null, is_not_null",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(e(input.clone()), expected, "{input}");
        }
    }

    #[test]
    fn parse_str_and_params() {
        assert_eq!(
            Filter::parse_str(r#"["amount",">",100]"#).unwrap(),
            c("amount", Operator::Gt, json!(100))
        );
        assert_eq!(Filter::parse_str("  ").unwrap(), Filter::True);
        let err = Filter::parse_str_param("{nope", "$filter").unwrap_err();
        assert_eq!(err.param(), "$filter");
        assert_eq!(err.path(), "$filter");
        assert!(
            err.to_string().starts_with(
                "$filter: expected the filter as JSON (an object such as {\"status\":\"open\"} or \
                 an array such as [\"amount\",\">\",100]), but it is not valid JSON: "
            ),
            "{err}"
        );
        let err = Filter::parse_param(&json!({"a": {"$gtx": 1}}), "having").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("having.a: operator $gtx is unknown"),
            "{err}"
        );
    }

    #[test]
    fn limits() {
        // 32 nested $not levels are fine, 33 are not.
        let mut ok = json!({"a": 1});
        for _ in 0..MAX_FILTER_DEPTH {
            ok = json!({ "$not": ok });
        }
        assert!(Filter::parse(&ok).is_ok());
        let too_deep = json!({ "$not": ok });
        let msg = Filter::parse(&too_deep).unwrap_err().to_string();
        assert!(
            msg.ends_with(": filter is nested more than 32 levels deep"),
            "{msg}"
        );

        let mut arr = json!(["a", "=", 1]);
        for _ in 0..40 {
            arr = json!(["and", arr]);
        }
        let msg = Filter::parse(&arr).unwrap_err().to_string();
        assert!(
            msg.ends_with("filter is nested more than 32 levels deep"),
            "{msg}"
        );

        let many: Vec<Value> = (0..MAX_FILTER_CONDITIONS)
            .map(|i| json!(["a", "=", i]))
            .collect();
        assert_eq!(
            Filter::parse(&Value::Array(many.clone()))
                .unwrap()
                .condition_count(),
            1000
        );
        let mut too_many = many;
        too_many.push(json!(["a", "=", 1]));
        assert_eq!(
            Filter::parse(&Value::Array(too_many))
                .unwrap_err()
                .to_string(),
            "filter[1000]: filter has more than 1000 conditions"
        );

        let list: Vec<u32> = (0..1000).collect();
        assert!(Filter::parse(&json!({"a": {"$in": list}})).is_ok());
        let list: Vec<u32> = (0..1001).collect();
        assert_eq!(
            e(json!({"a": {"$in": list}})),
            "filter.a: operator $in accepts at most 1000 values, got 1001"
        );
        assert!(is_valid_field_path("a.b.c.d"));
        assert!(!is_valid_field_path("a.b.c.d.e"));
        assert!(!is_valid_field_path(""));
        assert!(!is_valid_field_path("a..b"));
        assert!(!is_valid_field_path("a.1"));
        assert!(is_valid_field_path("_id"));
        assert!(!is_valid_field_path("é"));
    }

    #[test]
    fn canonical_json_shape() {
        let f = p(json!([
            ["status", "=", "open"],
            "and",
            ["amount", "between", [1, 5]],
            "or",
            ["owner", "is_null"],
            "or",
            ["a", ">=", {"$field": "b"}]
        ]));
        assert_eq!(
            f.to_json(),
            json!({"$or": [
                {"$and": [{"status": "open"}, {"amount": {"$between": [1, 5]}}]},
                {"owner": {"$null": true}},
                {"a": {"$gte": {"$field": "b"}}}
            ]})
        );
        assert_eq!(
            f.to_string(),
            r#"{"$or":[{"$and":[{"status":"open"},{"amount":{"$between":[1,5]}}]},{"owner":{"$null":true}},{"a":{"$gte":{"$field":"b"}}}]}"#
        );
        assert_eq!(
            p(json!({"a": {"$field": "b"}})).to_json(),
            json!({"a": {"$field": "b"}})
        );
        assert_eq!(Filter::True.to_json(), json!({}));
        assert_eq!(serde_json::to_value(&f).unwrap(), f.to_json());
        let back: Filter = serde_json::from_value(json!(["a", "=", 1])).unwrap();
        assert_eq!(back, c("a", Operator::Eq, json!(1)));
        let bad = serde_json::from_value::<Filter>(json!({"a": {"$gtx": 1}})).unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("filter.a: operator $gtx is unknown")
        );
    }

    #[test]
    fn round_trip() {
        let inputs = [
            json!({}),
            json!({"a": 1}),
            json!({"a": "x", "b": {"$ne": false}}),
            json!({"a": null}),
            json!({"a": {"$ne": null}}),
            json!({"$or": [{"a": 1}, {"b": {"$in": [1, 2]}}, {"$and": [{"c": 1}, {"d": 2}]}]}),
            json!({"$not": {"$or": [{"a": 1}, {"b": 2}]}}),
            json!({"a": {"$not": {"$between": ["2024-01-01", "2024-12-31"]}}}),
            json!({"a": {"$exists": true}, "b": {"$exists": false}}),
            json!({"a": {"$lt": {"$field": "b"}}, "c": {"$field": "d"}}),
            json!({"a": {"$contains": "x", "$notContains": "y", "$startsWith": "z", "$endsWith": "w"}}),
            json!({"a": {"$eq": 1.25}, "b": {"$nin": ["x", null]}}),
            json!(["a", "like", "x%"]),
            json!(["a", "not_like", "%x"]),
            json!(["a", "not_like", "%x%"]),
            json!([
                ["a", "=", 1],
                "or",
                ["b", "=", 2],
                "and",
                ["c", "is_not_null"]
            ]),
            json!([
                "or",
                ["and", ["a", "=", 1], ["b", "=", 2]],
                ["not", ["c", "in", [1, 2]]]
            ]),
            json!([{"a": 1}, ["b", "<=", 2], [["c", "=", 1], "or", ["d", "=", 1]]]),
            json!({"$and": [{"$or": [{"a": 1}, {"b": 2}]}, {"$or": [{"c": 3}, {"d": 4}]}]}),
            json!({"_id": {"$in": ["x", "y"]}, "owner.name": {"$startsWith": "A"}}),
        ];
        for input in inputs {
            let once = p(input.clone());
            let json = once.to_json();
            let twice = p(json.clone());
            assert_eq!(twice, once, "{input} -> {json}");
            assert_eq!(twice.to_json(), json, "{input}");
        }
    }

    #[test]
    fn helpers() {
        let f = p(json!({"$or": [{"a": 1}, {"b": {"$gt": {"$field": "c"}}}], "d": {"$not": 1}}));
        assert_eq!(f.fields().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(Filter::True.fields().count(), 0);
        assert!(Filter::True.is_true());
        assert!(!f.is_true());

        let rls = Filter::eq("owner_id", "u1");
        assert_eq!(Filter::True.and(rls.clone()), rls);
        assert_eq!(rls.clone().and(Filter::True), rls);
        let combined = p(json!({"a": 1, "b": 2})).and(rls.clone());
        assert_eq!(
            combined,
            Filter::And(vec![
                c("a", Operator::Eq, json!(1)),
                c("b", Operator::Eq, json!(2)),
                rls.clone()
            ])
        );
        // An OR filter stays a group when ANDed, so the RLS policy cannot be escaped.
        let or = p(json!({"$or": [{"a": 1}, {"b": 2}]}));
        assert_eq!(
            or.clone().and(rls.clone()),
            Filter::And(vec![or.clone(), rls.clone()])
        );
        assert_eq!(or.clone().or(Filter::True), Filter::True);
        assert_eq!(
            Filter::eq("x", Value::Null),
            c("x", Operator::IsNull, Value::Null)
        );

        let mut g = p(json!({"_id": 1, "a": {"$gt": {"$field": "_id"}}}));
        g.for_each_field_mut(&mut |name| {
            if name == "_id" {
                *name = "id".to_owned();
            }
        });
        assert_eq!(g.fields().collect::<Vec<_>>(), ["id", "a", "id"]);
        assert_eq!(Operator::ALL.len(), 16);
        assert_eq!(Operator::NotContains.object_key(), "$notContains");
        assert_eq!(Operator::IsNotNull.to_string(), "is_not_null");
    }
}
