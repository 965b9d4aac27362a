//! SMS and push: one message through the channel's generic HTTP provider adapter
//! ([`crate::provider`]), stored as a `sys_notification_delivery` record by the shared
//! [`super::record`] builder.

use serde_json::Value;

use objectos_kernel::contracts::Delivery;

use super::record::{HasCommon, MessageRecord};
use super::{Channel, NotificationService};
use crate::config::HttpProviderSettings;
use crate::error::NotificationError;
use crate::prefs;
use crate::provider::OutgoingMessage;

/// One SMS or push message ([`NotificationService::queue_message`]). Either `template` (its
/// `subject` becomes the title, its `text` the text) or `text` is given.
#[derive(Clone, Default, PartialEq)]
pub struct MessageRequest {
    /// `Sms` or `Push`.
    pub channel: Option<Channel>,
    /// The phone number or device token.
    pub to: String,
    /// The user it is for: their preferences apply.
    pub recipient_id: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    /// Extra values for the provider's body template (`{{data.x}}`).
    pub data: Option<Value>,
    pub template: Option<objectos_kernel::contracts::TemplateRef>,
    pub tenant: Option<String>,
    pub sent_by: Option<String>,
    pub idempotency_key: Option<String>,
    pub topic: Option<String>,
    pub essential: bool,
}

impl std::fmt::Debug for MessageRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text may carry a one-time code.
        f.debug_struct("MessageRequest")
            .field("channel", &self.channel)
            .field("to", &self.to)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl NotificationService {
    pub(super) fn provider(&self, channel: Channel) -> Option<&HttpProviderSettings> {
        match channel {
            Channel::Sms => self.settings.sms.as_ref(),
            Channel::Push => self.settings.push.as_ref(),
            Channel::Email | Channel::Webhook => None,
        }
    }

    /// Queues one SMS or push message through the channel's HTTP provider.
    pub async fn queue_message(&self, req: MessageRequest) -> Result<Delivery, NotificationError> {
        self.s()?;
        let channel = match req.channel {
            Some(c @ (Channel::Sms | Channel::Push)) => c,
            _ => {
                return Err(NotificationError::Validation(
                    "`channel` must be sms or push".into(),
                ));
            }
        };
        let provider = self.provider(channel).ok_or_else(|| {
            NotificationError::Validation(format!(
                "no {} provider is configured (notifications.{})",
                channel.as_str(),
                channel.as_str()
            ))
        })?;
        if req.to.trim().is_empty() {
            return Err(NotificationError::Validation("`to` is required".into()));
        }
        if let Some(t) = &req.topic {
            prefs::check_topic(t)?;
        }
        let name = provider.name.clone();
        self.store_message(channel, name, req).await
    }

    async fn store_message(
        &self,
        channel: Channel,
        provider: String,
        req: MessageRequest,
    ) -> Result<Delivery, NotificationError> {
        let st = self.s()?;
        let tenant = req.tenant.as_deref();
        let (title, text_body) = match &req.template {
            Some(t) => {
                let r = self.renderer.render_named(
                    &st.engine.metadata(),
                    &t.name,
                    t.locale.as_deref(),
                    self.settings.default_locale.as_deref(),
                    &t.variables,
                )?;
                let body = r.text.ok_or_else(|| {
                    NotificationError::Validation(format!(
                        "template `{}` has no `text` body for {}",
                        t.name,
                        channel.as_str()
                    ))
                })?;
                (Some(r.subject), body)
            }
            None => (
                req.title.clone(),
                req.text.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
                    NotificationError::Validation("`text` is required (or a `template`)".into())
                })?,
            ),
        };
        let suppressed = match (req.topic.as_deref(), req.essential) {
            (Some(topic), false) => {
                let mut keys = vec![req.to.trim().to_owned()];
                keys.extend(req.recipient_id.clone());
                self.suppressed(tenant, &keys, channel.as_str(), topic)
                    .await?
            }
            _ => false,
        };
        let to = req.to.trim();
        let rec = MessageRecord::new(channel)
            .set("channel", channel.as_str())
            .set("recipient", to)
            .opt("recipient_id", req.recipient_id.as_deref())
            .set("provider", provider)
            .common(req.common());
        let content = (!suppressed).then(|| OutgoingMessage {
            to: to.to_owned(),
            title,
            text: text_body,
            data: req.data.clone().unwrap_or(Value::Null),
            traceparent: objectos_kernel::trace::current().map(|h| h.traceparent),
        });
        self.store(rec, tenant, content.as_ref(), None).await
    }
}
