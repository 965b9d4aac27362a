//! The mail contract (service `notification`): hands one mail over for delivery.
//!
//! A notification plugin implements it; the auth plugin sends its reset, verification and
//! invitation mails through whichever implementation is registered.

use std::fmt;

use crate::error::PluginError;

/// One outgoing mail.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The action link inside the body (a reset link carries a secret token).
    pub link: Option<String>,
    /// The organization the mail is about, when known (an invitation's; the recipient's
    /// oldest membership for a reset or verification): its administrators see the message.
    pub organization: Option<String>,
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

/// Sends mail.
///
/// `send` must hand the mail over (to a queue) without waiting for delivery: routes that mail
/// only when an address has an account rely on it to answer in the same time either way. An
/// implementation must never log the body or the link.
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    fn send(&self, mail: Mail) -> Result<(), PluginError>;
}
