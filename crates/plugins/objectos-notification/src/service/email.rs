//! Email: sender and reply-to per organization, recipients' preferences and the one-click
//! unsubscribe link, template or literal bodies, every address checked before anything is
//! stored; the `sys_email` record comes from the shared [`super::record`] builder.

use serde_json::json;

use objectos_kernel::contracts::{Delivery, EmailRequest};

use super::record::{HasCommon, MessageRecord};
use super::{Channel, NotificationService};
use crate::error::NotificationError;
use crate::prefs::{self, Unsubscribe};
use crate::smtp::{self, OutgoingEmail};

impl NotificationService {
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
        self.store_email(req).await
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
            // Fixed when queued (not from the record id, which only the insert assigns), so
            // the record is written once and a retry sends the same header.
            message_id: String::new(),
            list_unsubscribe,
        };
        mail.message_id = smtp::message_id(&smtp::message_token()?, &mail.from);
        // Every address is checked now: a bad one is the caller's error, not a retry later.
        smtp::build_message(&mail)?;
        let rec = MessageRecord::new(Channel::Email)
            .set("to_addresses", mail.to.join(", "))
            .opt(
                "cc_addresses",
                (!mail.cc.is_empty()).then(|| mail.cc.join(", ")),
            )
            .set("from_address", &mail.from)
            .opt("reply_to", mail.reply_to.as_deref())
            .set("subject", &mail.subject)
            .opt("locale", locale.as_deref())
            .set("essential", req.essential)
            .opt(
                "message_id",
                (!suppressed).then_some(mail.message_id.as_str()),
            )
            .common(req.common());
        let content = (!suppressed).then_some(&mail);
        self.store(
            rec,
            tenant.as_deref(),
            content,
            Some(mail.message_id.clone()),
        )
        .await
    }
}
