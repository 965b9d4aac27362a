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

use crate::config::NotificationSettings;
use crate::error::NotificationError;
use crate::schema::{EMAIL_OBJECT, INBOX_OBJECT, KEYS_TABLE, PENDING_TABLE, WEBHOOK_OBJECT};
use crate::smtp::{self, OutgoingEmail};
use crate::template::Renderer;
use crate::webhook::{self, OutgoingWebhook};

/// The job handler that delivers one message.
pub const DELIVER_HANDLER: &str = "notification.deliver";

/// The job queue deliveries go to.
pub const QUEUE: &str = "notifications";

/// Largest page of the inbox.
pub const MAX_PAGE: u64 = 200;

/// A message's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }

    fn object(self) -> &'static str {
        match self {
            Self::Email => EMAIL_OBJECT,
            Self::Webhook => WEBHOOK_OBJECT,
        }
    }
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
    http: Option<reqwest013::Client>,
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
        let http = if self.settings.webhook.secret.is_some() {
            Some(
                reqwest013::Client::builder()
                    .build()
                    .map_err(|e| NotificationError::Config(format!("webhook client: {e}")))?,
            )
        } else {
            None
        };
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
            http,
        });
        Ok(())
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

    /// The message an idempotency key already names, if any.
    async fn existing(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        key: &str,
    ) -> Result<Option<Delivery>, NotificationError> {
        let st = self.s()?;
        let scope = format!("{}:{}", channel.as_str(), tenant.unwrap_or(""));
        let row = st
            .engine
            .pool()
            .fetch_optional(Sql::with(
                st.engine.dialect(),
                &format!(
                    "SELECT \"message_id\" FROM \"{KEYS_TABLE}\" WHERE \"scope\" = ? AND \"key\" = ?"
                ),
                vec![scope.into(), key.into()],
            )?)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: String = row.get(0)?;
        self.delivery_of(channel, tenant, &id).await
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
                    .and_then(|s| DeliveryStatus::parse(&s))
                    .unwrap_or(DeliveryStatus::Queued),
                message_id: text(&rec, "message_id"),
            })),
            Err(e) if e.http_status() == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the contents and the idempotency key of a new message.
    async fn store_pending(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        id: &str,
        content: String,
        key: Option<&str>,
    ) -> Result<(), NotificationError> {
        let st = self.s()?;
        let d = st.engine.dialect();
        let w = st.engine.writer();
        w.execute(Sql::with(
            d,
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
        if let Some(key) = key {
            let scope = format!("{}:{}", channel.as_str(), tenant.unwrap_or(""));
            w.execute(Sql::with(
                d,
                &format!(
                    "INSERT INTO \"{KEYS_TABLE}\" (\"scope\", \"key\", \"message_id\", \"created_at\") VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                vec![scope.into(), key.into(), id.into(), now_ms().into()],
            )?)
            .await?;
        }
        Ok(())
    }

    /// Queues one email: checks the addresses, renders the template, stores the message and
    /// hands it to the job queue (or the plugin's own task). Never contacts the SMTP server.
    pub async fn queue_email(&self, req: EmailRequest) -> Result<Delivery, NotificationError> {
        let st = self.s()?;
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
        let (from, reply_to) = self.sender(&req);
        let (subject, text_body, html_body, locale) = match &req.template {
            Some(t) => {
                let r = self.renderer.render_named(
                    &st.engine.metadata(),
                    &t.name,
                    t.locale.as_deref(),
                    self.settings.default_locale.as_deref(),
                    &t.variables,
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
        let mut mail = OutgoingEmail {
            to: req.to.clone(),
            cc: req.cc.clone(),
            bcc: req.bcc.clone(),
            from,
            reply_to,
            subject,
            text: text_body,
            html: html_body,
            message_id: String::new(),
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
        rec.insert("status".into(), json!(DeliveryStatus::Queued.as_str()));
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
        self.store_pending(
            Channel::Email,
            tenant.as_deref(),
            &id,
            content,
            req.idempotency_key.as_deref(),
        )
        .await?;
        self.dispatch(Channel::Email, &id, tenant.as_deref()).await;
        Ok(Delivery {
            id,
            status: DeliveryStatus::Queued,
            message_id: Some(mail.message_id),
        })
    }

    /// Queues one signed webhook call (refused without `webhook.secret`).
    pub async fn queue_webhook(
        &self,
        url: &str,
        event: &str,
        payload: &Value,
        tenant: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Delivery, NotificationError> {
        let st = self.s()?;
        if self.settings.webhook.secret.is_none() {
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
        let mut rec = Record::new();
        rec.insert("url".into(), json!(url));
        rec.insert("event".into(), json!(event));
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
        let hook = OutgoingWebhook {
            url: url.to_owned(),
            event: event.to_owned(),
            body: payload.to_string(),
        };
        let content = serde_json::to_string(&hook)
            .map_err(|e| NotificationError::Config(format!("cannot store the webhook: {e}")))?;
        self.store_pending(Channel::Webhook, tenant, &id, content, idempotency_key)
            .await?;
        self.dispatch(Channel::Webhook, &id, tenant).await;
        Ok(Delivery {
            id,
            status: DeliveryStatus::Queued,
            message_id: None,
        })
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
            Channel::Webhook => match (
                serde_json::from_str::<OutgoingWebhook>(&content),
                &st.http,
                &self.settings.webhook.secret,
            ) {
                (Ok(hook), Some(client), Some(secret)) => webhook::post(
                    client,
                    secret.expose().as_bytes(),
                    id,
                    &hook,
                    Duration::from_secs(self.settings.webhook.timeout_seconds),
                )
                .await
                .map(|s| Some(i64::from(s))),
                _ => Err(NotificationError::Delivery {
                    message: "webhooks are not configured (notifications.webhook.secret)".into(),
                    retryable: false,
                }),
            },
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
            let channel = if channel == "webhook" {
                Channel::Webhook
            } else {
                Channel::Email
            };
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
        for channel in [Channel::Email, Channel::Webhook] {
            if let Some(d) = self.delivery_of(channel, None, id).await? {
                return Ok(Some(d.status));
            }
        }
        Ok(None)
    }
}
