//! A TCP relay in front of a service (Redis, RabbitMQ), to take the network away from one node
//! in two ways: cut (bytes vanish in both directions, as with a dropped network: the sender gets
//! no error, just no answer) or down (new connections are refused and open ones closed, as if
//! the service had gone away).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A relay on `127.0.0.1:<port>` to the `host:port` of a service URL; dropped, it stops
/// accepting.
#[derive(Debug)]
pub struct TcpRelay {
    url: String,
    cut: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
    /// Bumped to close every open connection.
    generation: Arc<watch::Sender<u64>>,
    /// Local addresses of the relay's connections to the service: how the service (Redis'
    /// `CLIENT LIST`) names the clients that came through this relay.
    upstreams: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpRelay {
    /// A relay to the service of `url` (`redis://user:pw@host:port/0`), up or down from the
    /// start.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(url: &str, up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let port = listener.local_addr().expect("the relay's address").port();
        let target = host_port(url);
        let cut = Arc::new(AtomicBool::new(false));
        let up = Arc::new(AtomicBool::new(up));
        let (generation, _) = watch::channel(0u64);
        let generation = Arc::new(generation);
        let upstreams: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let (c, u, g, ups) = (
            cut.clone(),
            up.clone(),
            generation.clone(),
            upstreams.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (target, cut, ups) = (target.clone(), c.clone(), ups.clone());
                let mut closed = g.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    if let Ok(addr) = server.local_addr() {
                        ups.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(addr);
                    }
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = async { tokio::join!(pipe(cr, sw, cut.clone()), pipe(sr, cw, cut)) } => {}
                        _ = closed.changed() => {}
                    }
                });
            }
        });
        Self {
            url: with_authority(url, &format!("127.0.0.1:{port}")),
            cut,
            up,
            generation,
            upstreams,
            task,
        }
    }

    /// The service URL through the relay (credentials and path kept).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// While cut, nothing is forwarded in either direction and new connections get no answer.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    /// Down refuses new connections and closes the open ones; up accepts again.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// `ip:port` of every connection the relay opened to the service.
    pub fn upstream_addrs(&self) -> Vec<String> {
        self.upstreams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, cut: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Dropped, as a cut network would.
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `host:port` of a URL, without scheme, credentials or path.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// `url` with its `host:port` replaced by `authority`.
fn with_authority(url: &str, authority: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("tcp", url));
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let path = hostpart
        .split_once('/')
        .map_or(String::new(), |(_, p)| format!("/{p}"));
    format!("{scheme}://{userinfo}{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_credentials_and_path() {
        assert_eq!(host_port("redis://u:p@h:6379/2"), "h:6379");
        assert_eq!(
            with_authority("redis://u:p@h:6379/2", "127.0.0.1:9"),
            "redis://u:p@127.0.0.1:9/2"
        );
        assert_eq!(
            with_authority("redis://h:6379", "127.0.0.1:9"),
            "redis://127.0.0.1:9"
        );
    }
}
