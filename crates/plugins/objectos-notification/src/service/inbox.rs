//! The in-app inbox (`sys_notification`): one message per user, listed newest first with the
//! unread count, marked read one by one or all at once.

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use objectos_data::{OpContext, Record};
use objectos_kernel::contracts::{Delivery, DeliveryStatus, InAppRequest};
use objectos_spec::query::{Filter, QueryAst, SortNode, SortOrder};

use super::{MAX_PAGE, NotificationService, record_id, system_cx, text, truthy};
use crate::error::NotificationError;
use crate::schema::INBOX_OBJECT;

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

impl NotificationService {
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
