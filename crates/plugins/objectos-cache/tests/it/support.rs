//! Test helpers: configurations with unique prefixes, polling, and a TCP relay that can cut a
//! node off from Redis (the relay stops forwarding and refuses nothing: packets just vanish, as
//! with a dropped network).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use objectos_cache::CacheConfig;
use objectos_kernel::contracts::InvalidationOrigin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a test's invalidation callback saw: key and origin of each call.
pub(crate) type Seen = Arc<parking_lot::Mutex<Vec<(Option<String>, InvalidationOrigin)>>>;

/// The test Redis URL (only called by tests built with `cfg(objectos_redis)`).
pub(crate) fn redis_url() -> String {
    std::env::var("OBJECTOS_TEST_REDIS_URL").expect("OBJECTOS_TEST_REDIS_URL")
}

/// A configuration whose Redis keys and channel no other test shares.
pub(crate) fn config(staleness_ms: u64) -> CacheConfig {
    CacheConfig {
        prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        staleness_ms,
        redis_timeout_ms: 200,
        ..CacheConfig::default()
    }
}

/// Polls `check` every 5 ms until it holds or `within` passes; returns how long it took.
pub(crate) async fn eventually(
    within: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// A TCP relay to `target`; while `cut` is set it forwards nothing in either direction (and new
/// connections are accepted but never answered).
#[derive(Debug, Clone)]
pub(crate) struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    /// Local addresses of the relay's connections to the target: how the target (Redis) lists
    /// the clients that came through this relay.
    upstreams: Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>,
}

impl Relay {
    pub(crate) async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let upstreams: Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>> = Arc::default();
        let up = upstreams.clone();
        let c = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = target.clone();
                let cut = c.clone();
                let up = up.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    if let Ok(addr) = server.local_addr() {
                        up.lock().unwrap().push(addr);
                    }
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pipe(cr, sw, cut.clone()));
                    tokio::spawn(pipe(sr, cw, cut));
                });
            }
        });
        Relay {
            port,
            cut,
            upstreams,
        }
    }

    pub(crate) fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    /// `ip:port` of every connection the relay opened to the target.
    pub(crate) fn upstream_addrs(&self) -> Vec<String> {
        self.upstreams
            .lock()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The Redis URL through this relay.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Dropped, as a cut network would: the sender gets no error, just no answer.
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `host:port` of a `redis://` URL without credentials or database (the test Redis).
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}
