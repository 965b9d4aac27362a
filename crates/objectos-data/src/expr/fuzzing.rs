//! Fuzz-target bodies shared by the cargo-fuzz crate in `fuzz/` and the corpus tests run by CI.
//!
//! Each body takes arbitrary bytes and must return normally: a panic (including the invariant
//! assertions below) is a finding. [`corpus`] generates a deterministic mix of inputs so that a
//! plain `cargo test` exercises the same bodies without a nightly toolchain.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value as Json, json};

use super::{EvalContext, Expr, Limits};

/// The record every fuzzed expression is evaluated against: one field of each JSON kind.
fn sample_record() -> Map<String, Json> {
    let value = json!({
        "name": "Acme Corp",
        "amount": 1200.5,
        "qty": 3,
        "zero": 0,
        "empty": "",
        "nothing": null,
        "active": true,
        "status": "active",
        "close_date": "2026-12-01",
        "created_at": "2026-11-20T10:00:00.000Z",
        "tags": ["a", "b"],
        "scores": [1, 2.5, null],
        "account": { "name": "Parent Inc", "tier": 2 },
    });
    match value {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

fn fixed_now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_795_452_310_709)
        .single()
        .unwrap_or_default()
}

/// Parses `data` (lossily decoded as UTF-8) with default and with tight limits, then evaluates
/// whatever parses. Checks that error columns point inside the source.
pub fn expr_parse_eval(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let record = sample_record();
    let cx = EvalContext::new(&record, fixed_now());
    let tight = Limits {
        max_source_len: 512,
        max_depth: 8,
        max_steps: 64,
        max_string_len: 64,
    };
    for limits in [Limits::default(), tight] {
        match Expr::parse_with_limits(&src, limits) {
            Ok(expr) => {
                let _ = expr.fields();
                let _ = expr.uses_clock();
                match expr.eval(&cx) {
                    Ok(v) => {
                        let _ = v.to_json();
                        let text = v.to_text();
                        assert!(
                            text.len() <= limits.max_string_len.max(src.len()) * 4 + 64,
                            "text result escaped the size limit"
                        );
                    }
                    Err(e) => assert!(!e.message.is_empty(), "empty evaluation error message"),
                }
                let _ = expr.eval_bool(&cx);
            }
            Err(e) => {
                let chars = src.chars().count();
                assert!(
                    e.column >= 1 && e.column <= chars + 1,
                    "column {} outside 1..={}",
                    e.column,
                    chars + 1
                );
                assert!(!e.message.is_empty(), "empty parse error message");
            }
        }
    }
}

/// Parses `data` as the JSON text of a `filter` query parameter.
pub fn filter_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match objectos_spec::query::Filter::parse_str(text) {
        Ok(filter) => {
            let _ = format!("{filter:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Deterministic xorshift64 generator, so corpora are reproducible without a dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }
}

const EXPR_PIECES: &[&str] = &[
    "(",
    ")",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
    "AND",
    "OR",
    "NOT",
    "&&",
    "||",
    "&",
    "!",
    "|",
    "1",
    "0",
    "2.5",
    "1e3",
    ".5",
    "'x'",
    "\"y\"",
    "'2026-01-01'",
    "'",
    "\"",
    "\\",
    "TRUE",
    "false",
    "NULL",
    "name",
    "amount",
    "qty",
    "zero",
    "tags",
    "scores",
    "account.name",
    "nothing",
    "close_date",
    "created_at",
    "IF(",
    "CONCAT(",
    "SUM(",
    "LEFT(",
    "RIGHT(",
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
    "POWER(",
    "MOD(",
    "TEXT(",
    "LEN(",
    "UPPER(",
    "AVERAGE(",
    "MAX(",
    "ISBLANK(",
    "CONTAINS(",
    "BEGINS(",
    "YEAR(",
    "FLOOR(",
    "CEILING(",
    "SQRT(",
    "{{",
    "}}",
    "é",
    "\u{0}",
];

const FILTER_PIECES: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"amount\"",
    "\"name\"",
    "\">\"",
    "\"=\"",
    "\"!=\"",
    "\"in\"",
    "\"between\"",
    "\"contains\"",
    "\"and\"",
    "\"or\"",
    "\"not\"",
    "\"$and\"",
    "\"$or\"",
    "\"$not\"",
    "\"$eq\"",
    "\"$gt\"",
    "\"$in\"",
    "\"$nin\"",
    "\"$exists\"",
    "\"$regex\"",
    "\"$between\"",
    "100",
    "-1.5",
    "1e400",
    "true",
    "null",
    "\"\"",
    "\"a.b\"",
    "\"x\"",
    "[1,2]",
    "\"",
];

const SEEDS: &[&str] = &[
    "IF(amount > 1000, 'big', 'small')",
    "ROUND(amount * 0.2, 2)",
    "CONCAT(UPPER(name), ' - ', TEXT(qty))",
    "AND(active, NOT(ISBLANK(account.name)), close_date > TODAY())",
    "DATEDIFF(created_at, NOW(), 'hours') >= 24 || qty % 2 = 0",
    "[\"amount\", \">\", 100]",
    "[[\"status\", \"=\", \"active\"], \"or\", [\"amount\", \"between\", [1, 5]]]",
    "{\"$and\": [{\"amount\": {\"$gt\": 1}}, {\"name\": {\"$in\": [\"a\", \"b\"]}}]}",
];

/// `count` deterministic inputs from `seed`: random bytes, expression and filter token soups,
/// mutated seeds, and deep nesting of brackets (up to a few hundred levels).
pub fn corpus(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let input = match i % 6 {
            0 => {
                let len = rng.below(96);
                (0..len).map(|_| rng.next() as u8).collect()
            }
            1 => soup(&mut rng, EXPR_PIECES, " "),
            2 => soup(&mut rng, EXPR_PIECES, ""),
            3 => soup(&mut rng, FILTER_PIECES, ""),
            4 => {
                let mut bytes = rng.pick(SEEDS).as_bytes().to_vec();
                for _ in 0..=rng.below(4) {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = rng.below(bytes.len());
                    match rng.below(3) {
                        0 => bytes[at] = rng.next() as u8,
                        1 => {
                            bytes.remove(at);
                        }
                        _ => bytes.insert(
                            at,
                            rng.pick(&["(", "[", "{", "'", "\"", ",", ")"]).as_bytes()[0],
                        ),
                    }
                }
                bytes
            }
            _ => {
                let depth = rng.below(400);
                let (open, inner, close) = match rng.below(4) {
                    0 => ("(", "1", ")"),
                    1 => ("ABS(", "-1", ")"),
                    2 => ("[", "\"a\"", "]"),
                    _ => ("{\"$not\":", "{\"a\":1}", "}"),
                };
                format!("{}{inner}{}", open.repeat(depth), close.repeat(depth)).into_bytes()
            }
        };
        out.push(input);
    }
    out
}

fn soup(rng: &mut Rng, pieces: &[&str], sep: &str) -> Vec<u8> {
    let n = 1 + rng.below(16);
    (0..n)
        .map(|_| rng.pick(pieces))
        .collect::<Vec<_>>()
        .join(sep)
        .into_bytes()
}
