//! `objectos new plugin NAME`: the files it writes into a workspace, the lines it inserts into
//! the repository's own shared files (copied into a temporary workspace), the steps it prints,
//! and what it refuses (bad names, a folder that is not a workspace root, an existing crate
//! folder, a missing marker, a plugin already wired) without writing anything. Compiling a
//! generated crate takes minutes, so `generated_crate_compiles_and_passes_its_tests` is ignored
//! unless asked for (docs/specs/plugin.md, "Checking it").

use std::path::{Path, PathBuf};

use crate::support::{objectos, run};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared files the generator edits, relative to a workspace root.
const WIRED: [&str; 3] = [
    "Cargo.toml",
    "apps/objectos-server/Cargo.toml",
    "apps/objectos-server/src/lib.rs",
];

/// A workspace with the repository's own copies of the files the generator reads and edits.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in WIRED {
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(rel), to).unwrap();
    }
    dir
}

/// The texts of the wired files under `root`.
fn wired_texts(root: &Path) -> Vec<String> {
    WIRED
        .iter()
        .map(|rel| std::fs::read_to_string(root.join(rel)).unwrap())
        .collect()
}

/// `after` is `before` with `block` inserted just above the line starting with `marker`.
fn inserted_above(before: &str, after: &str, block: &str, marker: &str) {
    let at = before
        .lines()
        .position(|l| l.trim_start().starts_with(marker))
        .unwrap_or_else(|| panic!("no marker {marker}"));
    let marker_line = before.lines().nth(at).unwrap();
    let indent: String = marker_line
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let mut expected: Vec<String> = before.lines().map(str::to_owned).collect();
    for (i, line) in block.lines().enumerate() {
        expected.insert(at + i, format!("{indent}{line}"));
    }
    assert_eq!(after.lines().collect::<Vec<_>>(), expected, "{marker}");
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
fn writes_the_plugin_crate_and_wires_it_into_the_server() {
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
    // Each shared file gained the plugin's lines above its marker, and nothing else.
    let before = wired_texts(&repo());
    let after = wired_texts(ws.path());
    inserted_above(
        &before[0],
        &after[0],
        "objectos-demo = { path = \"crates/plugins/objectos-demo\" }",
        "# objectos-new-plugin: workspace-dependencies",
    );
    let server_toml = before[1].replace(
        "# objectos-new-plugin: features",
        "plugin-demo = [\"dep:objectos-demo\"]\n# objectos-new-plugin: features",
    );
    inserted_above(
        &server_toml,
        &after[1],
        "objectos-demo = { workspace = true, optional = true }",
        "# objectos-new-plugin: dependencies",
    );
    let lib = before[2].replace(
        "    // objectos-new-plugin: kernel-plugins",
        "    #[cfg(feature = \"plugin-demo\")]\n    let kernel = kernel.plugin(objectos_demo::DemoPlugin::default());\n    // objectos-new-plugin: kernel-plugins",
    );
    inserted_above(
        &lib,
        &after[2],
        "#[cfg(feature = \"plugin-demo\")]\nout.push(CompiledPlugin {\n    manifest: &objectos_demo::MANIFEST,\n    config: Some(&objectos_demo::CONFIG_SECTION),\n});",
        "// objectos-new-plugin: compiled-plugins",
    );
    // The output lists the files, what was wired and what is left, with the names filled in.
    assert!(
        out.contains("Created crates/plugins/objectos-demo (plugin com.objectos.demo)"),
        "{out}"
    );
    for needle in [
        "Wired it into the server behind the feature plugin-demo:",
        "  Cargo.toml: [workspace.dependencies] entry objectos-demo",
        "  apps/objectos-server/Cargo.toml: feature plugin-demo, optional dependency objectos-demo",
        "  apps/objectos-server/src/lib.rs: its entry in compiled_plugins(), its instance in kernel_with_plugins()",
        "already include \"crates/plugins/*\"",
        "### `objectos-demo`",
        "add \"plugin-demo\" to `standard`",
        "pub const DEMO: &str = \"demo\";",
        "routes/discovery.rs, route_of()",
        "cargo nextest run -p objectos-demo",
        "cargo check -p objectos-server --features plugin-demo",
    ] {
        assert!(out.contains(needle), "{needle} in\n{out}");
    }

    // A second plugin goes below the first, still above the markers.
    let (code, _, err) = run(objectos(ws.path()).args(["new", "plugin", "price-list"]));
    assert_eq!(code, 0, "{err}");
    let lib = wired_texts(ws.path()).remove(2);
    let first = lib.find("objectos_demo::DemoPlugin").unwrap();
    let second = lib.find("objectos_price_list::PriceListPlugin").unwrap();
    let marker = lib.find("// objectos-new-plugin: kernel-plugins").unwrap();
    assert!(first < second && second < marker, "{lib}");
}

#[test]
fn a_missing_marker_or_a_wired_plugin_is_refused_and_nothing_is_written() {
    let ws = workspace();
    let lib = ws.path().join(WIRED[2]);
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        text.replace("// objectos-new-plugin: compiled-plugins", "// moved away"),
    )
    .unwrap();
    let before = wired_texts(ws.path());
    let (code, _, err) = run(objectos(ws.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("apps/objectos-server/src/lib.rs: no line starts with `// objectos-new-plugin: compiled-plugins`")
            && err.contains("nothing was written")
            && err.contains("--no-wire"),
        "{err}"
    );
    assert!(!ws.path().join("crates").exists());
    assert_eq!(wired_texts(ws.path()), before);

    // Wired earlier (its folder since removed, its lines still there): refused.
    std::fs::write(&lib, text).unwrap();
    let (code, _, err) = run(objectos(ws.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(ws.path().join("crates/plugins/objectos-demo")).unwrap();
    let before = wired_texts(ws.path());
    let (code, _, err) = run(objectos(ws.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Cargo.toml: it already names objectos-demo, so the plugin seems to exist; nothing was written"),
        "{err}"
    );
    assert!(!ws.path().join("crates/plugins/objectos-demo").exists());
    assert_eq!(wired_texts(ws.path()), before);
}

#[test]
fn a_failed_write_puts_everything_back() {
    let ws = workspace();
    let before = wired_texts(ws.path());
    // The server's lib.rs is written last: a folder where its new text would be staged makes
    // that write fail after the two manifests' new texts were staged.
    let blocker = ws
        .path()
        .join("apps/objectos-server/src/.lib.rs.objectos-new-plugin");
    std::fs::create_dir(&blocker).unwrap();
    let (code, _, err) = run(objectos(ws.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(".lib.rs.objectos-new-plugin"), "{err}");
    assert!(!ws.path().join("crates/plugins/objectos-demo").exists());
    assert_eq!(wired_texts(ws.path()), before);
    for staged in [
        ".Cargo.toml.objectos-new-plugin",
        "apps/objectos-server/.Cargo.toml.objectos-new-plugin",
    ] {
        assert!(!ws.path().join(staged).exists(), "{staged}");
    }
}

#[test]
fn a_workspace_without_the_members_glob_gets_a_member_line() {
    let ws = workspace();
    let root = ws.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&root).unwrap();
    let members = text
        .lines()
        .find(|l| l.starts_with("members = "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &root,
        // The first occurrence: `default-members` below lists the same.
        text.replacen(
            &members,
            "members = [\n    \"crates/objectos-*\",\n    # objectos-new-plugin: members\n]",
            1,
        ),
    )
    .unwrap();
    let (code, out, err) = run(objectos(ws.path()).args(["new", "plugin", "demo"]));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&root).unwrap();
    assert!(
        text.contains(
            "    \"crates/plugins/objectos-demo\",\n    # objectos-new-plugin: members\n"
        ),
        "{text}"
    );
    assert!(
        out.contains("workspace member \"crates/plugins/objectos-demo\", [workspace.dependencies] entry objectos-demo"),
        "{out}"
    );
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
        out.contains("<NAME>") && out.contains("--dir <DIR>") && out.contains("--no-wire"),
        "{out}"
    );
}

#[test]
fn no_wire_writes_only_the_crate_and_prints_every_step() {
    let ws = tempfile::tempdir().unwrap();
    let root = ws.path().join("repo");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crates/*\"]\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(ws.path()).args([
        "new",
        "plugin",
        "price-list_2",
        "--dir",
        "repo",
        "--no-wire",
    ]));
    assert_eq!(code, 0, "{err}");
    let dir = root.join("crates/plugins/objectos-price-list_2");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("\"com.objectos.price-list-2\""), "{lib}");
    assert!(dir.join("objects/price_list_2_item.object.yml").is_file());
    assert_eq!(
        std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
        "[workspace]\nmembers = [\"crates/*\"]\n"
    );
    for needle in [
        "add \"crates/plugins/*\" to [workspace] `members`",
        "objectos-price-list_2 = { path = \"crates/plugins/objectos-price-list_2\" }",
        "plugin-price-list_2 = [\"dep:objectos-price-list_2\"]",
        "objectos-price-list_2 = { workspace = true, optional = true }",
        "config: Some(&objectos_price_list_2::CONFIG_SECTION)",
        "kernel.plugin(objectos_price_list_2::PriceList2Plugin::default())",
        "cargo nextest run -p objectos-price-list_2",
    ] {
        assert!(out.contains(needle), "{needle} in\n{out}");
    }
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

/// Writes into the empty folder `ws` a workspace with the repository's workspace settings, lock
/// file and lint configuration, whose `members` are `members`: every `path` in its manifest
/// points back into the repository, except those of `local` (folders copied into it), which
/// stay relative.
fn linked_workspace(ws: &Path, members: &str, local: &[&str]) {
    let repo = repo().canonicalize().unwrap();
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap();
    let manifest: String = manifest
        .lines()
        .filter(|l| !l.starts_with("default-members = "))
        .map(|l| {
            if l.starts_with("members = ") {
                format!("members = {members}")
            } else if local
                .iter()
                .any(|dir| l.contains(&format!("{{ path = \"{dir}\"")))
            {
                l.to_owned()
            } else {
                l.replace("{ path = \"", &format!("{{ path = \"{}/", repo.display()))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(ws.join("Cargo.toml"), manifest).unwrap();
    // The lock file keeps the versions the repository builds with (so its builds are reused);
    // clippy.toml lets tests unwrap, as in the repository.
    for file in ["Cargo.lock", "clippy.toml", "rustfmt.toml"] {
        std::fs::copy(repo.join(file), ws.join(file)).unwrap();
    }
    for dir in local {
        copy_dir(&repo.join(dir), &ws.join(dir));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The repository's target folder: `CARGO_TARGET_DIR` when set (as in CI and `/work/env.sh`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from)
}

/// Runs cargo in `ws` with the repository's target folder, so what the repository built
/// already is reused.
fn cargo(ws: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(&cargo);
    // The variables cargo sets for this test (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...) go: a
    // build script that tracks one (ring tracks `CARGO_MANIFEST_DIR`) would see it differ from
    // the builds made outside a test, run again, and everything above it would be checked again.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&key)
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(ws)
        .status()
        .unwrap();
    assert!(status.success(), "cargo {args:?} failed");
}

/// The generated crate builds, passes clippy and its own tests, in a temporary workspace that
/// takes the repository's workspace settings and reaches its crates by path. Minutes on a cold
/// target folder, so run on demand:
/// `cargo nextest run -p objectos-server --run-ignored only -E 'test(generated_crate)'`.
#[test]
#[ignore = "builds a generated crate and its dependencies (minutes); run on demand"]
fn generated_crate_compiles_and_passes_its_tests() {
    let ws = tempfile::tempdir().unwrap();
    linked_workspace(ws.path(), "[\"crates/plugins/*\"]", &[]);
    let (code, _, err) = run(objectos(ws.path()).args(["new", "plugin", "demo", "--no-wire"]));
    assert_eq!(code, 0, "{err}");
    cargo(
        ws.path(),
        &[
            "clippy",
            "-p",
            "objectos-demo",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
    cargo(ws.path(), &["test", "-p", "objectos-demo"]);
}

/// What `objectos new plugin` wires in compiles: a copy of the server in a workspace that
/// reaches the repository's other crates by path gets a plugin generated and wired through the
/// marker lines (root and server manifests, `lib.rs`), then the server is checked with the
/// plugin's feature on top of its default profile. A marker moved to a place where the inserted
/// lines do not compile (outside `compiled_plugins()`, say) fails here, not in a user's hands.
///
/// The workspace is a fixed folder in the target folder, rewritten each run: the same paths
/// give the copied server and the generated crate the same package ids every time, so a run
/// replaces the last run's artifacts of the two instead of adding new ones. With the
/// repository's crates checked already it checks only those two; CI runs it as its own step
/// (`cargo nextest run -p objectos-server --run-ignored only -E 'test(generated_plugin_)'`).
#[test]
#[ignore = "runs cargo check on a copy of the server (about a minute with the workspace checked, minutes cold); CI runs it as its own step"]
fn generated_plugin_wires_into_a_compiling_server() {
    let server = "apps/objectos-server";
    let ws = target_dir().join("objectos-new-plugin-check");
    if ws.exists() {
        std::fs::remove_dir_all(&ws).unwrap();
    }
    std::fs::create_dir_all(&ws).unwrap();
    linked_workspace(
        &ws,
        &format!("[\"crates/plugins/*\", \"{server}\"]"),
        &[server],
    );
    let (code, out, err) = run(objectos(&ws).args(["new", "plugin", "demo"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Wired it into the server behind the feature plugin-demo:"),
        "{out}"
    );
    let lib = std::fs::read_to_string(ws.join(server).join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("objectos_demo::DemoPlugin::default()"),
        "{lib}"
    );
    cargo(
        &ws,
        &[
            "check",
            "-p",
            "objectos-server",
            "--features",
            "plugin-demo",
        ],
    );
}
