//! Unit tests for the expression engine: operators, functions, nulls, errors and limits.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value as Json, json};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 16, 45, 10)
        .single()
        .unwrap()
        + chrono::TimeDelta::milliseconds(709)
}

fn record() -> Map<String, Json> {
    json!({
        "name": "Acme Corp",
        "amount": 1200.5,
        "qty": 3,
        "price": 0.1,
        "zero": 0,
        "empty": "",
        "nothing": null,
        "active": true,
        "status": "active",
        "close_date": "2026-12-01",
        "created_at": "2026-11-20T10:00:00.000Z",
        "tags": ["a", "b"],
        "scores": [1, 2, 3.5, null],
        "account": { "name": "Parent Inc", "tier": 2 },
        "email": "ann@example.com"
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn eval_with(src: &str, rec: &Map<String, Json>) -> Result<Value, ExprError> {
    let expr = Expr::parse(src)?;
    expr.eval(&EvalContext::new(rec, now()))
}

fn ev(src: &str) -> Value {
    match eval_with(src, &record()) {
        Ok(v) => v,
        Err(e) => panic!("`{src}` failed: {e}"),
    }
}

fn js(src: &str) -> Json {
    ev(src).to_json()
}

fn err(src: &str) -> ExprError {
    match eval_with(src, &record()) {
        Ok(v) => panic!("`{src}` should fail but gave {v:?}"),
        Err(e) => e,
    }
}

fn parse_err(src: &str) -> ExprError {
    match Expr::parse(src) {
        Ok(e) => panic!("`{src}` should not parse but gave {e:?}"),
        Err(e) => e,
    }
}

// ---- literals and lexing -----------------------------------------------------------------

#[test]
fn literals() {
    assert_eq!(js("12"), json!(12));
    assert_eq!(js("1.5"), json!(1.5));
    assert_eq!(js(".5"), json!(0.5));
    assert_eq!(js("1e3"), json!(1000));
    assert_eq!(js("2.5E-1"), json!(0.25));
    assert_eq!(js("'single'"), json!("single"));
    assert_eq!(js("\"double\""), json!("double"));
    assert_eq!(js(r"'it\'s'"), json!("it's"));
    assert_eq!(js(r#""a\"b\n""#), json!("a\"b\n"));
    assert_eq!(js(r"'\d+'"), json!("\\d+"));
    assert_eq!(js("TRUE"), json!(true));
    assert_eq!(js("false"), json!(false));
    assert_eq!(js("True"), json!(true));
    assert_eq!(js("NULL"), Json::Null);
    assert_eq!(js("null"), Json::Null);
}

#[test]
fn field_paths() {
    assert_eq!(js("name"), json!("Acme Corp"));
    assert_eq!(js("account.name"), json!("Parent Inc"));
    assert_eq!(js("account.missing"), Json::Null);
    assert_eq!(js("no_such_field"), Json::Null);
    assert_eq!(js("tags"), json!(["a", "b"]));
}

struct Related;

impl FieldResolver for Related {
    fn resolve(&self, record: &serde_json::Map<String, Json>, path: &str) -> Option<Json> {
        match (record.get("owner").and_then(Json::as_str), path) {
            (Some("u1"), "owner.name") => Some(json!("Ann")),
            _ => None,
        }
    }
}

#[test]
fn resolver_answers_dotted_paths_through_lookups() {
    let rec = json!({"owner": "u1"}).as_object().cloned().unwrap();
    let expr = Expr::parse("UPPER(owner.name)").unwrap();
    let cx = EvalContext::new(&rec, now()).with_resolver(&Related);
    assert_eq!(expr.eval(&cx).unwrap(), Value::Text("ANN".into()));
    let plain = EvalContext::new(&rec, now());
    assert_eq!(expr.eval(&plain).unwrap(), Value::Null);
    assert!(format!("{cx:?}").contains("dyn FieldResolver"));
}

#[test]
fn fields_lists_each_path_once_in_order() {
    let e = Expr::parse("IF(amount > 0, CONCAT(name, account.name, name), qty * amount)").unwrap();
    assert_eq!(e.fields(), ["amount", "name", "account.name", "qty"]);
    assert!(Expr::parse("1 + 2").unwrap().fields().is_empty());
    assert!(Expr::parse("TODAY()").unwrap().uses_clock());
    assert!(!Expr::parse("amount").unwrap().uses_clock());
    assert_eq!(Expr::parse(" a ").unwrap().source(), " a ");
    assert_eq!(Expr::parse("a+1").unwrap().to_string(), "a+1");
}

// ---- operators ---------------------------------------------------------------------------

#[test]
fn arithmetic() {
    assert_eq!(js("1 + 2"), json!(3));
    assert_eq!(js("5 - 7"), json!(-2));
    assert_eq!(js("4 * 2.5"), json!(10));
    assert_eq!(js("7 / 2"), json!(3.5));
    assert_eq!(js("7 % 3"), json!(1));
    assert_eq!(js("-7 % 3"), json!(2));
    assert_eq!(js("-amount"), json!(-1200.5));
    assert_eq!(js("+qty"), json!(3));
    assert_eq!(js("- - 2"), json!(2));
    assert_eq!(js("qty * price"), json!(0.3));
    assert_eq!(js("0.1 + 0.2"), json!(0.3));
    assert_eq!(js("amount * 1"), json!(1200.5));
    assert_eq!(format_number(1200.4999999999998), "1200.5");
    assert_eq!(format_number(-0.0), "0");
    assert_eq!(format_number(2.0), "2");
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(js("1 + 2 * 3"), json!(7));
    assert_eq!(js("(1 + 2) * 3"), json!(9));
    assert_eq!(js("10 - 4 - 3"), json!(3));
    assert_eq!(js("100 / 10 / 5"), json!(2));
    assert_eq!(js("-2 * 3"), json!(-6));
    assert_eq!(js("1 + 2 > 2"), json!(true));
    assert_eq!(js("TRUE OR FALSE AND FALSE"), json!(true));
    assert_eq!(js("(TRUE OR FALSE) AND FALSE"), json!(false));
    assert_eq!(js("NOT 1 = 2"), json!(true));
    assert_eq!(js("NOT FALSE AND FALSE"), json!(false));
    assert_eq!(js("NOT(TRUE) = FALSE"), json!(true));
    assert_eq!(js("qty > 1 && amount > 1000 || FALSE"), json!(true));
}

#[test]
fn comparisons() {
    for (src, want) in [
        ("1 = 1", true),
        ("1 == 1", true),
        ("1 != 2", true),
        ("1 <> 1", false),
        ("1 < 2", true),
        ("2 > 1", true),
        ("2 <= 2", true),
        ("3 >= 4", false),
        ("'a' < 'b'", true),
        ("status = 'active'", true),
        ("TRUE = TRUE", true),
        ("FALSE < TRUE", true),
        ("0.1 + 0.2 = 0.3", true),
        ("close_date > '2026-11-30'", true),
        ("close_date > TODAY()", true),
        ("created_at < NOW()", true),
        ("TODAY() = '2026-11-23'", true),
        ("tags = tags", true),
        ("account != account", false),
    ] {
        assert_eq!(js(src), json!(want), "{src}");
    }
    assert!(err("tags < tags").message.contains("only = and != apply"));
}

#[test]
fn null_semantics() {
    assert_eq!(js("nothing + 1"), Json::Null);
    assert_eq!(js("1 - nothing"), Json::Null);
    assert_eq!(js("nothing * 2"), Json::Null);
    assert_eq!(js("-nothing"), Json::Null);
    assert_eq!(js("nothing = NULL"), json!(true));
    assert_eq!(js("NULL = nothing"), json!(true));
    assert_eq!(js("name = NULL"), json!(false));
    assert_eq!(js("name != NULL"), json!(true));
    assert_eq!(js("nothing != NULL"), json!(false));
    assert_eq!(js("nothing = 1"), json!(false));
    assert_eq!(js("nothing != 1"), json!(false));
    assert_eq!(js("nothing < 1"), json!(false));
    assert_eq!(js("nothing > 1"), json!(false));
    assert_eq!(js("nothing = nothing"), json!(false));
    assert_eq!(js("nothing AND TRUE"), json!(false));
    assert_eq!(js("nothing OR TRUE"), json!(true));
    assert_eq!(js("NOT nothing"), json!(true));
    assert_eq!(js("IF(nothing, 1, 2)"), json!(2));
    assert_eq!(js("UPPER(nothing)"), Json::Null);
}

#[test]
fn division_by_zero_is_null() {
    assert_eq!(js("1 / 0"), Json::Null);
    assert_eq!(js("amount / zero"), Json::Null);
    assert_eq!(js("5 % 0"), Json::Null);
    assert_eq!(js("MOD(5, 0)"), Json::Null);
}

#[test]
fn logical_operators_short_circuit() {
    // The right side would be a type error if it were evaluated.
    assert_eq!(js("FALSE AND name + 1 > 0"), json!(false));
    assert_eq!(js("TRUE OR name + 1 > 0"), json!(true));
    assert_eq!(js("AND(FALSE, name + 1)"), json!(false));
    assert_eq!(js("OR(TRUE, name + 1)"), json!(true));
    assert_eq!(js("IF(TRUE, 1, name + 1)"), json!(1));
    assert_eq!(js("BLANKVALUE(name, name + 1)"), json!("Acme Corp"));
}

#[test]
fn date_arithmetic() {
    assert_eq!(js("close_date - TODAY()"), json!(8));
    assert_eq!(js("TODAY() + 7"), json!("2026-11-30"));
    assert_eq!(js("7 + TODAY()"), json!("2026-11-30"));
    assert_eq!(js("close_date - 1"), json!("2026-11-30"));
    assert_eq!(js("NOW() - 1"), json!("2026-11-22T16:45:10.709Z"));
    assert_eq!(js("NOW() - created_at > 3"), json!(true));
    assert_eq!(js("NOW()"), json!("2026-11-23T16:45:10.709Z"));
    assert_eq!(js("TODAY()"), json!("2026-11-23"));
}

// ---- functions ---------------------------------------------------------------------------

#[test]
fn text_functions() {
    assert_eq!(js("UPPER(name)"), json!("ACME CORP"));
    assert_eq!(js("lower(name)"), json!("acme corp"));
    assert_eq!(js("TRIM('  x y  ')"), json!("x y"));
    assert_eq!(
        js("CONCAT(name, ' - ', status)"),
        json!("Acme Corp - active")
    );
    assert_eq!(
        js("CONCATENATE('a', nothing, 1.5, TRUE)"),
        json!("a1.5true")
    );
    assert_eq!(js("CONCAT()"), json!(""));
    assert_eq!(js("CONCAT(qty * price)"), json!("0.3"));
    assert_eq!(js("TEXT(amount)"), json!("1200.5"));
    assert_eq!(js("TEXT(amount, '0.00')"), json!("1200.50"));
    assert_eq!(js("TEXT(2.5, '0')"), json!("3"));
    assert_eq!(js("TEXT(TODAY())"), json!("2026-11-23"));
    assert_eq!(js("TEXT(nothing)"), Json::Null);
    assert_eq!(js("LEN(name)"), json!(9));
    assert_eq!(js("LEN('héllo')"), json!(5));
    assert_eq!(js("LEN(nothing)"), json!(0));
    assert_eq!(js("LEFT(name, 4)"), json!("Acme"));
    assert_eq!(js("LEFT(name, 100)"), json!("Acme Corp"));
    assert_eq!(js("RIGHT(name, 4)"), json!("Corp"));
    assert_eq!(js("RIGHT('ab', 5)"), json!("ab"));
    assert_eq!(js("MID(name, 6, 2)"), json!("Co"));
    assert_eq!(js("MID('abc', 5, 2)"), json!(""));
    assert_eq!(js("SUBSTITUTE(name, 'Corp', 'Inc')"), json!("Acme Inc"));
    assert_eq!(js("SUBSTITUTE('aaa', 'a', 'bb')"), json!("bbbbbb"));
    assert_eq!(js("SUBSTITUTE('abc', '', 'x')"), json!("abc"));
    assert_eq!(js("CONTAINS(name, 'me C')"), json!(true));
    assert_eq!(js("CONTAINS(name, 'zzz')"), json!(false));
    assert_eq!(js("CONTAINS(tags, 'b')"), json!(true));
    assert_eq!(js("CONTAINS(nothing, 'b')"), json!(false));
    assert_eq!(js("BEGINS(name, 'Acme')"), json!(true));
    assert_eq!(js("BEGINS(name, 'Corp')"), json!(false));
}

#[test]
fn numeric_functions() {
    assert_eq!(js("SUM(1, 2, qty)"), json!(6));
    assert_eq!(js("SUM(scores)"), json!(6.5));
    assert_eq!(js("SUM(nothing)"), json!(0));
    assert_eq!(js("AVERAGE(1, 2, 3, 4)"), json!(2.5));
    assert_eq!(js("AVERAGE(nothing)"), Json::Null);
    assert_eq!(js("MIN(3, 1, 2)"), json!(1));
    assert_eq!(js("MAX(3, 1, scores)"), json!(3.5));
    assert_eq!(js("MIN(nothing)"), Json::Null);
    assert_eq!(js("ROUND(1.005, 2)"), json!(1.01));
    assert_eq!(js("ROUND(2.5)"), json!(3));
    assert_eq!(js("ROUND(-2.5)"), json!(-3));
    assert_eq!(js("ROUND(1234.5678, -2)"), json!(1200));
    assert_eq!(js("ROUND(amount * 0.2, 2)"), json!(240.1));
    assert_eq!(js("CEILING(1.2)"), json!(2));
    assert_eq!(js("CEILING(12, 5)"), json!(15));
    assert_eq!(js("CEILING(1, 0)"), json!(0));
    assert_eq!(js("FLOOR(1.8)"), json!(1));
    assert_eq!(js("FLOOR(-1.2)"), json!(-2));
    assert_eq!(js("FLOOR(0.35, 0.1)"), json!(0.3));
    assert_eq!(js("ABS(-4)"), json!(4));
    assert_eq!(js("MOD(10, 3)"), json!(1));
    assert_eq!(js("MOD(-10, 3)"), json!(2));
    assert_eq!(js("MOD(10, -3)"), json!(-2));
    assert_eq!(js("POWER(2, 10)"), json!(1024));
    assert_eq!(js("SQRT(16)"), json!(4));
    assert_eq!(js("VALUE('12.5')"), json!(12.5));
    assert_eq!(js("VALUE(' 3 ')"), json!(3));
    assert_eq!(js("VALUE('')"), Json::Null);
    assert_eq!(js("VALUE(7)"), json!(7));
}

#[test]
fn date_functions() {
    assert_eq!(js("YEAR(TODAY())"), json!(2026));
    assert_eq!(js("MONTH(close_date)"), json!(12));
    assert_eq!(js("DAY(created_at)"), json!(20));
    assert_eq!(js("YEAR(nothing)"), Json::Null);
    assert_eq!(js("ADDDAYS(close_date, 31)"), json!("2027-01-01"));
    assert_eq!(
        js("ADDDAYS(created_at, 1)"),
        json!("2026-11-21T10:00:00.000Z")
    );
    assert_eq!(js("DATEDIFF(TODAY(), close_date)"), json!(8));
    assert_eq!(js("DATEDIFF(close_date, TODAY())"), json!(-8));
    assert_eq!(js("DATEDIFF(created_at, NOW(), 'hours')"), json!(78));
    assert_eq!(
        js("DATEDIFF('2026-01-31', '2026-03-30', 'months')"),
        json!(1)
    );
    assert_eq!(
        js("DATEDIFF('2026-01-31', '2026-03-31', 'months')"),
        json!(2)
    );
    assert_eq!(
        js("DATEDIFF('2020-02-29', '2026-02-28', 'years')"),
        json!(5)
    );
    assert_eq!(js("DATEDIFF('2026-03-31', '2026-01-31', 'm')"), json!(-2));
    assert_eq!(
        js("DATEDIFF(created_at, NOW(), 'minutes')"),
        json!(78 * 60 + 45)
    );
}

#[test]
fn logical_functions() {
    assert_eq!(js("IF(amount > 1000, 'big', 'small')"), json!("big"));
    assert_eq!(js("IF(amount < 1000, 'big')"), Json::Null);
    assert_eq!(js("AND(TRUE, active, qty = 3)"), json!(true));
    assert_eq!(js("AND(TRUE, FALSE)"), json!(false));
    assert_eq!(js("OR(FALSE, nothing)"), json!(false));
    assert_eq!(js("OR(FALSE, active)"), json!(true));
    assert_eq!(js("NOT(active)"), json!(false));
    assert_eq!(js("ISBLANK(nothing)"), json!(true));
    assert_eq!(js("ISBLANK(empty)"), json!(true));
    assert_eq!(js("ISBLANK(name)"), json!(false));
    assert_eq!(js("ISBLANK(0)"), json!(false));
    assert_eq!(js("ISNULL(nothing)"), json!(true));
    assert_eq!(js("ISNULL(empty)"), json!(false));
    assert_eq!(js("BLANKVALUE(empty, 'fallback')"), json!("fallback"));
    assert_eq!(js("BLANKVALUE(nothing, 0) + 1"), json!(1));
    assert_eq!(js("REGEX(email, '^[^@]+@[^@]+$')"), json!(true));
    assert_eq!(
        js("REGEX(email, '[a-z]+')"),
        json!(false),
        "REGEX matches the whole text"
    );
    assert_eq!(js(r"REGEX('123', '\d+')"), json!(true));
    assert_eq!(js("REGEX(nothing, 'x')"), json!(false));
    assert_eq!(js("REGEX('ab', CONCAT('a', 'b'))"), json!(true));
}

#[test]
fn function_names_are_case_insensitive_and_complete() {
    assert_eq!(js("uPPer('a')"), json!("A"));
    let table: Vec<&str> = parser::function_names().collect();
    assert_eq!(table, FUNCTIONS);
}

#[test]
fn eval_bool_treats_null_as_false() {
    let rec = record();
    let cx = EvalContext::new(&rec, now());
    assert!(
        Expr::parse("amount > 1000")
            .unwrap()
            .eval_bool(&cx)
            .unwrap()
    );
    assert!(!Expr::parse("nothing").unwrap().eval_bool(&cx).unwrap());
    let e = Expr::parse("amount").unwrap().eval_bool(&cx).unwrap_err();
    assert_eq!(
        e.message,
        "a condition must be TRUE or FALSE, but `amount` is number 1200.5"
    );
    assert_eq!(
        Expr::parse("amount").unwrap().eval_json(&cx).unwrap(),
        json!(1200.5)
    );
}

// ---- error messages ----------------------------------------------------------------------

#[test]
fn parse_error_messages() {
    let e = parse_err("IF(a > 1, 2,)");
    assert_eq!(
        e.message,
        "unexpected `)` at column 13; expected an expression"
    );
    assert_eq!((e.kind, e.column), (ExprErrorKind::Parse, 13));
    assert_eq!(
        parse_err("").message,
        "empty expression at column 1; expected an expression"
    );
    assert_eq!(
        parse_err("1 +").message,
        "unexpected end of input at column 4; expected an expression"
    );
    assert_eq!(
        parse_err("(1 + 2").message,
        "unexpected end of input at column 7; expected `)` to close the `(` at column 1"
    );
    assert_eq!(
        parse_err("1 + 2)").message,
        "unexpected `)` at column 6; there is no matching `(`"
    );
    assert_eq!(
        parse_err("a b").message,
        "unexpected `b` at column 3; expected an operator or the end of the expression"
    );
    assert_eq!(
        parse_err("name & 'x'").message,
        "unexpected `&` at column 6; `&` is not an operator in this dialect: use CONCAT(a, b) to join text (or `&&` / AND for a logical and)"
    );
    assert!(
        parse_err("!a")
            .message
            .starts_with("unexpected `!` at column 1; use NOT")
    );
    assert!(
        parse_err("a | b")
            .message
            .starts_with("unexpected `|` at column 3")
    );
    assert_eq!(
        parse_err("'abc").message,
        "unterminated string at column 1; expected a closing '"
    );
    assert!(
        parse_err("FOO(1)")
            .message
            .starts_with("unknown function `FOO` at column 1; expected one of UPPER, LOWER")
    );
    assert!(
        parse_err("a.b(1)")
            .message
            .contains("field paths cannot be called")
    );
    assert_eq!(
        parse_err("LEFT('a')").message,
        "LEFT called with 1 argument at column 1; LEFT expects 2 arguments"
    );
    assert_eq!(
        parse_err("IF(TRUE)").message,
        "IF called with 1 argument at column 1; IF expects 2 to 3 arguments"
    );
    assert_eq!(
        parse_err("SUM()").message,
        "SUM called with 0 arguments at column 1; SUM expects at least 1 argument"
    );
    assert_eq!(
        parse_err("TODAY(1)").message,
        "TODAY called with 1 argument at column 1; TODAY expects 0 arguments"
    );
    assert!(
        parse_err("LEFT('a' 1)")
            .message
            .contains("expected `,` or `)` in the arguments of LEFT")
    );
    assert!(
        parse_err("1.")
            .message
            .contains("expected a digit after `.`")
    );
    assert!(
        parse_err("1e")
            .message
            .contains("expected digits after the exponent")
    );
    assert!(
        parse_err("12abc")
            .message
            .contains("expected an operator between a number and a name")
    );
    assert!(parse_err("1e999").message.contains("too large"));
    assert!(
        parse_err("{{ amount }}")
            .message
            .contains("without `{{ }}`")
    );
    assert!(
        parse_err("a # b")
            .message
            .starts_with("unexpected character `#` at column 3")
    );
    assert!(
        parse_err("a AND")
            .message
            .contains("expected an expression")
    );
    assert!(
        parse_err("AND")
            .message
            .contains("unexpected `AND` at column 1")
    );
    assert!(
        parse_err("REGEX(a, '(')")
            .message
            .starts_with("invalid regular expression at column 10")
    );
    // Columns count characters, not bytes.
    assert_eq!(parse_err("'é' +").column, 6);
    assert!(!parse_err(")").to_string().is_empty());
}

#[test]
fn eval_error_messages() {
    let e = err("name + 1");
    assert_eq!(
        e.message,
        "cannot add text `Acme Corp` to a number in `name + 1`"
    );
    assert_eq!((e.kind, e.column), (ExprErrorKind::Eval, 1));
    assert_eq!(
        err("'a' + 'b'").message,
        "cannot add text `a` to text in `'a' + 'b'`; use CONCAT(a, b) to join text"
    );
    assert_eq!(
        err("name - 1").message,
        "cannot subtract number 1 from text `Acme Corp` in `name - 1`"
    );
    assert_eq!(
        err("name * 2").message,
        "cannot multiply text `Acme Corp` by number 2 in `name * 2`"
    );
    assert_eq!(
        err("2 / name").message,
        "cannot divide number 2 by text `Acme Corp` in `2 / name`"
    );
    assert!(
        err("name % 2")
            .message
            .starts_with("cannot take the remainder")
    );
    assert_eq!(
        err("-name").message,
        "cannot negate text `Acme Corp` in `-name`; expected a number"
    );
    assert_eq!(
        err("1 < name").message,
        "cannot compare number 1 with text `Acme Corp` in `1 < name`"
    );
    assert_eq!(
        err("amount AND TRUE").message,
        "expected TRUE or FALSE but `amount` is number 1200.5"
    );
    assert_eq!(
        err("ROUND(name)").message,
        "ROUND expects a number but got text `Acme Corp` in `ROUND(name)`"
    );
    assert!(
        err("YEAR('soon')")
            .message
            .starts_with("YEAR expects a date (YYYY-MM-DD)")
    );
    assert_eq!(
        err("UPPER(tags)").message,
        "UPPER expects text but got a list of 2 item(s) in `UPPER(tags)`"
    );
    assert!(err("LEFT(name, -1)").message.contains("count of 0 or more"));
    assert!(
        err("MID(name, 0, 1)")
            .message
            .contains("start position must be 1 or more")
    );
    assert!(
        err("SQRT(-4)")
            .message
            .starts_with("SQRT of the negative number -4")
    );
    assert!(
        err("POWER(-8, 0.5)")
            .message
            .contains("is not a real number")
    );
    assert!(err("POWER(10, 400)").message.contains("too large"));
    assert!(
        err("VALUE('abc')")
            .message
            .starts_with("VALUE cannot read text `abc`")
    );
    assert!(err("VALUE(TRUE)").message.starts_with("VALUE expects text"));
    assert!(err("TEXT(1, 'YYYY')").message.contains("not supported"));
    assert!(err("TEXT('a', '0')").message.contains("needs a number"));
    assert!(
        err("DATEDIFF(TODAY(), TODAY(), 'weeks')")
            .message
            .contains("unit `weeks` is not supported")
    );
    assert!(
        err("ADDDAYS(TODAY(), 1e15)")
            .message
            .contains("out of range")
    );
    assert!(
        err("REGEX('a', CONCAT('(', ''))")
            .message
            .contains("invalid regular expression")
    );
    // Errors point at the failing sub-expression.
    assert_eq!(err("1 + (name * 2)").column, 5);
}

// ---- limits ------------------------------------------------------------------------------

#[test]
fn deeply_nested_parentheses_fail_cleanly() {
    let src = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    let e = Expr::parse_with_limits(
        &src,
        Limits {
            max_source_len: 1 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Limit);
    assert!(
        e.message
            .starts_with("expression is nested too deeply (more than 64 levels)"),
        "{}",
        e.message
    );
    let ok = format!("{}1{}", "(".repeat(30), ")".repeat(30));
    assert_eq!(
        Expr::parse(&ok)
            .unwrap()
            .eval(&EvalContext::new(&record(), now()))
            .unwrap(),
        Value::Number(1.0)
    );
}

#[test]
fn long_operator_chains_and_nested_calls_are_bounded() {
    let chain = vec!["1"; 2000].join(" + ");
    assert_eq!(Expr::parse(&chain).unwrap_err().kind, ExprErrorKind::Limit);
    let nested = format!("{}1{}", "ABS(".repeat(1000), ")".repeat(1000));
    assert_eq!(Expr::parse(&nested).unwrap_err().kind, ExprErrorKind::Limit);
    let unary = format!("{}1", "-".repeat(4000));
    assert_eq!(Expr::parse(&unary).unwrap_err().kind, ExprErrorKind::Limit);
    let nots = format!("{}TRUE", "NOT ".repeat(1000));
    assert_eq!(Expr::parse(&nots).unwrap_err().kind, ExprErrorKind::Limit);
    let short = vec!["1"; 60].join(" + ");
    assert_eq!(js(&short), json!(60));
}

#[test]
fn source_length_is_limited() {
    let src = format!("'{}'", "x".repeat(9000));
    let e = parse_err(&src);
    assert_eq!(e.kind, ExprErrorKind::Limit);
    assert_eq!(
        e.message,
        "expression is 9002 bytes long; the limit is 8192 bytes"
    );
}

#[test]
fn step_limit() {
    let limits = Limits {
        max_steps: 10,
        ..Limits::default()
    };
    let e = Expr::parse_with_limits("1 + 2 + 3 + 4 + 5 + 6", limits).unwrap();
    let err = e.eval(&EvalContext::new(&record(), now())).unwrap_err();
    assert_eq!(err.kind, ExprErrorKind::Limit);
    assert!(err.message.contains("took more than 10 steps"));
    // Long lists count as steps too.
    let many: Vec<Json> = (0..200).map(|i| json!(i)).collect();
    let rec = json!({ "xs": many }).as_object().cloned().unwrap();
    let e = Expr::parse_with_limits(
        "SUM(xs)",
        Limits {
            max_steps: 100,
            ..Limits::default()
        },
    )
    .unwrap();
    assert_eq!(
        e.eval(&EvalContext::new(&rec, now())).unwrap_err().kind,
        ExprErrorKind::Limit
    );
}

#[test]
fn string_size_limit() {
    let limits = Limits {
        max_string_len: 16,
        ..Limits::default()
    };
    let cx_rec = record();
    let cx = EvalContext::new(&cx_rec, now());
    let e = Expr::parse_with_limits("CONCAT(name, name)", limits).unwrap();
    let err = e.eval(&cx).unwrap_err();
    assert_eq!(err.kind, ExprErrorKind::Limit);
    assert!(
        err.message.contains("the limit is 16 bytes"),
        "{}",
        err.message
    );
    let e = Expr::parse_with_limits("SUBSTITUTE('aaaa', 'a', 'bbbbb')", limits).unwrap();
    assert_eq!(e.eval(&cx).unwrap_err().kind, ExprErrorKind::Limit);
    let e = Expr::parse_with_limits(
        "UPPER(name)",
        Limits {
            max_string_len: 4,
            ..limits
        },
    )
    .unwrap();
    assert_eq!(e.eval(&cx).unwrap_err().kind, ExprErrorKind::Limit);
    // Default limit: repeated doubling through nested SUBSTITUTE stops at 1 MiB.
    let mut src = "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'".to_owned();
    for _ in 0..20 {
        src = format!("SUBSTITUTE({src}, 'x', 'xx')");
    }
    let err = eval_with(&src, &cx_rec).unwrap_err();
    assert_eq!(err.kind, ExprErrorKind::Limit);
}

/// Deterministic xorshift generator so the "random input" tests are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let rec = record();
    let cx = EvalContext::new(&rec, now());
    for _ in 0..3000 {
        let len = (rng.next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let src = String::from_utf8_lossy(&bytes);
        if let Ok(e) = Expr::parse(&src) {
            let _ = e.eval(&cx);
        }
    }
}

#[test]
fn random_token_soup_never_panics() {
    const PIECES: &[&str] = &[
        "(",
        ")",
        ",",
        "+",
        "-",
        "*",
        "/",
        "%",
        "=",
        "!=",
        "<",
        ">=",
        "AND",
        "OR",
        "NOT",
        "&&",
        "||",
        "1",
        "0",
        "2.5",
        "'x'",
        "\"y\"",
        "TRUE",
        "NULL",
        "name",
        "amount",
        "tags",
        "account.name",
        "nothing",
        "close_date",
        "IF(",
        "CONCAT(",
        "SUM(",
        "LEFT(",
        "MID(",
        "ROUND(",
        "DATEDIFF(",
        "REGEX(",
        "TODAY()",
        "NOW()",
        "ADDDAYS(",
        "SUBSTITUTE(",
        "VALUE(",
        "BLANKVALUE(",
        "'2026-01-01'",
        "POWER(",
        "MOD(",
    ];
    let mut rng = Rng(42);
    let rec = record();
    let cx = EvalContext::new(&rec, now());
    let mut parsed = 0;
    for _ in 0..5000 {
        let n = 1 + (rng.next() % 12) as usize;
        let src: Vec<&str> = (0..n)
            .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
            .collect();
        if let Ok(e) = Expr::parse(&src.join(" ")) {
            parsed += 1;
            let _ = e.eval(&cx);
        }
    }
    assert!(
        parsed > 100,
        "the generator should produce some valid expressions ({parsed})"
    );
}

#[test]
fn fuzz_target_bodies_survive_a_deterministic_corpus() {
    let inputs = fuzzing::corpus(0x00C0_FFEE, 3000);
    assert_eq!(inputs.len(), 3000);
    assert_eq!(
        inputs,
        fuzzing::corpus(0x00C0_FFEE, 3000),
        "the corpus must be deterministic"
    );
    for input in &inputs {
        fuzzing::expr_parse_eval(input);
        fuzzing::filter_parse(input);
    }
}
