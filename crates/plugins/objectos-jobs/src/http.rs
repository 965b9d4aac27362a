//! The built-in `http.request` job handler: sends one HTTP request (JSON body, `POST` by
//! default) to a URL whose host `jobs.http.allowHosts` lists, so schedules (`*.job.yml`) and
//! `POST /api/v1/jobs` can drive outside services without Rust code.
//!
//! A 2xx answer completes the job; any other status, a timeout or a network error is a
//! retryable failure (the job's retry policy applies). A URL whose host is not allowed, or a
//! malformed payload, is refused at enqueue and fails fatally if it reaches a worker anyway
//! (an `allowHosts` narrowed after the enqueue). Redirects are not followed: a redirect to
//! another host would step around the list.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use objectos_kernel::contracts::{JobContext, JobFailure, JobHandler};
use reqwest013 as reqwest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::JobsError;

/// The handler's registered name.
pub const HANDLER: &str = "http.request";

/// How much of an error answer's body goes into the job's error message.
const ERROR_BODY_CHARS: usize = 300;

/// `jobs.http`: what the `http.request` handler may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Hosts the handler may call: `hooks.example.com` (any port), `127.0.0.1:8080` (that
    /// port only), `[::1]:8080`, or `*.example.com` (any subdomain, not the domain itself).
    /// Empty (the default): the handler refuses every request.
    pub allow_hosts: Vec<String>,
    /// A request's time limit when its payload names none.
    pub timeout_ms: u64,
    /// Upper bound of a payload's `timeoutMs`.
    pub max_timeout_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            timeout_ms: 10_000,
            max_timeout_ms: 300_000,
        }
    }
}

/// One `allowHosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// `host` or `host:port` (the host lowercased; IPv6 in brackets, as URLs write it).
    Host { host: String, port: Option<u16> },
    /// `*.suffix`: hosts ending in `.suffix`.
    Subdomains(String),
}

fn parse_allowed(entry: &str) -> Result<Allowed, String> {
    let e = entry.trim().to_ascii_lowercase();
    if e.is_empty() {
        return Err("must not be empty".into());
    }
    if e.contains("://") || e.contains('/') || e.contains('@') || e.contains('?') {
        return Err(format!(
            "`{entry}` is not a host: write `host`, `host:port` or `*.domain`, without scheme or path"
        ));
    }
    if let Some(suffix) = e.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') || suffix.contains(':') {
            return Err(format!(
                "`{entry}`: a wildcard is `*.domain` (no port, one `*` in front)"
            ));
        }
        return Ok(Allowed::Subdomains(suffix.to_owned()));
    }
    if e.contains('*') {
        return Err(format!(
            "`{entry}`: `*` is allowed only as `*.domain`; list the hosts the handler may call"
        ));
    }
    let bad_port = || format!("`{entry}`: the port must be a number from 1 to 65535");
    let (host, port) = if let Some(rest) = e.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{entry}`: an IPv6 address is written `[::1]`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(bad_port)?,
            ),
            None if after.is_empty() => None,
            None => return Err(format!("`{entry}`: unexpected `{after}` after the address")),
        };
        (format!("[{ip}]"), port)
    } else {
        match e.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(bad_port)?,
                ),
            ),
            None => (e.clone(), None),
        }
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(format!(
            "`{entry}` is not a host (write an IPv6 address in brackets: `[::1]:8080`)"
        ));
    }
    Ok(Allowed::Host { host, port })
}

impl HttpSettings {
    /// The settings' problems, as `(path under jobs.http, message)`.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, entry) in self.allow_hosts.iter().enumerate() {
            if let Err(m) = parse_allowed(entry) {
                out.push((format!("http.allowHosts.{i}"), m));
            }
        }
        if self.timeout_ms == 0 {
            out.push(("http.timeoutMs".into(), "must be at least 1".into()));
        }
        if self.max_timeout_ms < self.timeout_ms {
            out.push((
                "http.maxTimeoutMs".into(),
                "must be at least http.timeoutMs".into(),
            ));
        }
        out
    }
}

/// The payload of an `http.request` job (for a schedule, the `payload` of its `*.job.yml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequest {
    /// `http` or `https`, on a host `jobs.http.allowHosts` lists.
    pub url: String,
    /// `POST` (default), `PUT`, `PATCH`, `DELETE` or `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// Sent as they are (besides the ones the handler sets; `host`, `content-length` and
    /// the like are refused).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as JSON. Without it a scheduled run sends `{schedule, tick}`, any other job no body.
    #[serde(default)]
    pub body: Option<Value>,
    /// This request's time limit (`jobs.http.timeoutMs` when unset, at most `maxTimeoutMs`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

const METHODS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "GET"];

/// Headers a payload may not set: they describe the connection or the body, which the handler
/// owns, and `host` would send the request to another virtual host than the one allowed.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
];

/// A checked request, ready to send.
#[derive(Debug)]
struct Checked {
    url: reqwest::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
}

/// The `http.request` handler.
#[derive(Debug, Clone)]
pub struct HttpHandler {
    allowed: Vec<Allowed>,
    settings: HttpSettings,
    client: reqwest::Client,
}

impl HttpHandler {
    /// A handler for `settings` (checked by [`HttpSettings::problems`] at init; an entry that
    /// does not parse allows nothing).
    pub fn new(settings: &HttpSettings) -> Result<Self, JobsError> {
        // reqwest uses rustls without a provider of its own: the process's, ring (the server
        // installs it at start; a test or another host may not have).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("objectos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JobsError::Config(format!("the HTTP client: {e}")))?;
        Ok(Self {
            allowed: settings
                .allow_hosts
                .iter()
                .filter_map(|e| parse_allowed(e).ok())
                .collect(),
            settings: settings.clone(),
            client,
        })
    }

    fn host_allowed(&self, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|a| match a {
            Allowed::Host { host: h, port: p } => h == host && p.is_none_or(|p| p == port),
            Allowed::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        })
    }

    fn check(&self, payload: &Value) -> Result<Checked, String> {
        let request: HttpRequest = serde_json::from_value(payload.clone())
            .map_err(|e| format!("{e}; expected {{url, method?, headers?, body?, timeoutMs?}}"))?;
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| format!("url: `{}` is not a URL: {e}", request.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url: the scheme must be http or https, not `{}`",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url: credentials in the URL are refused; send them in `headers`".into());
        }
        let host = url
            .host_str()
            .ok_or_else(|| "url: the URL names no host".to_owned())?
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        if self.allowed.is_empty() {
            return Err(format!(
                "url: host `{host}` is not allowed: jobs.http.allowHosts is empty, so the {HANDLER} handler may call no host (list the hosts in objectos.yml)"
            ));
        }
        if !self.host_allowed(&host, port) {
            return Err(format!(
                "url: host `{host}:{port}` is not in jobs.http.allowHosts"
            ));
        }
        let method_name = request
            .method
            .as_deref()
            .map_or_else(|| "POST".to_owned(), str::to_ascii_uppercase);
        if !METHODS.contains(&method_name.as_str()) {
            return Err(format!(
                "method: `{method_name}` is not one of {}",
                METHODS.join(", ")
            ));
        }
        let method = reqwest::Method::from_bytes(method_name.as_bytes())
            .map_err(|e| format!("method: {e}"))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(format!(
                    "headers.{name}: set by the handler; a payload may not set it"
                ));
            }
            let n = reqwest::header::HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| format!("headers.{name}: not a valid header name"))?;
            let v = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("headers.{name}: not a valid header value"))?;
            headers.insert(n, v);
        }
        let ms = request.timeout_ms.unwrap_or(self.settings.timeout_ms);
        if ms == 0 || ms > self.settings.max_timeout_ms {
            return Err(format!(
                "timeoutMs: must be from 1 to {} (jobs.http.maxTimeoutMs)",
                self.settings.max_timeout_ms
            ));
        }
        Ok(Checked {
            url,
            method,
            headers,
            timeout: Duration::from_millis(ms),
        })
    }

    /// The request a job carries: its payload, or for a scheduled run the `payload` of the
    /// schedule (the job's payload is then `{schedule, tick, payload}`).
    fn request_of(cx: &JobContext) -> &Value {
        if cx.schedule.is_some() {
            cx.payload.get("payload").unwrap_or(&Value::Null)
        } else {
            &cx.payload
        }
    }

    async fn send(&self, cx: &JobContext) -> Result<(), JobFailure> {
        let payload = Self::request_of(cx);
        let checked = self.check(payload).map_err(JobFailure::fatal)?;
        let body = match payload.get("body") {
            Some(b) => Some(b.clone()),
            None => cx.schedule.as_ref().map(|s| {
                serde_json::json!({ "schedule": s, "tick": cx.payload.get("tick").cloned().unwrap_or(Value::Null) })
            }),
        };
        let mut req = self
            .client
            .request(checked.method.clone(), checked.url.clone())
            .timeout(checked.timeout)
            .header("x-objectos-job-id", cx.id.as_str())
            .header("x-objectos-attempt", cx.attempt.to_string())
            // The same key on every attempt: a receiver can drop a repeated delivery.
            .header("idempotency-key", cx.id.as_str());
        if let Some(s) = &cx.schedule {
            req = req.header("x-objectos-schedule", s.as_str());
        }
        // The payload's own headers win over the defaults above.
        for (name, value) in &checked.headers {
            req = req.header(name, value);
        }
        if let Some(b) = body {
            let bytes =
                serde_json::to_vec(&b).map_err(|e| JobFailure::fatal(format!("body: {e}")))?;
            req = req.header("content-type", "application/json").body(bytes);
        }
        let host = checked.url.host_str().unwrap_or_default().to_owned();
        let res = tokio::select! {
            r = req.send() => r,
            () = cx.cancel.cancelled() => {
                return Err(JobFailure::retry("cancelled before the answer arrived"));
            }
        };
        let mut res = match res {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("no answer within {} ms", checked.timeout.as_millis())
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "the request failed".to_owned()
                };
                // The error's text names the URL only; its chain says why.
                let mut message = format!("{} {host}: {what}", checked.method_name());
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    let _ = write!(message, ": {s}");
                    source = s.source();
                }
                return Err(JobFailure::retry(message));
            }
        };
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        // Some of the answer's body helps whoever reads the dead letter.
        let mut text = Vec::new();
        while text.len() < ERROR_BODY_CHARS * 4 {
            match res.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let text: String = String::from_utf8_lossy(&text)
            .chars()
            .take(ERROR_BODY_CHARS)
            .collect();
        let redirect = if status.is_redirection() {
            " (redirects are not followed)"
        } else {
            ""
        };
        Err(JobFailure::retry(format!(
            "{} {host} answered {status}{redirect}: {}",
            checked.method_name(),
            text.trim()
        )))
    }
}

impl Checked {
    fn method_name(&self) -> &str {
        self.method.as_str()
    }
}

#[async_trait]
impl JobHandler for HttpHandler {
    async fn run(&self, cx: JobContext) -> Result<(), JobFailure> {
        self.send(&cx).await
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        self.check(payload).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(hosts: &[&str]) -> HttpHandler {
        HttpHandler::new(&HttpSettings {
            allow_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..HttpSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn allow_list_entries_parse_or_say_why() {
        assert_eq!(
            parse_allowed("Hooks.Example.com").unwrap(),
            Allowed::Host {
                host: "hooks.example.com".into(),
                port: None
            }
        );
        assert_eq!(
            parse_allowed("127.0.0.1:8080").unwrap(),
            Allowed::Host {
                host: "127.0.0.1".into(),
                port: Some(8080)
            }
        );
        assert_eq!(
            parse_allowed("[::1]:9").unwrap(),
            Allowed::Host {
                host: "[::1]".into(),
                port: Some(9)
            }
        );
        assert_eq!(
            parse_allowed("*.example.com").unwrap(),
            Allowed::Subdomains("example.com".into())
        );
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "*",
            "a.*.com",
            "x:0",
            "x:99999",
            "::1",
        ] {
            assert!(parse_allowed(bad).is_err(), "{bad}");
        }
        let s = HttpSettings {
            allow_hosts: vec!["ok.com".into(), "https://bad".into()],
            ..HttpSettings::default()
        };
        assert_eq!(s.problems()[0].0, "http.allowHosts.1");
    }

    #[test]
    fn only_listed_hosts_pass() {
        let h = handler(&["hooks.example.com", "127.0.0.1:8080", "*.corp.example"]);
        let ok = |url: &str| h.validate(&serde_json::json!({ "url": url }));
        assert!(ok("https://hooks.example.com/x").is_ok());
        assert!(ok("http://HOOKS.example.com:81/x").is_ok());
        assert!(ok("http://127.0.0.1:8080/").is_ok());
        assert!(ok("http://127.0.0.1:8081/").is_err());
        assert!(ok("http://127.0.0.1/").is_err());
        assert!(ok("https://a.corp.example/").is_ok());
        assert!(ok("https://corp.example/").is_err());
        assert!(ok("https://evilcorp.example/").is_err());
        assert!(ok("https://hooks.example.com.evil.org/").is_err());
        assert!(ok("ftp://hooks.example.com/").is_err());
        assert!(ok("https://user:pw@hooks.example.com/").is_err());
        let none = handler(&[]).validate(&serde_json::json!({ "url": "https://x.org" }));
        assert!(none.unwrap_err().contains("allowHosts is empty"));
    }

    #[tokio::test]
    async fn a_disallowed_host_fails_fatally_at_run_time() {
        let cx = JobContext {
            id: "j1".into(),
            handler: HANDLER.into(),
            attempt: 1,
            payload: serde_json::json!({"url": "http://127.0.0.1:9/x"}),
            cancel: objectos_kernel::contracts::CancelFlag::new(),
            deadline: None,
            schedule: None,
        };
        let err = handler(&[]).run(cx.clone()).await.unwrap_err();
        assert!(!err.retryable, "{err:?}");
        assert!(err.message.contains("allowHosts is empty"), "{err:?}");
        // Allowed but nobody listens: a network error, retryable.
        let err = handler(&["127.0.0.1:9"]).run(cx).await.unwrap_err();
        assert!(err.retryable, "{err:?}");
        assert!(err.message.contains("127.0.0.1"), "{err:?}");
    }

    #[test]
    fn payloads_are_checked_field_by_field() {
        let h = handler(&["x.org"]);
        let err = |v: Value| h.validate(&v).unwrap_err();
        assert!(err(serde_json::json!({})).contains("url"));
        assert!(err(serde_json::json!({"url": "https://x.org", "bogus": 1})).contains("bogus"));
        assert!(
            err(serde_json::json!({"url": "https://x.org", "method": "TRACE"}))
                .starts_with("method")
        );
        assert!(
            err(serde_json::json!({"url": "https://x.org", "headers": {"Host": "y"}}))
                .starts_with("headers.Host")
        );
        assert!(
            err(serde_json::json!({"url": "https://x.org", "timeoutMs": 0}))
                .starts_with("timeoutMs")
        );
        assert!(
            h.validate(&serde_json::json!({"url": "https://x.org", "method": "put",
                "headers": {"X-Token": "t"}, "body": {"a": 1}, "timeoutMs": 500}))
                .is_ok()
        );
    }
}
