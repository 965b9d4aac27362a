//! The notification service: the kernel's `Notifier` (and so its `Mailer`), the in-app inbox,
//! webhooks, and deliveries.
//!
//! A send checks and renders the message, stores it (a `sys_email` / `sys_webhook_delivery`
//! record with status `queued`, its contents in the private pending table) and queues its
//! delivery: a `notification.deliver` job when the job queue is present (its retry policy and
//! dead letters apply), else a task of this plugin retrying with the same backoff. The caller
//! never waits for the SMTP server, so an outage never fails the request that caused the mail.
//! A delivery updates the record (`sent` or, when the attempts are used up or the server
//! refused for good, `failed`) and removes the pending contents once sent.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use objectos_data::store::{Sql, Store};
use objectos_data::{DataEngine, OpContext, Record};
use objectos_kernel::PluginError;
use objectos_kernel::contracts::{
    Delivery, DeliveryStatus, EmailRequest, EnqueueRequest, InAppRequest, JobContext, JobFailure,
    JobQueue, Mail, Mailer, Notifier, RetryPolicy,
};
use objectos_spec::query::{Filter, QueryAst, SortNode, SortOrder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{HttpProviderSettings, NotificationSettings};
use crate::error::NotificationError;
use crate::prefs::{self, Unsubscribe};
use crate::provider::{self, OutgoingMessage};
use crate::schema::{
    DELIVERY_OBJECT, EMAIL_OBJECT, INBOX_OBJECT, KEYS_TABLE, PENDING_TABLE, PREFERENCE_OBJECT,
    SECRETS_TABLE, WEBHOOK_OBJECT,
};
use crate::smtp::{self, OutgoingEmail};
use crate::template::Renderer;
use crate::webhook::{self, OutgoingWebhook};

/// The job handler that delivers one message.
pub const DELIVER_HANDLER: &str = "notification.deliver";

/// The job queue deliveries go to.
pub const QUEUE: &str = "notifications";

/// Largest page of the inbox.
pub const MAX_PAGE: u64 = 200;

/// How long an idempotency key may stay claimed by a send that never finished (a crashed
/// node) before another send takes it over.
pub const CLAIM_TIMEOUT_MS: i64 = 60_000;

/// How long a send waits for a concurrent send holding its idempotency key.
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

    fn parse(s: &str) -> Option<Self> {
        [Self::Email, Self::Webhook, Self::Sms, Self::Push]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    fn object(self) -> &'static str {
        match self {
            Self::Email => EMAIL_OBJECT,
            Self::Webhook => WEBHOOK_OBJECT,
            Self::Sms | Self::Push => DELIVERY_OBJECT,
        }
    }
}

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

/// One preference as the routes read and write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preference {
    pub channel: String,
    pub topic: String,
    pub enabled: bool,
}

/// The payload of a delivery job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeliverJob {
    channel: Channel,
    id: String,
    tenant: Option<String>,
}

/// One inbox entry as the official client reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub body: String,
    pub read: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    pub created_at: Value,
}

/// A page of the inbox and the user's unread count.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxPage {
    pub notifications: Vec<InboxItem>,
    pub unread_count: u64,
}

/// What the inbox list is filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxQuery {
    pub read: Option<bool>,
    pub kind: Option<String>,
    pub limit: Option<u64>,
}

struct Started {
    engine: DataEngine,
    mailer: smtp::Mailer,
    queue: Option<Arc<dyn JobQueue>>,
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
        queue: Option<Arc<dyn JobQueue>>,
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

    // ---- sending ----------------------------------------------------------------------------

    /// The sender and reply-to of a mail: the request's, else its organization's, else the
    /// configured ones.
    fn sender(&self, req: &EmailRequest) -> (String, Option<String>) {
        let email = &self.settings.email;
        let org = req
            .tenant
            .as_deref()
            .and_then(|t| email.organizations.get(t));
        let from = req
            .from
            .clone()
            .or_else(|| org.and_then(|o| o.from.clone()))
            .unwrap_or_else(|| email.from.clone());
        let reply_to = req
            .reply_to
            .clone()
            .or_else(|| org.and_then(|o| o.reply_to.clone()))
            .or_else(|| email.reply_to.clone());
        (from, reply_to)
    }

    fn key_scope(channel: Channel, tenant: Option<&str>) -> String {
        format!("{}:{}", channel.as_str(), tenant.unwrap_or(""))
    }

    /// The message an idempotency key names, if it is bound to one yet.
    async fn existing(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        key: &str,
    ) -> Result<Option<Delivery>, NotificationError> {
        match self.key_row(channel, tenant, key, false).await? {
            Some((id, _)) if !id.is_empty() => self.bound_delivery(channel, tenant, &id).await,
            _ => Ok(None),
        }
    }

    /// The key's `(message_id, created_at)`; `message_id` is empty while a send holds it.
    async fn key_row(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        key: &str,
        writer: bool,
    ) -> Result<Option<(String, i64)>, NotificationError> {
        let st = self.s()?;
        let sql = Sql::with(
            st.engine.dialect(),
            &format!(
                "SELECT \"message_id\", \"created_at\" FROM \"{KEYS_TABLE}\" WHERE \"scope\" = ? AND \"key\" = ?"
            ),
            vec![Self::key_scope(channel, tenant).into(), key.into()],
        )?;
        // The writer sees a claim the moment it commits; a replica may lag.
        let row = if writer {
            st.engine.writer().fetch_optional(sql).await?
        } else {
            st.engine.pool().fetch_optional(sql).await?
        };
        row.map(|r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))
            .transpose()
    }

    async fn bound_delivery(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Delivery>, NotificationError> {
        Ok(Some(
            self.delivery_of(channel, tenant, id)
                .await?
                .unwrap_or(Delivery {
                    id: id.to_owned(),
                    status: DeliveryStatus::Queued,
                    message_id: None,
                }),
        ))
    }

    /// Claims an idempotency key for a new message: `None` when this send owns it now (it must
    /// [`Self::bind_key`] or [`Self::release_key`] it), else the message of the send that owns
    /// it. The claim is a row inserted with `ON CONFLICT DO NOTHING` under the key's primary
    /// key, so of two concurrent sends exactly one inserts it, on SQLite and PostgreSQL alike;
    /// the other waits until the winner bound its message id and answers that message.
    async fn claim_key(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        key: &str,
    ) -> Result<Option<Delivery>, NotificationError> {
        let st = self.s()?;
        let d = st.engine.dialect();
        let scope = Self::key_scope(channel, tenant);
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            let inserted = st
                .engine
                .writer()
                .execute(Sql::with(
                    d,
                    &format!(
                        "INSERT INTO \"{KEYS_TABLE}\" (\"scope\", \"key\", \"message_id\", \"created_at\") VALUES (?, ?, '', ?) ON CONFLICT DO NOTHING"
                    ),
                    vec![scope.as_str().into(), key.into(), now_ms().into()],
                )?)
                .await?;
            if inserted == 1 {
                return Ok(None);
            }
            match self.key_row(channel, tenant, key, true).await? {
                Some((id, _)) if !id.is_empty() => {
                    return self.bound_delivery(channel, tenant, &id).await;
                }
                Some((_, since)) if now_ms() - since > CLAIM_TIMEOUT_MS => {
                    // The send holding it died before binding a message: take the claim over
                    // (the `created_at` condition lets one taker win).
                    let taken = st
                        .engine
                        .writer()
                        .execute(Sql::with(
                            d,
                            &format!(
                                "UPDATE \"{KEYS_TABLE}\" SET \"created_at\" = ? WHERE \"scope\" = ? AND \"key\" = ? AND \"message_id\" = '' AND \"created_at\" = ?"
                            ),
                            vec![now_ms().into(), scope.as_str().into(), key.into(), since.into()],
                        )?)
                        .await?;
                    if taken == 1 {
                        return Ok(None);
                    }
                }
                // Held by a send still queueing its message, or released meanwhile: try again.
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NotificationError::Conflict(
                    "another request with this idempotency key is still being queued; try again"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Binds a claimed key to the message it queued.
    async fn bind_key(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        key: &str,
        id: &str,
    ) -> Result<(), NotificationError> {
        let st = self.s()?;
        st.engine
            .writer()
            .execute(Sql::with(
                st.engine.dialect(),
                &format!(
                    "UPDATE \"{KEYS_TABLE}\" SET \"message_id\" = ? WHERE \"scope\" = ? AND \"key\" = ?"
                ),
                vec![id.into(), Self::key_scope(channel, tenant).into(), key.into()],
            )?)
            .await?;
        Ok(())
    }

    /// Gives a claimed key up (the send failed before storing a message).
    async fn release_key(&self, channel: Channel, tenant: Option<&str>, key: &str) {
        let Ok(st) = self.s() else { return };
        let sql = Sql::with(
            st.engine.dialect(),
            &format!(
                "DELETE FROM \"{KEYS_TABLE}\" WHERE \"scope\" = ? AND \"key\" = ? AND \"message_id\" = ''"
            ),
            vec![Self::key_scope(channel, tenant).into(), key.into()],
        );
        let done = match sql {
            Ok(sql) => st.engine.writer().execute(sql).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(plugin = crate::PLUGIN_ID, error = %e, "Could not release an idempotency key; it frees itself after a minute.");
        }
    }

    /// Runs `body` under the idempotency key `key` (if any): the first send runs it and binds
    /// the key to the message it stored; a concurrent or later one gets that message.
    async fn with_key<F, Fut>(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        key: Option<&str>,
        body: F,
    ) -> Result<Delivery, NotificationError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Delivery, NotificationError>>,
    {
        let Some(key) = key else {
            return body().await;
        };
        if let Some(found) = self.claim_key(channel, tenant, key).await? {
            return Ok(found);
        }
        match body().await {
            Ok(d) => {
                if let Err(e) = self.bind_key(channel, tenant, key, &d.id).await {
                    tracing::warn!(plugin = crate::PLUGIN_ID, error = %e, "Could not bind an idempotency key to its message.");
                }
                Ok(d)
            }
            Err(e) => {
                self.release_key(channel, tenant, key).await;
                Err(e)
            }
        }
    }

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

    /// Stores the contents of a new message.
    async fn store_pending(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        id: &str,
        content: String,
    ) -> Result<(), NotificationError> {
        let st = self.s()?;
        st.engine
            .writer()
            .execute(Sql::with(
                st.engine.dialect(),
                &format!(
                    "INSERT INTO \"{PENDING_TABLE}\" (\"id\", \"channel\", \"tenant_id\", \"content\", \"created_at\") VALUES (?, ?, ?, ?, ?)"
                ),
                vec![
                    id.into(),
                    channel.as_str().into(),
                    tenant.into(),
                    content.into(),
                    now_ms().into(),
                ],
            )?)
            .await?;
        Ok(())
    }

    // ---- preferences ------------------------------------------------------------------------

    /// Loads the unsubscribe key: the configured one, else the one kept in the database
    /// (generated by the first node that starts; the insert is idempotent across nodes).
    pub async fn load_unsubscribe_key(&self) -> Result<(), NotificationError> {
        if self.unsubscribe_key.get().is_some() {
            return Ok(());
        }
        if let Some(s) = &self.settings.unsubscribe.secret {
            let _ = self.unsubscribe_key.set(s.expose().as_bytes().to_vec());
            return Ok(());
        }
        let st = self.s()?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|e| NotificationError::Config(format!("no randomness for a key: {e}")))?;
        let d = st.engine.dialect();
        st.engine
            .writer()
            .execute(Sql::with(
                d,
                &format!(
                    "INSERT INTO \"{SECRETS_TABLE}\" (\"name\", \"value\", \"created_at\") VALUES ('unsubscribe', ?, ?) ON CONFLICT DO NOTHING"
                ),
                vec![hex::encode(raw).into(), now_ms().into()],
            )?)
            .await?;
        let row = st
            .engine
            .writer()
            .fetch_optional(Sql::with(
                d,
                &format!(
                    "SELECT \"value\" FROM \"{SECRETS_TABLE}\" WHERE \"name\" = 'unsubscribe'"
                ),
                vec![],
            )?)
            .await?
            .ok_or_else(|| NotificationError::Config("the unsubscribe key is missing".into()))?;
        let key: String = row.get(0)?;
        let _ = self.unsubscribe_key.set(key.into_bytes());
        Ok(())
    }

    fn unsubscribe_key(&self) -> Option<&[u8]> {
        self.unsubscribe_key.get().map(Vec::as_slice)
    }

    /// The one-click unsubscribe URL for `u`, when a base URL is configured.
    pub fn unsubscribe_url(&self, u: &Unsubscribe) -> Option<String> {
        let base = self.settings.unsubscribe.base_url.as_deref()?;
        let key = self.unsubscribe_key()?;
        Some(format!(
            "{}/api/v1/{}/unsubscribe?token={}",
            base.trim_end_matches('/'),
            crate::routes::MOUNT,
            prefs::sign(key, u)
        ))
    }

    /// Whether `recipients` (any of the keys: a user id, a folded address) turned `channel`
    /// off for `topic`: a row for the topic itself decides, else one for `*`.
    async fn suppressed(
        &self,
        tenant: Option<&str>,
        recipients: &[String],
        channel: &str,
        topic: &str,
    ) -> Result<bool, NotificationError> {
        let st = self.s()?;
        let mut who = Filter::eq("recipient", recipients[0].as_str());
        for r in &recipients[1..] {
            who = who.or(Filter::eq("recipient", r.as_str()));
        }
        let topics = Filter::eq("topic", topic).or(Filter::eq("topic", prefs::ANY_TOPIC));
        let query = QueryAst {
            filter: who.and(Filter::eq("channel", channel)).and(topics),
            limit: Some(MAX_PAGE),
            ..QueryAst::default()
        };
        let rows = st
            .engine
            .find(&system_cx(tenant), PREFERENCE_OBJECT, query)
            .await?
            .records;
        let specific: Vec<bool> = rows
            .iter()
            .filter(|r| text(r, "topic").as_deref() == Some(topic))
            .map(|r| truthy(r.get("enabled")))
            .collect();
        if !specific.is_empty() {
            return Ok(specific.contains(&false));
        }
        Ok(rows.iter().any(|r| !truthy(r.get("enabled"))))
    }

    /// Sets one preference of `recipient` (creating or updating its record).
    async fn set_preference(
        &self,
        tenant: Option<&str>,
        recipient: &str,
        p: &Preference,
    ) -> Result<(), NotificationError> {
        prefs::check_channel(&p.channel)?;
        prefs::check_topic(&p.topic)?;
        let st = self.s()?;
        let cx = system_cx(tenant);
        let query = QueryAst {
            filter: Filter::eq("recipient", recipient)
                .and(Filter::eq("channel", p.channel.as_str()))
                .and(Filter::eq("topic", p.topic.as_str())),
            limit: Some(1),
            ..QueryAst::default()
        };
        let found = st.engine.find(&cx, PREFERENCE_OBJECT, query).await?;
        let mut rec = Record::new();
        rec.insert("enabled".into(), json!(p.enabled));
        match found.records.first() {
            Some(existing) => {
                st.engine
                    .update(&cx, PREFERENCE_OBJECT, &record_id(existing)?, rec, None)
                    .await?;
            }
            None => {
                rec.insert("recipient".into(), json!(recipient));
                rec.insert("channel".into(), json!(p.channel));
                rec.insert("topic".into(), json!(p.topic));
                st.engine.create(&cx, PREFERENCE_OBJECT, rec).await?;
            }
        }
        Ok(())
    }

    /// The preferences of `user` in `tenant`.
    pub async fn preferences(
        &self,
        user: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<Preference>, NotificationError> {
        let st = self.s()?;
        let query = QueryAst {
            filter: Filter::eq("recipient", user),
            order_by: vec![
                SortNode::new("channel", SortOrder::Asc),
                SortNode::new("topic", SortOrder::Asc),
            ],
            limit: Some(MAX_PAGE),
            ..QueryAst::default()
        };
        let found = st
            .engine
            .find(&system_cx(tenant), PREFERENCE_OBJECT, query)
            .await?;
        Ok(found
            .records
            .iter()
            .map(|r| Preference {
                channel: text(r, "channel").unwrap_or_default(),
                topic: text(r, "topic").unwrap_or_default(),
                enabled: truthy(r.get("enabled")),
            })
            .collect())
    }

    /// Sets preferences of `user` in `tenant` (others stay); answers them all.
    pub async fn set_preferences(
        &self,
        user: &str,
        tenant: Option<&str>,
        items: &[Preference],
    ) -> Result<Vec<Preference>, NotificationError> {
        // Every item is checked before any is written.
        for p in items {
            prefs::check_channel(&p.channel)?;
            prefs::check_topic(&p.topic)?;
        }
        for p in items {
            self.set_preference(tenant, user, p).await?;
        }
        self.preferences(user, tenant).await
    }

    /// What an unsubscribe token turns off (refused when not signed by this server).
    pub fn read_unsubscribe(&self, token: &str) -> Result<Unsubscribe, NotificationError> {
        let key = self
            .unsubscribe_key()
            .ok_or(NotificationError::NotStarted)?;
        prefs::verify(key, token).ok_or(NotificationError::InvalidToken)
    }

    /// Turns off what `token` names.
    pub async fn unsubscribe(&self, token: &str) -> Result<Unsubscribe, NotificationError> {
        let u = self.read_unsubscribe(token)?;
        self.set_preference(
            u.tenant.as_deref(),
            &u.recipient,
            &Preference {
                channel: u.channel.clone(),
                topic: u.topic.clone(),
                enabled: false,
            },
        )
        .await?;
        Ok(u)
    }

    // ---- email ------------------------------------------------------------------------------

    /// Queues one email: checks the addresses, renders the template, applies the recipients'
    /// preferences, stores the message and hands it to the job queue (or the plugin's own
    /// task). Never contacts the SMTP server.
    pub async fn queue_email(&self, req: EmailRequest) -> Result<Delivery, NotificationError> {
        self.s()?;
        let tenant = req.tenant.clone();
        if let Some(key) = req.idempotency_key.as_deref()
            && let Some(found) = self
                .existing(Channel::Email, tenant.as_deref(), key)
                .await?
        {
            return Ok(found);
        }
        if req.to.is_empty() {
            return Err(NotificationError::Validation(
                "`to` needs at least one address".into(),
            ));
        }
        if let Some(t) = &req.topic {
            prefs::check_topic(t)?;
        }
        let key = req.idempotency_key.clone();
        self.with_key(Channel::Email, tenant.as_deref(), key.as_deref(), || {
            self.store_email(req)
        })
        .await
    }

    async fn store_email(&self, req: EmailRequest) -> Result<Delivery, NotificationError> {
        let st = self.s()?;
        let tenant = req.tenant.clone();
        // Preferences: non-essential mail with a topic skips the recipients who turned it off.
        let mut to = req.to.clone();
        let mut unsubscribe = None;
        if let (Some(topic), false) = (req.topic.as_deref(), req.essential) {
            let mut kept = Vec::with_capacity(to.len());
            for addr in &to {
                let mut keys = vec![prefs::fold_address(addr)];
                keys.extend(req.recipient_id.clone());
                if !self
                    .suppressed(tenant.as_deref(), &keys, "email", topic)
                    .await?
                {
                    kept.push(addr.clone());
                }
            }
            to = kept;
            // One link per message: only when it reaches one reader (a link in a mail to
            // several people would let each unsubscribe the others).
            if to.len() == 1 && req.cc.is_empty() && req.bcc.is_empty() {
                unsubscribe = Some(Unsubscribe {
                    tenant: tenant.clone(),
                    recipient: req
                        .recipient_id
                        .clone()
                        .unwrap_or_else(|| prefs::fold_address(&to[0])),
                    channel: "email".into(),
                    topic: topic.to_owned(),
                });
            }
        }
        let list_unsubscribe = unsubscribe.as_ref().and_then(|u| self.unsubscribe_url(u));
        let (from, reply_to) = self.sender(&req);
        let (subject, text_body, html_body, locale) = match &req.template {
            Some(t) => {
                let mut vars = t.variables.clone();
                if let (Some(url), Some(map)) = (&list_unsubscribe, vars.as_object_mut()) {
                    map.entry("unsubscribeUrl").or_insert_with(|| json!(url));
                }
                let r = self.renderer.render_named(
                    &st.engine.metadata(),
                    &t.name,
                    t.locale.as_deref(),
                    self.settings.default_locale.as_deref(),
                    &vars,
                )?;
                (r.subject, r.text, r.html, Some(r.locale))
            }
            None => {
                if req.subject.trim().is_empty() {
                    return Err(NotificationError::Validation(
                        "`subject` is required (or a `template`)".into(),
                    ));
                }
                if req.text.is_none() && req.html.is_none() {
                    return Err(NotificationError::Validation(
                        "`text` or `html` is required (or a `template`)".into(),
                    ));
                }
                (
                    req.subject.replace(['\r', '\n'], " "),
                    req.text.clone(),
                    req.html.clone(),
                    None,
                )
            }
        };
        let suppressed = to.is_empty();
        let mut mail = OutgoingEmail {
            to: if suppressed { req.to.clone() } else { to },
            cc: req.cc.clone(),
            bcc: req.bcc.clone(),
            from,
            reply_to,
            subject,
            text: text_body,
            html: html_body,
            message_id: String::new(),
            list_unsubscribe,
        };
        // Every address is checked now: a bad one is the caller's error, not a retry later.
        smtp::build_message(&OutgoingEmail {
            message_id: "<check@objectos.local>".into(),
            ..mail.clone()
        })?;
        let mut rec = Record::new();
        rec.insert("to_addresses".into(), json!(mail.to.join(", ")));
        if !mail.cc.is_empty() {
            rec.insert("cc_addresses".into(), json!(mail.cc.join(", ")));
        }
        rec.insert("from_address".into(), json!(mail.from));
        if let Some(r) = &mail.reply_to {
            rec.insert("reply_to".into(), json!(r));
        }
        rec.insert("subject".into(), json!(mail.subject));
        if let Some(t) = &req.template {
            rec.insert("template".into(), json!(t.name));
        }
        if let Some(l) = &locale {
            rec.insert("locale".into(), json!(l));
        }
        if let Some(t) = &req.topic {
            rec.insert("topic".into(), json!(t));
        }
        rec.insert("essential".into(), json!(req.essential));
        let status = if suppressed {
            SUPPRESSED
        } else {
            DeliveryStatus::Queued.as_str()
        };
        rec.insert("status".into(), json!(status));
        rec.insert("attempts".into(), json!(0));
        if let Some(k) = &req.idempotency_key {
            rec.insert("idempotency_key".into(), json!(k));
        }
        if let Some(by) = &req.sent_by {
            rec.insert("sent_by".into(), json!(by));
        }
        let created = st
            .engine
            .create(&system_cx(tenant.as_deref()), EMAIL_OBJECT, rec)
            .await?;
        let id = record_id(&created)?;
        if suppressed {
            return Ok(Delivery {
                id,
                status: DeliveryStatus::Failed,
                message_id: None,
            });
        }
        mail.message_id = smtp::message_id(&id, &mail.from);
        let mut patch = Record::new();
        patch.insert("message_id".into(), json!(mail.message_id));
        st.engine
            .update(
                &system_cx(tenant.as_deref()),
                EMAIL_OBJECT,
                &id,
                patch,
                None,
            )
            .await?;
        let content = serde_json::to_string(&mail)
            .map_err(|e| NotificationError::Config(format!("cannot store the mail: {e}")))?;
        self.store_pending(Channel::Email, tenant.as_deref(), &id, content)
            .await?;
        self.dispatch(Channel::Email, &id, tenant.as_deref()).await;
        Ok(Delivery {
            id,
            status: DeliveryStatus::Queued,
            message_id: Some(mail.message_id),
        })
    }

    // ---- SMS and push -----------------------------------------------------------------------

    fn provider(&self, channel: Channel) -> Option<&HttpProviderSettings> {
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
        let tenant = req.tenant.clone();
        let key = req.idempotency_key.clone();
        let name = provider.name.clone();
        self.with_key(channel, tenant.as_deref(), key.as_deref(), || {
            self.store_message(channel, name, req)
        })
        .await
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
        let mut rec = Record::new();
        rec.insert("channel".into(), json!(channel.as_str()));
        rec.insert("recipient".into(), json!(req.to.trim()));
        if let Some(r) = &req.recipient_id {
            rec.insert("recipient_id".into(), json!(r));
        }
        rec.insert("provider".into(), json!(provider));
        if let Some(t) = &req.topic {
            rec.insert("topic".into(), json!(t));
        }
        if let Some(t) = &req.template {
            rec.insert("template".into(), json!(t.name));
        }
        let status = if suppressed {
            SUPPRESSED
        } else {
            DeliveryStatus::Queued.as_str()
        };
        rec.insert("status".into(), json!(status));
        rec.insert("attempts".into(), json!(0));
        if let Some(k) = &req.idempotency_key {
            rec.insert("idempotency_key".into(), json!(k));
        }
        if let Some(by) = &req.sent_by {
            rec.insert("sent_by".into(), json!(by));
        }
        let created = st
            .engine
            .create(&system_cx(tenant), DELIVERY_OBJECT, rec)
            .await?;
        let id = record_id(&created)?;
        if suppressed {
            return Ok(Delivery {
                id,
                status: DeliveryStatus::Failed,
                message_id: None,
            });
        }
        let msg = OutgoingMessage {
            to: req.to.trim().to_owned(),
            title,
            text: text_body,
            data: req.data.clone().unwrap_or(Value::Null),
            traceparent: objectos_kernel::trace::current().map(|h| h.traceparent),
        };
        let content = serde_json::to_string(&msg)
            .map_err(|e| NotificationError::Config(format!("cannot store the message: {e}")))?;
        self.store_pending(channel, tenant, &id, content).await?;
        self.dispatch(channel, &id, tenant).await;
        Ok(Delivery {
            id,
            status: DeliveryStatus::Queued,
            message_id: None,
        })
    }

    // ---- webhooks ---------------------------------------------------------------------------

    /// Queues one signed webhook call (refused without `webhook.secret`).
    pub async fn queue_webhook(
        &self,
        url: &str,
        event: &str,
        payload: &Value,
        tenant: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Delivery, NotificationError> {
        self.queue_webhook_with(url, event, payload, tenant, idempotency_key, None)
            .await
    }

    /// Queues one signed webhook call, signed with the key in the variable `secret_env` when
    /// given, else `webhook.secret`.
    pub async fn queue_webhook_with(
        &self,
        url: &str,
        event: &str,
        payload: &Value,
        tenant: Option<&str>,
        idempotency_key: Option<&str>,
        secret_env: Option<&str>,
    ) -> Result<Delivery, NotificationError> {
        self.s()?;
        if secret_env.is_none() && self.settings.webhook.secret.is_none() {
            return Err(NotificationError::Config(
                "webhooks need `notifications.webhook.secret`".into(),
            ));
        }
        let parsed = reqwest013::Url::parse(url)
            .map_err(|e| NotificationError::Validation(format!("`url`: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(NotificationError::Validation(
                "`url` must be an http or https URL".into(),
            ));
        }
        if let Some(key) = idempotency_key
            && let Some(found) = self.existing(Channel::Webhook, tenant, key).await?
        {
            return Ok(found);
        }
        let hook = OutgoingWebhook {
            url: url.to_owned(),
            event: event.to_owned(),
            body: payload.to_string(),
            secret_env: secret_env.map(str::to_owned),
            traceparent: objectos_kernel::trace::current().map(|h| h.traceparent),
        };
        self.with_key(Channel::Webhook, tenant, idempotency_key, || {
            self.store_webhook(hook, tenant, idempotency_key)
        })
        .await
    }

    async fn store_webhook(
        &self,
        hook: OutgoingWebhook,
        tenant: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Delivery, NotificationError> {
        let st = self.s()?;
        let mut rec = Record::new();
        rec.insert("url".into(), json!(hook.url));
        rec.insert("event".into(), json!(hook.event));
        rec.insert("status".into(), json!(DeliveryStatus::Queued.as_str()));
        rec.insert("attempts".into(), json!(0));
        if let Some(k) = idempotency_key {
            rec.insert("idempotency_key".into(), json!(k));
        }
        let created = st
            .engine
            .create(&system_cx(tenant), WEBHOOK_OBJECT, rec)
            .await?;
        let id = record_id(&created)?;
        let content = serde_json::to_string(&hook)
            .map_err(|e| NotificationError::Config(format!("cannot store the webhook: {e}")))?;
        self.store_pending(Channel::Webhook, tenant, &id, content)
            .await?;
        self.dispatch(Channel::Webhook, &id, tenant).await;
        Ok(Delivery {
            id,
            status: DeliveryStatus::Queued,
            message_id: None,
        })
    }

    /// Queues a delivery to every declared webhook (`*.webhook.yml`) whose patterns match a
    /// record event; the event id makes the deliveries idempotent, so an event delivered twice
    /// calls each webhook once.
    pub async fn on_record_event(&self, event: &objectos_spec::Event) {
        let Ok(st) = self.s() else { return };
        if crate::hooks::object_of(&event.name)
            .is_none_or(|o| crate::schema::OWN_OBJECTS.contains(&o))
        {
            return;
        }
        let snapshot = st.engine.metadata();
        let hooks = crate::hooks::matching(&snapshot, &event.name);
        if hooks.is_empty() {
            return;
        }
        let body = crate::hooks::body_of(event);
        let tenant = event.metadata.tenant_id.as_deref();
        for h in hooks {
            let key = format!("hook:{}:{}", h.name, event.id);
            if let Err(e) = self
                .queue_webhook_with(
                    &h.url,
                    &event.name,
                    &body,
                    tenant,
                    Some(&key),
                    h.secret_env.as_deref(),
                )
                .await
            {
                tracing::warn!(plugin = crate::PLUGIN_ID, webhook = %h.name, event = %event.name, error = %e, "Could not queue a webhook delivery.");
            }
        }
    }

    /// Hands a stored message to the job queue, or to a task of this plugin.
    async fn dispatch(&self, channel: Channel, id: &str, tenant: Option<&str>) {
        let Ok(st) = self.s() else { return };
        let job = DeliverJob {
            channel,
            id: id.to_owned(),
            tenant: tenant.map(str::to_owned),
        };
        if let Some(queue) = &st.queue {
            let request = EnqueueRequest {
                queue: Some(QUEUE.to_owned()),
                idempotency_key: Some(format!("notification:{id}")),
                retry: Some(self.retry_policy()),
                ..EnqueueRequest::new(DELIVER_HANDLER, json!(job))
            };
            match queue.enqueue(request).await {
                Ok(enq) => {
                    let mut patch = Record::new();
                    patch.insert("job_id".into(), json!(enq.id));
                    if let Err(e) = st
                        .engine
                        .update(&system_cx(tenant), channel.object(), id, patch, None)
                        .await
                    {
                        tracing::debug!(plugin = crate::PLUGIN_ID, error = %e, "Could not record the delivery job id.");
                    }
                    return;
                }
                Err(e) => {
                    // The message is stored; deliver it from here rather than lose it.
                    tracing::warn!(plugin = crate::PLUGIN_ID, error = %e, "The job queue refused a delivery; delivering in-process instead.");
                }
            }
        }
        let me = self.clone();
        tokio::spawn(async move { me.deliver_locally(job).await });
    }

    /// The in-process delivery: attempts with the configured backoff, then `failed`.
    async fn deliver_locally(&self, job: DeliverJob) {
        let policy = self.retry_policy();
        for attempt in 1..=policy.max_attempts {
            match self
                .deliver(job.channel, &job.id, job.tenant.as_deref(), attempt)
                .await
            {
                Ok(()) => return,
                Err(f) if f.retryable && attempt < policy.max_attempts => {
                    tokio::time::sleep(policy.delay_after(attempt)).await;
                }
                Err(_) => return,
            }
        }
    }

    async fn run_job(&self, cx: JobContext) -> Result<(), JobFailure> {
        let job: DeliverJob = serde_json::from_value(cx.payload.clone())
            .map_err(|e| JobFailure::fatal(format!("malformed delivery job: {e}")))?;
        self.deliver(job.channel, &job.id, job.tenant.as_deref(), cx.attempt)
            .await
    }

    async fn pending_content(&self, id: &str) -> Result<Option<String>, NotificationError> {
        let st = self.s()?;
        let row = st
            .engine
            .writer()
            .fetch_optional(Sql::with(
                st.engine.dialect(),
                &format!("SELECT \"content\" FROM \"{PENDING_TABLE}\" WHERE \"id\" = ?"),
                vec![id.into()],
            )?)
            .await?;
        Ok(row.map(|r| r.get::<String>(0)).transpose()?)
    }

    /// One delivery attempt of a stored message; `attempt` is 1-based. Success removes the
    /// pending contents; a failure is recorded, and marks the message `failed` when it is
    /// permanent or the last attempt (the contents stay, so a replay of the dead job resends).
    pub async fn deliver(
        &self,
        channel: Channel,
        id: &str,
        tenant: Option<&str>,
        attempt: u32,
    ) -> Result<(), JobFailure> {
        let retry = |e: NotificationError| JobFailure::retry(e.to_string());
        let st = self.s().map_err(retry)?;
        let Some(content) = self.pending_content(id).await.map_err(retry)? else {
            // Delivered already (a job run twice): nothing to do.
            return Ok(());
        };
        let outcome: Result<Option<i64>, NotificationError> = match channel {
            Channel::Email => match serde_json::from_str::<OutgoingEmail>(&content) {
                Ok(mail) => st.mailer.send(&mail).await.map(|()| None),
                Err(e) => Err(NotificationError::Delivery {
                    message: format!("unreadable stored mail: {e}"),
                    retryable: false,
                }),
            },
            Channel::Webhook => match serde_json::from_str::<OutgoingWebhook>(&content) {
                Ok(hook) => match self.webhook_key(&hook) {
                    Some(secret) => webhook::post(
                        self.http().map_err(retry)?,
                        &secret,
                        id,
                        &hook,
                        Duration::from_secs(self.settings.webhook.timeout_seconds),
                    )
                    .await
                    .map(|s| Some(i64::from(s))),
                    None => Err(NotificationError::Delivery {
                        message: "the webhook's key is not configured (notifications.webhook.secret or its secretEnv variable)".into(),
                        retryable: false,
                    }),
                },
                Err(e) => Err(NotificationError::Delivery {
                    message: format!("unreadable stored webhook: {e}"),
                    retryable: false,
                }),
            },
            Channel::Sms | Channel::Push => {
                match (
                    serde_json::from_str::<OutgoingMessage>(&content),
                    self.provider(channel),
                ) {
                    (Ok(mut msg), Some(p)) => {
                        if msg.traceparent.is_none() {
                            msg.traceparent =
                                objectos_kernel::trace::current().map(|h| h.traceparent);
                        }
                        provider::send(self.http().map_err(retry)?, p, &msg)
                            .await
                            .map(|s| Some(i64::from(s)))
                    }
                    (Err(e), _) => Err(NotificationError::Delivery {
                        message: format!("unreadable stored message: {e}"),
                        retryable: false,
                    }),
                    (_, None) => Err(NotificationError::Delivery {
                        message: format!("no {} provider is configured", channel.as_str()),
                        retryable: false,
                    }),
                }
            }
        };
        let cx = system_cx(tenant);
        let max = self.settings.delivery.max_attempts.max(1);
        let mut patch = Record::new();
        patch.insert("attempts".into(), json!(attempt));
        match outcome {
            Ok(response) => {
                patch.insert("status".into(), json!(DeliveryStatus::Sent.as_str()));
                patch.insert("last_error".into(), Value::Null);
                if channel == Channel::Email {
                    patch.insert("sent_at".into(), json!(Utc::now().to_rfc3339()));
                }
                if let Some(code) = response {
                    patch.insert("response_status".into(), json!(code));
                }
                st.engine
                    .update(&cx, channel.object(), id, patch, None)
                    .await
                    .map_err(|e| retry(e.into()))?;
                let del = Sql::with(
                    st.engine.dialect(),
                    &format!("DELETE FROM \"{PENDING_TABLE}\" WHERE \"id\" = ?"),
                    vec![id.into()],
                )
                .map_err(|e| retry(e.into()))?;
                st.engine
                    .writer()
                    .execute(del)
                    .await
                    .map_err(|e| retry(e.into()))?;
                Ok(())
            }
            Err(e) => {
                let retryable = matches!(
                    e,
                    NotificationError::Delivery {
                        retryable: true,
                        ..
                    }
                );
                let last = !retryable || attempt >= max;
                tracing::warn!(
                    plugin = crate::PLUGIN_ID,
                    channel = channel.as_str(),
                    id,
                    attempt,
                    last,
                    error = %e,
                    "Delivery failed."
                );
                patch.insert("last_error".into(), json!(e.to_string()));
                if last {
                    patch.insert("status".into(), json!(DeliveryStatus::Failed.as_str()));
                }
                if let Err(u) = st
                    .engine
                    .update(&cx, channel.object(), id, patch, None)
                    .await
                {
                    tracing::warn!(plugin = crate::PLUGIN_ID, error = %u, "Could not record a failed delivery.");
                }
                Err(if retryable {
                    JobFailure::retry(e.to_string())
                } else {
                    JobFailure::fatal(e.to_string())
                })
            }
        }
    }

    /// The HMAC key of a webhook: its `secretEnv` variable, else `webhook.secret`.
    fn webhook_key(&self, hook: &OutgoingWebhook) -> Option<Vec<u8>> {
        match &hook.secret_env {
            Some(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .map(String::into_bytes),
            None => self
                .settings
                .webhook
                .secret
                .as_ref()
                .map(|s| s.expose().as_bytes().to_vec()),
        }
    }

    /// Without a job queue: queues again every message a previous run left undelivered.
    pub async fn resume_pending(&self) -> Result<usize, NotificationError> {
        let st = self.s()?;
        if st.queue.is_some() {
            // The job table holds them; the jobs plugin resumes them itself.
            return Ok(0);
        }
        let rows = st
            .engine
            .pool()
            .fetch_all(Sql::with(
                st.engine.dialect(),
                &format!(
                    "SELECT \"id\", \"channel\", \"tenant_id\" FROM \"{PENDING_TABLE}\" ORDER BY \"created_at\""
                ),
                vec![],
            )?)
            .await?;
        let mut n = 0;
        for row in rows {
            let id: String = row.get(0)?;
            let channel: String = row.get(1)?;
            let tenant: Option<String> = row.get(2)?;
            let channel = Channel::parse(&channel).unwrap_or(Channel::Email);
            // A message that failed for good keeps its contents for a replay; skip it.
            if let Some(d) = self.delivery_of(channel, tenant.as_deref(), &id).await?
                && d.status == DeliveryStatus::Queued
            {
                self.dispatch(channel, &id, tenant.as_deref()).await;
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- inbox ------------------------------------------------------------------------------

    /// Stores one in-app message.
    pub async fn add_to_inbox(&self, req: InAppRequest) -> Result<Delivery, NotificationError> {
        let st = self.s()?;
        if req.user_id.trim().is_empty() {
            return Err(NotificationError::Validation("`userId` is required".into()));
        }
        let mut rec = Record::new();
        rec.insert("recipient_id".into(), json!(req.user_id));
        rec.insert(
            "notification_type".into(),
            json!(if req.kind.is_empty() {
                "notify"
            } else {
                &req.kind
            }),
        );
        rec.insert("title".into(), json!(req.title));
        rec.insert("body".into(), json!(req.body));
        rec.insert("is_read".into(), json!(false));
        if let Some(u) = &req.action_url {
            rec.insert("action_url".into(), json!(u));
        }
        if let Some(d) = &req.data {
            rec.insert("data_json".into(), json!(d.to_string()));
        }
        let created = st
            .engine
            .create(&system_cx(req.tenant.as_deref()), INBOX_OBJECT, rec)
            .await?;
        Ok(Delivery {
            id: record_id(&created)?,
            status: DeliveryStatus::Delivered,
            message_id: None,
        })
    }

    fn inbox_item(rec: &Record) -> InboxItem {
        InboxItem {
            id: text(rec, "id").unwrap_or_default(),
            kind: text(rec, "notification_type").unwrap_or_else(|| "notify".into()),
            title: text(rec, "title").unwrap_or_default(),
            body: text(rec, "body").unwrap_or_default(),
            read: truthy(rec.get("is_read")),
            action_url: text(rec, "action_url"),
            data: text(rec, "data_json").and_then(|s| serde_json::from_str(&s).ok()),
            created_at: rec.get("created_at").cloned().unwrap_or(Value::Null),
        }
    }

    fn unread_of(user: &str) -> Filter {
        Filter::eq("recipient_id", user).and(Filter::eq("is_read", false))
    }

    /// The user's inbox, newest first, and the unread count.
    pub async fn inbox(
        &self,
        user: &str,
        tenant: Option<&str>,
        q: &InboxQuery,
    ) -> Result<InboxPage, NotificationError> {
        let st = self.s()?;
        let cx = system_cx(tenant);
        let mut filter = Filter::eq("recipient_id", user);
        if let Some(read) = q.read {
            filter = filter.and(Filter::eq("is_read", read));
        }
        if let Some(kind) = &q.kind {
            filter = filter.and(Filter::eq("notification_type", kind.as_str()));
        }
        let query = QueryAst {
            filter,
            order_by: vec![
                SortNode::new("created_at", SortOrder::Desc),
                SortNode::new("id", SortOrder::Desc),
            ],
            limit: Some(q.limit.unwrap_or(50).clamp(1, MAX_PAGE)),
            ..QueryAst::default()
        };
        let found = st.engine.find(&cx, INBOX_OBJECT, query).await?;
        let unread_count = st
            .engine
            .count(&cx, INBOX_OBJECT, Self::unread_of(user))
            .await?;
        Ok(InboxPage {
            notifications: found.records.iter().map(Self::inbox_item).collect(),
            unread_count,
        })
    }

    async fn mark(&self, cx: &OpContext, id: &str) -> Result<(), NotificationError> {
        let st = self.s()?;
        let mut patch = Record::new();
        patch.insert("is_read".into(), json!(true));
        patch.insert("read_at".into(), json!(Utc::now().to_rfc3339()));
        st.engine.update(cx, INBOX_OBJECT, id, patch, None).await?;
        Ok(())
    }

    /// Marks the user's unread messages among `ids` read; returns how many changed. Ids of
    /// other users' messages, or unknown ones, change nothing.
    pub async fn mark_read(
        &self,
        user: &str,
        tenant: Option<&str>,
        ids: &[String],
    ) -> Result<u64, NotificationError> {
        let st = self.s()?;
        let cx = system_cx(tenant);
        let mut n = 0;
        for id in ids {
            let query = QueryAst {
                filter: Self::unread_of(user).and(Filter::eq("id", id.as_str())),
                limit: Some(1),
                ..QueryAst::default()
            };
            if st
                .engine
                .find(&cx, INBOX_OBJECT, query)
                .await?
                .records
                .is_empty()
            {
                continue;
            }
            self.mark(&cx, id).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Marks every unread message of the user read; returns how many changed.
    pub async fn mark_all_read(
        &self,
        user: &str,
        tenant: Option<&str>,
    ) -> Result<u64, NotificationError> {
        let st = self.s()?;
        let cx = system_cx(tenant);
        let mut n = 0;
        loop {
            let query = QueryAst {
                filter: Self::unread_of(user),
                limit: Some(MAX_PAGE),
                ..QueryAst::default()
            };
            let page = st.engine.find(&cx, INBOX_OBJECT, query).await?;
            if page.records.is_empty() {
                return Ok(n);
            }
            for rec in &page.records {
                self.mark(&cx, &record_id(rec)?).await?;
                n += 1;
            }
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
