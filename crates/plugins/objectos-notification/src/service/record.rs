//! The one message record builder every outgoing channel shares (email, SMS, push, webhook),
//! and the single write transaction that stores a message.
//!
//! A send used to take a transaction per step (claim the idempotency key, create the record,
//! fix its `Message-ID`, store the contents, enqueue the job, note the job id, bind the key):
//! on PostgreSQL every step is a commit round trip, which kept the request path above its
//! budget. Now [`NotificationService::store`] runs one `create` of the record through the data
//! engine with a follow-up ([`NewMessage`], the engine's `create_with`) that writes everything
//! else in that create's transaction, with the new record's id in hand: the idempotency key (an
//! `INSERT ... ON CONFLICT DO NOTHING` on the key's primary key, so of two concurrent sends
//! exactly one commits it), the pending contents, and the delivery job (the jobs plugin's
//! transactional enqueue). The message, its key, contents and job exist together or not at all.
//! A delivery marks a message sent with `update_with` and [`RemovePending`], so the status and
//! the removal of the contents commit together too.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use objectos_data::store::{Sql, Store};
use objectos_data::{DataError, FollowUp, Record, TransactionalJobQueue, WriteTx};
use objectos_kernel::contracts::{Delivery, DeliveryStatus, EnqueueRequest};
use serde::Serialize;
use serde_json::{Value, json};

use super::deliver::DeliverJob;
use super::{
    CLAIM_WAIT, Channel, DELIVER_HANDLER, NotificationService, QUEUE, SUPPRESSED, now_ms,
    record_id, system_cx,
};
use crate::error::NotificationError;
use crate::schema::{KEYS_TABLE, PENDING_TABLE};

/// What a new message writes besides its record, in the record's transaction.
struct NewMessage<'a> {
    channel: Channel,
    tenant: Option<&'a str>,
    key: Option<&'a str>,
    /// `None` for a suppressed message: nothing to deliver.
    content: Option<&'a str>,
    /// The delivery job and the queue it goes to (with the jobs plugin).
    job: Option<(&'a dyn TransactionalJobQueue, &'a EnqueueRequest)>,
    /// The record's table, where the job's id is noted.
    table: &'a str,
    /// Set when another send's key row was found: the create then fails and rolls back.
    key_taken: &'a AtomicBool,
}

#[async_trait]
impl FollowUp for NewMessage<'_> {
    type Output = ();

    async fn run(self, tx: WriteTx<'_>, record: &mut Record) -> objectos_data::Result<()> {
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| DataError::Internal("a new message record has no id".into()))?;
        let d = tx.dialect();
        if let Some(key) = self.key {
            let inserted = tx
                .execute(Sql::with(
                    d,
                    &format!(
                        "INSERT INTO \"{KEYS_TABLE}\" (\"scope\", \"key\", \"message_id\", \"created_at\") VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
                    ),
                    vec![
                        key_scope(self.channel, self.tenant).into(),
                        key.into(),
                        id.as_str().into(),
                        now_ms().into(),
                    ],
                )?)
                .await?;
            if inserted == 0 {
                self.key_taken.store(true, Ordering::SeqCst);
                return Err(DataError::Duplicate {
                    object: self.channel.object().to_owned(),
                    message: "the idempotency key names another message".into(),
                    fields: Vec::new(),
                });
            }
        }
        let Some(content) = self.content else {
            return Ok(());
        };
        tx.execute(Sql::with(
            d,
            &format!(
                "INSERT INTO \"{PENDING_TABLE}\" (\"id\", \"channel\", \"tenant_id\", \"content\", \"created_at\") VALUES (?, ?, ?, ?, ?)"
            ),
            vec![
                id.as_str().into(),
                self.channel.as_str().into(),
                self.tenant.into(),
                content.into(),
                now_ms().into(),
            ],
        )?)
        .await?;
        let Some((queue, job)) = self.job else {
            return Ok(());
        };
        let mut job = job.clone();
        job.payload = json!(DeliverJob {
            channel: self.channel,
            id: id.clone(),
            tenant: self.tenant.map(str::to_owned),
        });
        // No job idempotency key: the job is written once, in the transaction that creates its
        // message, so it cannot be enqueued twice; a key would cost a row on each enqueue and
        // a delete on each completion.
        let enq = queue
            .enqueue_in(&tx, job)
            .await
            .map_err(|e| DataError::Internal(format!("the delivery job: {e}")))?;
        // The job id on the record, in the same transaction; the create's event (written after
        // the follow-up, from the record) carries it too.
        tx.execute(Sql::with(
            d,
            &format!(
                "UPDATE \"{}\" SET \"job_id\" = ? WHERE \"id\" = ?",
                self.table
            ),
            vec![enq.id.as_str().into(), id.as_str().into()],
        )?)
        .await?;
        record.insert("job_id".into(), json!(enq.id));
        Ok(())
    }
}

/// A message sent: its pending contents go in the transaction that records the status.
pub(super) struct RemovePending<'a> {
    pub(super) id: &'a str,
}

#[async_trait]
impl FollowUp for RemovePending<'_> {
    type Output = ();

    async fn run(self, tx: WriteTx<'_>, _record: &mut Record) -> objectos_data::Result<()> {
        tx.execute(Sql::with(
            tx.dialect(),
            &format!("DELETE FROM \"{PENDING_TABLE}\" WHERE \"id\" = ?"),
            vec![self.id.into()],
        )?)
        .await?;
        Ok(())
    }
}

/// The idempotency keys' scope: per channel and organization.
pub(crate) fn key_scope(channel: Channel, tenant: Option<&str>) -> String {
    format!("{}:{}", channel.as_str(), tenant.unwrap_or(""))
}

/// A message record under construction: the channel's own fields, then the ones every channel
/// records the same way ([`MessageRecord::common`]).
#[derive(Debug)]
pub(crate) struct MessageRecord {
    channel: Channel,
    rec: Record,
    key: Option<String>,
}

/// The fields every channel's record carries when the request has them.
#[derive(Debug, Default)]
pub(crate) struct Common<'a> {
    pub topic: Option<&'a str>,
    pub template: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub sent_by: Option<&'a str>,
}

/// A request with the [`Common`] fields under the same names (mail, SMS and push).
pub(crate) trait HasCommon {
    fn common(&self) -> Common<'_>;
}

macro_rules! has_common {
    ($($request:ty),+) => {$(
        impl HasCommon for $request {
            fn common(&self) -> Common<'_> {
                Common {
                    topic: self.topic.as_deref(),
                    template: self.template.as_ref().map(|t| t.name.as_str()),
                    idempotency_key: self.idempotency_key.as_deref(),
                    sent_by: self.sent_by.as_deref(),
                }
            }
        }
    )+};
}

has_common!(
    objectos_kernel::contracts::EmailRequest,
    super::MessageRequest
);

impl MessageRecord {
    pub(crate) fn new(channel: Channel) -> Self {
        Self {
            channel,
            rec: Record::new(),
            key: None,
        }
    }

    /// Sets `field`.
    pub(crate) fn set(mut self, field: &str, value: impl Serialize) -> Self {
        self.rec.insert(field.into(), json!(value));
        self
    }

    /// Sets `field` when `value` is given.
    pub(crate) fn opt(self, field: &str, value: Option<impl Serialize>) -> Self {
        match value {
            Some(v) => self.set(field, v),
            None => self,
        }
    }

    /// The fields every channel shares; the idempotency key is also claimed when stored.
    pub(crate) fn common(mut self, c: Common<'_>) -> Self {
        self.key = c.idempotency_key.map(str::to_owned);
        self.opt("topic", c.topic)
            .opt("template", c.template)
            .opt("idempotency_key", c.idempotency_key)
            .opt("sent_by", c.sent_by)
    }
}

impl NotificationService {
    /// Stores a message in one transaction (record, idempotency key, contents, delivery job)
    /// and hands it to delivery. `content` is what the delivery sends (`None`: suppressed by
    /// the recipients' preferences, recorded and never sent); `message_id` is answered as is.
    /// A key another send holds answers that send's message (waiting while it commits).
    pub(crate) async fn store(
        &self,
        msg: MessageRecord,
        tenant: Option<&str>,
        content: Option<&impl Serialize>,
        message_id: Option<String>,
    ) -> Result<Delivery, NotificationError> {
        let st = self.s()?;
        let content = content
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| NotificationError::Config(format!("cannot store the message: {e}")))?;
        let status = if content.is_some() {
            DeliveryStatus::Queued.as_str()
        } else {
            SUPPRESSED
        };
        let (channel, key) = (msg.channel, msg.key.clone());
        let rec = msg.set("status", status).set("attempts", 0).rec;
        let job = st.queue.as_ref().map(|_| EnqueueRequest {
            queue: Some(QUEUE.to_owned()),
            retry: Some(self.retry_policy()),
            // The tenant's administrators see its deliveries under /api/v1/jobs.
            organization_id: tenant.map(str::to_owned),
            ..EnqueueRequest::new(DELIVER_HANDLER, Value::Null)
        });
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        let queue = st.queue.as_deref();
        let snapshot = st.engine.metadata();
        let table = snapshot
            .object(channel.object())
            .map_or(channel.object(), |o| o.table_name());
        loop {
            let key_taken = AtomicBool::new(false);
            let then = NewMessage {
                channel,
                tenant,
                key: key.as_deref(),
                content: content.as_deref(),
                job: queue.zip(job.as_ref()),
                table,
                key_taken: &key_taken,
            };
            let created = st
                .engine
                .create_with(&system_cx(tenant), channel.object(), rec.clone(), then)
                .await;
            match created {
                Ok((created, ())) => {
                    let id = record_id(&created)?;
                    if content.is_none() {
                        return Ok(Delivery {
                            id,
                            status: DeliveryStatus::Failed,
                            message_id: None,
                        });
                    }
                    self.dispatch(channel, &id, tenant);
                    return Ok(Delivery {
                        id,
                        status: DeliveryStatus::Queued,
                        message_id,
                    });
                }
                Err(e) if key_taken.load(Ordering::SeqCst) => {
                    if let Some(key) = &key
                        && let Some(found) = self.existing(channel, tenant, key).await?
                    {
                        return Ok(found);
                    }
                    // The key's row is there but not readable yet (a SQLite group not
                    // committed): ask again shortly.
                    if tokio::time::Instant::now() >= deadline {
                        tracing::debug!(plugin = crate::PLUGIN_ID, error = %e, "Idempotency key still held.");
                        return Err(NotificationError::Conflict(
                            "another request with this idempotency key is still being queued; try again"
                                .into(),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The message an idempotency key names, if a committed send bound it.
    pub(crate) async fn existing(
        &self,
        channel: Channel,
        tenant: Option<&str>,
        key: &str,
    ) -> Result<Option<Delivery>, NotificationError> {
        let st = self.s()?;
        let sql = Sql::with(
            st.engine.dialect(),
            &format!(
                "SELECT \"message_id\" FROM \"{KEYS_TABLE}\" WHERE \"scope\" = ? AND \"key\" = ?"
            ),
            vec![key_scope(channel, tenant).into(), key.into()],
        )?;
        // The writer sees a key the moment its send commits; a replica may lag.
        let Some(row) = st.engine.writer().fetch_optional(sql).await? else {
            return Ok(None);
        };
        let id: String = row.get(0)?;
        if id.is_empty() {
            // A claim of an older release that never bound its message (its node died
            // mid-send; sends now write the key with the message): free it for this send.
            st.engine
                .writer()
                .execute(Sql::with(
                    st.engine.dialect(),
                    &format!(
                        "DELETE FROM \"{KEYS_TABLE}\" WHERE \"scope\" = ? AND \"key\" = ? AND \"message_id\" = ''"
                    ),
                    vec![key_scope(channel, tenant).into(), key.into()],
                )?)
                .await?;
            return Ok(None);
        }
        Ok(Some(
            self.delivery_of(channel, tenant, &id)
                .await?
                .unwrap_or(Delivery {
                    id,
                    status: DeliveryStatus::Queued,
                    message_id: None,
                }),
        ))
    }
}
