//! The mail transport: SMTP through `lettre` (STARTTLS, TLS or plain, with or without AUTH,
//! rustls on ring, pooled connections), or the log transport that stores and logs a mail
//! without sending it.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

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
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
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
        let config = |e: lettre::transport::smtp::Error| {
            NotificationError::Config(format!("notifications.email.smtp: {e}"))
        };
        let mut builder = match smtp.security {
            Security::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(config)?
            }
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(config)?,
            Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        builder = builder
            .port(smtp.effective_port())
            .timeout(Some(Duration::from_secs(smtp.timeout_seconds)));
        if let Some(user) = &smtp.username {
            let password = smtp.effective_password().ok_or_else(|| {
                NotificationError::Config(format!(
                    "notifications.email.smtp.password: `username` is set but there is no password (set `password` or the variable {})",
                    smtp.password_env
                ))
            })?;
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self::Smtp(builder.build()))
    }

    /// `smtp` or `log`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Smtp(_) => "smtp",
        }
    }

    /// Sends one mail. A refusal the server calls permanent (5xx) or a message that cannot be
    /// built is not retryable; a connection failure or a 4xx is.
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
            Self::Smtp(t) => {
                t.send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| NotificationError::Delivery {
                        retryable: !e.is_permanent(),
                        message: e.to_string(),
                    })
            }
        }
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

    #[test]
    fn bad_addresses_are_validation_errors() {
        let mut m = mail();
        m.to = vec!["not an address".into()];
        let e = build_message(&m).unwrap_err();
        assert_eq!(e.code(), "VALIDATION_FAILED");
    }
}
