//! SMS and push through HTTP provider adapters (a real HTTP receiver on loopback, built on
//! hyper), idempotency keys under concurrent sends, channel and topic preferences with the
//! signed one-click unsubscribe link, and webhooks declared in metadata for record events.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use objectos_data::OpContext;
use objectos_kernel::contracts::{DeliveryStatus, EmailRequest};
use objectos_notification::config::{BodyFormat, HttpProviderSettings};
use objectos_notification::prefs::Unsubscribe;
use objectos_notification::service::{Channel, MessageRequest};
use objectos_notification::webhook::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use objectos_notification::{NotificationService, NotificationSettings};
use objectos_spec::query::Filter;
use objectos_spec::settings::Secret;
use objectos_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::on_both;
use crate::support::{Harness, Req, SignIn, SmtpServer, parse_mail, smtp_settings};

const KEY: &str = "webhook-test-key-0123456789";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Hits = Arc<Mutex<Vec<Hit>>>;

/// A hyper HTTP/1 server on loopback answering the `statuses` in turn (then 200), recording
/// every request.
async fn receiver(statuses: Vec<u16>) -> (u16, Hits) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits: Hits = Arc::default();
    let seen = hits.clone();
    let statuses = Arc::new(statuses);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            let statuses = statuses.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let statuses = statuses.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let n = {
                                let mut s = seen.lock().unwrap();
                                s.push(Hit {
                                    method: parts.method.to_string(),
                                    path: parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(k, v)| {
                                            (k.to_string(), v.to_str().unwrap_or("").to_owned())
                                        })
                                        .collect(),
                                    body: String::from_utf8_lossy(&body).to_string(),
                                });
                                s.len() - 1
                            };
                            let status = statuses.get(n).copied().unwrap_or(200);
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    (port, hits)
}

async fn wait_hits(hits: &Hits, n: usize) -> Vec<Hit> {
    for _ in 0..400 {
        let got = hits.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "expected {n} requests, got {:?}",
        hits.lock().unwrap().clone()
    );
}

/// The record `id` of `object` once it left `queued`.
async fn settled(h: &Harness, object: &str, org: &str, id: &str) -> Value {
    let mut cx = OpContext::system("test");
    cx.tenant = Some(org.into());
    for _ in 0..400 {
        let rec = Value::Object(
            h.engine
                .get(&cx, object, id, Default::default())
                .await
                .unwrap(),
        );
        if rec["status"] != "queued" {
            return rec;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{object} {id} stayed queued");
}

fn log_settings() -> NotificationSettings {
    let mut s = smtp_settings(1);
    s.email.transport = objectos_notification::config::Transport::Log;
    s
}

fn sms_provider(port: u16) -> HttpProviderSettings {
    HttpProviderSettings {
        name: "twilio-like".into(),
        url: format!("http://127.0.0.1:{port}/2010-04-01/Accounts/AC1/Messages.json"),
        headers: [("Authorization".to_owned(), "Basic {{secret}}".to_owned())].into(),
        secret: Some(Secret::new("QUMxOnRva2Vu")),
        body: json!({ "To": "{{to}}", "From": "+15550100", "Body": "{{text}}" }),
        format: BodyFormat::Form,
        ..HttpProviderSettings::default()
    }
}

fn push_provider(port: u16) -> HttpProviderSettings {
    HttpProviderSettings {
        name: "fcm-like".into(),
        url: format!("http://127.0.0.1:{port}/v1/projects/demo/messages:send"),
        headers: [("Authorization".to_owned(), "Bearer {{secret}}".to_owned())].into(),
        secret: Some(Secret::new("ya29.token")),
        body: json!({ "message": { "token": "{{to}}",
            "notification": { "title": "{{title}}", "body": "{{text}}" },
            "data": { "deal": "{{data.deal}}" } } }),
        success_status: vec![200],
        ..HttpProviderSettings::default()
    }
}

fn sms(to: &str, text: &str) -> MessageRequest {
    MessageRequest {
        channel: Some(Channel::Sms),
        to: to.into(),
        text: Some(text.into()),
        tenant: Some("org1".into()),
        ..MessageRequest::default()
    }
}

async fn sms_and_push_go_through_their_http_providers(db: TestDatabase) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The SMS provider fails once (503, retried); the push provider answers 200.
    let (sms_port, sms_hits) = receiver(vec![503]).await;
    let (push_port, push_hits) = receiver(vec![]).await;
    let mut settings = log_settings();
    settings.sms = Some(sms_provider(sms_port));
    settings.push = Some(push_provider(push_port));
    let h = Harness::boot(db, settings).await;

    let d = h
        .service
        .queue_message(sms("+15551234", "Your code is 12 & 34"))
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Queued);
    let rec = settled(&h, "sys_notification_delivery", "org1", &d.id).await;
    assert_eq!(rec["status"], "sent", "{rec}");
    assert_eq!(rec["attempts"], 2, "{rec}");
    assert_eq!(rec["response_status"], 200, "{rec}");
    assert_eq!(rec["channel"], "sms");
    assert_eq!(rec["provider"], "twilio-like");
    let hits = wait_hits(&sms_hits, 2).await;
    let hit = &hits[1];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.path, "/2010-04-01/Accounts/AC1/Messages.json");
    assert_eq!(hit.header("authorization"), Some("Basic QUMxOnRva2Vu"));
    assert_eq!(
        hit.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut pairs: Vec<&str> = hit.body.split('&').collect();
    pairs.sort_unstable();
    assert_eq!(
        pairs,
        vec![
            "Body=Your+code+is+12+%26+34",
            "From=%2B15550100",
            "To=%2B15551234"
        ]
    );

    let push = MessageRequest {
        channel: Some(Channel::Push),
        to: "device-token-1".into(),
        title: Some("Deal won".into()),
        text: Some("Acme \"signed\"".into()),
        data: Some(json!({ "deal": "d-7" })),
        tenant: Some("org1".into()),
        ..MessageRequest::default()
    };
    let d = h.service.queue_message(push).await.unwrap();
    let rec = settled(&h, "sys_notification_delivery", "org1", &d.id).await;
    assert_eq!(rec["status"], "sent", "{rec}");
    let hits = wait_hits(&push_hits, 1).await;
    assert_eq!(hits[0].header("authorization"), Some("Bearer ya29.token"));
    let body: Value = serde_json::from_str(&hits[0].body).unwrap();
    assert_eq!(
        body,
        json!({ "message": { "token": "device-token-1",
            "notification": { "title": "Deal won", "body": "Acme \"signed\"" },
            "data": { "deal": "d-7" } } })
    );

    // A channel without a provider, and a message without text, are the caller's errors.
    let mut no_text = sms("+1555", "");
    no_text.text = None;
    let e = h.service.queue_message(no_text).await.unwrap_err();
    assert_eq!(e.code(), "VALIDATION_FAILED");
    h.finish().await;
}
on_both!(
    sms_and_push_go_through_their_http_providers_sqlite,
    sms_and_push_go_through_their_http_providers_postgres,
    sms_and_push_go_through_their_http_providers
);

async fn count(h: &Harness, object: &str, key: &str) -> u64 {
    let mut cx = OpContext::system("test");
    cx.tenant = Some("org1".into());
    h.engine
        .count(&cx, object, Filter::eq("idempotency_key", key))
        .await
        .unwrap()
}

async fn concurrent_sends_with_one_key_queue_one_message(db: TestDatabase) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (port, hits) = receiver(vec![]).await;
    let mut settings = log_settings();
    settings.sms = Some(sms_provider(port));
    let h = Harness::boot(db, settings).await;
    let mail = |n: usize| EmailRequest {
        to: vec!["ann@example.com".into()],
        subject: format!("Invoice {n}"),
        text: Some("Attached.".into()),
        tenant: Some("org1".into()),
        idempotency_key: Some("invoice-42".into()),
        ..EmailRequest::default()
    };
    let sends: Vec<_> = (0..12)
        .map(|n| {
            let s: NotificationService = h.service.clone();
            let req = mail(n);
            tokio::spawn(async move { s.queue_email(req).await })
        })
        .collect();
    let mut ids = Vec::new();
    for s in sends {
        ids.push(s.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every send answers the one message: {ids:?}");
    assert_eq!(count(&h, "sys_email", "invoice-42").await, 1);

    let sends: Vec<_> = (0..12)
        .map(|_| {
            let s = h.service.clone();
            let mut req = sms("+15551234", "Code 1");
            req.idempotency_key = Some("otp-1".into());
            tokio::spawn(async move { s.queue_message(req).await })
        })
        .collect();
    let mut ids = Vec::new();
    for s in sends {
        ids.push(s.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&h, "sys_notification_delivery", "otp-1").await, 1);
    settled(&h, "sys_notification_delivery", "org1", &ids[0]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hits.lock().unwrap().len(), 1, "one SMS went out");

    // A failed send gives its key up: the next send with it goes through.
    let mut bad = mail(0);
    bad.idempotency_key = Some("invoice-43".into());
    bad.to = vec!["not an address".into()];
    assert!(h.service.queue_email(bad).await.is_err());
    let mut good = mail(0);
    good.idempotency_key = Some("invoice-43".into());
    assert_eq!(
        h.service.queue_email(good).await.unwrap().status,
        DeliveryStatus::Queued
    );
    h.finish().await;
}
on_both!(
    concurrent_sends_with_one_key_queue_one_message_sqlite,
    concurrent_sends_with_one_key_queue_one_message_postgres,
    concurrent_sends_with_one_key_queue_one_message
);

fn topic_mail(to: &str, topic: &str) -> EmailRequest {
    EmailRequest {
        to: vec![to.into()],
        subject: format!("News about {topic}"),
        text: Some("Read on.".into()),
        tenant: Some("org1".into()),
        topic: Some(topic.into()),
        ..EmailRequest::default()
    }
}

async fn preferences_and_unsubscribe_links(db: TestDatabase) {
    let smtp = SmtpServer::start();
    let mut settings = match &smtp {
        Some(s) => smtp_settings(s.port),
        None => log_settings(),
    };
    settings.unsubscribe.base_url = Some("https://crm.example.com".into());
    let h = Harness::boot(db, settings).await;

    // A user's own preferences, through the routes.
    let put = h
        .call(
            Req::put(
                "/api/v1/notifications/preferences",
                json!({ "preferences": [{ "channel": "email", "topic": "digest", "enabled": false }] }),
            )
            .user("u1", "org1"),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let got = h
        .call(Req::get("/api/v1/notifications/preferences").user("u1", "org1"))
        .await;
    assert_eq!(
        got.body["data"]["preferences"],
        json!([{ "channel": "email", "topic": "digest", "enabled": false }])
    );
    let bad = h
        .call(
            Req::put(
                "/api/v1/notifications/preferences",
                json!({ "preferences": [{ "channel": "fax", "topic": "digest", "enabled": false }] }),
            )
            .user("u1", "org1"),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert_eq!(bad.body["error"]["code"], "VALIDATION_FAILED");
    let anon = h.call(Req::get("/api/v1/notifications/preferences")).await;
    assert_eq!(anon.status, 401);

    // Mail for u1 on that topic is suppressed; essential mail goes anyway.
    let mut digest = topic_mail("ann@example.com", "digest");
    digest.recipient_id = Some("u1".into());
    let d = h.service.queue_email(digest.clone()).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(h.email(Some("org1"), &d.id).await["status"], "suppressed");
    digest.essential = true;
    let d = h.service.queue_email(digest).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Queued);

    // Non-essential mail to one reader carries the one-click link (RFC 8058).
    let d = h
        .service
        .queue_email(topic_mail("Bob <Bob@Example.com>", "news"))
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Queued);
    let link = h
        .service
        .unsubscribe_url(&Unsubscribe {
            tenant: Some("org1".into()),
            recipient: "bob@example.com".into(),
            channel: "email".into(),
            topic: "news".into(),
        })
        .unwrap();
    if let Some(smtp) = &smtp {
        let got = smtp.wait_for(2).await;
        let bob = got
            .iter()
            .map(|raw| parse_mail(raw))
            .find(|m| m["subject"] == "News about news")
            .unwrap();
        assert_eq!(bob["listUnsubscribe"], format!("<{link}>"), "{bob}");
        assert_eq!(bob["listUnsubscribePost"], "List-Unsubscribe=One-Click");
        let essential = got
            .iter()
            .map(|raw| parse_mail(raw))
            .find(|m| m["subject"] == "News about digest")
            .unwrap();
        assert_eq!(essential["listUnsubscribe"], Value::Null);
    }
    let path = link.strip_prefix("https://crm.example.com").unwrap();
    // GET shows what the link does and changes nothing; POST (no session) unsubscribes.
    let info = h.call(Req::get(path)).await;
    assert_eq!(info.status, 200, "{:?}", info.body);
    assert_eq!(
        info.body["data"],
        json!({ "channel": "email", "topic": "news", "unsubscribed": false })
    );
    let d = h
        .service
        .queue_email(topic_mail("bob@example.com", "news"))
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Queued);
    let done = h.call(Req::post(path, json!({}))).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["data"]["unsubscribed"], true);
    let d = h
        .service
        .queue_email(topic_mail("bob@example.com", "news"))
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed, "unsubscribed from news");
    let d = h
        .service
        .queue_email(topic_mail("bob@example.com", "billing"))
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Queued, "other topics still go");

    // A forged or altered token is refused.
    let forged = format!("{}0", path);
    let r = h.call(Req::post(&forged, json!({}))).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "INVALID_TOKEN");
    h.finish().await;
}
on_both!(
    preferences_and_unsubscribe_links_sqlite,
    preferences_and_unsubscribe_links_postgres,
    preferences_and_unsubscribe_links
);

/// A tracing backend stand-in: every span has the same context.
struct FixedTrace;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

impl objectos_kernel::trace::TraceBridge for FixedTrace {
    fn continue_remote(&self, _: &tracing::Span, _: &str, _: Option<&str>) -> bool {
        false
    }
    fn headers_of(&self, _: &tracing::Span) -> Option<objectos_kernel::trace::TraceHeaders> {
        Some(objectos_kernel::trace::TraceHeaders {
            traceparent: TRACEPARENT.into(),
            tracestate: None,
        })
    }
}

const ACCOUNT: &str = "\
name: account
label: Account
fields:
  name:
    type: text
    label: Name
";

async fn declared_webhooks_follow_record_events(db: TestDatabase) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    objectos_kernel::trace::install(Box::new(FixedTrace));
    let (port, hits) = receiver(vec![]).await;
    let hook = format!(
        "name: crm-sync\nurl: http://127.0.0.1:{port}/hooks/crm\nevents: [\"data.account.*\"]\n"
    );
    let mut settings = log_settings();
    settings.webhook.secret = Some(Secret::new(KEY));
    let h = Harness::boot_with(
        db,
        settings,
        &[
            ("account.object.yml", ACCOUNT),
            ("crm.webhook.yml", hook.as_str()),
        ],
    )
    .await
    .unwrap();
    let mut cx = OpContext::system("test");
    cx.tenant = Some("org1".into());
    let created = h
        .engine
        .create(
            &cx,
            "account",
            objectos_testkit::rec(json!({ "name": "Acme" })),
        )
        .await
        .unwrap();
    let got = wait_hits(&hits, 1).await;
    let hit = &got[0];
    assert_eq!(hit.path, "/hooks/crm");
    let ts: i64 = hit.header(TIMESTAMP_HEADER).unwrap().parse().unwrap();
    assert!(webhook::verify(
        KEY.as_bytes(),
        ts,
        hit.body.as_bytes(),
        hit.header(SIGNATURE_HEADER).unwrap(),
        chrono::Utc::now().timestamp(),
        300,
    ));
    assert_eq!(hit.header("traceparent"), Some(TRACEPARENT));
    let body: Value = serde_json::from_str(&hit.body).unwrap();
    assert_eq!(body["event"], "data.account.created", "{body}");
    assert_eq!(body["organizationId"], "org1", "{body}");
    assert_eq!(hit.header("x-objectos-event"), Some("data.account.created"));
    let _ = created;
    // The delivery is recorded, and its own record events call nothing.
    let mut delivered = Value::Null;
    for _ in 0..400 {
        let found = h
            .engine
            .find(
                &cx,
                "sys_webhook_delivery",
                objectos_spec::query::QueryAst::default(),
            )
            .await
            .unwrap();
        if let Some(r) = found.records.first()
            && r.get("status").and_then(Value::as_str) == Some("sent")
        {
            delivered = Value::Object(r.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(delivered["event"], "data.account.created", "{delivered}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hits.lock().unwrap().len(), 1);
    h.finish().await;
}
on_both!(
    declared_webhooks_follow_record_events_sqlite,
    declared_webhooks_follow_record_events_postgres,
    declared_webhooks_follow_record_events
);

#[test]
fn a_webhook_file_with_a_bad_pattern_is_refused_with_its_path() {
    let w: objectos_notification::hooks::WebhookDef = serde_json::from_value(json!({
        "name": "x", "url": "http://h/", "events": ["data..x"]
    }))
    .unwrap();
    let problems = objectos_notification::hooks::validate(&w);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "events.0");
}
