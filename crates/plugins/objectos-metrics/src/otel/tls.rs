//! TLS to the collector: the roots, CA file and client identity of an `https://` endpoint.
//!
//! The collector may be reached over TLS (`https://` endpoint): the Mozilla roots compiled in
//! (webpki-roots), optionally the operating system's store (`nativeRoots`), and a private CA
//! from a PEM file (`caFile`, or the `OBJECTOS_TRACING_CA_FILE` environment variable). A
//! collector that requires mutual TLS gets the client certificate of `certFile` with the key
//! of `keyFile` (or `OBJECTOS_TRACING_CERT_FILE` and `OBJECTOS_TRACING_KEY_FILE`). The files are
//! read once, when the layer is built, so a wrong path stops the start instead of the export.

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};

use super::TracingConfig;
use crate::error::{MetricsError, Result};

/// Environment variable read for the CA file when `caFile` is not set.
pub const CA_FILE_ENV: &str = "OBJECTOS_TRACING_CA_FILE";

/// Environment variable read for the client certificate when `certFile` is not set.
pub const CERT_FILE_ENV: &str = "OBJECTOS_TRACING_CERT_FILE";

/// Environment variable read for the client key when `keyFile` is not set.
pub const KEY_FILE_ENV: &str = "OBJECTOS_TRACING_KEY_FILE";

impl TracingConfig {
    /// Whether the endpoint is reached over TLS.
    pub fn tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    /// The TLS settings of an `https://` endpoint (`None` for `http://`): the built-in roots,
    /// the system's when `nativeRoots`, and the certificates of `caFile` (or of the file the
    /// `OBJECTOS_TRACING_CA_FILE` variable names); for mutual TLS, the client certificate of
    /// `certFile` with the key of `keyFile` (or `OBJECTOS_TRACING_CERT_FILE` and
    /// `OBJECTOS_TRACING_KEY_FILE`). A file that cannot be read or holds no certificate (no
    /// key), or a certificate without its key or a key without its certificate, is an error
    /// naming the key and the path, so the server does not start without the trust or the
    /// identity it was configured with.
    pub fn tls_config(&self) -> Result<Option<ClientTlsConfig>> {
        if !self.tls() {
            return Ok(None);
        }
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if self.native_roots {
            tls = tls.with_native_roots();
        }
        if let Some(ca) = PemSource::find(&self.ca_file, "caFile", CA_FILE_ENV) {
            tls = tls.ca_certificate(Certificate::from_pem(ca.read_certificates()?));
        }
        let cert = PemSource::find(&self.cert_file, "certFile", CERT_FILE_ENV);
        let key = PemSource::find(&self.key_file, "keyFile", KEY_FILE_ENV);
        match (cert, key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let chain = cert.read_certificates()?;
                let key = key.read_key()?;
                tls = tls.identity(Identity::from_pem(chain, key));
            }
            (Some(cert), None) => {
                return Err(MetricsError::Config(format!(
                    "{}: {} is a client certificate without its key: set metrics.tracing.keyFile \
                     (or {KEY_FILE_ENV}) too",
                    cert.key, cert.path
                )));
            }
            (None, Some(key)) => {
                return Err(MetricsError::Config(format!(
                    "{}: {} is a client key without its certificate: set \
                     metrics.tracing.certFile (or {CERT_FILE_ENV}) too",
                    key.key, key.path
                )));
            }
        }
        Ok(Some(tls))
    }
}

/// A PEM file named by a `metrics.tracing` key or, when that is unset, by its environment
/// variable; `key` says which, for the errors.
struct PemSource {
    path: String,
    key: String,
}

impl PemSource {
    fn find(configured: &Option<String>, name: &str, env: &str) -> Option<Self> {
        if let Some(path) = configured {
            return Some(Self {
                path: path.clone(),
                key: format!("metrics.tracing.{name}"),
            });
        }
        let path = std::env::var(env).ok().filter(|v| !v.trim().is_empty())?;
        Some(Self {
            path,
            key: format!("{env} (metrics.tracing.{name})"),
        })
    }

    fn read(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.path).map_err(|e| {
            MetricsError::Config(format!("{}: cannot read {}: {e}", self.key, self.path))
        })
    }

    /// The file, when it holds at least one certificate.
    fn read_certificates(&self) -> Result<Vec<u8>> {
        let pem = self.read()?;
        if count_blocks(&pem, "CERTIFICATE") == 0 {
            return Err(MetricsError::Config(format!(
                "{}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                self.key, self.path
            )));
        }
        Ok(pem)
    }

    /// The file, when it holds a private key.
    fn read_key(&self) -> Result<Vec<u8>> {
        let pem = self.read()?;
        if count_blocks(&pem, "PRIVATE KEY") == 0 {
            return Err(MetricsError::Config(format!(
                "{}: {} holds no unencrypted PEM private key (-----BEGIN PRIVATE \
                 KEY-----, or an RSA or EC one)",
                self.key, self.path
            )));
        }
        Ok(pem)
    }
}

/// The PEM blocks of a file whose label ends in `label` (`CERTIFICATE`; `PRIVATE KEY` also
/// counts `RSA PRIVATE KEY` and `EC PRIVATE KEY`). The TLS library parses them when the
/// channel is built; this only tells an empty or wrong file apart at start.
fn count_blocks(pem: &[u8], label: &str) -> usize {
    String::from_utf8_lossy(pem)
        .split("-----BEGIN ")
        .skip(1)
        .filter_map(|rest| rest.split_once("-----").map(|(name, _)| name))
        // rustls reads no encrypted key: such a file is as good as none.
        .filter(|name| name.ends_with(label) && !name.starts_with("ENCRYPTED"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

    #[test]
    fn the_ca_file_is_read_at_start_and_named_when_wrong() {
        let plain = TracingConfig::default();
        assert!(plain.tls_config().unwrap().is_none(), "http:// has no TLS");
        let mut c = TracingConfig {
            endpoint: "https://127.0.0.1:4317".into(),
            ca_file: Some(format!("{FIXTURES}/ca.pem")),
            ..TracingConfig::default()
        };
        assert!(c.tls_config().unwrap().is_some());
        c.ca_file = Some(format!("{FIXTURES}/no-such-file.pem"));
        let e = c.tls_config().unwrap_err().to_string();
        assert!(
            e.contains("metrics.tracing.caFile") && e.contains("no-such-file.pem"),
            "{e}"
        );
        // A key is not a certificate.
        c.ca_file = Some(format!("{FIXTURES}/server.key"));
        let e = c.tls_config().unwrap_err().to_string();
        assert!(
            e.contains("metrics.tracing.caFile") && e.contains("no PEM certificate"),
            "{e}"
        );
        // The layer refuses to start with it, naming the key.
        let e = crate::otel::layer::<tracing_subscriber::Registry>(&c, "test")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("metrics.tracing.caFile"), "{e}");
    }

    #[test]
    fn the_client_certificate_needs_its_key_and_both_are_read_at_start() {
        let base = TracingConfig {
            endpoint: "https://127.0.0.1:4317".into(),
            ca_file: Some(format!("{FIXTURES}/ca.pem")),
            ..TracingConfig::default()
        };
        let with = |cert: Option<&str>, key: Option<&str>| TracingConfig {
            cert_file: cert.map(|c| format!("{FIXTURES}/{c}")),
            key_file: key.map(|k| format!("{FIXTURES}/{k}")),
            ..base.clone()
        };
        let error = |c: &TracingConfig| {
            c.tls_config()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            with(Some("client.pem"), Some("client.key"))
                .tls_config()
                .unwrap()
                .is_some()
        );
        // One half only: named, with the path given.
        let e = error(&with(Some("client.pem"), None));
        assert!(
            e.contains("metrics.tracing.certFile")
                && e.contains("client.pem")
                && e.contains("keyFile"),
            "{e}"
        );
        let e = error(&with(None, Some("client.key")));
        assert!(
            e.contains("metrics.tracing.keyFile")
                && e.contains("client.key")
                && e.contains("certFile"),
            "{e}"
        );
        // Unreadable files, and files of the wrong kind.
        let e = error(&with(Some("no-such-cert.pem"), Some("client.key")));
        assert!(
            e.contains("metrics.tracing.certFile") && e.contains("no-such-cert.pem"),
            "{e}"
        );
        let e = error(&with(Some("client.pem"), Some("no-such-key.pem")));
        assert!(
            e.contains("metrics.tracing.keyFile") && e.contains("no-such-key.pem"),
            "{e}"
        );
        let e = error(&with(Some("client.key"), Some("client.key")));
        assert!(
            e.contains("metrics.tracing.certFile") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = error(&with(Some("client.pem"), Some("client.pem")));
        assert!(
            e.contains("metrics.tracing.keyFile") && e.contains("no unencrypted PEM private key"),
            "{e}"
        );
        // Only for https://, and never empty.
        let plain = TracingConfig {
            endpoint: "http://127.0.0.1:4317".into(),
            cert_file: Some("client.pem".into()),
            key_file: Some(" ".into()),
            ..TracingConfig::default()
        };
        let p: Vec<String> = plain
            .problems()
            .into_iter()
            .map(|p| format!("{p:?}"))
            .collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("certFile") && p[0].contains("https"), "{p:?}");
        assert!(p[1].contains("keyFile") && p[1].contains("empty"), "{p:?}");
    }

    #[test]
    fn pem_blocks_are_told_apart() {
        let pem = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n\
            -----BEGIN EC PRIVATE KEY-----\ny\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(count_blocks(pem, "CERTIFICATE"), 1);
        assert_eq!(count_blocks(pem, "PRIVATE KEY"), 1);
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nz\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(count_blocks(encrypted, "PRIVATE KEY"), 0);
        assert_eq!(count_blocks(b"", "CERTIFICATE"), 0);
    }
}
