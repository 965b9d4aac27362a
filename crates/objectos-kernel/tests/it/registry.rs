//! Service registry: typed and named lookup, contributions, freezing.

use std::sync::Arc;

use objectos_kernel::{Kernel, KernelError, ServiceRegistry};

use crate::support::{Log, Man, TestPlugin};

trait Greeter: Send + Sync {
    fn greet(&self) -> String;
}

struct English;
impl Greeter for English {
    fn greet(&self) -> String {
        "hello".into()
    }
}

struct French;
impl Greeter for French {
    fn greet(&self) -> String {
        "bonjour".into()
    }
}

#[derive(Debug, PartialEq)]
struct Route(&'static str);

#[test]
fn typed_and_named_lookup_after_freeze() {
    let reg = ServiceRegistry::new();
    reg.register::<dyn Greeter>("p", "i18n", Arc::new(English))
        .unwrap();
    reg.register::<u64>("p", "metrics", Arc::new(7)).unwrap();
    assert!(matches!(
        reg.get::<dyn Greeter>(),
        Err(KernelError::RegistryNotReady { .. })
    ));
    reg.freeze();
    assert_eq!(reg.get::<dyn Greeter>().unwrap().greet(), "hello");
    assert_eq!(
        reg.get_named::<dyn Greeter>("i18n").unwrap().greet(),
        "hello"
    );
    assert_eq!(*reg.get::<u64>().unwrap(), 7);
    let (name, _) = reg.get_entry::<dyn Greeter>().unwrap();
    assert_eq!(name, "i18n");
}

#[test]
fn lookup_errors_name_the_problem() {
    let reg = ServiceRegistry::new();
    reg.register::<dyn Greeter>("a", "i18n", Arc::new(English))
        .unwrap();
    reg.register::<dyn Greeter>("b", "ui", Arc::new(French))
        .unwrap();
    let dup = reg.register::<u8>("c", "ui", Arc::new(1)).unwrap_err();
    assert_eq!(
        dup.to_string(),
        "service `ui` is registered twice, by `b` and by `c`; each service has one provider"
    );
    reg.freeze();
    let amb = reg.get::<dyn Greeter>().err().unwrap();
    assert!(
        matches!(&amb, KernelError::AmbiguousService { names, .. } if names == &["i18n", "ui"])
    );
    assert_eq!(
        reg.get_named::<dyn Greeter>("ui").unwrap().greet(),
        "bonjour"
    );
    let mismatch = reg.get_named::<u8>("ui").unwrap_err();
    assert!(
        matches!(
            mismatch,
            KernelError::ServiceTypeMismatch {
                requested: "u8",
                ..
            }
        ),
        "{mismatch}"
    );
    let missing = reg.get_named::<u8>("cache").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no service `cache` is registered; the plugin that provides it must register it in `init`"
    );
    assert!(matches!(
        reg.get::<String>(),
        Err(KernelError::ServiceNotFound { .. })
    ));
}

#[test]
fn contributions_keep_order_and_contributor() {
    let reg = ServiceRegistry::new();
    reg.contribute("auth", Route("/login")).unwrap();
    reg.contribute("audit", Route("/audit")).unwrap();
    reg.contribute("auth", 5u32).unwrap();
    reg.contribute("auth", Route("/logout")).unwrap();
    reg.remove_provider("nobody");
    reg.freeze();
    let routes = reg.contributions::<Route>().unwrap();
    let got: Vec<(&str, &Route)> = routes
        .iter()
        .map(|c| (c.plugin.as_str(), &c.value))
        .collect();
    assert_eq!(
        got,
        [
            ("auth", &Route("/login")),
            ("audit", &Route("/audit")),
            ("auth", &Route("/logout"))
        ]
    );
    assert_eq!(reg.contributions::<u32>().unwrap().len(), 1);
    assert!(reg.contributions::<i64>().unwrap().is_empty());
}

#[test]
fn removing_a_provider_drops_its_services_and_contributions() {
    let reg = ServiceRegistry::new();
    reg.register::<u8>("bad", "cache", Arc::new(1)).unwrap();
    reg.contribute("bad", Route("/x")).unwrap();
    reg.contribute("good", Route("/y")).unwrap();
    reg.remove_provider("bad");
    reg.freeze();
    assert!(reg.get_named::<u8>("cache").is_err());
    assert_eq!(reg.contributions::<Route>().unwrap().len(), 1);
}

#[tokio::test]
async fn registry_is_frozen_after_boot() {
    let log = Log::default();
    let slot_plugin = TestPlugin::new(
        Man::new("greeter", "1.0.0").provides(&["i18n"]).build(),
        &log,
    )
    .on_init(|cx| {
        cx.register::<dyn Greeter>("i18n", Arc::new(English))?;
        cx.contribute(Route("/hello"))
    });
    let user = TestPlugin::new(Man::new("user", "1.0.0").requires(&["i18n"]).build(), &log);
    let handle = user.handle_slot();
    let kernel = Kernel::builder()
        .plugin(user)
        .plugin(slot_plugin)
        .build()
        .unwrap();
    assert!(kernel.boot().await.unwrap().all_started());
    assert!(kernel.registry().is_frozen());

    let err = kernel
        .registry()
        .register::<u8>("late", "cache", Arc::new(1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `late` cannot register service `cache`: the service registry is frozen once every plugin has run `init`; register services and contributions in `init`"
    );
    assert!(matches!(
        kernel.registry().contribute("late", Route("/late")),
        Err(KernelError::RegistryFrozen { .. })
    ));

    let h = handle.lock().clone().unwrap();
    assert_eq!(h.get::<dyn Greeter>().unwrap().greet(), "hello");
    assert_eq!(h.get_named::<dyn Greeter>("i18n").unwrap().greet(), "hello");
    let routes = h.contributions::<Route>().unwrap();
    assert_eq!(routes[0].plugin, "greeter");
    assert_eq!(kernel.registry().services()[0].provider, "greeter");
}
