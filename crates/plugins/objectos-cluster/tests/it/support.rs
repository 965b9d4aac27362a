//! Test nodes (a kernel with the cluster plugin on a unique stream), an event collector, a TCP
//! proxy that can cut a node off from Redis, and raw Redis commands for the test itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use objectos_cluster::{ClusterPlugin, EventsSettings};
use objectos_kernel::{ClusterSettings, Event, Kernel, SubscribeOptions};
use objectos_spec::settings::Secret;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};

pub(crate) fn redis_url() -> String {
    std::env::var("OBJECTOS_TEST_REDIS_URL").expect("OBJECTOS_TEST_REDIS_URL")
}

/// A stream name no other test uses; removed by [`Stream::drop`].
pub(crate) struct Stream(pub(crate) String);

impl Stream {
    pub(crate) fn unique() -> Self {
        Self(format!(
            "objectos-test:{}:events",
            uuid::Uuid::new_v4().simple()
        ))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let key = self.0.clone();
        // Best effort: a leftover key only costs memory until Redis restarts.
        let _ = std::thread::spawn(move || {
            if let Ok(client) = redis::Client::open(redis_url())
                && let Ok(mut conn) = client.get_connection()
            {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&key).query(&mut conn);
            }
        })
        .join();
    }
}

pub(crate) fn settings(stream: &Stream) -> EventsSettings {
    EventsSettings {
        stream: stream.0.clone(),
        // Short blocks and pauses keep the tests quick; the logic is the same.
        block_ms: 200,
        max_backoff_ms: 200,
        ..EventsSettings::default()
    }
}

/// A booted kernel with the cluster plugin and a collector on `test.**`.
pub(crate) struct Node {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) seen: Arc<Mutex<Vec<Event>>>,
    pub(crate) id: String,
}

impl Node {
    pub(crate) async fn start(id: &str, url: &str, settings: EventsSettings) -> Self {
        let cluster = ClusterSettings {
            node_id: id.to_owned(),
            redis_url: Some(Secret::new(url)),
            amqp_url: None,
        };
        let kernel = Arc::new(
            Kernel::builder()
                .cluster(cluster)
                .plugin(ClusterPlugin::new(settings))
                .build()
                .expect("kernel builds"),
        );
        let report = kernel.boot().await.expect("kernel boots");
        assert!(report.all_started(), "{report:?}");
        assert_eq!(kernel.bus().transport_name(), Some("redis"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        kernel
            .bus()
            .subscribe_inline(
                "test",
                "test.**",
                move |e: &Event| {
                    sink.lock().push(e.clone());
                    Ok(())
                },
                SubscribeOptions::default(),
            )
            .expect("subscribes");
        Self {
            kernel,
            seen,
            id: id.to_owned(),
        }
    }

    pub(crate) async fn publish(&self, name: &str, n: u64) -> Event {
        let event =
            objectos_kernel::new_event(name, self.id.clone(), serde_json::json!({ "n": n }));
        self.kernel
            .bus()
            .publish(event.clone())
            .await
            .expect("publishes");
        event
    }

    pub(crate) fn count(&self) -> usize {
        self.seen.lock().len()
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.seen.lock().iter().map(|e| e.id.clone()).collect()
    }

    /// The plugin's health report (`details` with backend and state).
    pub(crate) async fn report(&self) -> objectos_spec::HealthReport {
        let health = self.kernel.health().await;
        health
            .plugins
            .into_iter()
            .find(|p| p.id == objectos_cluster::PLUGIN_ID)
            .expect("cluster plugin in health")
            .report
    }

    pub(crate) async fn state(&self) -> String {
        let report = self.report().await;
        report
            .backend_state()
            .map(|(_, s)| s.to_owned())
            .unwrap_or_default()
    }

    pub(crate) async fn wait_state(&self, want: &str, limit: Duration) {
        let t0 = Instant::now();
        loop {
            let state = self.state().await;
            if state == want {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "node {} stayed `{state}`, wanted `{want}`: {:?}",
                self.id,
                self.report().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn stop(self) {
        self.kernel.shutdown().await;
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub(crate) async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Runs a Redis command on a fresh connection of the test itself.
pub(crate) async fn command<T: redis::FromRedisValue>(cmd: &redis::Cmd) -> T {
    let client = redis::Client::open(redis_url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("test connects to Redis");
    cmd.query_async(&mut conn).await.expect("command")
}

/// Kills every client named `name` (`CLIENT KILL ID`); returns how many.
pub(crate) async fn kill_clients_named(name: &str) -> usize {
    let list: String = command(redis::cmd("CLIENT").arg("LIST")).await;
    let mut killed = 0;
    for line in list.lines() {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .map(str::to_owned)
        };
        if field("name").as_deref() == Some(name)
            && let Some(id) = field("id")
        {
            let n: i64 = command(redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id)).await;
            killed += n as usize;
        }
    }
    killed
}

/// A TCP proxy in front of Redis that can be switched off: while down it refuses every
/// connection and cuts the open ones, as if Redis had gone away.
pub(crate) struct Proxy {
    pub(crate) url: String,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("addr").port();
        let real = redis_url();
        let (scheme, rest) = real.split_once("://").expect("redis url");
        let (userinfo, hostpart) = match rest.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let (authority, path) = hostpart
            .split_once('/')
            .map_or((hostpart, ""), |(a, p)| (a, p));
        let upstream = authority.to_owned();
        let url = format!(
            "{scheme}://{userinfo}127.0.0.1:{port}{}",
            if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            }
        );
        let up = Arc::new(AtomicBool::new(up));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(gen_tx);
        let (flag, gens) = (up.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = gens.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            url,
            up,
            generation,
            task,
        }
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
