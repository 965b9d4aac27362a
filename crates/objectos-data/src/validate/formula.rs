//! Formula fields in dependency order, cycle detection, and autonumber formatting.

use chrono::{Datelike, NaiveDate};

use crate::expr::Expr;

/// Orders formulas so that each comes after the formulas it reads (declaration order otherwise).
///
/// Returns the evaluation order (indexes into `formulas`), the indexes that cannot be computed
/// (on or behind a cycle), and one message per distinct cycle: `a -> b -> a`.
pub(crate) fn order(formulas: &[(String, Expr)]) -> (Vec<usize>, Vec<usize>, Vec<String>) {
    let n = formulas.len();
    let deps: Vec<Vec<usize>> = formulas
        .iter()
        .map(|(_, expr)| {
            let mut d: Vec<usize> = expr
                .fields()
                .iter()
                .filter_map(|path| {
                    let head = path.split('.').next().unwrap_or(path);
                    formulas.iter().position(|(name, _)| name == head)
                })
                .collect();
            d.dedup();
            d
        })
        .collect();
    let mut done = vec![false; n];
    let mut out = Vec::with_capacity(n);
    // Kahn's algorithm, always taking the earliest ready formula so the order is stable.
    loop {
        let ready = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        match ready {
            Some(i) => {
                done[i] = true;
                out.push(i);
            }
            None => break,
        }
    }
    let stuck: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    for &start in &stuck {
        // Every stuck formula reads another stuck one, so this walk must revisit a node; the
        // part from that node's first visit on is a cycle.
        let mut path = vec![start];
        let mut current = start;
        let cycle = loop {
            let Some(&next) = deps[current].iter().find(|&&d| !done[d]) else {
                break None;
            };
            if let Some(pos) = path.iter().position(|&p| p == next) {
                break Some(path[pos..].to_vec());
            }
            path.push(next);
            current = next;
        };
        if let Some(c) = cycle {
            let mut key = c.clone();
            key.sort_unstable();
            if !cycles.iter().any(|known| {
                let mut k = known.clone();
                k.sort_unstable();
                k == key
            }) {
                cycles.push(c);
            }
        }
    }
    let messages = cycles
        .iter()
        .map(|c| {
            let mut names: Vec<&str> = c.iter().map(|&i| formulas[i].0.as_str()).collect();
            names.push(names[0]);
            format!("formula fields form a cycle: {}", names.join(" -> "))
        })
        .collect();
    (out, stuck, messages)
}

/// Formats an autonumber: `{0000}` is the number zero-padded to the run's width (`{0}` unpadded);
/// date tokens are left as written. Without a number token the number is appended.
pub fn format_autonumber(format: &str, n: i64) -> String {
    render(format, n, None)
}

/// Like [`format_autonumber`], also filling `{YYYY}`, `{YY}`, `{MM}` and `{DD}` from `date`.
pub fn format_autonumber_on(format: &str, n: i64, date: NaiveDate) -> String {
    render(format, n, Some(date))
}

fn render(format: &str, n: i64, date: Option<NaiveDate>) -> String {
    let mut out = String::with_capacity(format.len() + 8);
    let mut rest = format;
    let mut numbered = false;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let token = &after[..close];
        let replaced = if !token.is_empty() && token.chars().all(|c| c == '0') {
            numbered = true;
            let width = token.len();
            Some(if n < 0 {
                format!("-{:0width$}", n.unsigned_abs())
            } else {
                format!("{n:0width$}")
            })
        } else {
            match (token, date) {
                ("YYYY", Some(d)) => Some(format!("{:04}", d.year())),
                ("YY", Some(d)) => Some(format!("{:02}", d.year().rem_euclid(100))),
                ("MM", Some(d)) => Some(format!("{:02}", d.month())),
                ("DD", Some(d)) => Some(format!("{:02}", d.day())),
                _ => None,
            }
        };
        match replaced {
            Some(text) => out.push_str(&text),
            None => {
                out.push('{');
                out.push_str(token);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if !numbered {
        out.push_str(&n.to_string());
    }
    out
}
