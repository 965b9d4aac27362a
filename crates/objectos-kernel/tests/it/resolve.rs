//! Dependency resolution: order, stable ties, cycles, missing and mismatched dependencies, duplicates, services.

use objectos_kernel::{EdgeKind, Kernel, KernelError, PluginManifest, resolve};

use crate::support::{Log, Man, TestPlugin};

fn ids(ms: &[PluginManifest], order: &[usize]) -> Vec<&'static str> {
    order.iter().map(|&i| ms[i].id).collect()
}

fn resolve_all(ms: &[PluginManifest]) -> Result<Vec<&'static str>, KernelError> {
    let refs: Vec<&PluginManifest> = ms.iter().collect();
    resolve(&refs).map(|plan| ids(ms, &plan.order))
}

fn problems(ms: &[PluginManifest]) -> Vec<String> {
    let err = resolve_all(ms).unwrap_err();
    assert!(matches!(err, KernelError::Resolution { .. }));
    err.problems().iter().map(ToString::to_string).collect()
}

#[test]
fn dependencies_start_first() {
    let ms = [
        Man::new("c", "1.0.0").dep("b", "^1").build(),
        Man::new("b", "1.2.0").dep("a", ">=0.1").build(),
        Man::new("a", "0.3.0").build(),
    ];
    assert_eq!(resolve_all(&ms).unwrap(), ["a", "b", "c"]);
}

#[test]
fn ties_keep_registration_order() {
    let ms = [
        Man::new("a", "1.0.0").build(),
        Man::new("b", "1.0.0").dep("d", "^1").build(),
        Man::new("c", "1.0.0").build(),
        Man::new("d", "1.0.0").build(),
        Man::new("e", "1.0.0").build(),
    ];
    assert_eq!(resolve_all(&ms).unwrap(), ["a", "c", "d", "b", "e"]);
    let ms = [
        Man::new("z", "1.0.0").build(),
        Man::new("y", "1.0.0").build(),
        Man::new("x", "1.0.0").build(),
    ];
    assert_eq!(resolve_all(&ms).unwrap(), ["z", "y", "x"]);
}

#[test]
fn required_services_order_after_their_provider() {
    let ms = [
        Man::new("app", "1.0.0").requires(&["cache"]).build(),
        Man::new("redis", "1.0.0").provides(&["cache"]).build(),
    ];
    assert_eq!(resolve_all(&ms).unwrap(), ["redis", "app"]);
    let refs: Vec<&PluginManifest> = ms.iter().collect();
    let plan = resolve(&refs).unwrap();
    assert_eq!(
        plan.edges[0][0].kind,
        EdgeKind::Service {
            name: "cache".into()
        }
    );
}

#[test]
fn a_plugin_may_require_what_it_provides() {
    let ms = [Man::new("a", "1.0.0")
        .provides(&["data"])
        .requires(&["data"])
        .build()];
    assert_eq!(resolve_all(&ms).unwrap(), ["a"]);
}

#[test]
fn cycle_reports_its_path() {
    let ms = [
        Man::new("a", "1.0.0").dep("b", "*").build(),
        Man::new("b", "1.0.0").dep("c", "*").build(),
        Man::new("c", "1.0.0").dep("a", "*").build(),
        Man::new("d", "1.0.0").build(),
    ];
    let err = resolve_all(&ms).unwrap_err();
    let [KernelError::Cycle { path }] = err.problems() else {
        panic!("{err}")
    };
    assert_eq!(path, &["a", "b", "c", "a"]);
    assert_eq!(
        err.problems()[0].to_string(),
        "dependency cycle: a -> b -> c -> a; remove one of these dependencies (or `requires` entries) to break the cycle"
    );
}

#[test]
fn self_dependency_and_two_cycles_are_all_reported() {
    let ms = [
        Man::new("a", "1.0.0").dep("a", "*").build(),
        Man::new("b", "1.0.0").dep("c", "*").build(),
        Man::new("c", "1.0.0").dep("b", "*").build(),
    ];
    assert_eq!(
        problems(&ms),
        [
            "dependency cycle: a -> a; remove one of these dependencies (or `requires` entries) to break the cycle",
            "dependency cycle: b -> c -> b; remove one of these dependencies (or `requires` entries) to break the cycle",
        ]
    );
}

#[test]
fn cycle_through_a_required_service() {
    let ms = [
        Man::new("a", "1.0.0")
            .provides(&["cache"])
            .dep("b", "*")
            .build(),
        Man::new("b", "1.0.0").requires(&["cache"]).build(),
    ];
    let err = resolve_all(&ms).unwrap_err();
    assert!(
        matches!(&err.problems()[0], KernelError::Cycle { path } if path == &["a", "b", "a"]),
        "{err}"
    );
}

#[test]
fn missing_dependency_names_both_and_the_fix() {
    let ms = [Man::new("a", "1.0.0").dep("b", "^1.0").build()];
    assert_eq!(
        problems(&ms),
        [
            "plugin `a` requires `b` ^1.0 but no plugin `b` is registered; add it to the kernel or remove the dependency"
        ]
    );
}

#[test]
fn missing_optional_dependency_is_fine_and_present_one_orders() {
    let ms = [Man::new("a", "1.0.0").opt_dep("metrics", "^1").build()];
    assert_eq!(resolve_all(&ms).unwrap(), ["a"]);
    let ms = [
        Man::new("a", "1.0.0").opt_dep("m", "^1").build(),
        Man::new("m", "1.4.0").build(),
    ];
    assert_eq!(resolve_all(&ms).unwrap(), ["m", "a"]);
}

#[test]
fn optional_services_order_when_provided_and_are_fine_when_absent() {
    let ms = [Man::new("auth", "1.0.0")
        .optional_requires(&["notification"])
        .build()];
    assert_eq!(resolve_all(&ms).unwrap(), ["auth"]);
    let ms = [
        Man::new("auth", "1.0.0")
            .optional_requires(&["notification"])
            .build(),
        Man::new("mail", "1.0.0")
            .provides(&["notification"])
            .build(),
    ];
    assert_eq!(resolve_all(&ms).unwrap(), ["mail", "auth"]);
}

#[tokio::test]
async fn a_failed_optional_provider_skips_nobody_and_lookups_are_allowed() {
    let log = Log::default();
    let user = TestPlugin::new(
        Man::new("auth", "1.0.0")
            .optional_requires(&["notification"])
            .build(),
        &log,
    );
    let slot = user.handle_slot();
    let kernel = Kernel::builder()
        .plugin(user)
        .plugin(
            TestPlugin::new(
                Man::new("mail", "1.0.0")
                    .provides(&["notification"])
                    .build(),
                &log,
            )
            .fail_init(),
        )
        .build()
        .unwrap();
    let plan = objectos_kernel::resolve(&[
        &Man::new("auth", "1.0.0")
            .optional_requires(&["notification"])
            .build(),
        &Man::new("mail", "1.0.0")
            .provides(&["notification"])
            .build(),
    ])
    .unwrap();
    assert!(matches!(
        &plan.edges[0][..],
        [e] if matches!(&e.kind, EdgeKind::OptionalService { name } if name == "notification") && !e.is_hard()
    ));
    let report = kernel.boot().await.unwrap();
    assert!(report.plugins.iter().any(|p| p.id == "auth" && p.success));
    let handle = slot.lock().clone().unwrap();
    // Declared, so the lookup is allowed; the provider failed, so there is nothing to find.
    let err = handle.get_named::<String>("notification").unwrap_err();
    assert!(
        !matches!(err, objectos_kernel::PluginError::Capability { .. }),
        "{err}"
    );
    kernel.shutdown().await;
}

/// jobs -> (looks up `auth` at request time) and auth -> notification -> jobs: as a `requires`
/// (or `optional_requires`) entry the lookup closes a cycle; as `lazy_requires` it orders
/// nothing, boots, and the lookup made after start finds the service.
#[tokio::test]
async fn lazy_services_order_nothing_and_resolve_after_start() {
    let jobs = || Man::new("jobs", "1.0.0").provides(&["job"]);
    let notification = || {
        Man::new("notification", "1.0.0")
            .provides(&["notification"])
            .requires(&["job"])
    };
    let auth = || {
        Man::new("auth", "1.0.0")
            .provides(&["auth"])
            .requires(&["notification"])
    };
    let as_optional = [
        jobs().optional_requires(&["auth"]).build(),
        notification().build(),
        auth().build(),
    ];
    assert!(
        problems(&as_optional)
            .iter()
            .any(|p| p.starts_with("dependency cycle")),
        "{:?}",
        problems(&as_optional)
    );
    let lazy = [
        jobs().lazy_requires(&["auth"]).build(),
        notification().build(),
        auth().build(),
    ];
    assert_eq!(
        resolve_all(&lazy).unwrap(),
        ["jobs", "notification", "auth"]
    );
    let refs: Vec<&PluginManifest> = lazy.iter().collect();
    assert!(resolve(&refs).unwrap().edges[0].is_empty());

    let log = Log::default();
    let jobs = TestPlugin::new(lazy[0], &log)
        .on_init(|cx| cx.register::<String>("job", std::sync::Arc::new("queue".to_owned())));
    let slot = jobs.handle_slot();
    let kernel = Kernel::builder()
        .plugin(jobs)
        .plugin(TestPlugin::new(lazy[1], &log).on_init(|cx| {
            cx.register::<String>("notification", std::sync::Arc::new("mail".to_owned()))
        }))
        .plugin(TestPlugin::new(lazy[2], &log).on_init(|cx| {
            cx.register::<String>("auth", std::sync::Arc::new("directory".to_owned()))
        }))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started(), "{report:?}");
    assert_eq!(
        log.entries()
            .iter()
            .filter(|e| e.starts_with("start:"))
            .collect::<Vec<_>>(),
        ["start:jobs", "start:notification", "start:auth"]
    );
    let handle = slot.lock().clone().unwrap();
    // What a request handler of `jobs` does once everything runs.
    assert_eq!(*handle.get_named::<String>("auth").unwrap(), "directory");
    // Still only declared names: an undeclared lookup is refused.
    assert!(matches!(
        handle.get_named::<String>("notification").unwrap_err(),
        objectos_kernel::PluginError::Capability { .. }
    ));
    kernel.shutdown().await;
}

/// A lazily looked-up service nobody provides is no resolution problem, and the lookup is a
/// clean error (allowed, not found), not a panic.
#[tokio::test]
async fn a_missing_lazy_service_is_a_clean_lookup_error() {
    let m = Man::new("jobs", "1.0.0").lazy_requires(&["auth"]).build();
    assert_eq!(resolve_all(&[m]).unwrap(), ["jobs"]);
    let log = Log::default();
    let jobs = TestPlugin::new(m, &log);
    let slot = jobs.handle_slot();
    let kernel = Kernel::builder().plugin(jobs).build().unwrap();
    assert!(kernel.boot().await.unwrap().all_started());
    let handle = slot.lock().clone().unwrap();
    let err = handle.get_named::<String>("auth").unwrap_err();
    assert!(
        matches!(err, objectos_kernel::PluginError::Service { .. }),
        "{err}"
    );
    kernel.shutdown().await;
}

#[test]
fn version_mismatch() {
    let ms = [
        Man::new("a", "1.0.0").dep("b", "^2").build(),
        Man::new("b", "1.2.0").build(),
    ];
    let err = resolve_all(&ms).unwrap_err();
    let [
        KernelError::VersionMismatch {
            plugin,
            dependency,
            required,
            found,
        },
    ] = err.problems()
    else {
        panic!("{err}")
    };
    assert_eq!(
        (
            plugin.as_str(),
            dependency.as_str(),
            required.as_str(),
            found.as_str()
        ),
        ("a", "b", "^2", "1.2.0")
    );
    assert_eq!(
        err.problems()[0].to_string(),
        "plugin `a` requires `b` ^2 but `b` is version 1.2.0; use a version of `b` that matches ^2 or change the range in `a`'s manifest"
    );
}

#[test]
fn duplicate_plugin() {
    let ms = [
        Man::new("a", "1.0.0").build(),
        Man::new("a", "1.1.0").build(),
        Man::new("a", "1.2.0").build(),
    ];
    assert_eq!(
        problems(&ms),
        ["plugin `a` is registered more than once; register each plugin exactly once"]
    );
}

#[test]
fn missing_and_duplicate_services() {
    let ms = [
        Man::new("a", "1.0.0").requires(&["cache"]).build(),
        Man::new("b", "1.0.0").provides(&["data"]).build(),
        Man::new("c", "1.0.0").provides(&["data"]).build(),
    ];
    assert_eq!(
        problems(&ms),
        [
            "service `data` is provided by both `b` and `c`; keep only one provider in the kernel",
            "plugin `a` requires service `cache` but no registered plugin provides it; add a plugin whose manifest `provides` \"cache\" or remove \"cache\" from `a`'s `requires`",
        ]
    );
}

#[test]
fn invalid_versions_ranges_and_manifests() {
    let ms = [
        Man::new("a", "one").build(),
        Man::new("b", "1.0.0").dep("a", "^^1").build(),
        Man::new("Bad Id", "1.0.0").build(),
        Man::new("c", "1.0.0").emits(&["Data.Created"]).build(),
    ];
    let err = resolve_all(&ms).unwrap_err();
    let p = err.problems();
    assert_eq!(p.len(), 4, "{err}");
    assert!(matches!(&p[0], KernelError::InvalidVersion { plugin, .. } if plugin == "a"));
    assert!(matches!(
        &p[1],
        KernelError::InvalidManifest { field: "id", .. }
    ));
    assert!(matches!(
        &p[2],
        KernelError::InvalidManifest { field: "emits", .. }
    ));
    assert!(
        matches!(&p[3], KernelError::InvalidRange { plugin, range, .. } if plugin == "b" && range == "^^1")
    );
    assert!(p[0].to_string().contains("use MAJOR.MINOR.PATCH"));
}

#[test]
fn every_problem_is_collected() {
    let ms = [
        Man::new("dup", "1.0.0").build(),
        Man::new("dup", "1.0.0").build(),
        Man::new("needy", "1.0.0")
            .dep("ghost", "^1")
            .requires(&["queue"])
            .build(),
        Man::new("old", "0.1.0").build(),
        Man::new("picky", "1.0.0").dep("old", "^1").build(),
        Man::new("x", "1.0.0").dep("y", "*").build(),
        Man::new("y", "1.0.0").dep("x", "*").build(),
        Man::new("weird", "v1").build(),
    ];
    let err = resolve_all(&ms).unwrap_err();
    let kinds: Vec<&str> = err
        .problems()
        .iter()
        .map(|p| match p {
            KernelError::DuplicatePlugin { .. } => "duplicate",
            KernelError::MissingDependency { .. } => "missing",
            KernelError::MissingService { .. } => "service",
            KernelError::VersionMismatch { .. } => "version",
            KernelError::Cycle { .. } => "cycle",
            KernelError::InvalidVersion { .. } => "invalid",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "duplicate",
            "invalid",
            "missing",
            "service",
            "version",
            "cycle"
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("plugin resolution failed with 6 problems:\n  - plugin `dup`"),
        "{text}"
    );
}

#[test]
fn builder_reports_resolution_errors() {
    let log = Log::default();
    let err = Kernel::builder()
        .plugin(TestPlugin::new(
            Man::new("a", "1.0.0").dep("b", "^1").build(),
            &log,
        ))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err.problems()[0], KernelError::MissingDependency { dependency, .. } if dependency == "b")
    );
}
