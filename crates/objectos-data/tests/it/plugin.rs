//! The kernel plugin: service registration, start-up, and outbox events reaching the EventBus.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use objectos_data::{DataConfig, DataHandle, DataPlugin, MANIFEST, MetadataHandle};
use objectos_kernel::{Event, Kernel, SubscribeOptions};
use objectos_spec::query::QueryAst;
use serde_json::json;

use crate::{CRM, rec, user_cx};

#[tokio::test]
async fn plugin_provides_data_and_publishes_record_events() {
    assert_eq!(MANIFEST.id, "com.objectos.data");
    assert!(MANIFEST.provides.contains(&"data") && MANIFEST.provides.contains(&"metadata"));
    let meta = tempfile::tempdir().unwrap();
    for (name, text) in CRM {
        std::fs::write(meta.path().join(name), text).unwrap();
    }
    let db = tempfile::tempdir().unwrap();
    let plugin = DataPlugin::new(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", db.path().join("k.db").display()),
        metadata_dirs: vec![meta.path().to_path_buf()],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    });
    let kernel = Kernel::builder().plugin(plugin).build().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    kernel
        .bus()
        .subscribe(
            "test",
            "data.*.created",
            move |e: Arc<Event>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(format!(
                        "{} {}",
                        e.name,
                        e.payload["object"].as_str().unwrap_or("")
                    ));
                    Ok(())
                }
            },
            SubscribeOptions::default(),
        )
        .unwrap();
    kernel.boot().await.unwrap();
    let handle = kernel.registry().get_named::<DataHandle>("data").unwrap();
    let engine = handle.engine().expect("engine is set at start").clone();
    let metadata = kernel
        .registry()
        .get_named::<MetadataHandle>("metadata")
        .unwrap();
    assert!(metadata.snapshot().unwrap().object("account").is_some());
    let a = engine
        .create(&user_cx(), "account", rec(json!({"name": "K"})))
        .await
        .unwrap();
    engine
        .get(
            &user_cx(),
            "account",
            a["id"].as_str().unwrap(),
            QueryAst::default(),
        )
        .await
        .unwrap();
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.lock().unwrap().clone(),
        ["data.account.created account"]
    );
    kernel.shutdown().await;
}

/// A plugin that contributes an interceptor refusing deletes, as a security plugin would.
struct NoDeletes;

#[objectos_kernel::async_trait]
impl objectos_data::Interceptor for NoDeletes {
    fn name(&self) -> &str {
        "no-deletes"
    }
    fn applies_to(&self, _object: &str, op: objectos_data::Operation) -> bool {
        op == objectos_data::Operation::Delete
    }
    async fn before(&self, hook: &mut objectos_data::HookContext<'_>) -> objectos_data::Result<()> {
        Err(objectos_data::DataError::Forbidden {
            object: hook.object.name.clone(),
            message: "deletes are switched off".into(),
        })
    }
}

struct GuardPlugin;

const GUARD: objectos_spec::PluginManifest = objectos_spec::PluginManifest {
    dependencies: &[objectos_spec::PluginDependency {
        id: "com.objectos.data",
        version: "*",
        optional: false,
    }],
    ..objectos_spec::PluginManifest::new("com.example.guard", "Guard", "0.1.0")
};

#[objectos_kernel::async_trait]
impl objectos_kernel::Plugin for GuardPlugin {
    fn manifest(&self) -> &objectos_spec::PluginManifest {
        &GUARD
    }
    fn init(
        &self,
        cx: &mut objectos_kernel::InitContext<'_>,
    ) -> Result<(), objectos_kernel::PluginError> {
        cx.contribute(objectos_data::InterceptorContribution(Arc::new(NoDeletes)))
    }
}

#[tokio::test]
async fn contributed_interceptors_are_installed_before_the_engine_is_reachable() {
    let meta = tempfile::tempdir().unwrap();
    for (name, text) in CRM {
        std::fs::write(meta.path().join(name), text).unwrap();
    }
    let db = tempfile::tempdir().unwrap();
    let plugin = DataPlugin::new(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", db.path().join("g.db").display()),
        metadata_dirs: vec![meta.path().to_path_buf()],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    });
    let kernel = Kernel::builder()
        .plugin(plugin)
        .plugin(GuardPlugin)
        .build()
        .unwrap();
    kernel.boot().await.unwrap();
    let handle = kernel.registry().get_named::<DataHandle>("data").unwrap();
    let engine = handle.engine().expect("engine is set at start").clone();
    let a = engine
        .create(&user_cx(), "account", rec(json!({"name": "G"})))
        .await
        .unwrap();
    let err = engine
        .delete(&user_cx(), "account", a["id"].as_str().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PERMISSION_DENIED");
    kernel.shutdown().await;
}

/// A plugin that needs the engine at `start`, as every record-working plugin does; it keeps what
/// `DataHandle::require_engine` answered.
#[derive(Default)]
struct NeedsEngine {
    answer: Arc<Mutex<Option<Result<(), String>>>>,
}

const NEEDS_ENGINE: objectos_spec::PluginManifest = objectos_spec::PluginManifest {
    requires: &[objectos_spec::manifest::services::DATA],
    ..objectos_spec::PluginManifest::new("com.example.needs-engine", "Needs engine", "0.1.0")
};

#[objectos_kernel::async_trait]
impl objectos_kernel::Plugin for NeedsEngine {
    fn manifest(&self) -> &objectos_spec::PluginManifest {
        &NEEDS_ENGINE
    }
    fn init(
        &self,
        _cx: &mut objectos_kernel::InitContext<'_>,
    ) -> Result<(), objectos_kernel::PluginError> {
        Ok(())
    }
    async fn start(
        &self,
        cx: &objectos_kernel::StartContext,
    ) -> Result<(), objectos_kernel::PluginError> {
        let answer = DataHandle::require_engine(cx);
        *self.answer.lock().unwrap() = Some(
            answer
                .as_ref()
                .map(|_| ())
                .map_err(std::string::ToString::to_string),
        );
        answer.map(|_| ())
    }
}

/// Provides `data` with a handle whose engine never opens: what a consumer sees when it was
/// started before the real data plugin.
struct EmptyData;

const EMPTY_DATA: objectos_spec::PluginManifest = objectos_spec::PluginManifest {
    provides: &[objectos_spec::manifest::services::DATA],
    ..objectos_spec::PluginManifest::new("com.example.empty-data", "Empty data", "0.1.0")
};

#[objectos_kernel::async_trait]
impl objectos_kernel::Plugin for EmptyData {
    fn manifest(&self) -> &objectos_spec::PluginManifest {
        &EMPTY_DATA
    }
    fn init(
        &self,
        cx: &mut objectos_kernel::InitContext<'_>,
    ) -> Result<(), objectos_kernel::PluginError> {
        cx.register::<DataHandle>(
            objectos_spec::manifest::services::DATA,
            Arc::new(DataHandle::default()),
        )
    }
}

#[tokio::test]
async fn require_engine_returns_the_open_engine_or_names_the_plugin() {
    let db = tempfile::tempdir().unwrap();
    let plugin = DataPlugin::new(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", db.path().join("r.db").display()),
        metadata_dirs: Vec::new(),
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    });
    let consumer = NeedsEngine::default();
    let answer = consumer.answer.clone();
    let kernel = Kernel::builder()
        .plugin(consumer)
        .plugin(plugin)
        .build()
        .unwrap();
    kernel.boot().await.unwrap();
    assert_eq!(answer.lock().unwrap().clone(), Some(Ok(())));
    kernel.shutdown().await;

    let consumer = NeedsEngine::default();
    let answer = consumer.answer.clone();
    let kernel = Kernel::builder()
        .plugin(consumer)
        .plugin(EmptyData)
        .build()
        .unwrap();
    // The kernel isolates a plugin that fails to start, so look at what it was told.
    let _ = kernel.boot().await;
    let message = answer.lock().unwrap().clone().unwrap().unwrap_err();
    assert!(message.contains("com.example.needs-engine"), "{message}");
    assert!(message.contains("data engine is not open"), "{message}");
    kernel.shutdown().await;
}
