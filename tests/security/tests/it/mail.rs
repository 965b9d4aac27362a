//! A forgotten password, as a new user meets it: `objectos.yml` names an SMTP server
//! (`notifications.email`), the reset mail arrives there through the notification plugin (and
//! the job queue), its link resets the password, and the new password signs in. The delivery
//! job an administrator reads names the message, never its body or token. The SMTP server is a
//! real one on loopback (`aiosmtpd` from PyPI); without it the scenario is skipped, unless
//! `OBJECTOS_TEST_REQUIRE_SMTP` is set (CI).
//!
//! Unsubscribe, as a reader meets it: a newsletter mail carries a signed `List-Unsubscribe`
//! link; the mail client posts it without any session (RFC 8058 one-click), the reader's
//! preference turns off, and the next mail of that topic is recorded as suppressed and never
//! reaches the SMTP server. A link with an altered signature is refused with a stable code.

use std::time::Duration;

use objectos_testkit::smtp::{SmtpServer, parse_mail};
use serde_json::{Value, json};

use crate::support::{Backend, CONFIG, Server, fixture_app};

/// The subject and text body of the first message received, decoded as a mail client would.
async fn first_mail_text(smtp: &SmtpServer) -> String {
    let m = parse_mail(&smtp.wait_for(1).await[0]);
    format!(
        "{}\n{}",
        m["subject"].as_str().unwrap_or_default(),
        m["text"].as_str().unwrap_or_default()
    )
}

pub(crate) async fn password_reset_by_mail(b: &Backend) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let config = format!(
        "{CONFIG}notifications:\n  email:\n    transport: smtp\n    from: \"ObjectOS <no-reply@objectos.test>\"\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: none\n",
        smtp.port
    );
    let srv = Server::start(b, &fixture_app(), &config).await;
    let label = srv.label;
    let owner = srv.sign_up("owner", "Owner-Passw0rd-x1").await;
    let mut rep = srv.create_user(&owner, "rep", "Rep-Passw0rd-y2").await;

    let r = srv
        .api
        .post(
            "/api/v1/auth/forget-password",
            None,
            json!({"email": rep.email}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let mail = first_mail_text(&smtp).await;
    assert!(mail.starts_with("Reset"), "[{label}] {mail}");
    let token = mail
        .split("token=")
        .nth(1)
        .and_then(|t| t.split(|c: char| c.is_whitespace()).next())
        .unwrap_or_else(|| panic!("[{label}] no reset link in: {mail}"))
        .to_owned();

    let r = srv
        .api
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": token, "newPassword": "Rep-New-Passw0rd-z3"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    rep.password = "Rep-New-Passw0rd-z3".into();
    srv.sign_in(&rep).await;

    // The delivery ran as a job of the job queue, which an administrator reads; its payload
    // names the message, never its body or link.
    let mut job = Value::Null;
    for _ in 0..200 {
        let r = srv
            .api
            .get("/api/v1/jobs?handler=notification.deliver", owner.t())
            .await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
        job = r.body["items"][0].clone();
        if job["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["status"], "completed", "[{label}] {job}");
    assert!(!job.to_string().contains(&token), "[{label}] {job}");
    srv.stop();
}

/// Waits (bounded) until `n` messages arrived; answers them decoded.
async fn wait_for_mails(smtp: &SmtpServer, n: usize) -> Vec<Value> {
    smtp.wait_for(n)
        .await
        .iter()
        .map(|m| parse_mail(m))
        .collect()
}

/// The public origin the links name; the server sits behind it (a proxy in production), so
/// the test posts the link's path and query to the server itself.
const PUBLIC_ORIGIN: &str = "https://mail-links.objectos.test";

pub(crate) async fn unsubscribe_by_mail(b: &Backend) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let config = format!(
        "{CONFIG}notifications:\n  unsubscribe:\n    baseUrl: {PUBLIC_ORIGIN}\n  email:\n    transport: smtp\n    from: \"ObjectOS <no-reply@objectos.test>\"\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: none\n",
        smtp.port
    );
    let srv = Server::start(b, &fixture_app(), &config).await;
    let label = srv.label;
    let owner = srv.sign_up("owner", "Owner-Passw0rd-x1").await;
    let reader = "Reader@Example.com";
    let send = |subject: &str, topic: &str| json!({"to": reader, "subject": subject, "text": "Hello.", "topic": topic});

    let r = srv
        .api
        .post(
            "/api/v1/email/send",
            owner.t(),
            send("News 1", "newsletter"),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let first = wait_for_mails(&smtp, 1).await.remove(0);
    assert_eq!(first["subject"], "News 1", "[{label}] {first}");
    assert_eq!(
        first["listUnsubscribePost"], "List-Unsubscribe=One-Click",
        "[{label}] {first}"
    );
    let link = first["listUnsubscribe"]
        .as_str()
        .and_then(|h| h.strip_prefix('<'))
        .and_then(|h| h.strip_suffix('>'))
        .unwrap_or_else(|| panic!("[{label}] no List-Unsubscribe link: {first}"));
    let path = link
        .strip_prefix(PUBLIC_ORIGIN)
        .unwrap_or_else(|| panic!("[{label}] the link is not under the public origin: {link}"))
        .to_owned();
    assert!(
        path.starts_with("/api/v1/notifications/unsubscribe?token="),
        "[{label}] {path}"
    );

    // What a mail client sends (RFC 8058): a form POST, no cookie, no Authorization.
    let one_click = |path: String| {
        let api = srv.api;
        async move {
            api.send(
                "POST",
                &path,
                &[("content-type", "application/x-www-form-urlencoded")],
                None,
            )
            .await
        }
    };

    // An altered signature: refused, nothing changes (the notifications routes answer in the
    // client's dispatcher envelope, `{success: false, error: {code}}`).
    let last = path.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &path[..path.len() - 1]);
    let r = one_click(tampered).await;
    assert_eq!(r.status, 400, "[{label}] {}", r.text);
    assert_eq!(
        r.body["error"]["code"], "INVALID_TOKEN",
        "[{label}] {}",
        r.text
    );
    let r = one_click("/api/v1/notifications/unsubscribe?token=".into()).await;
    assert_eq!(r.status, 400, "[{label}] {}", r.text);
    assert_eq!(
        r.body["error"]["code"], "INVALID_TOKEN",
        "[{label}] {}",
        r.text
    );

    // Reading the link changes nothing (mail scanners follow links)...
    let r = srv.api.get(&path, None).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(
        r.body["data"]["unsubscribed"], false,
        "[{label}] {}",
        r.text
    );
    // ... the one-click POST turns the topic off.
    let r = one_click(path.clone()).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(
        r.body["data"],
        json!({"channel": "email", "topic": "newsletter", "unsubscribed": true}),
        "[{label}] {}",
        r.text
    );

    // The preference is recorded for the (folded) address.
    let r = srv
        .api
        .get("/api/v1/data/sys_notification_preference", owner.t())
        .await;
    let prefs = r.records();
    let pref = prefs
        .iter()
        .find(|p| p["topic"] == "newsletter")
        .unwrap_or_else(|| panic!("[{label}] no newsletter preference in {prefs:?}"));
    assert_eq!(pref["recipient"], "reader@example.com", "[{label}] {pref}");
    assert_eq!(pref["channel"], "email", "[{label}] {pref}");
    assert!(
        pref["enabled"] == false || pref["enabled"] == 0,
        "[{label}] {pref}"
    );

    // The next newsletter is recorded as suppressed and never sent; a mail of another topic,
    // sent after it, still arrives, and is the only second mail the server received.
    let r = srv
        .api
        .post(
            "/api/v1/email/send",
            owner.t(),
            send("News 2", "newsletter"),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let suppressed = r.body["id"].as_str().unwrap().to_owned();
    let r = srv
        .api
        .get(&format!("/api/v1/data/sys_email/{suppressed}"), owner.t())
        .await;
    let rec = r.record();
    assert_eq!(rec["status"], "suppressed", "[{label}] {rec}");
    let r = srv
        .api
        .post(
            "/api/v1/email/send",
            owner.t(),
            send("Invoice 1", "billing"),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let got = wait_for_mails(&smtp, 2).await;
    let mut subjects: Vec<&str> = got.iter().filter_map(|m| m["subject"].as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["Invoice 1", "News 1"], "[{label}]");
    srv.stop();
}
