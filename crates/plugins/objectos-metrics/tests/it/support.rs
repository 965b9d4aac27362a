//! Test harness: a booted kernel with the metrics plugin (`objectos_testkit::TestKernel`: the
//! data plugin on a SQLite file, HTTP on loopback), a tiny HTTP/1.0 client that sends any
//! header as it is, and a parser of the Prometheus text format.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use objectos_metrics::{MetricsConfig, MetricsPlugin};
use objectos_testkit::TestKernel;

/// The recorder is process-wide, so tests asserting exact deltas take turns.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) const TOKEN: &str = "scrape-me-0123456789";

const CONTACT_YML: &str = "\
name: contact
label: Contact
fields:
  name:
    type: text
    label: Name
";

pub(crate) struct Harness {
    pub(crate) tk: TestKernel,
    pub(crate) addr: SocketAddr,
}

impl Harness {
    /// Requests carry no session (no `x-test-*` sign-in): what the metrics plugin sees of an
    /// anonymous client, with no permissions plugin in the way.
    pub(crate) async fn boot(config: MetricsConfig) -> Harness {
        let tk = TestKernel::builder()
            .version("9.9.9-test")
            .file("contact.object.yml", CONTACT_YML)
            .without_session()
            .plugin(MetricsPlugin::new(config))
            .boot()
            .await;
        let addr = tk.addr();
        Harness { tk, addr }
    }

    /// A kernel whose scrapes need [`TOKEN`].
    pub(crate) async fn with_token() -> Harness {
        Self::boot(MetricsConfig {
            token: Some(objectos_spec::settings::Secret::new(TOKEN)),
            ..MetricsConfig::default()
        })
        .await
    }

    pub(crate) async fn stop(self) {
        self.tk.stop().await;
    }

    pub(crate) async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String) {
        let addr = self.addr;
        let method = method.to_owned();
        let path = path.to_owned();
        let body = body.map(str::to_owned);
        let headers: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        tokio::task::spawn_blocking(move || http10(addr, &method, &path, &headers, body))
            .await
            .unwrap()
    }

    /// Scrapes `/metrics` with the token and parses the answer.
    pub(crate) async fn scrape(&self) -> Samples {
        let auth = format!("Bearer {TOKEN}");
        let (status, body) = self
            .http("GET", "/metrics", &[("authorization", &auth)], None)
            .await;
        assert_eq!(status, 200, "{body}");
        Samples::parse(&body)
    }
}

/// HTTP/1.0, so the answer is never chunked and ends with the connection.
fn http10(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    body: Option<String>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Samples of one scrape: name, labels, value.
#[derive(Debug)]
pub(crate) struct Samples {
    pub(crate) text: String,
    rows: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Samples {
    pub(crate) fn parse(text: &str) -> Samples {
        let mut rows = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            // Label values here never contain `",`, so splitting on it is enough.
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap();
                map.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
            rows.push((name.to_owned(), map, value));
        }
        Samples {
            text: text.to_owned(),
            rows,
        }
    }

    /// The sum over every series of `name` carrying all of `labels`.
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.rows
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.rows.iter().any(|(n, _, _)| n == name)
    }
}
