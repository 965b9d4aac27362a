//! The web shell in a booted kernel: the origins another plugin contributes as
//! `objectos_http::ConnectOrigin` reach the console's `connect-src`, and nothing else does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use objectos_data::{DataConfig, DataPlugin};
use objectos_http::{ConnectOrigin, HttpConfig, HttpPlugin};
use objectos_kernel::{InitContext, Kernel, Plugin, PluginError, async_trait};
use objectos_spec::PluginManifest;
use objectos_web_shell::{CONSOLE_CSP, WebShellPlugin, console_router};
use salvo::http::header::CONTENT_SECURITY_POLICY;
use salvo::prelude::*;
use salvo::test::TestClient;

const UPLOADS: PluginManifest = PluginManifest {
    description: "A storage backend handing the browser direct upload URLs",
    ..PluginManifest::new("com.example.uploads", "Uploads", "0.1.0")
};

/// What a storage plugin with direct uploads would do in `init`; the second origin is refused.
#[derive(Debug)]
struct Uploads;

#[async_trait]
impl Plugin for Uploads {
    fn manifest(&self) -> &PluginManifest {
        &UPLOADS
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.contribute(ConnectOrigin::new("https://uploads.example.com/bucket"))?;
        cx.contribute(ConnectOrigin::new("https://x.example; script-src *"))?;
        Ok(())
    }
}

#[tokio::test]
async fn contributed_origins_reach_connect_src_after_start() {
    let shell = WebShellPlugin::default();
    let policy = shell.policy().clone();
    let kernel = Kernel::builder()
        .plugin(DataPlugin::new(DataConfig {
            database_url: "sqlite::memory:".into(),
            include_base: false,
            max_connections: 1,
            ..DataConfig::default()
        }))
        .plugin(HttpPlugin::new(HttpConfig {
            listen: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        }))
        .plugin(Uploads)
        .plugin(shell)
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started(), "{report:?}");
    let svc = Service::new(Router::with_path("console").push(console_router("ObjectOS", policy)));
    let res = TestClient::get("http://127.0.0.1/console/")
        .send(&svc)
        .await;
    let expected = CONSOLE_CSP.replace(
        "connect-src 'self'",
        "connect-src 'self' https://uploads.example.com",
    );
    assert_eq!(res.headers()[CONTENT_SECURITY_POLICY], expected.as_str());
    kernel.shutdown().await;
}
