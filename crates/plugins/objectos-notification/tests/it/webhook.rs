//! Webhooks: the receiver checks the HMAC-SHA256 signature over timestamp and body; a 503 is
//! retried, and the delivery record ends `sent` with the receiver's status.

use std::sync::{Arc, Mutex};

use objectos_data::OpContext;
use objectos_notification::service::WebhookRequest;
use objectos_notification::webhook::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use objectos_spec::settings::Secret;
use objectos_testkit::TestDatabase;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::on_both;
use crate::support::Harness;

const KEY: &str = "webhook-test-key-0123456789";

/// What the receiver saw per request: (signature valid, body).
type Seen = Arc<Mutex<Vec<(bool, String)>>>;

async fn read_request(sock: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return (head, buf[end + 4..end + 4 + len].to_vec());
        }
    }
    (String::new(), Vec::new())
}

/// A receiver answering 503 to the first call and 200 after, recording what it verified.
async fn receiver(seen: Seen) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (head, body) = read_request(&mut sock).await;
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let ts: i64 = header(TIMESTAMP_HEADER).parse().unwrap_or(0);
            let now = chrono::Utc::now().timestamp();
            let valid = webhook::verify(
                KEY.as_bytes(),
                ts,
                &body,
                &header(SIGNATURE_HEADER),
                now,
                300,
            );
            let first = {
                let mut s = seen.lock().unwrap();
                s.push((valid, String::from_utf8_lossy(&body).to_string()));
                s.len() == 1
            };
            let status = if first {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = sock
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    port
}

async fn webhooks_are_signed_and_retried(db: TestDatabase) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seen: Seen = Arc::default();
    let port = receiver(seen.clone()).await;
    let mut settings = crate::support::smtp_settings(1);
    settings.email.transport = objectos_notification::config::Transport::Log;
    settings.webhook.secret = Some(Secret::new(KEY));
    let h = Harness::boot(db, settings).await;
    let payload = json!({ "event": "deal.won", "amount": 12.5, "name": "Zoë" });
    let request = WebhookRequest {
        url: format!("http://127.0.0.1:{port}/hook"),
        event: "deal.won".into(),
        payload: payload.clone(),
        tenant: Some("org1".into()),
        idempotency_key: Some("deal-1".into()),
        secret_env: None,
    };
    let d = h.service.queue_webhook(request.clone()).await.unwrap();
    let mut rec = Value::Null;
    for _ in 0..400 {
        let mut cx = OpContext::system("test");
        cx.tenant = Some("org1".into());
        rec = Value::Object(
            h.engine
                .get(&cx, "sys_webhook_delivery", &d.id, Default::default())
                .await
                .unwrap(),
        );
        if rec["status"] != "queued" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(rec["status"], "sent", "{rec}");
    assert_eq!(rec["attempts"], 2, "{rec}");
    assert_eq!(rec["response_status"], 200, "{rec}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (valid, body) in &seen {
        assert!(valid, "the receiver could not verify the signature");
        assert_eq!(serde_json::from_str::<Value>(body).unwrap(), payload);
    }
    // The same key again: the first delivery, no new call.
    let again = h.service.queue_webhook(request.clone()).await.unwrap();
    assert_eq!(again.id, d.id);
    h.finish().await;
}
on_both!(
    webhooks_are_signed_and_retried_sqlite,
    webhooks_are_signed_and_retried_postgres,
    webhooks_are_signed_and_retried
);
