//! A minimal OTLP/gRPC trace receiver (feature `otlp`): keeps every span it is sent, over
//! plaintext ([`Receiver::start`]), TLS ([`Receiver::start_tls`]) or mutual TLS
//! ([`Receiver::start_mtls`]).
//!
//! It is the `TraceService` server generated in `opentelemetry-proto` (feature `gen-tonic`, the
//! same crate and version the exporter encodes with) served by tonic on loopback: nothing to
//! install, and it decodes exactly what a collector would. The metrics plugin's trace tests and
//! the black-box suite's end-to-end trace (request, event, job) both use it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

/// One received span, with ids as lowercase hex.
#[derive(Debug, Clone)]
pub struct Received {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_id: String,
    pub attributes: Vec<(String, String)>,
    /// The resource's `service.name`.
    pub service: String,
}

impl Received {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver: a cheap handle on the spans it keeps.
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn received(span: &Span, service: &str) -> Received {
    Received {
        name: span.name.clone(),
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_id: hex(&span.parent_span_id),
        attributes: span
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                )
            })
            .collect(),
        service: service.to_owned(),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in &ss.spans {
                    out.push(received(span, &service));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Serves the receiver on a free loopback port until the test's runtime ends.
    pub async fn start() -> (Receiver, SocketAddr) {
        Self::serve(tonic::transport::Server::builder()).await
    }

    /// Serves the receiver over TLS (an `https://` endpoint) with this certificate chain and
    /// private key (PEM), on a free loopback port until the test's runtime ends.
    pub async fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> (Receiver, SocketAddr) {
        let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
        let server = tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .expect("a usable test certificate and key");
        Self::serve(server).await
    }

    /// [`Receiver::start_tls`] for a collector that requires mutual TLS: a client must show a
    /// certificate issued by a CA of `client_ca_pem`, or its handshake fails.
    pub async fn start_mtls(
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: &[u8],
    ) -> (Receiver, SocketAddr) {
        let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(tonic::transport::Certificate::from_pem(client_ca_pem));
        let server = tonic::transport::Server::builder()
            .tls_config(tls)
            .expect("a usable test certificate, key and client CA");
        Self::serve(server).await
    }

    async fn serve(mut server: tonic::transport::Server) -> (Receiver, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver::default();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(async move {
            server
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        (receiver, addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until `done` holds for the spans received, and returns them; the
    /// spans received by then when it never does, so the caller's assertion shows them.
    pub async fn wait_until(
        &self,
        within: std::time::Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The one span matching `pred`; panics (showing them all) unless exactly one does.
pub fn one<'a>(
    spans: &'a [Received],
    what: &str,
    pred: impl Fn(&Received) -> bool,
) -> &'a Received {
    let found: Vec<&Received> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(found.len(), 1, "{what}: {found:#?}\nall: {spans:#?}");
    found[0]
}

/// The spans whose parent is `parent`.
pub fn children<'a>(spans: &'a [Received], parent: &Received) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|s| s.parent_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

/// Whether `ancestor` is `span`'s parent, grandparent, and so on, among `spans`.
pub fn descends_from(spans: &[Received], span: &Received, ancestor: &Received) -> bool {
    let mut current = span.clone();
    for _ in 0..64 {
        if current.trace_id != ancestor.trace_id || current.parent_id.is_empty() {
            return false;
        }
        if current.parent_id == ancestor.span_id {
            return true;
        }
        match spans
            .iter()
            .find(|s| s.span_id == current.parent_id && s.trace_id == current.trace_id)
        {
            Some(parent) => current = parent.clone(),
            None => return false,
        }
    }
    false
}
