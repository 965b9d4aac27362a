//! Helpers: run the built binary in a temp dir, write metadata fixtures, raw HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};

pub(crate) const CONTACT_YML: &str = "\
name: contact
label: Contact
fields:
  name:
    type: text
    label: Name
    required: true
  status:
    type: select
    label: Status
    options:
      - { label: New, value: new }
      - { label: Active, value: active }
";

/// A metadata folder with one valid object.
pub(crate) fn write_metadata(dir: &Path) -> std::path::PathBuf {
    let meta = dir.join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("contact.object.yml"), CONTACT_YML).unwrap();
    meta
}

/// The binary with a clean `OBJECTOS_*` environment, run in `cwd`.
pub(crate) fn objectos(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_objectos"));
    cmd.current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("OBJECTOS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub(crate) fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// One HTTP/1.1 exchange over a fresh connection; returns (status, body).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http_as(addr, method, path, body, None)
}

/// Like [`http`], with `Authorization: Bearer <token>` when a token is given.
pub(crate) fn http_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
