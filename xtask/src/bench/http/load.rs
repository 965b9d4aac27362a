//! The load generator: keep-alive HTTP/1.1 connections, each sending one scenario's requests
//! back to back, and the small deterministic random source behind the requests.

use super::*;

pub(super) async fn run_scenario(
    addr: SocketAddr,
    op: Op,
    connections: usize,
    duration: Duration,
    ids: &[String],
    seed: u64,
    session: Option<&Session>,
) -> anyhow::Result<ScenarioResult> {
    let ids: std::sync::Arc<[String]> = ids.into();
    let authorization = session.map(|s| s.authorization.clone());
    let sign_in_body = session.map(|s| {
        std::sync::Arc::new(
            serde_json::to_vec(&serde_json::json!({"email": s.email, "password": s.password}))
                .unwrap_or_default(),
        )
    });
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let ids = ids.clone();
        let authorization = authorization.clone();
        let sign_in_body = sign_in_body.clone();
        // Sign-in is a public route: it is sent without the session token.
        let conn_auth = if op == Op::SignIn {
            None
        } else {
            authorization.clone()
        };
        let mut conn = Conn::open(addr, conn_auth.clone()).await?;
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(c as u64 + 1));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut created = 0usize;
            while Instant::now() < deadline {
                let (method, path, body) =
                    request_for(op, &ids, &mut rng, c, &mut created, sign_in_body.as_deref());
                let t = Instant::now();
                match conn.send(method.clone(), &path, body).await {
                    Ok((status, _)) if status.is_success() => {
                        lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                    }
                    Ok((status, bytes)) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| {
                            format!(
                                "{method} {path} -> {status} {}",
                                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                            )
                        });
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{method} {path} -> {e:#}"));
                        // The connection is likely gone; open a fresh one so the run continues.
                        match Conn::open(addr, conn_auth.clone()).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (lat, e, fe) = t.await.context("a load-generator task panicked")?;
        latencies_us.extend(lat);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Ok(ScenarioResult {
        op,
        connections,
        ok: latencies_us.len() as u64,
        errors,
        first_error,
        elapsed,
        latencies_us,
        cpu: None,
    })
}

pub(super) fn request_for(
    op: Op,
    ids: &[String],
    rng: &mut Rng,
    conn: usize,
    created: &mut usize,
    sign_in_body: Option<&Vec<u8>>,
) -> (Method, String, Option<Vec<u8>>) {
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize].clone();
    match op {
        Op::Get => (
            Method::GET,
            format!("/api/v1/data/contact/{}", pick(rng)),
            None,
        ),
        Op::List => (Method::GET, LIST_PATH.to_owned(), None),
        Op::Create => {
            *created += 1;
            let body = serde_json::json!({
                "name": format!("Bench {conn}-{created}"),
                "email": format!("bench{conn}-{created}@example.com"),
                "amount": rng.below(1_000_000) as f64 / 100.0,
                "status": STATUSES[rng.below(3) as usize],
            });
            (
                Method::POST,
                "/api/v1/data/contact".to_owned(),
                serde_json::to_vec(&body).ok(),
            )
        }
        Op::Update => {
            let body = serde_json::json!({ "amount": rng.below(1_000_000) as f64 / 100.0 });
            (
                Method::PATCH,
                format!("/api/v1/data/contact/{}", pick(rng)),
                serde_json::to_vec(&body).ok(),
            )
        }
        Op::SignIn => (
            Method::POST,
            "/api/v1/auth/sign-in/email".to_owned(),
            sign_in_body.cloned(),
        ),
    }
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub(super) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    /// `Authorization` header sent with every request (the secured profile's session).
    authorization: Option<String>,
}

impl Conn {
    pub(super) async fn open(
        addr: SocketAddr,
        authorization: Option<String>,
    ) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake failed")?;
        // The connection future drives the socket; it ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
            authorization,
        })
    }

    pub(super) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(a) = &self.authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let res = self.sender.send_request(req).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}

/// xorshift64*: seeded, reproducible ids and values without a `rand` dependency.
#[derive(Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}
