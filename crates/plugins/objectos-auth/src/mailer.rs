//! The mail contract the auth plugin sends reset links through, and the logging mailer used until a
//! notification plugin exists: it logs only that a mail was sent, never the link or token.

use std::fmt;

use parking_lot::Mutex;

use crate::error::Result;

/// One outgoing mail.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The action link inside the body (a reset link carries a secret token).
    pub link: Option<String>,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body and link carry secrets; Debug output may end up in logs.
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Sends mail; the notification plugin will provide a real one.
///
/// `send` must hand the mail over (to a queue) without waiting for delivery: the routes that
/// mail only when an address has an account (`forget-password`, `send-verification-email`)
/// rely on it to answer in the same time either way.
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    fn send(&self, mail: Mail) -> Result<()>;
}

/// Logs that a mail was sent (recipient and subject only) and keeps the last mail in memory so
/// tests can follow the link.
#[derive(Debug, Default)]
pub struct LoggingMailer {
    last: Mutex<Option<Mail>>,
}

impl LoggingMailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last mail sent.
    pub fn last_mail(&self) -> Option<Mail> {
        self.last.lock().clone()
    }

    /// The link of the last mail sent.
    pub fn last_link(&self) -> Option<String> {
        self.last.lock().as_ref().and_then(|m| m.link.clone())
    }
}

impl Mailer for LoggingMailer {
    fn send(&self, mail: Mail) -> Result<()> {
        tracing::info!(subject = %mail.subject, "Mail sent (logging mailer; the content is not logged).");
        *self.last.lock() = Some(mail);
        Ok(())
    }
}
