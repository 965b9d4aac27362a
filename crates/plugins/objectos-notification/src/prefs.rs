//! Channel and topic preferences, and the signed one-click unsubscribe links of non-essential
//! mail.
//!
//! A preference is a `sys_notification_preference` record: a recipient (a user id, or for mail
//! sent to an address that no user id came with, the folded address), a channel (`email`,
//! `sms`, `push`), a topic (`*` for every topic) and `enabled`. Only `enabled: false`
//! rows matter: a message with a topic and not `essential` skips a recipient who has one for
//! its channel and topic (or `*`). Essential messages (password reset, verification,
//! invitation) never look.
//!
//! An unsubscribe token is `<hex payload>.<hex HMAC-SHA256>` over
//! `v1\n<organization>\n<recipient>\n<channel>\n<topic>` under the unsubscribe key: it names
//! what it turns off and cannot be altered, and it does not expire (a link in an old mail must
//! keep working, RFC 8058).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::NotificationError;

/// The preferences object.
pub const OBJECT: &str = "sys_notification_preference";

/// The channels a preference may name.
pub const CHANNELS: [&str; 3] = ["email", "sms", "push"];

/// The topic matching every topic.
pub const ANY_TOPIC: &str = "*";

/// What one unsubscribe token turns off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub tenant: Option<String>,
    pub recipient: String,
    pub channel: String,
    pub topic: String,
}

/// Checks a topic name: letters, digits, `_`, `-`, `.`, or `*`; at most 100 characters.
pub fn check_topic(topic: &str) -> Result<(), NotificationError> {
    let ok = topic == ANY_TOPIC
        || (!topic.is_empty()
            && topic.len() <= 100
            && topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')));
    if ok {
        Ok(())
    } else {
        Err(NotificationError::Validation(format!(
            "`topic`: `{topic}` is not a topic; expected letters, digits, `_`, `-`, `.` or `*`"
        )))
    }
}

/// Checks a channel name.
pub fn check_channel(channel: &str) -> Result<(), NotificationError> {
    if CHANNELS.contains(&channel) {
        Ok(())
    } else {
        Err(NotificationError::Validation(format!(
            "`channel`: `{channel}` is not a channel; expected one of {}",
            CHANNELS.join(", ")
        )))
    }
}

fn payload(u: &Unsubscribe) -> String {
    format!(
        "v1\n{}\n{}\n{}\n{}",
        u.tenant.as_deref().unwrap_or(""),
        u.recipient,
        u.channel,
        u.topic
    )
}

fn mac(key: &[u8], payload: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).ok()?;
    m.update(payload);
    Some(m)
}

/// The token of `u` under `key`.
pub fn sign(key: &[u8], u: &Unsubscribe) -> String {
    let p = payload(u);
    let sig = mac(key, p.as_bytes())
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{}.{sig}", hex::encode(p.as_bytes()))
}

/// What `token` turns off, when it was signed with `key` (compared in constant time).
pub fn verify(key: &[u8], token: &str) -> Option<Unsubscribe> {
    let (p, sig) = token.trim().split_once('.')?;
    let p = hex::decode(p).ok()?;
    let sig = hex::decode(sig).ok()?;
    mac(key, &p)?.verify_slice(&sig).ok()?;
    let text = String::from_utf8(p).ok()?;
    let mut parts = text.split('\n');
    if parts.next()? != "v1" {
        return None;
    }
    let tenant = parts.next()?;
    let recipient = parts.next()?.to_owned();
    let channel = parts.next()?.to_owned();
    let topic = parts.next()?.to_owned();
    if parts.next().is_some() || recipient.is_empty() {
        return None;
    }
    Some(Unsubscribe {
        tenant: (!tenant.is_empty()).then(|| tenant.to_owned()),
        recipient,
        channel,
        topic,
    })
}

/// The address part of `Name <user@example.com>`, folded to lowercase (how preferences keyed
/// by address are stored and looked up).
pub fn fold_address(addr: &str) -> String {
    addr.parse::<lettre::message::Mailbox>()
        .map(|m| m.email.to_string())
        .unwrap_or_else(|_| addr.trim().to_owned())
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_refuse_tampering() {
        let u = Unsubscribe {
            tenant: Some("org1".into()),
            recipient: "ann@example.com".into(),
            channel: "email".into(),
            topic: "digest".into(),
        };
        let key = b"0123456789abcdef";
        let t = sign(key, &u);
        assert_eq!(verify(key, &t), Some(u.clone()));
        assert_eq!(verify(b"another key 1234567", &t), None);
        let forged = Unsubscribe {
            recipient: "bob@example.com".into(),
            ..u
        };
        let (_, sig) = t.split_once('.').unwrap();
        let tampered = format!("{}.{sig}", hex::encode(payload(&forged)));
        assert_eq!(verify(key, &tampered), None);
        assert_eq!(verify(key, "garbage"), None);
    }

    #[test]
    fn addresses_fold() {
        assert_eq!(fold_address("Ann <Ann@Example.com>"), "ann@example.com");
        assert!(check_topic("digest.weekly").is_ok());
        assert!(check_topic("a b").is_err());
        assert!(check_channel("fax").is_err());
    }
}
