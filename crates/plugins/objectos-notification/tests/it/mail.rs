//! Email: delivered to a real SMTP server and read back as a mail client would, templates per
//! locale with escaping, idempotency keys, the plain `Mailer` road the auth plugin takes, who may
//! send, an SMTP outage, and templates refused at load.

use objectos_kernel::Mail;
use objectos_kernel::contracts::Mailer;
use objectos_notification::NotificationSettings;
use objectos_testkit::TestDatabase;
use serde_json::json;

use crate::on_both;
use crate::support::{Harness, Req, SignIn, SmtpServer, parse_mail, smtp_settings};

async fn templates_reach_the_smtp_server(db: TestDatabase) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let h = Harness::boot(db, smtp_settings(smtp.port)).await;
    let send = |body| {
        Req::post("/api/v1/email/send", body)
            .user("u1", "org1")
            .admin()
    };

    // English, text and HTML: values escaped in the HTML part only.
    let first = h
        .call(send(json!({
            "to": "Ann <ann@example.com>", "template": "welcome",
            "variables": { "name": "<Ann & Co>", "code": 42 }
        })))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["status"], "queued", "{:?}", first.body);
    let id = first.body["id"].as_str().unwrap().to_owned();
    let message_id = first.body["messageId"].as_str().unwrap().to_owned();
    let got = smtp.wait_for(1).await;
    let m = parse_mail(&got[0]);
    assert_eq!(m["subject"], "Welcome, <Ann & Co>");
    assert_eq!(m["from"], "ObjectOS Test <no-reply@objectos.test>");
    assert_eq!(m["replyTo"], "help@objectos.test");
    assert_eq!(m["to"], "Ann <ann@example.com>");
    assert_eq!(m["messageId"], message_id.as_str());
    assert_eq!(m["contentType"], "multipart/alternative");
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .contains("Hello <Ann & Co>, your code is 42."),
        "{m}"
    );
    assert!(
        m["html"]
            .as_str()
            .unwrap()
            .contains("<b>&lt;Ann &amp; Co&gt;</b>"),
        "{m}"
    );
    let rec = h.settled(Some("org1"), &id).await;
    assert_eq!(rec["status"], "sent", "{rec}");
    assert_eq!(rec["attempts"], 1, "{rec}");
    assert_eq!(rec["template"], "welcome");
    assert_eq!(rec["sent_by"], "u1");

    // German (de-AT falls back to de), non-ASCII subject and body, cc and bcc, a key.
    let body = json!({
        "to": ["bob@example.com"], "cc": "carl@example.com", "bcc": ["dora@example.com"],
        "template": "welcome", "locale": "de-AT", "idempotencyKey": "welcome-bob",
        "variables": { "name": "Bob", "code": "x1" }
    });
    let second = h.call(send(body.clone())).await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    let again = h.call(send(body)).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(
        again.body["id"], second.body["id"],
        "the key names the first message"
    );
    // A third, different mail: once it arrived, the repeated key would have arrived as well.
    let third = h
        .call(send(
            json!({ "to": "eve@example.com", "subject": "Plain", "text": "Just text" }),
        ))
        .await;
    assert_eq!(third.status, 200, "{:?}", third.body);
    let got = smtp.wait_for(3).await;
    assert_eq!(
        got.len(),
        3,
        "a repeated idempotency key sent a second mail"
    );
    let parsed: Vec<_> = got.iter().map(|m| parse_mail(m)).collect();
    let de = parsed
        .iter()
        .find(|m| m["to"] == "bob@example.com")
        .unwrap();
    assert_eq!(de["subject"], "Willkommen, Bob – schön, dass du da bist");
    assert_eq!(de["contentType"], "text/plain");
    assert_eq!(
        de["text"].as_str().unwrap().trim_end(),
        "Hallo Bob, dein Code ist x1. Grüße!"
    );
    // Non-ASCII bodies travel in a transfer encoding, never as raw 8-bit.
    let enc = de["transferEncodings"][0].as_str().unwrap().to_lowercase();
    assert!(enc == "quoted-printable" || enc == "base64", "{de}");
    let rcpt = de["rcptTo"].as_str().unwrap();
    assert!(
        rcpt.contains("carl@example.com") && rcpt.contains("dora@example.com"),
        "{de}"
    );
    // Bcc is an envelope recipient only.
    let raw_de = got.iter().find(|m| m.contains("bob@example.com")).unwrap();
    let headers: String = raw_de.split("\n\n").next().unwrap().to_owned();
    assert!(!headers.to_lowercase().contains("\nbcc:"), "{headers}");
    let plain = parsed
        .iter()
        .find(|m| m["to"] == "eve@example.com")
        .unwrap();
    assert_eq!(plain["subject"], "Plain");
    h.finish().await;
}
on_both!(
    templates_reach_the_smtp_server_sqlite,
    templates_reach_the_smtp_server_postgres,
    templates_reach_the_smtp_server
);

async fn the_mailer_contract_sends_plain_mail(db: TestDatabase) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let h = Harness::boot(db, smtp_settings(smtp.port)).await;
    // What the auth plugin does for a password reset: hand over and return at once.
    h.service
        .send(Mail {
            to: "reset@example.com".into(),
            subject: "Reset your password".into(),
            body: "Open https://example.test/reset?token=abc to choose a new password.".into(),
            link: Some("https://example.test/reset?token=abc".into()),
            organization: Some("org1".into()),
        })
        .unwrap();
    let got = smtp.wait_for(1).await;
    let m = parse_mail(&got[0]);
    assert_eq!(m["subject"], "Reset your password");
    assert_eq!(m["to"], "reset@example.com");
    assert_eq!(m["contentType"], "text/plain");
    assert!(m["text"].as_str().unwrap().contains("token=abc"), "{m}");
    // The organization the auth plugin named owns the record: its administrators see it.
    let mut cx = objectos_data::OpContext::system("test");
    cx.tenant = Some("org1".into());
    let found = h
        .engine
        .find(
            &cx,
            "sys_email",
            objectos_spec::query::QueryAst {
                filter: objectos_spec::query::Filter::eq("to_addresses", "reset@example.com"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.records.len(), 1);
    assert_eq!(found.records[0]["organization_id"], "org1");
    assert_eq!(found.records[0]["essential"], true);
    h.finish().await;
}
on_both!(
    the_mailer_contract_sends_plain_mail_sqlite,
    the_mailer_contract_sends_plain_mail_postgres,
    the_mailer_contract_sends_plain_mail
);

async fn only_admins_and_notify_send_and_bad_input_is_4xx(db: TestDatabase) {
    // The log transport: nothing leaves the machine, every message is still stored.
    let h = Harness::boot(db, NotificationSettings::default()).await;
    let ok_body = json!({ "to": "a@example.com", "subject": "Hi", "text": "Hello" });

    let anon = h
        .call(Req::post("/api/v1/email/send", ok_body.clone()))
        .await;
    assert_eq!(anon.status, 401, "{:?}", anon.body);
    assert_eq!(anon.body["code"], "UNAUTHENTICATED");

    let user = h
        .call(Req::post("/api/v1/email/send", ok_body.clone()).user("u2", "org1"))
        .await;
    assert_eq!(user.status, 403, "{:?}", user.body);
    assert_eq!(user.body["code"], "PERMISSION_DENIED");

    let notify = h
        .call(
            Req::post("/api/v1/email/send", ok_body.clone())
                .user("u2", "org1")
                .sets("notify"),
        )
        .await;
    assert_eq!(notify.status, 200, "{:?}", notify.body);
    let rec = h
        .settled(Some("org1"), notify.body["id"].as_str().unwrap())
        .await;
    assert_eq!(rec["status"], "sent", "{rec}");

    let admin = |body| {
        Req::post("/api/v1/email/send", body)
            .user("u1", "org1")
            .admin()
    };
    for (body, status, code) in [
        (
            json!({ "to": "not an address", "subject": "x", "text": "y" }),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "to": [], "subject": "x", "text": "y" }),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "to": "a@example.com", "text": "y" }),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "to": "a@example.com", "subject": "x" }),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "to": "a@example.com", "subject": "x", "text": "y", "priority": 1 }),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "to": "a@example.com", "template": "welcome", "variables": { "name": "A" } }),
            400,
            "TEMPLATE_RENDER_FAILED",
        ),
        (
            json!({ "to": "a@example.com", "template": "nope", "variables": {} }),
            404,
            "TEMPLATE_NOT_FOUND",
        ),
    ] {
        let r = h.call(admin(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {:?}", r.body);
        assert_eq!(r.body["code"], code, "{body}: {:?}", r.body);
    }
    h.finish().await;
}
on_both!(
    only_admins_and_notify_send_sqlite,
    only_admins_and_notify_send_postgres,
    only_admins_and_notify_send_and_bad_input_is_4xx
);

async fn an_smtp_outage_never_fails_the_request(db: TestDatabase) {
    // A port nobody listens on: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Harness::boot(db, smtp_settings(port)).await;
    let r = h
        .call(
            Req::post(
                "/api/v1/email/send",
                json!({ "to": "a@example.com", "subject": "Down", "text": "x" }),
            )
            .user("u1", "org1")
            .admin(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "queued");
    let rec = h
        .settled(Some("org1"), r.body["id"].as_str().unwrap())
        .await;
    assert_eq!(rec["status"], "failed", "{rec}");
    assert_eq!(rec["attempts"], 3, "{rec}");
    assert!(
        !rec["last_error"].as_str().unwrap_or_default().is_empty(),
        "{rec}"
    );
    h.finish().await;
}
on_both!(
    an_smtp_outage_never_fails_the_request_sqlite,
    an_smtp_outage_never_fails_the_request_postgres,
    an_smtp_outage_never_fails_the_request
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_template_is_refused_at_load_with_file_and_path() {
    let broken = "name: broken\ndefaultLocale: fr\nlocales:\n  en:\n    subject: \"Hi {{#if x}}\"\n    text: ok\n";
    let err = Harness::boot_with(
        TestDatabase::sqlite_file(),
        NotificationSettings::default(),
        &[("broken.template.yml", broken)],
    )
    .await
    .err()
    .expect("a broken template must stop the boot");
    assert!(err.contains("broken.template.yml"), "{err}");
    assert!(err.contains("locales.en.subject"), "{err}");
    assert!(err.contains("defaultLocale"), "{err}");
}
