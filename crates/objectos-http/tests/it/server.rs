//! The plugin inside a real kernel, on a real listener: boot, serve, readiness, graceful stop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use objectos_data::{DataConfig, DataPlugin};
use objectos_http::{
    HoopContribution, HttpConfig, HttpPlugin, RouteContribution, RouteOperation, RouteSecurity,
};
use objectos_kernel::{InitContext, Kernel, Plugin, PluginError, async_trait};
use objectos_spec::health::detail;
use objectos_spec::manifest::services;
use objectos_spec::{HealthReport, HealthStatus, PluginManifest};
use salvo::prelude::*;
use serde_json::Value;

use crate::support::write_metadata;

/// A plugin that serves the `i18n` service over HTTP through contributions.
struct LocalesPlugin;

const LOCALES_MANIFEST: PluginManifest = PluginManifest {
    provides: &[services::I18N],
    permissions: &["routes.mount"],
    ..PluginManifest::new("com.example.locales", "Locales", "0.1.0")
};

#[handler]
async fn locales() -> Json<Value> {
    Json(serde_json::json!({ "locales": ["en"] }))
}

#[handler]
async fn stamp(res: &mut Response) {
    res.headers_mut().insert(
        "x-stamped-by",
        salvo::http::HeaderValue::from_static("locales"),
    );
}

#[async_trait]
impl Plugin for LocalesPlugin {
    fn manifest(&self) -> &PluginManifest {
        &LOCALES_MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.register::<String>(services::I18N, Arc::new("en".to_owned()))?;
        // A metadata kind of the plugin's own: `*.locale.yml` files, served under /meta.
        cx.contribute(
            objectos_data::PluginSchema::new().kind(objectos_data::MetadataKind::new(
                "locale",
                "locale",
                |doc| match doc["code"].as_str() {
                    Some(code) => Ok(vec![(code.to_owned(), doc.clone())]),
                    None => Err(vec![("code".into(), "a locale needs a code".into())]),
                },
            )),
        )?;
        // A compatibility mount first: discovery must still advertise the service's own mount.
        cx.contribute(
            RouteContribution::new("legacy", || Router::with_path("locales").get(locales))
                .service(services::I18N)
                .compat()
                .operations(vec![
                    RouteOperation::get("locales", "Locales (old path)").public(),
                ]),
        )?;
        cx.contribute(
            RouteContribution::new("i18n", || Router::with_path("locales").get(locales))
                .service(services::I18N)
                .operations(vec![
                    RouteOperation::get("locales", "Supported locales").public(),
                ]),
        )?;
        // A service with no in-process object, served over HTTP only, at a mount that is not
        // its route key.
        cx.contribute(
            RouteContribution::new("files", || {
                Router::with_path("{bucket}/{**key}")
                    .get(locales)
                    .delete(locales)
            })
            .service(services::FILE_STORAGE)
            .operations(vec![
                RouteOperation::get("{bucket}/{**key}", "Download a file"),
                RouteOperation::delete("{bucket}/{**key}", "Delete a file"),
            ]),
        )?;
        cx.contribute(HoopContribution::new(10, stamp))?;
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        HealthReport::healthy().backend("memory", "embedded")
    }
}

/// A plugin that carries the event bus and says so in its health: discovery shows it under
/// `eventBus` without knowing the plugin.
struct BusCarrier;

const BUS_MANIFEST: PluginManifest = PluginManifest::new("com.example.bus", "Bus carrier", "0.1.0");

#[async_trait]
impl Plugin for BusCarrier {
    fn manifest(&self) -> &PluginManifest {
        &BUS_MANIFEST
    }

    fn init(&self, _cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        HealthReport::with_status(HealthStatus::Degraded, "reconnecting")
            .backend("redis", "reconnecting")
            .detail(detail::SERVES, vec![detail::EVENTS])
    }
}

/// Sends a chunked (undeclared length) body of `size` bytes; returns the status line's code.
fn chunked_post(addr: SocketAddr, path: &str, size: usize) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    // The server may answer 413 and close before everything is written; that is the point.
    while sent < size {
        let frame = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if stream.write_all(&frame).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The raw response text of a GET.
fn raw_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    raw
}

/// A blocking HTTP/1.1 exchange; returns (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_boots_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    std::fs::write(
        meta.join("french.locale.yml"),
        "code: fr\nlabel: Français\n",
    )
    .unwrap();
    let data = DataPlugin::new(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display()),
        metadata_dirs: vec![meta],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    });
    let http_plugin = HttpPlugin::new(HttpConfig {
        listen: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    });
    let control = http_plugin.control();
    let kernel = Arc::new(
        Kernel::builder()
            .plugin(data)
            .plugin(http_plugin)
            .plugin(LocalesPlugin)
            .plugin(BusCarrier)
            .build()
            .unwrap(),
    );
    control.attach(&kernel);
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started(), "{report:?}");
    assert!(control.is_ready());
    let addr = control.local_addr().expect("bound address");

    let (status, body) = tokio::task::spawn_blocking(move || {
        let (s, _) = http(addr, "GET", "/ready", None);
        assert_eq!(s, 200);
        let (s, body) = http(addr, "GET", "/health", None);
        assert_eq!(s, 200, "{body}");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["plugins"].as_array().unwrap().len(), 4, "{body}");
        // Backends are reported per plugin under `details`.
        assert_eq!(health["status"], "degraded", "{body}");
        let provider = health["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "com.example.locales")
            .unwrap();
        assert_eq!(provider["details"]["backend"], "memory", "{body}");
        let (s, body) = http(addr, "GET", "/api/v1/discovery", None);
        assert_eq!(s, 200);
        let d: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(d["services"]["data"]["provider"], "com.objectos.data");
        assert_eq!(d["services"]["metadata"]["status"], "available");
        // A contributed route makes its service reachable, and discovery says where.
        assert_eq!(d["routes"]["i18n"], "/api/v1/i18n");
        assert_eq!(d["services"]["i18n"]["route"], "/api/v1/i18n");
        assert_eq!(d["services"]["i18n"]["provider"], "com.example.locales");
        // A service named only by a route contribution is present, at its real mount.
        assert_eq!(d["routes"]["storage"], "/api/v1/files");
        assert_eq!(d["services"]["file-storage"]["route"], "/api/v1/files");
        assert_eq!(d["services"]["file-storage"]["status"], "available");
        assert_eq!(
            d["services"]["file-storage"]["provider"],
            "com.example.locales"
        );
        assert_eq!(d["capabilities"]["files"]["enabled"], true);
        // The provider's health names the backend of each service it provides.
        assert_eq!(d["services"]["i18n"]["backend"], "memory");
        assert_eq!(d["services"]["i18n"]["state"], "embedded");
        assert_eq!(d["services"]["file-storage"]["backend"], "memory");
        assert!(d["services"]["data"].get("backend").is_none());
        // The event bus is no spec service: it has its own entry.
        assert_eq!(
            d["eventBus"],
            serde_json::json!({
                "backend": "redis",
                "state": "reconnecting",
                "status": "degraded",
                "provider": "com.example.bus",
            })
        );
        // A service nobody provides keeps its status.
        assert_eq!(d["services"]["ai"]["status"], "unavailable");
        assert!(d["routes"].get("ai").is_none());
        // The plugin's metadata kind is a metadata type with its items.
        let (s, body) = http(addr, "GET", "/api/v1/meta", None);
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("\"locale\""), "{body}");
        let (s, body) = http(addr, "GET", "/api/v1/meta/locales", None);
        assert_eq!(s, 200, "{body}");
        let items: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(items["type"], "locale");
        assert_eq!(items["items"][0]["label"], "Français");
        let (s, body) = http(addr, "GET", "/api/v1/meta/locale/fr", None);
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["item"]["code"],
            "fr"
        );
        let (s, _) = http(addr, "GET", "/api/v1/meta/locale/de", None);
        assert_eq!(s, 404);
        let (s, body) = http(addr, "GET", "/api/v1/openapi.json", None);
        assert_eq!(s, 200, "{body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        let paths = &doc["paths"];
        let get = &paths["/api/v1/i18n/locales"]["get"];
        assert_eq!(get["summary"], "Supported locales");
        assert_eq!(get["tags"][0], "i18n");
        assert_eq!(get["security"], serde_json::json!([]));
        assert!(paths["/api/v1/legacy/locales"]["get"].is_object());
        let file = &paths["/api/v1/files/{bucket}/{key}"];
        assert_eq!(file["get"]["parameters"][1]["name"], "key");
        assert_eq!(file["delete"]["security"].as_array().unwrap().len(), 3);
        assert_eq!(
            doc["components"]["securitySchemes"]["sessionCookie"]["name"],
            "better-auth.session_token"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["apiKey"]["name"],
            "X-API-Key"
        );
        let (s, _) = http(addr, "GET", "/api/v1/legacy/locales", None);
        assert_eq!(s, 200);
        let (s, body) = http(addr, "GET", "/api/v1/i18n/locales", None);
        assert_eq!(s, 200, "{body}");
        assert_eq!(body, "{\"locales\":[\"en\"]}");
        // The contributed hoop runs for core routes too.
        let raw = raw_get(addr, "/api/v1/discovery");
        assert!(
            raw.to_ascii_lowercase().contains("x-stamped-by: locales"),
            "{raw}"
        );
        let (s, body) = http(
            addr,
            "POST",
            "/api/v1/data/account",
            Some("{\"name\":\"Acme\"}"),
        );
        assert_eq!(s, 201, "{body}");
        let created: Value = serde_json::from_str(&body).unwrap();
        // A body with no declared length is cut off at the limit (1 MiB by default).
        assert_eq!(
            chunked_post(addr, "/api/v1/data/account", 2 * 1024 * 1024),
            413
        );
        http(
            addr,
            "GET",
            &format!("/api/v1/data/account/{}", created["id"].as_str().unwrap()),
            None,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");

    // Every contributed route is in the OpenAPI document, checked against the routers themselves.
    let contributed: Vec<RouteContribution> = kernel
        .registry()
        .contributions::<RouteContribution>()
        .unwrap()
        .iter()
        .map(|c| c.value.clone())
        .collect();
    assert_eq!(contributed.len(), 3);
    for c in &contributed {
        assert_eq!(c.undocumented(), Vec::new(), "{c:?}");
        assert!(
            c.operations
                .iter()
                .any(|o| o.security == RouteSecurity::Public)
                || c.mount == "files"
        );
    }
    let (s, body) =
        tokio::task::spawn_blocking(move || http(addr, "GET", "/api/v1/openapi.json", None))
            .await
            .unwrap();
    assert_eq!(s, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        objectos_http::routes::openapi::missing_operations(&doc, &contributed),
        Vec::<String>::new()
    );
    let mut ids = std::collections::HashSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            }
        }
    }
    assert_eq!(ids.len(), 4, "{ids:?}");

    kernel.shutdown().await;
    assert!(!control.is_ready());
    // The listener is closed after a graceful stop.
    let refused = tokio::task::spawn_blocking(move || TcpStream::connect(addr).is_err())
        .await
        .unwrap();
    assert!(
        refused,
        "the server still accepts connections after shutdown"
    );
}
