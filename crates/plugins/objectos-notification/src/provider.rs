//! SMS and push over HTTP: a generic JSON-over-HTTP (or form) adapter configured per channel
//! (`notifications.sms`, `notifications.push`), enough to reach Twilio-like and FCM-like APIs.
//!
//! The URL, the header values and every string of the configured `body` are handlebars
//! templates rendered from the message (`to`, `title`, `text`, `data`, `secret`). Rendering is
//! strict (a missing variable fails the send) and never escapes: the body is built as a JSON
//! value, so a variable can only ever become one string, never change the document's shape.

use std::time::Duration;

use handlebars::Handlebars;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{BodyFormat, HttpProviderSettings};
use crate::error::NotificationError;

/// One SMS or push message as the pending table keeps it (rendered except for the secret,
/// which is read again at delivery so it never sits in the database).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMessage {
    pub to: String,
    #[serde(default)]
    pub title: Option<String>,
    pub text: String,
    #[serde(default)]
    pub data: Value,
    /// The W3C `traceparent` of the request that queued it.
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl std::fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text may carry a one-time code.
        f.debug_struct("OutgoingMessage")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// Every string leaf of `v` with its settings path (`sms.body.message.token`).
pub fn string_leaves(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((at.to_owned(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, &format!("{at}.{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                string_leaves(item, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

fn engine() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    // Values land in JSON strings, headers or a URL, never in HTML.
    hb.register_escape_fn(handlebars::no_escape);
    hb
}

fn render_str(
    hb: &Handlebars<'static>,
    what: &str,
    template: &str,
    vars: &Value,
) -> Result<String, NotificationError> {
    hb.render_template(template, vars)
        .map_err(|e| NotificationError::Delivery {
            message: format!("{what}: {}", e.reason()),
            retryable: false,
        })
}

fn render_value(
    hb: &Handlebars<'static>,
    v: &Value,
    vars: &Value,
) -> Result<Value, NotificationError> {
    Ok(match v {
        Value::String(s) => Value::String(render_str(hb, "body", s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_value(hb, i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| Ok((k.clone(), render_value(hb, i, vars)?)))
                .collect::<Result<_, NotificationError>>()?,
        ),
        other => other.clone(),
    })
}

/// A request ready to go.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: String,
}

/// Renders `msg` through the provider's templates.
pub fn build(
    p: &HttpProviderSettings,
    msg: &OutgoingMessage,
) -> Result<ProviderRequest, NotificationError> {
    let hb = engine();
    let secret = p
        .effective_secret()
        .map(|s| s.expose().to_owned())
        .unwrap_or_default();
    let vars = json!({
        "to": msg.to,
        "title": msg.title.clone().unwrap_or_default(),
        "text": msg.text,
        "data": msg.data,
        "secret": secret,
    });
    let url = render_str(&hb, "url", &p.url, &vars)?;
    let mut headers = Vec::with_capacity(p.headers.len());
    for (k, v) in &p.headers {
        let value = render_str(&hb, &format!("header {k}"), v, &vars)?;
        // A header value cannot hold a line break; a variable must not add headers.
        headers.push((k.clone(), value.replace(['\r', '\n'], " ")));
    }
    let body = render_value(&hb, &p.body, &vars)?;
    let (content_type, body) = match p.format {
        BodyFormat::Json => ("application/json", body.to_string()),
        BodyFormat::Form => ("application/x-www-form-urlencoded", form_encode(&body)),
    };
    Ok(ProviderRequest {
        method: p.method.to_ascii_uppercase(),
        url,
        headers,
        content_type,
        body,
    })
}

/// `a=1&b=x+y` from a flat object (non-string scalars as their JSON text), encoded as the
/// WHATWG URL standard's `application/x-www-form-urlencoded` serializer does.
fn form_encode(body: &Value) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(b));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    if let Some(map) = body.as_object() {
        for (k, v) in map {
            if !out.is_empty() {
                out.push('&');
            }
            enc(k, &mut out);
            out.push('=');
            match v {
                Value::String(s) => enc(s, &mut out),
                Value::Null => {}
                other => enc(&other.to_string(), &mut out),
            }
        }
    }
    out
}

/// Sends one message. Success is a status in `successStatus` (any 2xx when empty); a 4xx
/// other than 408/429 is not retried; 5xx, timeouts and refused connections are.
pub async fn send(
    client: &reqwest013::Client,
    p: &HttpProviderSettings,
    msg: &OutgoingMessage,
) -> Result<u16, NotificationError> {
    let req = build(p, msg)?;
    let method = reqwest013::Method::from_bytes(req.method.as_bytes()).map_err(|e| {
        NotificationError::Delivery {
            message: format!("{}: method: {e}", p.name),
            retryable: false,
        }
    })?;
    let mut b = client
        .request(method, &req.url)
        .timeout(Duration::from_secs(p.timeout_seconds.max(1)))
        .header("content-type", req.content_type);
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    if let Some(tp) = &msg.traceparent {
        b = b.header("traceparent", tp.as_str());
    }
    let res = b
        .body(req.body)
        .send()
        .await
        .map_err(|e| NotificationError::Delivery {
            message: format!("{}: {e}", p.name),
            retryable: true,
        })?;
    let status = res.status().as_u16();
    let ok = if p.success_status.is_empty() {
        res.status().is_success()
    } else {
        p.success_status.contains(&status)
    };
    if ok {
        return Ok(status);
    }
    Err(NotificationError::Delivery {
        message: format!("{}: the provider answered {status}", p.name),
        retryable: status >= 500 || status == 408 || status == 429,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use objectos_spec::settings::Secret;

    fn twilio_like() -> HttpProviderSettings {
        HttpProviderSettings {
            name: "twilio".into(),
            url: "https://api.example.com/Accounts/AC1/Messages.json".into(),
            headers: [("Authorization".to_owned(), "Basic {{secret}}".to_owned())].into(),
            secret: Some(Secret::new("c2lkOnRva2Vu".to_owned())),
            body: json!({ "To": "{{to}}", "From": "+15550000", "Body": "{{text}}" }),
            format: BodyFormat::Form,
            ..HttpProviderSettings::default()
        }
    }

    #[test]
    fn renders_headers_and_a_form_body() {
        let msg = OutgoingMessage {
            to: "+15551234".into(),
            title: None,
            text: "Code 12 & more".into(),
            data: Value::Null,
            traceparent: None,
        };
        let r = build(&twilio_like(), &msg).unwrap();
        assert_eq!(
            r.headers,
            vec![("Authorization".into(), "Basic c2lkOnRva2Vu".into())]
        );
        assert_eq!(r.content_type, "application/x-www-form-urlencoded");
        let mut pairs: Vec<&str> = r.body.split('&').collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            vec![
                "Body=Code+12+%26+more",
                "From=%2B15550000",
                "To=%2B15551234"
            ]
        );
    }

    #[test]
    fn a_variable_cannot_change_the_json_shape() {
        let p = HttpProviderSettings {
            url: "https://fcm.example.com/send".into(),
            body: json!({ "message": { "token": "{{to}}", "notification": { "title": "{{title}}", "body": "{{text}}" } } }),
            ..HttpProviderSettings::default()
        };
        let msg = OutgoingMessage {
            to: "tok\", \"x\": \"y".into(),
            title: Some("Hi".into()),
            text: "b".into(),
            data: Value::Null,
            traceparent: None,
        };
        let r = build(&p, &msg).unwrap();
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["message"]["token"], "tok\", \"x\": \"y");
        assert_eq!(v["message"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn a_missing_variable_is_an_error() {
        let p = HttpProviderSettings {
            url: "https://x.example.com/".into(),
            body: json!({ "a": "{{nope}}" }),
            ..HttpProviderSettings::default()
        };
        let msg = OutgoingMessage {
            to: "a".into(),
            title: None,
            text: "b".into(),
            data: Value::Null,
            traceparent: None,
        };
        assert!(build(&p, &msg).is_err());
    }
}
