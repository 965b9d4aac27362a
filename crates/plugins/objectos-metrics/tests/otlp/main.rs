//! Traces end to end: a real kernel (data + http + metrics) exports its spans over OTLP/gRPC to
//! a receiver this test starts on loopback.
//!
//! The receiver is `objectos_testkit::otlp` (the `TraceService` server generated in
//! `opentelemetry-proto`, served by tonic): nothing to install, and it decodes exactly what a
//! collector would. Its own binary, since the `tracing` subscriber with the OpenTelemetry layer
//! is once per process.

#[cfg(test)]
#[allow(dead_code)]
#[path = "../it/support.rs"]
mod support;

#[cfg(test)]
mod traces;
