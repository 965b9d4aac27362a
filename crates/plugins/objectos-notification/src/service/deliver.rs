//! Delivery: hands a stored message to its job (or to a task of this plugin without the jobs
//! plugin), runs one attempt per call, records the outcome, and queues again at start what a
//! previous run left undelivered.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use objectos_data::Record;
use objectos_data::store::{Sql, Store};
use objectos_kernel::contracts::{DeliveryStatus, JobContext, JobFailure};

use super::record::RemovePending;
use super::{Channel, NotificationService, QUEUE, system_cx};
use crate::error::NotificationError;
use crate::provider::{self, OutgoingMessage};
use crate::schema::PENDING_TABLE;
use crate::smtp::OutgoingEmail;
use crate::webhook::{self, OutgoingWebhook};

/// The payload of a delivery job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DeliverJob {
    pub(super) channel: Channel,
    pub(super) id: String,
    pub(super) tenant: Option<String>,
}

impl NotificationService {
    /// Hands a message just stored to delivery: its job is committed with it, so this only
    /// wakes the queue's workers; without the jobs plugin a task of this plugin delivers it.
    pub(super) fn dispatch(&self, channel: Channel, id: &str, tenant: Option<&str>) {
        let Ok(st) = self.s() else { return };
        if let Some(queue) = &st.queue {
            queue.wake(QUEUE);
            return;
        }
        let job = DeliverJob {
            channel,
            id: id.to_owned(),
            tenant: tenant.map(str::to_owned),
        };
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

    pub(super) async fn run_job(&self, cx: JobContext) -> Result<(), JobFailure> {
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
                // The status and the removal of the contents commit together.
                st.engine
                    .update_with(&cx, channel.object(), id, patch, None, RemovePending { id })
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
            let channel = Channel::parse(&channel).unwrap_or(Channel::Email);
            // A message that failed for good keeps its contents for a replay; skip it.
            if let Some(d) = self.delivery_of(channel, tenant.as_deref(), &id).await?
                && d.status == DeliveryStatus::Queued
            {
                self.dispatch(channel, &id, tenant.as_deref());
                n += 1;
            }
        }
        Ok(n)
    }
}
