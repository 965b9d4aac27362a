//! Webhooks: signed calls queued directly ([`NotificationService::queue_webhook`]) or for every
//! record event a declared `*.webhook.yml` matches, stored as `sys_webhook_delivery` records by
//! the shared [`super::record`] builder.

use serde_json::Value;

use objectos_kernel::contracts::Delivery;

use super::record::{Common, MessageRecord};
use super::{Channel, NotificationService};
use crate::error::NotificationError;
use crate::webhook::OutgoingWebhook;

/// One signed webhook call ([`NotificationService::queue_webhook`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookRequest {
    /// An http or https URL.
    pub url: String,
    /// The `X-ObjectOS-Event` header.
    pub event: String,
    /// The JSON body.
    pub payload: Value,
    pub tenant: Option<String>,
    pub idempotency_key: Option<String>,
    /// The variable holding the HMAC key (a declared webhook's `secretEnv`); `None`:
    /// `webhook.secret`.
    pub secret_env: Option<String>,
}

impl NotificationService {
    /// Queues one signed webhook call (refused without its key: `webhook.secret`, or the
    /// request's `secret_env`).
    pub async fn queue_webhook(&self, req: WebhookRequest) -> Result<Delivery, NotificationError> {
        self.s()?;
        let WebhookRequest {
            url,
            event,
            payload,
            tenant,
            idempotency_key,
            secret_env,
        } = req;
        let (tenant, idempotency_key) = (tenant.as_deref(), idempotency_key.as_deref());
        if secret_env.is_none() && self.settings.webhook.secret.is_none() {
            return Err(NotificationError::Config(
                "webhooks need `notifications.webhook.secret`".into(),
            ));
        }
        let parsed = reqwest013::Url::parse(&url)
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
            url,
            event,
            body: payload.to_string(),
            secret_env,
            traceparent: objectos_kernel::trace::current().map(|h| h.traceparent),
        };
        let rec = MessageRecord::new(Channel::Webhook)
            .set("url", &hook.url)
            .set("event", &hook.event)
            .common(Common {
                idempotency_key,
                ..Common::default()
            });
        self.store(rec, tenant, Some(&hook), None).await
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
                .queue_webhook(WebhookRequest {
                    url: h.url.clone(),
                    event: event.name.clone(),
                    payload: body.clone(),
                    tenant: tenant.map(str::to_owned),
                    idempotency_key: Some(key),
                    secret_env: h.secret_env.clone(),
                })
                .await
            {
                tracing::warn!(plugin = crate::PLUGIN_ID, webhook = %h.name, event = %event.name, error = %e, "Could not queue a webhook delivery.");
            }
        }
    }

    /// The HMAC key of a webhook: its `secretEnv` variable, else `webhook.secret`.
    pub(super) fn webhook_key(&self, hook: &OutgoingWebhook) -> Option<Vec<u8>> {
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
}
