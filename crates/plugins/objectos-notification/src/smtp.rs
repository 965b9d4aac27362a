//! The mail transport: SMTP through `lettre`'s client (STARTTLS, TLS or plain, with or without
//! AUTH, rustls on ring) over connections this module opens with `TCP_NODELAY` and keeps in a
//! pool ([`SmtpPool`]), or the log transport that stores and logs a mail without sending it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{EmailSettings, Security, Transport};
use crate::error::NotificationError;

/// One mail ready to go: what the pending table keeps until delivery.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingEmail {
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub bcc: Vec<String>,
    pub from: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    pub subject: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    /// `<id@domain>`, fixed when the message is queued so every attempt sends the same one.
    pub message_id: String,
    /// The one-click unsubscribe URL of non-essential mail (RFC 8058): sent as
    /// `List-Unsubscribe` with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe: Option<String>,
}

impl std::fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies may carry secrets (a reset link).
        f.debug_struct("OutgoingEmail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// Parses an address (`Name <user@example.com>` or `user@example.com`).
pub fn mailbox(field: &str, value: &str) -> Result<Mailbox, NotificationError> {
    value.trim().parse::<Mailbox>().map_err(|e| {
        NotificationError::Validation(format!(
            "`{field}`: `{value}` is not an email address ({e})"
        ))
    })
}

/// A `Message-ID` for message `id`, in the sender's domain.
pub fn message_id(id: &str, from: &str) -> String {
    let domain = from
        .parse::<Mailbox>()
        .ok()
        .map(|m| m.email.domain().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "objectos.local".to_owned());
    format!("<{id}@{domain}>")
}

/// A fresh random token for a `Message-ID` (32 hex digits).
pub fn message_token() -> Result<String, NotificationError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)
        .map_err(|e| NotificationError::Config(format!("no randomness for a Message-ID: {e}")))?;
    Ok(hex::encode(raw))
}

/// Builds the MIME message: `text/plain`, `text/html`, or both as `multipart/alternative`.
pub fn build_message(mail: &OutgoingEmail) -> Result<Message, NotificationError> {
    let mut b = Message::builder()
        .from(mailbox("from", &mail.from)?)
        .subject(mail.subject.clone())
        .message_id(Some(mail.message_id.clone()));
    if let Some(r) = &mail.reply_to {
        b = b.reply_to(mailbox("replyTo", r)?);
    }
    for to in &mail.to {
        b = b.to(mailbox("to", to)?);
    }
    for cc in &mail.cc {
        b = b.cc(mailbox("cc", cc)?);
    }
    for bcc in &mail.bcc {
        b = b.bcc(mailbox("bcc", bcc)?);
    }
    if let Some(url) = &mail.list_unsubscribe {
        // The URL is ours (base URL, route, hex token): nothing in it needs encoding, and a
        // line break could only come from a broken base URL, which settings refuse.
        let url = url.replace(['\r', '\n'], "");
        b = b
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    let built = match (&mail.text, &mail.html) {
        (Some(text), Some(html)) => b.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (None, Some(html)) => b.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.clone()),
        ),
        (text, None) => b.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text.clone().unwrap_or_default()),
        ),
    };
    built.map_err(|e| NotificationError::Validation(format!("the message cannot be built: {e}")))
}

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    Log,
    Smtp(Arc<SmtpPool>),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Log => "Mailer::Log",
            Self::Smtp(_) => "Mailer::Smtp",
        })
    }
}

impl Mailer {
    /// The transport `settings` describe (no connection is made yet).
    pub fn from_settings(settings: &EmailSettings) -> Result<Self, NotificationError> {
        if settings.transport == Transport::Log {
            return Ok(Self::Log);
        }
        let smtp = &settings.smtp;
        let host = smtp.host.trim();
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|e| NotificationError::Config(format!("notifications.email.smtp: {e}")))
        };
        let security = match smtp.security {
            Security::Starttls => Tls::Starttls(tls(host)?),
            Security::Tls => Tls::Implicit(tls(host)?),
            Security::None => Tls::None,
        };
        let credentials = match &smtp.username {
            Some(user) => {
                let password = smtp.effective_password().ok_or_else(|| {
                    NotificationError::Config(format!(
                        "notifications.email.smtp.password: `username` is set but there is no password (set `password` or the variable {})",
                        smtp.password_env
                    ))
                })?;
                Some(Credentials::new(user.clone(), password.expose().to_owned()))
            }
            None => None,
        };
        Ok(Self::Smtp(Arc::new(SmtpPool {
            host: host.to_owned(),
            port: smtp.effective_port(),
            timeout: Duration::from_secs(smtp.timeout_seconds.max(1)),
            hello: ClientId::default(),
            tls: security,
            credentials,
            idle: Mutex::new(Vec::new()),
        })))
    }

    /// `smtp` or `log`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Smtp(_) => "smtp",
        }
    }

    /// Sends one mail. A refusal the server calls permanent (5xx) or a message that cannot be
    /// built is not retryable; a connection failure, a timeout or a 4xx is.
    pub async fn send(&self, mail: &OutgoingEmail) -> Result<(), NotificationError> {
        let message = build_message(mail)?;
        match self {
            Self::Log => {
                tracing::info!(
                    plugin = crate::PLUGIN_ID,
                    recipients = mail.to.len() + mail.cc.len() + mail.bcc.len(),
                    subject = %mail.subject,
                    "Mail not sent: the log transport is configured (notifications.email.transport); the content is not logged."
                );
                Ok(())
            }
            Self::Smtp(pool) => pool.send(&message).await,
        }
    }
}

/// How the SMTP connection is secured.
enum Tls {
    None,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit(TlsParameters),
    /// Plain, then `STARTTLS` before anything else is said (required, not opportunistic).
    Starttls(TlsParameters),
}

/// Idle connections kept for the next mails: as many as deliveries usually run at once (the
/// jobs plugin's default 16 workers a queue, with room), so a busy queue reuses connections
/// instead of opening and closing one per mail.
const MAX_IDLE: usize = 32;
/// An idle connection older than this is closed rather than reused: servers drop idle clients
/// after a few minutes (RFC 5321 suggests 5), and a fresh connection costs less than a failed
/// one.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// SMTP connections to one server, opened on demand and kept while idle.
///
/// Why not `lettre`'s own transport and pool: its sockets keep Nagle's algorithm on, and its
/// client writes a message's body and the closing `.` in two writes; the second waits for the
/// server's ACK of the first, which a server delays by 40 ms, so every mail took over 40 ms
/// and a queue's 16 workers delivered about 350 mails a second. The connections opened here
/// set `TCP_NODELAY`; the SMTP conversation itself is still `lettre`'s.
pub struct SmtpPool {
    host: String,
    port: u16,
    /// One whole conversation (connect, TLS, EHLO, AUTH, the mail) may take this long.
    timeout: Duration,
    hello: ClientId,
    tls: Tls,
    credentials: Option<Credentials>,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

fn smtp_error(e: lettre::transport::smtp::Error) -> NotificationError {
    NotificationError::Delivery {
        retryable: !e.is_permanent(),
        message: e.to_string(),
    }
}

fn network_error(what: &str, e: &std::io::Error) -> NotificationError {
    NotificationError::Delivery {
        retryable: true,
        message: format!("{what}: {e}"),
    }
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No credentials.
        f.debug_struct("SmtpPool")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpPool {
    /// Sends `message` over an idle connection (checked with `NOOP` first, as a server may
    /// have closed it) or a new one, and keeps the connection for the next mail unless it
    /// broke.
    async fn send(&self, message: &Message) -> Result<(), NotificationError> {
        let conversation = async {
            let mut conn = self.connection().await?;
            let sent = conn
                .send(message.envelope(), &message.formatted())
                .await
                .map(|_| ())
                .map_err(smtp_error);
            self.recycle(conn).await;
            sent
        };
        match tokio::time::timeout(self.timeout, conversation).await {
            Ok(r) => r,
            Err(_) => Err(NotificationError::Delivery {
                retryable: true,
                message: format!(
                    "the SMTP server did not answer within {} s",
                    self.timeout.as_secs()
                ),
            }),
        }
    }

    /// An idle connection that still answers, else a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, NotificationError> {
        loop {
            let taken = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some((mut conn, since)) = taken else {
                return self.connect().await;
            };
            if since.elapsed() < IDLE_FOR && conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    /// Puts `conn` back for the next mail, or closes it when it broke or enough are idle.
    async fn recycle(&self, mut conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            conn.abort().await;
            return;
        }
        let overflow = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // The oldest first: a connection idle too long is closed, not kept.
            let stale = idle
                .iter()
                .position(|(_, since)| since.elapsed() < IDLE_FOR)
                .unwrap_or(idle.len());
            let mut out: Vec<AsyncSmtpConnection> = idle.drain(..stale).map(|(c, _)| c).collect();
            if idle.len() < MAX_IDLE {
                idle.push((conn, Instant::now()));
            } else {
                out.push(conn);
            }
            out
        };
        for mut c in overflow {
            let _ = c.quit().await;
        }
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS (implicit or by `STARTTLS`), `EHLO`,
    /// then `AUTH` when credentials are configured.
    async fn connect(&self) -> Result<AsyncSmtpConnection, NotificationError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                network_error(
                    &format!("cannot connect to {}:{}", self.host, self.port),
                    &e,
                )
            })?;
        tcp.set_nodelay(true)
            .map_err(|e| network_error("cannot set TCP_NODELAY", &e))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            Tls::Implicit(params) => {
                // lettre's TLS stream (rustls), over the socket opened here; it speaks
                // futures-io, so it is bridged to the tokio stream the client takes.
                #[allow(deprecated)]
                let mut tls =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                tls.upgrade_tls(params.clone()).await.map_err(smtp_error)?;
                Box::new(TokioSide(tls))
            }
            Tls::None | Tls::Starttls(_) => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(smtp_error)?;
        if let Tls::Starttls(params) = &self.tls {
            conn.starttls(params.clone(), &self.hello)
                .await
                .map_err(smtp_error)?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(smtp_error)?;
        }
        Ok(conn)
    }
}

/// lettre's TLS stream (futures-io) as the tokio stream its client takes.
#[allow(deprecated)]
struct TokioSide(lettre::transport::smtp::client::AsyncNetworkStream);

impl std::fmt::Debug for TokioSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokioSide")
    }
}

impl AsyncRead for TokioSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let read = futures_util::io::AsyncRead::poll_read(
            Pin::new(&mut self.0),
            cx,
            buf.initialize_unfilled(),
        );
        match read {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TokioSide {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        futures_util::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures_util::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures_util::io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl AsyncTokioStream for TokioSide {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutgoingEmail {
        OutgoingEmail {
            to: vec!["Ann <ann@example.com>".into()],
            cc: vec![],
            bcc: vec!["audit@example.com".into()],
            from: "ObjectOS <no-reply@example.com>".into(),
            reply_to: Some("help@example.com".into()),
            subject: "Grüße".into(),
            text: Some("Hallo Ann".into()),
            html: Some("<p>Hallo</p>".into()),
            message_id: message_id("m1", "ObjectOS <no-reply@example.com>"),
            list_unsubscribe: None,
        }
    }

    #[test]
    fn builds_a_multipart_message_with_encoded_headers() {
        let m = mail();
        assert_eq!(m.message_id, "<m1@example.com>");
        let text = String::from_utf8(build_message(&m).unwrap().formatted()).unwrap();
        assert!(text.contains("Message-ID: <m1@example.com>"), "{text}");
        assert!(text.contains("Reply-To: help@example.com"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        // Non-ASCII subjects are RFC 2047 encoded words.
        assert!(text.contains("Subject: =?utf-8?"), "{text}");
        // Bcc never reaches the headers.
        assert!(!text.contains("audit@example.com"), "{text}");
    }

    /// A minimal SMTP server on loopback: counts the connections it accepted and the mails it
    /// took; with `close_after_mail` it hangs up after each mail (as a server that dropped an
    /// idle client would have).
    async fn sink(
        close_after_mail: bool,
    ) -> (
        u16,
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let mails = Arc::new(AtomicUsize::new(0));
        let (c, m) = (connections.clone(), mails.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let m = m.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r);
                    w.write_all(b"220 sink ESMTP\r\n").await.ok();
                    let mut line = String::new();
                    let mut in_data = false;
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if in_data {
                            if line == ".\r\n" {
                                in_data = false;
                                m.fetch_add(1, Ordering::SeqCst);
                                w.write_all(b"250 OK\r\n").await.ok();
                                if close_after_mail {
                                    return;
                                }
                            }
                            continue;
                        }
                        let reply: &[u8] =
                            match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                                "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                                "DATA" => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                "QUIT" => {
                                    w.write_all(b"221 bye\r\n").await.ok();
                                    return;
                                }
                                _ => b"250 OK\r\n",
                            };
                        if w.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, connections, mails)
    }

    fn smtp_mailer(port: u16) -> Mailer {
        let mut settings = EmailSettings {
            transport: Transport::Smtp,
            ..EmailSettings::default()
        };
        settings.smtp.host = "127.0.0.1".into();
        settings.smtp.port = Some(port);
        settings.smtp.security = Security::None;
        settings.smtp.timeout_seconds = 5;
        Mailer::from_settings(&settings).unwrap()
    }

    #[tokio::test]
    async fn mails_in_a_row_share_one_connection() {
        use std::sync::atomic::Ordering;
        let (port, connections, mails) = sink(false).await;
        let mailer = smtp_mailer(port);
        for _ in 0..3 {
            mailer.send(&mail()).await.unwrap();
        }
        assert_eq!(mails.load(Ordering::SeqCst), 3);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        use std::sync::atomic::Ordering;
        let (port, connections, mails) = sink(true).await;
        let mailer = smtp_mailer(port);
        for _ in 0..3 {
            mailer.send(&mail()).await.unwrap();
        }
        assert_eq!(mails.load(Ordering::SeqCst), 3);
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn bad_addresses_are_validation_errors() {
        let mut m = mail();
        m.to = vec!["not an address".into()];
        let e = build_message(&m).unwrap_err();
        assert_eq!(e.code(), "VALIDATION_FAILED");
    }
}
