//! `cargo xtask deps`: the dependency rules of design.md section 3, checked from `cargo metadata`.
//!
//! The rules, in short: spec is a leaf; the kernel knows only spec; plugins never depend on each other;
//! only `apps/objectos-server` names plugin crates (each optional, behind `plugin-<name>`);
//! the testkit is a dev-dependency only; plugins name no database driver or ORM (they go through
//! objectos-data); and every workspace crate has a heading in ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::path::Path;

use cargo_metadata::{DependencyKind, MetadataCommand, Package};

use crate::project_root;

/// The role a workspace crate plays, derived from where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Spec,
    Kernel,
    Data,
    Http,
    WebShell,
    Testkit,
    Plugin,
    Server,
    /// xtask and the cross-plugin test package: tooling, not shipped.
    Tooling,
    Unknown,
}

/// External crates the two foundation crates must never depend on: they know neither HTTP nor SQL.
const HTTP_OR_SQL: &[&str] = &[
    "salvo",
    "salvo_core",
    "salvo-oapi",
    "hyper",
    "axum",
    "tower-http",
    "reqwest",
    "sea-orm",
    "sea-query",
    "sqlx",
    "rusqlite",
    "tokio-postgres",
];

/// Database drivers and ORMs: only the data crate (and the testkit, for test schemas) names them,
/// so the storage layer stays one crate's to change.
const DATABASE_DRIVERS: &[&str] = &[
    "sea-orm",
    "sea-query",
    "sqlx",
    "rusqlite",
    "tokio-postgres",
    "postgres",
];

fn role_of(pkg: &Package, root: &Path) -> Role {
    let dir = pkg
        .manifest_path
        .parent()
        .map(|p| p.as_std_path().to_path_buf())
        .unwrap_or_default();
    let rel = dir
        .strip_prefix(root)
        .unwrap_or(&dir)
        .to_string_lossy()
        .replace('\\', "/");
    match rel.as_str() {
        "crates/objectos-spec" => Role::Spec,
        "crates/objectos-kernel" => Role::Kernel,
        "crates/objectos-data" => Role::Data,
        "crates/objectos-http" => Role::Http,
        "crates/objectos-web-shell" => Role::WebShell,
        "crates/objectos-testkit" => Role::Testkit,
        "apps/objectos-server" => Role::Server,
        "xtask" | "tests" => Role::Tooling,
        r if r.starts_with("tests/") => Role::Tooling,
        r if r.starts_with("crates/plugins/") => Role::Plugin,
        _ => Role::Unknown,
    }
}

/// Workspace crates a crate of `role` may depend on (normal and build dependencies).
fn allowed(role: Role, dep: Role) -> bool {
    use Role::*;
    match (role, dep) {
        (_, Testkit) => false, // Checked separately with a better message.
        (Spec, _) => false,
        (Kernel, Spec) => true,
        (Data, Spec | Kernel) => true,
        (Http, Spec | Kernel | Data) => true,
        (WebShell, Spec | Kernel | Http) => true,
        (Plugin, Spec | Kernel | Data | Http) => true,
        // The test kernel boots the data and HTTP plugins; only tests link it (checked below).
        (Testkit, Spec | Kernel | Data | Http) => true,
        (Server, _) => true,
        (Tooling, Plugin) => false,
        (Tooling, _) => true,
        _ => false,
    }
}

pub(crate) fn run() -> anyhow::Result<bool> {
    let problems = check()?;
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("deps: ok");
    } else {
        println!("deps: {} problem(s)", problems.len());
    }
    Ok(problems.is_empty())
}

pub(crate) fn check() -> anyhow::Result<Vec<String>> {
    let root = project_root();
    let meta = MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()?;
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    let members: BTreeMap<String, Role> = meta
        .workspace_packages()
        .into_iter()
        .map(|p| (p.name.to_string(), role_of(p, &root)))
        .collect();

    let mut problems = Vec::new();
    for pkg in meta.workspace_packages() {
        let name = pkg.name.to_string();
        let role = role_of(pkg, &root);
        if role == Role::Unknown {
            problems.push(format!(
                "{name}: lives at an unexpected place ({}); put libraries under crates/, plugins under crates/plugins/, binaries under apps/",
                pkg.manifest_path
            ));
        }
        if !has_codemap_heading(&architecture, &name) {
            problems.push(format!(
                "{name}: ARCHITECTURE.md has no codemap heading for it; add `### {name}` with what it holds and its invariants"
            ));
        }
        for dep in &pkg.dependencies {
            let dep_name = dep.name.as_str();
            let is_dev = dep.kind == DependencyKind::Development;
            if matches!(role, Role::Spec | Role::Kernel)
                && !is_dev
                && HTTP_OR_SQL.contains(&dep_name)
            {
                problems.push(format!(
                    "{name}: depends on `{dep_name}`, but spec and kernel know neither HTTP nor SQL; move that code to objectos-http or objectos-data"
                ));
            }
            if role == Role::Plugin && DATABASE_DRIVERS.contains(&dep_name) {
                problems.push(format!(
                    "{name}: {}depends on `{dep_name}`; plugins reach the database only through objectos-data (`objectos_data::store` for statements, `PluginSchema` for tables; tests use objectos-testkit)",
                    if is_dev { "dev-" } else { "" }
                ));
            }
            let Some(&dep_role) = members.get(dep_name) else {
                continue;
            };
            if dep_role == Role::Testkit && !is_dev {
                problems.push(format!(
                    "{name}: depends on `{dep_name}` as a normal dependency; the testkit is dev-only, move it to [dev-dependencies]"
                ));
                continue;
            }
            if is_dev {
                // Dev-dependencies may reach the testkit and anything below the crate, but never a plugin from a plugin.
                if role == Role::Plugin && dep_role == Role::Plugin {
                    problems.push(format!(
                        "{name}: dev-depends on plugin `{dep_name}`; plugins never depend on each other, test the pair in tests/ instead"
                    ));
                }
                continue;
            }
            if role == Role::Server && dep_role == Role::Plugin {
                if !dep.optional {
                    problems.push(format!(
                        "{name}: plugin `{dep_name}` must be `optional = true` behind a `plugin-<name>` feature"
                    ));
                }
                let feature = format!("plugin-{}", dep_name.trim_start_matches("objectos-"));
                if !pkg.features.contains_key(&feature) {
                    problems.push(format!(
                        "{name}: plugin `{dep_name}` has no feature `{feature}`; add `{feature} = [\"dep:{dep_name}\"]`"
                    ));
                }
                continue;
            }
            if !allowed(role, dep_role) {
                let why = match (role, dep_role) {
                    (Role::Plugin, Role::Plugin) => "plugins never depend on each other; share a contract trait through the ServiceRegistry or an event on the EventBus".to_owned(),
                    (_, Role::Plugin) => "only apps/objectos-server names plugin crates".to_owned(),
                    (Role::Spec, _) => "objectos-spec is a leaf and depends on no workspace crate".to_owned(),
                    (Role::Kernel, _) => "objectos-kernel depends only on objectos-spec".to_owned(),
                    _ => format!("a {role:?} crate may not depend on a {dep_role:?} crate (design.md section 3)"),
                };
                problems.push(format!("{name}: depends on `{dep_name}`: {why}"));
            }
        }
    }
    Ok(problems)
}

/// True when ARCHITECTURE.md has a `###` heading naming the crate (with or without backticks).
fn has_codemap_heading(architecture: &str, crate_name: &str) -> bool {
    architecture.lines().any(|l| {
        l.starts_with("### ")
            && l.trim_start_matches('#')
                .trim()
                .trim_matches('`')
                .split([' ', '`', ',', '/'])
                .any(|w| w == crate_name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_follows_dependency_rules() {
        let problems = check().unwrap();
        assert!(
            problems.is_empty(),
            "dependency rule violations:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn role_matrix() {
        assert!(!allowed(Role::Spec, Role::Kernel));
        assert!(allowed(Role::Kernel, Role::Spec));
        assert!(!allowed(Role::Kernel, Role::Data));
        assert!(allowed(Role::Plugin, Role::Http));
        assert!(!allowed(Role::Plugin, Role::Plugin));
        assert!(!allowed(Role::Http, Role::Plugin));
        assert!(!allowed(Role::Data, Role::Testkit));
    }

    #[test]
    fn codemap_heading_detection() {
        let doc =
            "# A\n### `objectos-kernel`\ntext objectos-spec\n### objectos-data, objectos-http\n";
        assert!(has_codemap_heading(doc, "objectos-kernel"));
        assert!(has_codemap_heading(doc, "objectos-http"));
        assert!(!has_codemap_heading(doc, "objectos-spec"));
    }
}
