//! The core routes of `/api/v1` and the helpers their handlers share.

pub mod batch;
pub mod data;
pub mod discovery;
pub mod docs;
pub mod home;
pub mod meta;
pub mod openapi;
pub mod system;
pub mod ui;

use salvo::prelude::Request;

use crate::error::HttpError;

/// API base path of every core route.
pub const API_BASE: &str = "/api/v1";

/// A path parameter that the router guarantees is present; a missing one is a routing bug.
pub(crate) fn path_param(req: &Request, name: &str) -> Result<String, HttpError> {
    req.params()
        .get(name)
        .cloned()
        .ok_or_else(|| HttpError::Internal(format!("route has no `{name}` path parameter")))
}

/// The query string as ordered, decoded `(key, value)` pairs (repeated keys kept in order).
pub(crate) fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(parse_query_string)
        .unwrap_or_default()
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte; invalid UTF-8
/// becomes U+FFFD rather than an error so the query parser can name the parameter at fault.
pub(crate) fn parse_query_string(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        let pairs = parse_query_string(
            "top=2&sort=-amount&filter=%5B%22a%22%2C%22%3E%22%2C1%5D&q=a+b&x&bad=%zz&end=%4",
        );
        assert_eq!(pairs[0], ("top".into(), "2".into()));
        assert_eq!(pairs[2], ("filter".into(), "[\"a\",\">\",1]".into()));
        assert_eq!(pairs[3], ("q".into(), "a b".into()));
        assert_eq!(pairs[4], ("x".into(), String::new()));
        assert_eq!(pairs[5], ("bad".into(), "%zz".into()));
        assert_eq!(pairs[6], ("end".into(), "%4".into()));
    }
}
