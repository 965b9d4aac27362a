//! `objectos new plugin NAME`: the files it writes into a workspace, the steps it prints, and
//! what it refuses (bad names, a folder that is not a workspace root, an existing crate folder)
//! without writing anything. Compiling a generated crate takes minutes, so that check is run by
//! hand (docs/specs/plugin.md, "Writing a plugin"), not here.

use std::path::Path;

use crate::support::{objectos, run};

/// A workspace root like the repository's, as far as the generator looks at it.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"crates/objectos-*\", \"crates/plugins/*\"]\n",
    )
    .unwrap();
    dir
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn writes_the_plugin_crate_and_prints_the_wiring() {
    let ws = workspace();
    let (code, out, err) = run(objectos(ws.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 0, "{err}");
    let dir = ws.path().join("crates/plugins/objectos-demo");
    assert_eq!(
        files(&dir),
        [
            "Cargo.toml",
            "README.md",
            "objects/demo_item.object.yml",
            "src/config.rs",
            "src/event.rs",
            "src/lib.rs",
            "src/plugin.rs",
            "src/routes.rs",
            "src/schema.rs",
            "tests/it/main.rs",
        ]
    );
    let read = |rel: &str| std::fs::read_to_string(dir.join(rel)).unwrap();
    let cargo = read("Cargo.toml");
    assert!(cargo.contains("name = \"objectos-demo\""), "{cargo}");
    assert!(
        cargo.contains("objectos-testkit.workspace = true"),
        "{cargo}"
    );
    assert!(cargo.contains("[lints]\nworkspace = true"), "{cargo}");
    let lib = read("src/lib.rs");
    assert!(lib.starts_with("//!"), "{lib}");
    for needle in [
        "pub const PLUGIN_ID: &str = \"com.objectos.demo\";",
        "pub const MANIFEST: PluginManifest",
        "provides: &[SERVICE]",
        "requires: &[services::DATA, services::METADATA]",
        "emits: &[ITEM_RECEIVED]",
    ] {
        assert!(lib.contains(needle), "{needle} in\n{lib}");
    }
    assert!(
        lib.contains("ConfigSection::of::<DemoSettings>(\n    \"demo\","),
        "{lib}"
    );
    let schema = read("src/schema.rs");
    assert!(
        schema.contains("include_str!(\"../objects/demo_item.object.yml\")"),
        "{schema}"
    );
    assert!(
        schema.contains("pub struct DemoDefinition")
            && schema.contains("MetadataKind::typed(KIND, KIND, name_of, validate)"),
        "{schema}"
    );
    assert!(read("src/routes.rs").contains("pub const MOUNT: &str = \"demo\";"));
    assert!(read("src/event.rs").contains("\"data.demo_item.created\""));
    assert!(read("objects/demo_item.object.yml").contains("name: demo_item"));
    for (rel, text) in files(&dir).iter().map(|f| (f, read(f))) {
        assert!(!text.contains("{{"), "a placeholder is left in {rel}");
        if rel.ends_with(".rs") {
            assert!(text.starts_with("//!"), "{rel}");
        }
    }
    // The output lists the files and every wiring step, with the names filled in.
    assert!(
        out.contains("Created crates/plugins/objectos-demo (plugin com.objectos.demo)"),
        "{out}"
    );
    for needle in [
        "already include \"crates/plugins/*\"",
        "objectos-demo = { path = \"crates/plugins/objectos-demo\" }",
        "plugin-demo = [\"dep:objectos-demo\"]",
        "objectos-demo = { workspace = true, optional = true }",
        "config: Some(&objectos_demo::CONFIG_SECTION)",
        "kernel.plugin(objectos_demo::DemoPlugin::default())",
        "pub const DEMO: &str = \"demo\";",
        "routes/discovery.rs, route_of()",
        "cargo nextest run -p objectos-demo",
    ] {
        assert!(out.contains(needle), "{needle} in\n{out}");
    }
}

#[test]
fn help_lists_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(objectos(dir.path()).arg("--help"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("new ") && l.contains("new plugin NAME")),
        "{out}"
    );
    let (code, out, err) = run(objectos(dir.path()).args(["new", "plugin", "--help"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("<NAME>") && out.contains("--dir <DIR>"),
        "{out}"
    );
}

#[test]
fn dir_names_the_workspace_and_a_missing_member_glob_is_a_step() {
    let ws = tempfile::tempdir().unwrap();
    let root = ws.path().join("repo");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crates/*\"]\n",
    )
    .unwrap();
    let (code, out, err) =
        run(objectos(ws.path()).args(["new", "plugin", "price-list_2", "--dir", "repo"]));
    assert_eq!(code, 0, "{err}");
    let dir = root.join("crates/plugins/objectos-price-list_2");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("\"com.objectos.price-list-2\""), "{lib}");
    assert!(dir.join("objects/price_list_2_item.object.yml").is_file());
    assert!(
        out.contains("add \"crates/plugins/*\" to [workspace] `members`"),
        "{out}"
    );
}

#[test]
fn bad_names_are_usage_errors_and_write_nothing() {
    let ws = workspace();
    for bad in ["Demo", "1demo", "demo-", "de--mo", "de.mo", "data", "-x"] {
        let (code, _, err) = run(objectos(ws.path()).args(["new", "plugin", "--", bad]));
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains(&format!("invalid value '{bad}'")),
            "{bad}: {err}"
        );
    }
    let (_, _, err) = run(objectos(ws.path()).args(["new", "plugin", "--", "data"]));
    assert!(err.contains("the core already uses it"), "{err}");
    assert!(!ws.path().join("crates").exists());
}

#[test]
fn an_existing_crate_folder_or_a_non_workspace_is_refused() {
    let ws = workspace();
    let dir = ws.path().join("crates/plugins/objectos-demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "# mine\n").unwrap();
    let (code, out, err) = run(objectos(ws.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("already exists; nothing was written"), "{err}");
    assert_eq!(files(&dir), ["Cargo.toml"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
        "# mine\n"
    );

    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let (code, _, err) = run(objectos(plain.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 1);
    assert!(err.contains("not a workspace root"), "{err}");
    assert!(!plain.path().join("crates").exists());
}
