//! The logging mailer the auth plugin falls back on when no plugin registers the mail contract
//! (`objectos_kernel::Mailer`, service `notification`): it logs only that a mail was sent, never
//! the body, link or token. `Mail` and `Mailer` are the kernel's, re-exported here.

use objectos_kernel::PluginError;
use parking_lot::Mutex;

pub use objectos_kernel::{Mail, Mailer};

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
    fn send(&self, mail: Mail) -> Result<(), PluginError> {
        tracing::info!(subject = %mail.subject, "Mail sent (logging mailer; the content is not logged).");
        *self.last.lock() = Some(mail);
        Ok(())
    }
}
