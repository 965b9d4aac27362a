//! Capability enforcement: services and event topics a manifest does not declare are refused with exact messages.

use std::sync::Arc;

use objectos_kernel::{Kernel, PluginError, PluginHandle, PluginManifest};
use objectos_spec::manifest::capabilities::{EVENTS_PUBLISH, EVENTS_SUBSCRIBE};

use crate::support::{Log, Man, TestPlugin};

/// Boots `x` (with `m`) next to a provider of `cache` and `data`, and returns `x`'s handle.
async fn boot_with(
    m: PluginManifest,
    on_init: Option<crate::support::InitFn>,
) -> (Kernel, PluginHandle) {
    let log = Log::default();
    let provider = TestPlugin::new(
        Man::new("com.acme.store", "1.0.0")
            .provides(&["cache", "data"])
            .build(),
        &log,
    )
    .on_init(|cx| {
        cx.register::<String>("cache", Arc::new("cache".to_owned()))?;
        cx.register::<u32>("data", Arc::new(1))
    });
    let mut x = TestPlugin::new(m, &log);
    x.on_init = on_init;
    let slot = x.handle_slot();
    let kernel = Kernel::builder()
        .plugin(provider)
        .plugin(x)
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started(), "{report:?}");
    let handle = slot.lock().clone().unwrap();
    (kernel, handle)
}

fn capability_text(e: PluginError) -> String {
    assert!(matches!(e, PluginError::Capability { .. }), "{e}");
    e.to_string()
}

#[tokio::test]
async fn undeclared_service_lookup_is_refused() {
    let (_k, h) = boot_with(
        Man::new("com.acme.x", "1.0.0").requires(&["data"]).build(),
        None,
    )
    .await;
    assert_eq!(*h.get_named::<u32>("data").unwrap(), 1);
    assert_eq!(*h.get::<u32>().unwrap(), 1);
    let expected = "plugin `com.acme.x` may not look up service `cache`: add \"cache\" to its manifest `requires`";
    assert_eq!(
        capability_text(h.get_named::<String>("cache").unwrap_err()),
        expected
    );
    // A typed lookup maps the type to its service name and applies the same rule.
    assert_eq!(capability_text(h.get::<String>().unwrap_err()), expected);
    let PluginError::Capability {
        plugin,
        what,
        missing_declaration,
    } = h.get::<String>().unwrap_err()
    else {
        unreachable!()
    };
    assert_eq!(
        (plugin.as_str(), what.as_str()),
        ("com.acme.x", "look up service `cache`")
    );
    assert_eq!(
        missing_declaration,
        "add \"cache\" to its manifest `requires`"
    );
}

#[tokio::test]
async fn undeclared_event_publish_is_refused() {
    let m = Man::new("com.acme.x", "1.0.0")
        .permissions(&[EVENTS_PUBLISH])
        .emits(&["data.*.created"])
        .build();
    let (_k, h) = boot_with(m, None).await;
    h.publish(h.event("data.account.created", serde_json::json!({})))
        .await
        .unwrap();
    let err = h
        .publish(h.event("data.account.deleted", serde_json::json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        capability_text(err),
        "plugin `com.acme.x` may not publish event `data.account.deleted`: add \"data.account.deleted\" (or a pattern matching it) to its manifest `emits`"
    );
    let err = h
        .publish_sync(&h.event("audit.written", serde_json::json!({})))
        .unwrap_err();
    assert!(matches!(err, PluginError::Capability { .. }));
}

#[tokio::test]
async fn publishing_needs_the_permission() {
    let m = Man::new("com.acme.x", "1.0.0").emits(&["data.**"]).build();
    let (_k, h) = boot_with(m, None).await;
    let err = h
        .try_publish(h.event("data.account.created", serde_json::json!({})))
        .unwrap_err();
    assert_eq!(
        capability_text(err),
        "plugin `com.acme.x` may not publish event `data.account.created`: add \"events.publish\" to its manifest `permissions`"
    );
}

#[tokio::test]
async fn undeclared_subscription_is_refused() {
    let outcome = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let out = outcome.clone();
    let m = Man::new("com.acme.x", "1.0.0")
        .permissions(&[EVENTS_SUBSCRIBE])
        .subscribes(&["data.**"])
        .build();
    let init: crate::support::InitFn = Box::new(move |cx| {
        // Covered by `data.**`.
        cx.subscribe_sync("data.*.created", |_| Ok(()))?;
        out.lock().push(
            cx.subscribe_sync("auth.login", |_| Ok(()))
                .unwrap_err()
                .to_string(),
        );
        out.lock().push(
            cx.subscribe_sync("data", |_| Ok(()))
                .unwrap_err()
                .to_string(),
        );
        Ok(())
    });
    let (_k, _h) = boot_with(m, Some(init)).await;
    assert_eq!(
        *outcome.lock(),
        [
            "plugin `com.acme.x` may not subscribe to `auth.login`: add \"auth.login\" (or a pattern covering it) to its manifest `subscribes`",
            "plugin `com.acme.x` may not subscribe to `data`: add \"data\" (or a pattern covering it) to its manifest `subscribes`",
        ]
    );
}

#[tokio::test]
async fn subscribing_needs_the_permission_and_registering_needs_provides() {
    let outcome = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let out = outcome.clone();
    let m = Man::new("com.acme.x", "1.0.0")
        .subscribes(&["data.**"])
        .build();
    let init: crate::support::InitFn = Box::new(move |cx| {
        out.lock().push(
            cx.subscribe_sync("data.x", |_| Ok(()))
                .unwrap_err()
                .to_string(),
        );
        out.lock().push(
            cx.register::<u8>("queue", Arc::new(1))
                .unwrap_err()
                .to_string(),
        );
        Ok(())
    });
    let (_k, _h) = boot_with(m, Some(init)).await;
    assert_eq!(
        *outcome.lock(),
        [
            "plugin `com.acme.x` may not subscribe to `data.x`: add \"events.subscribe\" to its manifest `permissions`",
            "plugin `com.acme.x` may not register service `queue`: add \"queue\" to its manifest `provides`",
        ]
    );
}

#[tokio::test]
async fn invalid_event_names_are_refused() {
    let m = Man::new("com.acme.x", "1.0.0")
        .permissions(&[EVENTS_PUBLISH])
        .emits(&["data.*"])
        .build();
    let (_k, h) = boot_with(m, None).await;
    let err = h
        .publish(h.event("data.Bad", serde_json::json!(null)))
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Event { .. }), "{err}");
}
