//! The notification contract (service `notification`): email, in-app messages and webhooks
//! handed over for delivery, and the templates they are rendered from.
//!
//! A [`Notifier`] is also a [`Mailer`], so the plain mails of the auth plugin (reset,
//! verification, invitation) take the same road; a `notification` service registered as
//! `dyn Notifier` serves both lookups (see [`mailer_of`]).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Mailer;
use crate::error::PluginError;

/// Where a message stands. `Queued` waits for (another) delivery attempt; `Sent` was accepted
/// by the SMTP server or the webhook receiver; `Delivered` was confirmed by the channel (an
/// in-app message is delivered when stored); `Failed` used up its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Sent, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A template to render a message from: its name, the locale wanted (the template's default
/// locale when absent or not translated) and the variables (every one the template names must
/// be given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateRef {
    pub name: String,
    pub locale: Option<String>,
    pub variables: Value,
}

/// One email. Either `template` or `subject` with `text` and/or `html` is given; a template
/// fills the subject and bodies.
#[derive(Clone, Default, PartialEq)]
pub struct EmailRequest {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub template: Option<TemplateRef>,
    /// The sender; the configured `from` when absent.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// The organization the mail is sent for (its `from` and `replyTo` apply).
    pub tenant: Option<String>,
    /// Who asked for it (a user id), kept on the message record.
    pub sent_by: Option<String>,
    /// A second request with the same key returns the first message instead of sending again.
    pub idempotency_key: Option<String>,
    /// A topic users may unsubscribe from (`None`: not subject to preferences).
    pub topic: Option<String>,
    /// Essential mail (password reset, verification) ignores preferences.
    pub essential: bool,
    /// The user the mail is for, when the sender knows it: that user's channel and topic
    /// preferences apply too (without it, only those recorded for the address do).
    pub recipient_id: Option<String>,
}

impl fmt::Debug for EmailRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies and variables may carry secrets (reset links); Debug output may reach logs.
        f.debug_struct("EmailRequest")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("template", &self.template.as_ref().map(|t| &t.name))
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// One in-app message for a user's inbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InAppRequest {
    pub user_id: String,
    pub tenant: Option<String>,
    /// The client's `type` (`notify`, `approval.comment`, ...).
    pub kind: String,
    pub title: String,
    pub body: String,
    pub action_url: Option<String>,
    pub data: Option<Value>,
}

/// The answer to a send: the message's id and status (`queued` until a worker delivered it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub status: DeliveryStatus,
    /// The `Message-ID` header of an email.
    pub message_id: Option<String>,
}

/// Sends notifications. A send stores the message and queues its delivery; it never waits for
/// the SMTP server or a webhook receiver, so an outage never fails the caller.
#[async_trait]
pub trait Notifier: Mailer {
    /// Queues one email (rendering its template first: a missing variable or an unknown
    /// template is an error here, before anything is stored).
    async fn send_email(&self, request: EmailRequest) -> Result<Delivery, PluginError>;

    /// Stores one in-app message in the user's inbox.
    async fn notify_user(&self, request: InAppRequest) -> Result<Delivery, PluginError>;

    /// The status of a message sent earlier (`None`: unknown id).
    async fn status(&self, id: &str) -> Result<Option<DeliveryStatus>, PluginError>;
}

/// The service's [`Mailer`] face: a `notification` service registered as `dyn Notifier` is used
/// as the mailer of the plugins that only send plain mail.
pub fn mailer_of(notifier: Arc<dyn Notifier>) -> Arc<dyn Mailer> {
    notifier
}
