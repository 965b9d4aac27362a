//! Lifecycle: init/start order, failure isolation, optional dependencies, destroy order, timeouts, kernel.ready.

use std::sync::Arc;
use std::time::Duration;

use objectos_kernel::{Kernel, KernelError, PluginError, RuntimeMode, StartupReport, Timeouts};
use objectos_spec::manifest::{ConfigProperty, capabilities};

use crate::support::{Log, Man, Start, TestPlugin, eventually};

fn result<'a>(report: &'a StartupReport, id: &str) -> &'a objectos_spec::PluginStartupResult {
    report.plugins.iter().find(|p| p.id == id).unwrap()
}

#[tokio::test]
async fn init_all_then_start_all_in_dependency_order() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .mode(RuntimeMode::Test)
        .version("9.9.9")
        .plugin(TestPlugin::new(
            Man::new("web", "1.0.0").dep("data", "^1").build(),
            &log,
        ))
        .plugin(TestPlugin::new(Man::new("data", "1.0.0").build(), &log))
        .plugin(TestPlugin::new(
            Man::new("audit", "1.0.0").dep("data", "^1").build(),
            &log,
        ))
        .build()
        .unwrap();
    assert_eq!(kernel.start_order(), ["data", "web", "audit"]);
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started());
    assert_eq!(
        log.entries(),
        [
            "init:data",
            "init:web",
            "init:audit",
            "start:data",
            "start:web",
            "start:audit"
        ]
    );
    let ids: Vec<&str> = report.plugins.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["data", "web", "audit"]);
    assert!(
        report
            .plugins
            .iter()
            .all(|p| p.version == "1.0.0" && p.error.is_none() && !p.skipped)
    );
    assert_eq!(report.instance_id, kernel.context().instance_id);
}

#[tokio::test]
async fn kernel_context_identity() {
    let kernel = Kernel::builder()
        .mode(RuntimeMode::Production)
        .version("2.1.0")
        .cwd("/srv")
        .build()
        .unwrap();
    let cx = kernel.context();
    assert_eq!(cx.mode, RuntimeMode::Production);
    assert_eq!(cx.version, "2.1.0");
    assert_eq!(cx.cwd, "/srv");
    let id = uuid::Uuid::parse_str(&cx.instance_id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let other = Kernel::builder().build().unwrap();
    assert_ne!(other.context().instance_id, cx.instance_id);
}

#[tokio::test]
async fn failed_start_skips_dependents_transitively_and_the_rest_runs() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .plugin(TestPlugin::new(Man::new("a", "1.0.0").build(), &log))
        .plugin(TestPlugin::new(Man::new("b", "1.0.0").build(), &log).start(Start::Fail))
        .plugin(TestPlugin::new(
            Man::new("c", "1.0.0").dep("b", "^1").build(),
            &log,
        ))
        .plugin(TestPlugin::new(
            Man::new("d", "1.0.0").dep("c", "^1").build(),
            &log,
        ))
        .plugin(TestPlugin::new(Man::new("e", "1.0.0").build(), &log))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert!(!report.all_started());
    assert!(result(&report, "a").success);
    assert!(result(&report, "e").success);

    let b = result(&report, "b");
    assert!(!b.success && !b.skipped);
    assert_eq!(b.error.as_ref().unwrap().message, "database unreachable");
    assert_eq!(b.error.as_ref().unwrap().code, "other");

    let c = result(&report, "c");
    assert!(!c.success && c.skipped);
    assert_eq!(
        c.error.as_ref().unwrap().message,
        "plugin `c` did not start: skipped: it depends on `b` ^1, which failed; fix `b` first"
    );
    assert_eq!(c.error.as_ref().unwrap().code, "dependency_failed");
    let d = result(&report, "d");
    assert!(d.skipped);
    assert!(
        d.error
            .as_ref()
            .unwrap()
            .message
            .contains("it depends on `c` ^1, which was skipped")
    );

    // c and d were initialised (init runs before any start) but never started.
    assert!(!log.entries().contains(&"start:c".to_owned()));
    assert!(!log.entries().contains(&"start:d".to_owned()));
    assert_eq!(kernel.plugin_status("b"), Some("failed"));
    assert_eq!(kernel.plugin_status("c"), Some("skipped"));
    assert_eq!(kernel.plugin_status("e"), Some("started"));

    // Only started plugins are destroyed, in reverse start order.
    let stop = kernel.shutdown().await;
    assert_eq!(stop.destroyed, ["e", "a"]);
}

#[tokio::test]
async fn failed_init_removes_its_services_and_skips_dependents_before_init() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .plugin(
            TestPlugin::new(
                Man::new("cache", "1.0.0").provides(&["cache"]).build(),
                &log,
            )
            .on_init(|cx| cx.register::<String>("cache", Arc::new("mem".to_owned())))
            .fail_init(),
        )
        .plugin(TestPlugin::new(
            Man::new("app", "1.0.0").requires(&["cache"]).build(),
            &log,
        ))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert_eq!(log.entries(), ["init:cache"]);
    assert_eq!(
        result(&report, "cache").error.as_ref().unwrap().message,
        "init refused"
    );
    assert_eq!(
        result(&report, "app").error.as_ref().unwrap().message,
        "plugin `app` did not start: skipped: it requires service `cache` from `cache`, which failed; fix `cache` first"
    );
    assert!(kernel.registry().services().is_empty());
}

#[tokio::test]
async fn optional_dependency_failure_does_not_skip() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .plugin(TestPlugin::new(Man::new("metrics", "1.0.0").build(), &log).start(Start::Fail))
        .plugin(TestPlugin::new(
            Man::new("app", "1.0.0").opt_dep("metrics", "^1").build(),
            &log,
        ))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert!(!result(&report, "metrics").success);
    assert!(result(&report, "app").success);
}

#[tokio::test]
async fn panicking_init_and_start_are_isolated() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .plugin(
            TestPlugin::new(Man::new("a", "1.0.0").build(), &log).on_init(|_| panic!("bad init")),
        )
        .plugin(TestPlugin::new(Man::new("b", "1.0.0").build(), &log).start(Start::Panic))
        .plugin(TestPlugin::new(Man::new("c", "1.0.0").build(), &log))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    let a = result(&report, "a").error.as_ref().unwrap();
    assert_eq!(a.message, "plugin `a` init panicked: bad init");
    assert_eq!(a.code, "panic");
    assert_eq!(
        result(&report, "b").error.as_ref().unwrap().message,
        "plugin `b` start panicked: start exploded"
    );
    assert!(result(&report, "c").success);
}

#[tokio::test(start_paused = true)]
async fn start_timeout_fails_the_plugin_only() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .start_timeout(Duration::from_secs(5))
        .plugin(TestPlugin::new(Man::new("slow", "1.0.0").build(), &log).start(Start::Hang))
        .plugin(TestPlugin::new(
            Man::new("after", "1.0.0").dep("slow", "*").build(),
            &log,
        ))
        .plugin(TestPlugin::new(Man::new("fast", "1.0.0").build(), &log))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    let slow = result(&report, "slow").error.as_ref().unwrap();
    assert_eq!(slow.code, "timeout");
    assert_eq!(
        slow.message,
        "plugin `slow` start did not finish within 5s; make it return sooner or raise the timeout"
    );
    assert!(result(&report, "after").skipped);
    assert!(result(&report, "fast").success);
}

#[tokio::test]
async fn destroy_runs_in_reverse_start_order_once() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .plugin(TestPlugin::new(
            Man::new("c", "1.0.0").dep("b", "*").build(),
            &log,
        ))
        .plugin(TestPlugin::new(Man::new("a", "1.0.0").build(), &log).fail_destroy())
        .plugin(TestPlugin::new(
            Man::new("b", "1.0.0").dep("a", "*").build(),
            &log,
        ))
        .build()
        .unwrap();
    kernel.boot().await.unwrap();
    let stop = kernel.shutdown().await;
    assert_eq!(stop.destroyed, ["c", "b", "a"]);
    assert_eq!(stop.errors.len(), 1);
    assert_eq!(stop.errors[0].to_string(), "flush failed");
    let destroys: Vec<String> = log
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("destroy"))
        .collect();
    assert_eq!(destroys, ["destroy:c", "destroy:b", "destroy:a"]);

    let again = kernel.shutdown().await;
    assert!(again.destroyed.is_empty() && again.errors.is_empty());
    assert_eq!(
        log.entries()
            .iter()
            .filter(|e| e.starts_with("destroy"))
            .count(),
        3
    );
    assert!(kernel.bus().is_closed());
}

#[tokio::test]
async fn boot_twice_is_an_error() {
    let kernel = Kernel::builder().build().unwrap();
    kernel.boot().await.unwrap();
    assert!(matches!(
        kernel.boot().await,
        Err(KernelError::AlreadyBooted)
    ));
}

#[tokio::test]
async fn kernel_ready_is_emitted_after_every_start() {
    let log = Log::default();
    let sync_log = log.clone();
    let async_log = log.clone();
    let kernel = Kernel::builder()
        .plugin(
            TestPlugin::new(
                Man::new("watcher", "1.0.0")
                    .permissions(&[capabilities::EVENTS_SUBSCRIBE])
                    .subscribes(&["kernel.*"])
                    .build(),
                &log,
            )
            .on_init(move |cx| {
                let l = sync_log.clone();
                cx.subscribe_sync("kernel.ready", move |e| {
                    l.push(format!("sync:{}", e.name));
                    Ok(())
                })?;
                let l = async_log.clone();
                cx.subscribe("kernel.ready", move |e: Arc<objectos_kernel::Event>| {
                    let l = l.clone();
                    async move {
                        l.push(format!("async:{}:{}", e.name, e.metadata.source));
                        Ok::<(), PluginError>(())
                    }
                })?;
                Ok(())
            }),
        )
        .plugin(TestPlugin::new(Man::new("other", "1.0.0").build(), &log))
        .build()
        .unwrap();
    kernel.boot().await.unwrap();
    assert!(
        eventually(|| log.entries().len() == 6).await,
        "{:?}",
        log.entries()
    );
    assert_eq!(
        log.entries(),
        [
            "init:watcher",
            "init:other",
            "start:watcher",
            "start:other",
            "sync:kernel.ready",
            "async:kernel.ready:kernel"
        ]
    );
}

#[tokio::test]
async fn required_configuration_and_typed_settings() {
    #[derive(serde::Deserialize)]
    struct Settings {
        retention_days: u32,
    }
    const PROPS: &[ConfigProperty] = &[ConfigProperty {
        key: "retention_days",
        kind: "integer",
        description: "",
        required: true,
        secret: false,
        default: None,
    }];
    let log = Log::default();
    let seen = Arc::new(parking_lot::Mutex::new(0u32));
    let seen2 = seen.clone();
    let mut good = Man::new("good", "1.0.0").build();
    good.configuration = PROPS;
    let mut bad = Man::new("bad", "1.0.0").build();
    bad.configuration = PROPS;
    let kernel = Kernel::builder()
        .config("good", serde_json::json!({"retention_days": 30}))
        .config("typo", serde_json::json!({}))
        .plugin(TestPlugin::new(good, &log).on_init(move |cx| {
            *seen2.lock() = cx.config_as::<Settings>()?.retention_days;
            Ok(())
        }))
        .plugin(TestPlugin::new(bad, &log))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert_eq!(*seen.lock(), 30);
    assert!(result(&report, "good").success);
    assert_eq!(
        result(&report, "bad").error.as_ref().unwrap().message,
        "plugin `bad` configuration is invalid: missing required setting `retention_days` (integer); set it in the plugin's configuration"
    );
}

#[tokio::test]
async fn declared_but_unregistered_service_fails_the_plugin() {
    let log = Log::default();
    let kernel = Kernel::builder()
        .plugin(TestPlugin::new(
            Man::new("lazy", "1.0.0").provides(&["cache"]).build(),
            &log,
        ))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert_eq!(
        result(&report, "lazy").error.as_ref().unwrap().message,
        "plugin `lazy` did not start: its manifest `provides` \"cache\" but `init` did not register it; call `cx.register(..)` in `init` or remove the name from `provides`"
    );
}

#[tokio::test]
async fn shutdown_before_boot_is_harmless() {
    let kernel = Kernel::builder()
        .timeouts(Timeouts::default())
        .build()
        .unwrap();
    let stop = kernel.shutdown().await;
    assert!(stop.destroyed.is_empty());
    assert!(matches!(
        kernel.boot().await,
        Err(KernelError::AlreadyBooted)
    ));
}

#[tokio::test]
async fn run_until_shuts_down_when_told() {
    let log = Log::default();
    let kernel = Arc::new(
        Kernel::builder()
            .plugin(TestPlugin::new(Man::new("a", "1.0.0").build(), &log))
            .build()
            .unwrap(),
    );
    kernel.boot().await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let k = kernel.clone();
    let running = tokio::spawn(async move {
        k.run_until(async {
            let _ = rx.await;
        })
        .await
    });
    tx.send(()).unwrap();
    let report = running.await.unwrap();
    assert_eq!(report.destroyed, ["a"]);
}
