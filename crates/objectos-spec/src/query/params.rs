//! GET list parameters (`GET /api/v1/data/:o?top=..&sort=..&filter=..`) turned into a QueryAST.

use serde_json::Value;

use super::ast::{Builder, QueryAst, slot_of};
use super::error::{QueryError, QueryErrorKind};
use super::filter::{Filter, MAX_FILTER_CONDITIONS, field_name_message, is_valid_field_path};

/// Query parameters with a meaning of their own; they are never read as equality filters.
pub const RESERVED_PARAMS: &[&str] = &[
    "filter",
    "filters",
    "$filter",
    "where",
    "select",
    "fields",
    "$select",
    "sort",
    "orderBy",
    "orderby",
    "$orderby",
    "$orderBy",
    "top",
    "skip",
    "limit",
    "offset",
    "$top",
    "$skip",
    "cursor",
    "expand",
    "$expand",
    "populate",
    "search",
    "$search",
    "count",
    "$count",
    "distinct",
    "aggregations",
    "groupBy",
    "groupby",
    "having",
    "joins",
    "windowFunctions",
];

/// Whether a GET parameter is reserved (see [`RESERVED_PARAMS`]).
pub fn is_reserved_param(name: &str) -> bool {
    RESERVED_PARAMS.contains(&name)
}

/// Builds a QueryAST from the decoded query string of `GET /api/v1/data/:o`.
///
/// Reserved parameters fill their part of the query (see protocol.md section 2 for the aliases);
/// every other parameter is an equality filter ANDed after `filter`, with its value kept as a
/// string for the engine to coerce by field type (the 3.x SDK sends `filters: {status: 'open'}` as
/// `?status=open`). A parameter given twice (`top=1&top=2`, or `top` with `limit`) is refused,
/// except filters, which are ANDed.
pub fn parse_list_params(params: &[(String, String)]) -> Result<QueryAst, QueryError> {
    let mut builder = Builder::new("", 0);
    let mut equalities = Vec::new();
    for (name, value) in params {
        // `object` is a body key, not a list parameter, so a field called "object" stays filterable.
        if name != "object" && slot_of(name).is_some() {
            builder.apply(name, &Value::String(value.clone()))?;
            continue;
        }
        if name.starts_with('$') {
            return Err(QueryError::new(
                QueryErrorKind::InvalidQuery,
                name.as_str(),
                name.as_str(),
                format!(
                    "query parameter {name} is unknown; the supported $-parameters are $filter, \
                     $select, $orderby, $top, $skip, $expand, $search and $count"
                ),
            ));
        }
        if !is_valid_field_path(name) {
            return Err(QueryError::new(
                QueryErrorKind::InvalidFilter,
                name.as_str(),
                name.as_str(),
                format!(
                    "query parameter is neither a list parameter nor a field to filter on: {}",
                    field_name_message(name)
                ),
            ));
        }
        equalities.push(Filter::eq(name.as_str(), value.as_str()));
    }
    let mut query = builder.query;
    if !equalities.is_empty() {
        let combined = std::mem::take(&mut query.filter).and(Filter::all(equalities));
        if combined.condition_count() > MAX_FILTER_CONDITIONS {
            return Err(QueryError::new(
                QueryErrorKind::InvalidFilter,
                "filter",
                "filter",
                format!("filter has more than {MAX_FILTER_CONDITIONS} conditions"),
            ));
        }
        query.filter = combined;
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::query::{
        AggregateFunction, Aggregation, Cursor, FieldSelection, FilterValue, MAX_LIMIT, Operator,
        SearchQuery, SortNode, SortOrder,
    };

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ok(pairs: &[(&str, &str)]) -> QueryAst {
        match parse_list_params(&params(pairs)) {
            Ok(q) => q,
            Err(e) => panic!("{pairs:?} should parse: {e}"),
        }
    }

    fn fail(pairs: &[(&str, &str)]) -> (String, String, String) {
        match parse_list_params(&params(pairs)) {
            Ok(q) => panic!("{pairs:?} should fail, got {q:?}"),
            Err(e) => (e.code().to_owned(), e.param().to_owned(), e.to_string()),
        }
    }

    fn field(name: &str) -> FieldSelection {
        FieldSelection::Field(name.to_owned())
    }

    #[test]
    fn transcript_7a_equality_param_and_sort() {
        // GET /api/v1/data/contact?top=2&sort=-amount&status=active
        let q = ok(&[("top", "2"), ("sort", "-amount"), ("status", "active")]);
        assert_eq!(q.limit, Some(2));
        assert_eq!(q.order_by, vec![SortNode::new("amount", SortOrder::Desc)]);
        assert_eq!(q.filter, Filter::eq("status", "active"));
    }

    #[test]
    fn transcript_7b_filter_select_skip() {
        let q = ok(&[
            ("top", "10"),
            ("skip", "0"),
            ("sort", "name"),
            ("select", "name,amount,status"),
            ("filter", "[\"amount\",\">\",100]"),
        ]);
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(0));
        assert_eq!(q.order_by, vec![SortNode::new("name", SortOrder::Asc)]);
        assert_eq!(
            q.fields,
            vec![field("name"), field("amount"), field("status")]
        );
        assert_eq!(
            q.filter,
            Filter::condition("amount", Operator::Gt, FilterValue::Value(json!(100)))
        );
    }

    #[test]
    fn transcript_7d_expand_and_10a_aggregations() {
        let q = ok(&[("top", "5"), ("status", "active"), ("expand", "account")]);
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.expand.keys().collect::<Vec<_>>(), ["account"]);
        assert_eq!(q.expand["account"], QueryAst::default());
        assert_eq!(q.filter, Filter::eq("status", "active"));

        let q = ok(&[("aggregations", "[{\"function\":\"count\",\"alias\":\"n\"}]")]);
        assert_eq!(
            q.aggregations,
            vec![Aggregation {
                function: AggregateFunction::Count,
                field: None,
                alias: "n".into(),
                distinct: false,
                filter: None
            }]
        );
        assert_eq!(q.filter, Filter::True);
    }

    #[test]
    fn every_alias() {
        let f = Filter::eq("a", 1);
        for name in ["filter", "filters", "$filter", "where"] {
            assert_eq!(ok(&[(name, "{\"a\":1}")]).filter, f, "{name}");
        }
        for name in ["select", "fields", "$select"] {
            assert_eq!(
                ok(&[(name, "a, b.c ,")]).fields,
                vec![field("a"), field("b.c")],
                "{name}"
            );
        }
        let sort = vec![
            SortNode::new("name", SortOrder::Asc),
            SortNode::new("created_at", SortOrder::Desc),
        ];
        for name in ["sort", "orderBy", "$orderby"] {
            assert_eq!(
                ok(&[(name, "name asc,created_at desc")]).order_by,
                sort,
                "{name}"
            );
            assert_eq!(ok(&[(name, "name, -created_at")]).order_by, sort, "{name}");
            assert_eq!(
                ok(&[(name, "+name,created_at DESC")]).order_by,
                sort,
                "{name}"
            );
            assert_eq!(
                ok(&[(
                    name,
                    r#"[{"field":"name"},{"field":"created_at","order":"desc"}]"#
                )])
                .order_by,
                sort,
                "{name}"
            );
            assert_eq!(
                ok(&[(name, r#"["name","-created_at"]"#)]).order_by,
                sort,
                "{name}"
            );
        }
        for (l, o) in [("top", "skip"), ("limit", "offset"), ("$top", "$skip")] {
            let q = ok(&[(l, "20"), (o, "40")]);
            assert_eq!((q.limit, q.offset), (Some(20), Some(40)), "{l}");
        }
        for name in ["expand", "$expand", "populate"] {
            let q = ok(&[(name, "owner, account.owner")]);
            assert_eq!(
                q.expand.keys().collect::<Vec<_>>(),
                ["owner", "account"],
                "{name}"
            );
            assert_eq!(
                q.expand["account"].expand.keys().collect::<Vec<_>>(),
                ["owner"]
            );
        }
        assert_eq!(
            ok(&[("cursor", "abc")]).cursor,
            Some(Cursor::Token("abc".into()))
        );
        assert_eq!(
            ok(&[("search", "ann")]).search,
            Some(SearchQuery {
                query: "ann".into(),
                fields: vec![],
                fuzzy: false
            })
        );
        for (v, b) in [
            ("true", true),
            ("1", true),
            ("", true),
            ("false", false),
            ("0", false),
        ] {
            assert_eq!(ok(&[("count", v)]).count, b, "{v}");
            assert_eq!(ok(&[("$count", v)]).count, b, "{v}");
            assert_eq!(ok(&[("distinct", v)]).distinct, b, "{v}");
        }
        assert_eq!(
            ok(&[("groupBy", "stage, owner.name")]).group_by,
            ["stage", "owner.name"]
        );
        assert_eq!(ok(&[("groupBy", "[\"stage\"]")]).group_by, ["stage"]);
        assert_eq!(
            ok(&[(
                "select",
                "[\"a\",{\"field\":\"owner\",\"fields\":[\"name\"]}]"
            )])
            .fields,
            vec![
                field("a"),
                FieldSelection::Nested {
                    field: "owner".into(),
                    fields: vec![field("name")]
                }
            ]
        );
        assert_eq!(ok(&[("select", "*")]).fields, vec![]);
        assert_eq!(ok(&[("limit", "10000")]).limit, Some(MAX_LIMIT));
    }

    #[test]
    fn filters_and_equalities_combine() {
        let q = ok(&[
            ("filter", "[\"amount\",\">\",100]"),
            ("status", "open"),
            ("where", "{\"$or\":[{\"a\":1},{\"b\":2}]}"),
            ("owner.name", "Ann"),
            ("object", "x"),
            ("_id", "r1"),
        ]);
        assert_eq!(
            q.filter.to_json(),
            json!({"$and": [
                {"amount": {"$gt": 100}},
                {"$or": [{"a": 1}, {"b": 2}]},
                {"status": "open"},
                {"owner.name": "Ann"},
                {"object": "x"},
                {"_id": "r1"}
            ]})
        );
        // A repeated plain parameter gives two equalities, which the engine ANDs.
        let q = ok(&[("status", "open"), ("status", "closed")]);
        assert_eq!(q.filter.condition_count(), 2);
        assert!(ok(&[]).filter.is_true());
        assert!(RESERVED_PARAMS.iter().all(|p| is_reserved_param(p)));
        assert!(!is_reserved_param("status"));
    }

    #[test]
    fn errors() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (
                &[("top", "-1")],
                "invalid_paging",
                "top",
                "top: top must be a non-negative integer, got the string \"-1\"",
            ),
            (
                &[("limit", "ten")],
                "invalid_paging",
                "limit",
                "limit: limit must be a non-negative integer, got the string \"ten\"",
            ),
            (
                &[("limit", "10001")],
                "invalid_paging",
                "limit",
                "limit: limit 10001 is above the maximum of 10000",
            ),
            (
                &[("skip", "1.5")],
                "invalid_paging",
                "skip",
                "skip: skip must be a non-negative integer, got the string \"1.5\"",
            ),
            (
                &[("top", "1"), ("limit", "2")],
                "invalid_query",
                "limit",
                "limit: limit and top mean the same thing; give only one of them",
            ),
            (
                &[("top", "1"), ("top", "2")],
                "invalid_query",
                "top",
                "top: top is given more than once",
            ),
            (
                &[("sort", "name sideways")],
                "invalid_sort",
                "sort",
                "sort[0]: sort direction \"sideways\" is unknown; expected asc or desc",
            ),
            (
                &[("sort", "a,b desc d")],
                "invalid_sort",
                "sort",
                "sort[1]: unexpected \"d\" after the direction; expected \"field\" or \"field asc|desc\"",
            ),
            (
                &[("orderBy", "-")],
                "invalid_sort",
                "orderBy",
                "orderBy[0]: field name \"\" is invalid; expected letters, digits and _ starting with a letter or _, optionally dotted through up to 3 lookups such as owner.name",
            ),
            (
                &[("sort", "[1]")],
                "invalid_sort",
                "sort",
                "sort[0]: expected {\"field\": \"name\", \"order\": \"asc\"} or \"-name\", got the number 1",
            ),
            (
                &[("select", "a,b-c")],
                "invalid_select",
                "select",
                "select[1]: field name \"b-c\" is invalid; expected letters, digits and _ starting with a letter or _, optionally dotted through up to 3 lookups such as owner.name",
            ),
            (
                &[("expand", "owner-x")],
                "invalid_expand",
                "expand",
                "expand[0]: \"owner-x\" in expand \"owner-x\" is not a lookup field name; expected names such as owner or owner.manager",
            ),
            (
                &[("expand", "a.b.c.d")],
                "invalid_expand",
                "expand",
                "expand[0]: expand goes at most 3 levels deep",
            ),
            (
                &[("count", "maybe")],
                "invalid_query",
                "count",
                "count: expected true or false, got the string \"maybe\"",
            ),
            (
                &[("aggregations", "count")],
                "invalid_aggregation",
                "aggregations",
                "aggregations: expected an array of {\"function\", \"field\"?, \"alias\"} entries, e.g. [{\"function\": \"sum\", \"field\": \"amount\", \"alias\": \"total\"}], but the text is not valid JSON: expected value at line 1 column 1",
            ),
            (
                &[(
                    "aggregations",
                    "[{\"function\":\"median\",\"field\":\"a\"}]",
                )],
                "invalid_aggregation",
                "aggregations",
                "aggregations[0].function: aggregate function \"median\" is unknown; expected one of count, sum, avg, min, max, count_distinct, array_agg, string_agg",
            ),
            (
                &[("aggregations", "[{\"function\":\"sum\"}]")],
                "invalid_aggregation",
                "aggregations",
                "aggregations[0]: aggregate function sum needs a field",
            ),
            (
                &[(
                    "aggregations",
                    "[{\"function\":\"count\"},{\"function\":\"count\"}]",
                )],
                "invalid_aggregation",
                "aggregations",
                "aggregations[1].alias: alias count is used by an earlier aggregation; aliases must be unique",
            ),
            (
                &[("groupBy", "a,,b c")],
                "invalid_aggregation",
                "groupBy",
                "groupBy[1]: field name \"b c\" is invalid; expected letters, digits and _ starting with a letter or _, optionally dotted through up to 3 lookups such as owner.name",
            ),
            (
                &[("filter", "{\"a\":{\"$gtx\":1}}")],
                "invalid_filter",
                "filter",
                "filter.a: operator $gtx is unknown; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $between, $contains, $notContains, $startsWith, $endsWith, $null, $exists, $field, $not",
            ),
            (
                &[("filters", "[\"a\",\"=\"]")],
                "invalid_filter",
                "filters",
                "filters: operator = needs a value: [field, \"=\", value]",
            ),
            (
                &[("$filter", "name eq 'x'")],
                "invalid_filter",
                "$filter",
                "$filter: expected the filter as JSON (an object such as {\"status\":\"open\"} or an array such as [\"amount\",\">\",100]), but it is not valid JSON: expected ident at line 1 column 2; OData expressions such as name eq 'x' are not supported",
            ),
            (
                &[("$format", "json")],
                "invalid_query",
                "$format",
                "$format: query parameter $format is unknown; the supported $-parameters are $filter, $select, $orderby, $top, $skip, $expand, $search and $count",
            ),
            (
                &[("first-name", "x")],
                "invalid_filter",
                "first-name",
                "first-name: query parameter is neither a list parameter nor a field to filter on: field name \"first-name\" is invalid; expected letters, digits and _ starting with a letter or _, optionally dotted through up to 3 lookups such as owner.name",
            ),
            (
                &[("joins", "[{\"object\":\"x\"}]")],
                "invalid_query",
                "joins",
                "joins: joins is not supported by this server; use expand for related records and aggregations with groupBy for summaries",
            ),
        ];
        for (input, code, param, message) in cases {
            let (c, p, m) = fail(input);
            assert_eq!(
                (c.as_str(), p.as_str(), m.as_str()),
                (*code, *param, *message),
                "{input:?}"
            );
        }
    }

    #[test]
    fn equality_params_count_toward_the_condition_limit() {
        let filter: Vec<serde_json::Value> = (0..1000).map(|i| json!(["a", "=", i])).collect();
        let text = serde_json::to_string(&filter).unwrap();
        assert!(parse_list_params(&params(&[("filter", &text)])).is_ok());
        let (code, _, message) = fail(&[("filter", &text), ("status", "x")]);
        assert_eq!(code, "invalid_filter");
        assert_eq!(message, "filter: filter has more than 1000 conditions");
    }
}
