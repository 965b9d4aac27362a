//! A small blocking HTTP/1.1 client over a real TCP connection (one request per connection),
//! and [`Client`], which signs every request in as one [`Who`].
//!
//! Tests talk to the listener the HTTP plugin bound, so the whole stack (hoops, routes, error
//! mapping, headers) is what a real client sees. Bodies may be binary; chunked answers are
//! decoded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use crate::session::Who;

/// One request for [`send`].
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Announce the full body, send only this many bytes, then close (an interrupted upload).
    pub cut_after: Option<usize>,
}

impl Request {
    /// `method path` without body.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }

    /// `POST` with a JSON body.
    pub fn post(path: &str, body: &Value) -> Self {
        Self::new("POST", path).json(body)
    }

    /// `PATCH` with a JSON body.
    pub fn patch(path: &str, body: &Value) -> Self {
        Self::new("PATCH", path).json(body)
    }

    /// `PUT` with raw bytes.
    pub fn put(path: &str, body: Vec<u8>) -> Self {
        Self::new("PUT", path).bytes(body, "application/octet-stream")
    }

    /// A JSON body.
    pub fn json(self, body: &Value) -> Self {
        self.bytes(body.to_string().into_bytes(), "application/json")
    }

    /// A raw body of `content_type`.
    pub fn bytes(mut self, body: Vec<u8>, content_type: &str) -> Self {
        self.body = body;
        self.header("content-type", content_type)
    }

    /// One more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Several more headers.
    pub fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        for (k, v) in headers {
            self.headers.push(((*k).to_owned(), (*v).to_owned()));
        }
        self
    }

    /// Signed in as `who` (the `x-test-*` headers of [`crate::session`]).
    pub fn as_who(mut self, who: &Who) -> Self {
        self.headers.extend(who.headers());
        self
    }

    /// Sends `cut_after` bytes of the body and then closes the connection.
    pub fn cut_after(mut self, bytes: usize) -> Self {
        self.cut_after = Some(bytes);
        self
    }
}

/// An answer: status, headers (names lower-cased, in order, repeated ones kept) and body.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON, `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every value of header `name` joined with `, `; `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The stable error code of an error answer (`error.code`, or a top-level `code`), or "".
    pub fn code(&self) -> String {
        let body = self.json();
        body["error"]["code"]
            .as_str()
            .or_else(|| body["code"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// The JSON body of a 200, panicking with the body otherwise.
    #[track_caller]
    pub fn ok_json(&self) -> Value {
        self.expect_json(200)
    }

    /// The JSON body of an answer with `status`, panicking with the body otherwise.
    #[track_caller]
    pub fn expect_json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        self.json()
    }
}

/// Sends one request over a fresh connection and reads the whole answer (blocking).
///
/// # Errors
/// When the connection cannot be opened or the answer cannot be read.
pub fn send(addr: SocketAddr, req: &Request) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: objectos-testkit/1.0\r\nContent-Length: {}\r\n",
        req.method,
        req.path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(n) = req.cut_after {
        stream.write_all(&req.body[..n.min(req.body.len())])?;
        stream.flush()?;
        // Dropped mid-body: the server sees the connection end early.
        stream.shutdown(std::net::Shutdown::Both)?;
        return Ok(Response::default());
    }
    // A server refusing early (403, 413) answers and closes before the body is sent: the write
    // then fails, and the answer is still there to read.
    let _ = stream.write_all(&req.body);
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    Ok(parse(&raw))
}

/// [`send`] from async code (on a blocking thread), panicking when the server cannot be reached.
pub async fn fetch(addr: SocketAddr, req: Request) -> Response {
    tokio::task::spawn_blocking(move || send(addr, &req))
        .await
        .expect("the request thread")
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

/// The payload of a chunked body; stops at the last chunk or at anything malformed.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..end]);
        // Chunk extensions (`;name=value`) carry nothing a test needs.
        let size = size.split(';').next().unwrap_or_default();
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &body[end + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// An HTTP client signed in as one [`Who`] on every request.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub who: Who,
}

impl Client {
    pub fn new(addr: SocketAddr, who: Who) -> Self {
        Self { addr, who }
    }

    /// Sends `req`, signed in.
    pub async fn send(&self, req: Request) -> Response {
        fetch(self.addr, req.as_who(&self.who)).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Request::get(path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Request::post(path, body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.send(Request::patch(path, body)).await
    }

    pub async fn put(&self, path: &str, body: Vec<u8>) -> Response {
        self.send(Request::put(path, body)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(Request::delete(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_answers_are_decoded_and_headers_kept_in_order() {
        let raw = b"HTTP/1.1 200 OK\r\nVary: a\r\nTransfer-Encoding: chunked\r\nvary: b\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = parse(raw);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "abcde");
        assert_eq!(r.header("Vary").as_deref(), Some("a, b"));
        assert_eq!(r.header("etag"), None);
    }

    #[test]
    fn error_codes_are_read_from_either_shape() {
        let r = Response {
            body: br#"{"error":{"code":"X"}}"#.to_vec(),
            ..Response::default()
        };
        assert_eq!(r.code(), "X");
        let r = Response {
            body: br#"{"code":"Y"}"#.to_vec(),
            ..Response::default()
        };
        assert_eq!(r.code(), "Y");
    }
}
