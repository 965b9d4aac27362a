//! Test nodes (a kernel with the cluster plugin on a unique stream), an event collector and raw
//! Redis commands for the test itself; polling and the proxy that cuts a node off from Redis
//! come from `objectos-testkit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use objectos_cluster::{ClusterPlugin, EventsSettings};
use objectos_kernel::{ClusterSettings, Event, Kernel, SubscribeOptions};
use objectos_spec::settings::Secret;
use parking_lot::Mutex;

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
pub(crate) use objectos_testkit::wait::until as eventually;

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

/// A TCP proxy in front of Redis that can be switched off (`set_up(false)` refuses every
/// connection and cuts the open ones, as if Redis had gone away).
pub(crate) struct Proxy(objectos_testkit::TcpRelay);

impl Proxy {
    pub(crate) async fn start(up: bool) -> Self {
        Self(objectos_testkit::TcpRelay::start(&redis_url(), up).await)
    }

    pub(crate) fn url(&self) -> String {
        self.0.url()
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.0.set_up(up);
    }
}
