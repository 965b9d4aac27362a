//! The notification service: the kernel's `Notifier` (and so its `Mailer`), the in-app inbox,
//! webhooks, SMS and push, and deliveries.
//!
//! A send checks and renders the message ([`email`], [`message`], [`webhook`]) and stores it in
//! ONE write transaction ([`record`]): the message record (`sys_email`,
//! `sys_notification_delivery`, `sys_webhook_delivery`) with status `queued`, its idempotency
//! key, its contents in the private pending table, and its `notification.deliver` job when the
//! jobs plugin runs (its retry policy and dead letters apply; else a task of this plugin
//! retries with the same backoff, [`deliver`]). The caller never waits for the SMTP server, so
//! an outage never fails the request that caused the mail. A delivery updates the record
//! (`sent` or, when the attempts are used up or the server refused for good, `failed`) and,
//! in the same transaction, removes the pending contents once sent. Preferences and
//! unsubscribe links are [`preferences`], the inbox [`inbox`].

mod deliver;
mod email;
mod inbox;
mod message;
mod preferences;
pub(crate) mod record;
mod webhook;

use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use objectos_data::{DataEngine, OpContext, Record, TransactionalJobQueue};
use objectos_kernel::PluginError;
use objectos_kernel::contracts::{
    Delivery, DeliveryStatus, EmailRequest, InAppRequest, Mail, Mailer, Notifier, RetryPolicy,
};
use objectos_spec::query::QueryAst;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::NotificationSettings;
use crate::error::NotificationError;
use crate::schema::{DELIVERY_OBJECT, EMAIL_OBJECT, WEBHOOK_OBJECT};
use crate::smtp;
use crate::template::Renderer;

pub use inbox::{InboxItem, InboxPage, InboxQuery};
pub use message::MessageRequest;
pub use preferences::Preference;
pub use webhook::WebhookRequest;

/// The job handler that delivers one message.
pub const DELIVER_HANDLER: &str = "notification.deliver";

/// The job queue deliveries go to.
pub const QUEUE: &str = "notifications";

/// Largest page of the inbox.
pub const MAX_PAGE: u64 = 200;

/// How long a send waits for a concurrent send holding its idempotency key to commit.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// The `status` of a message no recipient wanted (preferences): recorded, never sent.
pub const SUPPRESSED: &str = "suppressed";

/// A message's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Webhook,
    Sms,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Sms => "sms",
            Self::Push => "push",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::Email, Self::Webhook, Self::Sms, Self::Push]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    pub(crate) fn object(self) -> &'static str {
        match self {
            Self::Email => EMAIL_OBJECT,
            Self::Webhook => WEBHOOK_OBJECT,
            Self::Sms | Self::Push => DELIVERY_OBJECT,
        }
    }
}

struct Started {
    engine: DataEngine,
    mailer: smtp::Mailer,
    /// The jobs plugin's queue: a delivery job is written in the message's own transaction.
    queue: Option<Arc<dyn TransactionalJobQueue>>,
    /// Built at the first webhook, SMS or push delivery: a server that sends none needs no
    /// TLS provider for it.
    http: OnceLock<reqwest013::Client>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("mailer", &self.mailer)
            .field("queue", &self.queue.is_some())
            .finish_non_exhaustive()
    }
}

/// The service state, shared by clones.
#[derive(Debug)]
pub struct Inner {
    settings: NotificationSettings,
    renderer: Renderer,
    started: OnceLock<Started>,
    /// The HMAC key of unsubscribe links (configured, or generated and kept in the database).
    unsubscribe_key: OnceLock<Vec<u8>>,
}

/// The notification service; cheap to clone.
#[derive(Debug, Clone)]
pub struct NotificationService(Arc<Inner>);

impl Deref for NotificationService {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

fn system_cx(tenant: Option<&str>) -> OpContext {
    let mut cx = OpContext::system("notifications");
    cx.tenant = tenant.map(str::to_owned);
    cx
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn text(rec: &Record, key: &str) -> Option<String> {
    rec.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn record_id(rec: &Record) -> Result<String, NotificationError> {
    text(rec, "id").ok_or_else(|| NotificationError::Config("a stored record has no id".into()))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s == "true" || s == "1",
        _ => false,
    }
}

impl NotificationService {
    pub fn new(settings: NotificationSettings) -> Self {
        Self(Arc::new(Inner {
            settings,
            renderer: Renderer::new(),
            started: OnceLock::new(),
            unsubscribe_key: OnceLock::new(),
        }))
    }

    pub fn settings(&self) -> &NotificationSettings {
        &self.settings
    }

    /// Connects the service to the engine, the mail transport and (optional) the job queue;
    /// registers the delivery handler on the queue. Called once by the plugin's `start`.
    pub fn start(
        &self,
        engine: DataEngine,
        queue: Option<Arc<dyn TransactionalJobQueue>>,
    ) -> Result<(), NotificationError> {
        let mailer = smtp::Mailer::from_settings(&self.settings.email)?;
        if let Some(q) = &queue {
            let me = self.clone();
            q.register_handler(
                DELIVER_HANDLER,
                objectos_kernel::contracts::handler_fn(move |cx| {
                    let me = me.clone();
                    async move { me.run_job(cx).await }
                }),
            )
            .map_err(|e| NotificationError::Queue(e.to_string()))?;
        }
        let _ = self.started.set(Started {
            engine,
            mailer,
            queue,
            http: OnceLock::new(),
        });
        Ok(())
    }

    fn http(&self) -> Result<&reqwest013::Client, NotificationError> {
        let st = self.s()?;
        if let Some(c) = st.http.get() {
            return Ok(c);
        }
        let client =
            reqwest013::Client::builder()
                .build()
                .map_err(|e| NotificationError::Delivery {
                    message: format!("HTTP client: {e}"),
                    retryable: true,
                })?;
        Ok(st.http.get_or_init(|| client))
    }

    fn s(&self) -> Result<&Started, NotificationError> {
        self.started.get().ok_or(NotificationError::NotStarted)
    }

    /// `smtp` or `log`, once started.
    pub fn transport(&self) -> &'static str {
        self.started.get().map_or("none", |s| s.mailer.name())
    }

    /// Whether deliveries run as jobs.
    pub fn uses_job_queue(&self) -> bool {
        self.started.get().is_some_and(|s| s.queue.is_some())
    }

    fn retry_policy(&self) -> RetryPolicy {
        let d = &self.settings.delivery;
        RetryPolicy {
            max_attempts: d.max_attempts.max(1),
            backoff: Duration::from_millis(d.backoff_ms),
            multiplier: 2.0,
            max_delay: Duration::from_millis(d.max_backoff_ms.max(d.backoff_ms)),
            jitter: true,
        }
    }
    /// The stored message `id` of `channel` with its status (`suppressed` reads as `failed`).
    async fn delivery_of(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Delivery>, NotificationError> {
        let st = self.s()?;
        match st
            .engine
            .get(
                &system_cx(tenant),
                channel.object(),
                id,
                QueryAst::default(),
            )
            .await
        {
            Ok(rec) => Ok(Some(Delivery {
                id: id.to_owned(),
                status: text(&rec, "status")
                    .map(|s| {
                        if s == SUPPRESSED {
                            DeliveryStatus::Failed
                        } else {
                            DeliveryStatus::parse(&s).unwrap_or(DeliveryStatus::Queued)
                        }
                    })
                    .unwrap_or(DeliveryStatus::Queued),
                message_id: text(&rec, "message_id"),
            })),
            Err(e) if e.http_status() == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Mailer for NotificationService {
    /// The auth plugin's mails (reset, verification, invitation): essential, plain text, queued
    /// in a task so the caller answers in the same time whether or not a mail goes out.
    fn send(&self, mail: Mail) -> Result<(), PluginError> {
        let me = self.clone();
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| PluginError::msg("no async runtime to queue the mail on"))?;
        let request = EmailRequest {
            to: vec![mail.to],
            subject: mail.subject,
            text: Some(mail.body),
            essential: true,
            // The organization the auth plugin names (docs/notifications.md), so that
            // organization's administrators see the message.
            tenant: mail.organization,
            ..EmailRequest::default()
        };
        handle.spawn(async move {
            if let Err(e) = me.queue_email(request).await {
                tracing::warn!(plugin = crate::PLUGIN_ID, error = %e, "A mail could not be queued.");
            }
        });
        Ok(())
    }
}

#[async_trait]
impl Notifier for NotificationService {
    async fn send_email(&self, request: EmailRequest) -> Result<Delivery, PluginError> {
        Ok(self.queue_email(request).await?)
    }

    async fn notify_user(&self, request: InAppRequest) -> Result<Delivery, PluginError> {
        Ok(self.add_to_inbox(request).await?)
    }

    async fn status(&self, id: &str) -> Result<Option<DeliveryStatus>, PluginError> {
        for channel in [Channel::Email, Channel::Webhook, Channel::Sms] {
            if let Some(d) = self.delivery_of(channel, None, id).await? {
                return Ok(Some(d.status));
            }
        }
        Ok(None)
    }
}
