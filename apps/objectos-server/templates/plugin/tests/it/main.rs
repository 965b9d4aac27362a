//! Integration test of the {{title}} plugin in a real kernel: the data plugin on a SQLite file
//! with one `*.{{snake}}.yml` definition, the HTTP plugin on a loopback port, and this plugin;
//! checked over plain HTTP and through the engine and the event bus.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use objectos_data::{DataConfig, DataPlugin, OpContext};
use objectos_http::{HttpConfig, HttpPlugin, RouteContribution};
use objectos_kernel::{Event, Kernel, PluginError, SubscribeOptions};
use objectos_testkit::TestDatabase;
use serde_json::{Value, json};

// The crate under test.
use objectos_{{snake}}::{{Pascal}}Plugin;
use objectos_{{snake}}::routes::MOUNT;
use objectos_{{snake}}::schema::{KIND, OBJECT};
use objectos_{{snake}}::{ITEM_RECEIVED, ItemReceived, MANIFEST, PLUGIN_ID};

/// One HTTP/1.1 GET over a fresh connection: the status and the body as JSON.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_its_items_accepts_records_and_emits_its_event() {
    let db = TestDatabase::sqlite_file();
    let meta = db.dir().unwrap().join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join(format!("x.{KIND}.yml")),
        "name: x\nlabel: Example\n",
    )
    .unwrap();
    let data = DataPlugin::new(DataConfig {
        database_url: db.url.clone(),
        metadata_dirs: vec![meta],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    });
    let engine = data.handle();
    let http = HttpPlugin::new(HttpConfig {
        listen: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    });
    let control = http.control();
    let kernel = Arc::new(
        Kernel::builder()
            .plugin(data)
            .plugin(http)
            .plugin({{Pascal}}Plugin::default())
            .build()
            .unwrap(),
    );
    control.attach(&kernel);
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started(), "{report:?}");
    let addr = control.local_addr().unwrap();

    // The route answers the definition loaded from `x.{{snake}}.yml`.
    let path = format!("/api/v1/{MOUNT}/items");
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, &path))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["items"][0], json!({ "name": "x", "label": "Example" }));

    // Every route the plugin mounts is described, and the served OpenAPI document has them.
    let routes: Vec<RouteContribution> = kernel
        .registry()
        .contributions::<RouteContribution>()
        .unwrap()
        .iter()
        .filter(|c| c.plugin == PLUGIN_ID)
        .map(|c| c.value.clone())
        .collect();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].undocumented(), Vec::new());
    let (status, doc) = tokio::task::spawn_blocking(move || get(addr, "/api/v1/openapi.json"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        objectos_http::routes::openapi::missing_operations(&doc, &routes),
        Vec::<String>::new()
    );

    // The owned object takes a record through the engine, and the plugin's subscriber answers
    // the record event with its own, caused by it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    kernel
        .bus()
        .subscribe(
            "test",
            ITEM_RECEIVED,
            move |event: Arc<Event>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event);
                    Ok::<(), PluginError>(())
                }
            },
            SubscribeOptions::default(),
        )
        .unwrap();
    let engine = engine.engine().unwrap().clone();
    let record = json!({ "title": "First" }).as_object().unwrap().clone();
    let created = engine
        .create(&OpContext::system("test"), OBJECT, record)
        .await
        .unwrap();
    assert_eq!(created["title"], "First");
    // A bound on the wait, so a missing event fails the test instead of hanging it.
    let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let payload: ItemReceived = serde_json::from_value(event.payload.clone()).unwrap();
    assert_eq!(payload.title, "First");
    assert_eq!(Some(payload.record_id.as_str()), created["id"].as_str());
    assert!(event.metadata.causation_id.is_some(), "{event:?}");

    kernel.shutdown().await;
    drop(engine);
    db.cleanup().await;
}

/// The manifest passes the spec audit `cargo xtask spec-audit` runs on every compiled-in
/// plugin, except for the plugin's own service name, which the audit knows once it is added to
/// `objectos_spec::manifest::services` (a step `objectos new plugin` prints).
#[test]
fn manifest_passes_the_spec_audit() {
    let problems: Vec<String> = objectos_spec::validate_manifest(&MANIFEST)
        .into_iter()
        .filter(|d| d.path != "provides[0]")
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    assert_eq!(problems, Vec::<String>::new());
}
