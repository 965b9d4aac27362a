//! Webhooks: a JSON body POSTed to a URL, signed with HMAC-SHA256 over `<timestamp>.<body>` so
//! the receiver can check both who sent it and that it is fresh (a replayed request carries an
//! old timestamp, and changing the timestamp breaks the signature).
//!
//! Headers: `X-ObjectOS-Timestamp: <unix seconds>`, `X-ObjectOS-Signature: sha256=<hex>`,
//! `X-ObjectOS-Event: <event>`, `X-ObjectOS-Delivery: <delivery id>`, and the W3C `traceparent`
//! of the originating request or event when trace context is available.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::NotificationError;

pub const SIGNATURE_HEADER: &str = "x-objectos-signature";
pub const TIMESTAMP_HEADER: &str = "x-objectos-timestamp";
pub const EVENT_HEADER: &str = "x-objectos-event";
pub const DELIVERY_HEADER: &str = "x-objectos-delivery";
/// W3C Trace Context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// One webhook call as the pending table keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingWebhook {
    pub url: String,
    pub event: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
    /// The variable holding the HMAC key (a declared webhook's `secretEnv`); none: the
    /// configured `webhook.secret`. The key itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// The W3C `traceparent` of the request or event that queued the call, sent on so the
    /// receiver's trace continues the originating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

/// The `X-ObjectOS-Signature` value of `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let hex = mac(secret, timestamp, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("sha256={hex}")
}

/// What a receiver does: the signature matches (compared in constant time) and the timestamp
/// is within `tolerance_secs` of `now`.
pub fn verify(
    secret: &[u8],
    timestamp: i64,
    body: &[u8],
    signature: &str,
    now: i64,
    tolerance_secs: i64,
) -> bool {
    if (now - timestamp).abs() > tolerance_secs {
        return false;
    }
    let Some(given) = signature
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    mac(secret, timestamp, body).is_some_and(|m| m.verify_slice(&given).is_ok())
}

/// Posts one webhook. A 2xx is success; a 4xx other than 408/429 is not retryable; anything
/// else (5xx, timeouts, refused connections) is.
pub async fn post(
    client: &reqwest013::Client,
    secret: &[u8],
    delivery_id: &str,
    hook: &OutgoingWebhook,
    timeout: Duration,
) -> Result<u16, NotificationError> {
    let now = chrono::Utc::now().timestamp();
    let signature = sign(secret, now, hook.body.as_bytes());
    let mut req = client
        .post(&hook.url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_HEADER, hook.event.clone())
        .header(DELIVERY_HEADER, delivery_id);
    // The stored context, else the delivery's own (a job worker continues the trace the job
    // was queued in).
    let traceparent = hook
        .traceparent
        .clone()
        .or_else(|| objectos_kernel::trace::current().map(|h| h.traceparent));
    if let Some(tp) = traceparent
        && objectos_kernel::trace::parse_traceparent(&tp).is_some()
    {
        req = req.header(TRACEPARENT_HEADER, tp);
    }
    let res =
        req.body(hook.body.clone())
            .send()
            .await
            .map_err(|e| NotificationError::Delivery {
                message: format!("webhook: {e}"),
                retryable: true,
            })?;
    let status = res.status().as_u16();
    if res.status().is_success() {
        return Ok(status);
    }
    Err(NotificationError::Delivery {
        message: format!("webhook: the receiver answered {status}"),
        retryable: status >= 500 || status == 408 || status == 429,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse_tampering_and_replays() {
        let key = b"0123456789abcdef";
        let sig = sign(key, 1_000, b"{\"a\":1}");
        assert!(sig.starts_with("sha256="));
        assert!(verify(key, 1_000, b"{\"a\":1}", &sig, 1_010, 300));
        assert!(!verify(key, 1_000, b"{\"a\":2}", &sig, 1_010, 300));
        assert!(!verify(key, 1_001, b"{\"a\":1}", &sig, 1_010, 300));
        assert!(!verify(key, 1_000, b"{\"a\":1}", &sig, 2_000, 300));
        assert!(!verify(
            b"another key 12345",
            1_000,
            b"{\"a\":1}",
            &sig,
            1_010,
            300
        ));
    }
}
