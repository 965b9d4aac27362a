//! The client address behind `http.trustedProxies`, on SQLite and PostgreSQL: forwarding headers
//! count only from a trusted peer (so a client cannot spread its attempts over invented
//! addresses to dodge the per-IP rate limit), and then the rightmost untrusted hop is the client
//! that rate limits, sessions and events see.

use std::net::SocketAddr;

use salvo::test::TestClient;
use serde_json::json;

use crate::support::{BASE, H, PASSWORD, Reply, databases, test_config};

const SIGN_IN: &str = "/api/v1/auth/sign-in/email";

fn peer(addr: &str) -> SocketAddr {
    format!("{addr}:40000").parse().unwrap()
}

impl H {
    /// A failed sign-in (a fresh unknown address each time, so lockout never answers) from
    /// `from` with the forwarding headers `headers`.
    async fn attempt(&self, n: usize, from: &str, headers: &[(&'static str, String)]) -> Reply {
        let mut req = TestClient::post(format!("{BASE}{SIGN_IN}")).json(
            &json!({"email": format!("nobody{n}@example.com"), "password": "wrong-Passw0rd!"}),
        );
        for (k, v) in headers {
            req = req.add_header(*k, v.as_str(), false);
        }
        self.send_from(req, peer(from)).await
    }
}

fn limited_config() -> objectos_auth::AuthConfig {
    let mut cfg = test_config();
    cfg.rate_limit.per_ip_per_minute = 3;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    for db in databases("auth_proxies").await {
        eprintln!("trusted proxies on {}", db.label);
        untrusted_clients_cannot_dodge_the_limit(H::with(limited_config(), db.url.clone()).await)
            .await;
        behind_a_trusted_proxy(
            H::with_proxies(
                limited_config(),
                db.url.clone(),
                &["127.0.0.1", "10.0.0.0/8"],
            )
            .await,
        )
        .await;
        db.cleanup().await;
    }
}

async fn untrusted_clients_cannot_dodge_the_limit(h: H) {
    // Without trusted proxies every attempt counts against the TCP peer, whatever address the
    // client claims in either header.
    for n in 0..3 {
        let claim = vec![
            ("x-forwarded-for", format!("198.51.100.{n}")),
            ("forwarded", format!("for=192.0.2.{n}")),
        ];
        h.attempt(n, "203.0.113.5", &claim)
            .await
            .error(401, "INVALID_CREDENTIALS");
    }
    let claim = vec![("x-forwarded-for", "198.51.100.99".to_owned())];
    let r = h.attempt(3, "203.0.113.5", &claim).await;
    r.error(429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    // The failure event names the peer, not the claim.
    let ev = h.event("auth.login_failed").await;
    assert_eq!(ev.payload["ip"], "203.0.113.5");
    // Another peer has its own bucket.
    h.attempt(4, "203.0.113.6", &claim)
        .await
        .error(401, "INVALID_CREDENTIALS");
    h.stop().await;
}

async fn behind_a_trusted_proxy(h: H) {
    // Through the proxy each client has its own bucket.
    for n in 0..5 {
        let hop = vec![("x-forwarded-for", format!("198.51.100.{n}"))];
        h.attempt(n, "127.0.0.1", &hop)
            .await
            .error(401, "INVALID_CREDENTIALS");
    }
    // A client that writes its own X-Forwarded-For before the proxy appends the real address
    // is still limited on the real one: the rightmost untrusted hop counts.
    for n in 10..13 {
        let hops = vec![("x-forwarded-for", format!("192.0.2.{n}, 198.51.100.50"))];
        h.attempt(n, "127.0.0.1", &hops)
            .await
            .error(401, "INVALID_CREDENTIALS");
    }
    let hops = vec![("x-forwarded-for", "192.0.2.99, 198.51.100.50".to_owned())];
    h.attempt(13, "127.0.0.1", &hops)
        .await
        .error(429, "RATE_LIMITED");
    // Chained proxies (both trusted) are passed over; `Forwarded` works without X-Forwarded-For.
    let chain = vec![("x-forwarded-for", "198.51.100.50, 10.1.2.3".to_owned())];
    h.attempt(14, "10.0.0.7", &chain)
        .await
        .error(429, "RATE_LIMITED");
    let fwd = vec![(
        "forwarded",
        "for=\"198.51.100.50:1234\";proto=https".to_owned(),
    )];
    h.attempt(15, "127.0.0.1", &fwd)
        .await
        .error(429, "RATE_LIMITED");
    // A request from the proxy itself without a header is the proxy's.
    h.attempt(16, "127.0.0.1", &[])
        .await
        .error(401, "INVALID_CREDENTIALS");
    // An untrusted peer's header is still ignored.
    let spoof = vec![("x-forwarded-for", "198.51.100.77".to_owned())];
    h.attempt(17, "203.0.113.8", &spoof)
        .await
        .error(401, "INVALID_CREDENTIALS");
    let ev = h
        .events
        .all()
        .iter()
        .rev()
        .find(|e| e.name == "auth.login_failed")
        .cloned()
        .unwrap();
    assert_eq!(ev.payload["ip"], "203.0.113.8");

    // The session row and its events carry the forwarded client.
    let req = TestClient::post(format!("{BASE}/api/v1/auth/sign-up/email"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD, "name": "Bench"}))
        .add_header("x-forwarded-for", "2001:db8::5", false);
    h.send_from(req, peer("127.0.0.1")).await.ok();
    assert_eq!(
        h.sql_text(r#"SELECT "ip" FROM "_objectos_auth_session""#)
            .await
            .as_deref(),
        Some("2001:db8::5")
    );
    h.stop().await;
}
