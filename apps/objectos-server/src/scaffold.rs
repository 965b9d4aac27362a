//! `objectos new plugin NAME`: writes a compiling plugin crate at
//! `crates/plugins/objectos-NAME/` of a workspace (manifest, settings section, owned object,
//! metadata kind, route, event subscriber, integration test), wires it into the server behind
//! the feature `plugin-NAME`, and prints what is left to a reviewer. `docs/specs/plugin.md`
//! ("Writing a plugin") walks through the result.
//!
//! The templates are files under `templates/plugin/`, embedded in the binary with
//! `include_str!`, with `{{placeholder}}`s replaced by the forms of the name ([`PluginName`]);
//! plain string replacement is enough for them, so there is no template engine.
//!
//! Wiring means inserting lines into three shared files (the workspace `Cargo.toml`, the
//! server's `Cargo.toml` and `src/lib.rs`) at marker lines kept there for it (`wire.rs`): every
//! insertion is planned before anything is written, a missing marker or a file that already
//! names the plugin refuses the run, and the crate folder and the edits are written together or
//! not at all. What needs a reviewer's call (joining the `standard` profile, the codemap entry
//! in `ARCHITECTURE.md`, the service and event names in `objectos-spec`) is printed instead.
//! `--no-wire` writes the folder alone and prints the wiring too, for a workspace without the
//! server.

mod wire;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::output::outln;

/// `objectos new ...`.
#[derive(Debug, Clone, Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub command: NewCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum NewCommand {
    /// Write a plugin crate at crates/plugins/objectos-NAME (manifest, settings, object,
    /// metadata kind, route, subscriber, test) and wire it into the server behind the feature
    /// plugin-NAME.
    Plugin(NewPluginArgs),
}

#[derive(Debug, Clone, Args)]
pub struct NewPluginArgs {
    /// The plugin's name: lowercase letters and digits, words joined by `-` or `_`, starting with
    /// a letter (`invoice`, `price-list`).
    #[arg(value_name = "NAME", value_parser = check_name)]
    pub name: String,

    /// The workspace root: the folder whose Cargo.toml has the `[workspace]` section.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Write only the crate folder and print the edits that wire it in, instead of making them
    /// (for a workspace whose files have no `objectos-new-plugin:` marker lines).
    #[arg(long)]
    pub no_wire: bool,
}

/// Why nothing was generated.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("invalid plugin name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "{}: not a workspace root (no Cargo.toml with a [workspace] section); pass the root with --dir",
        .dir.display()
    )]
    NotAWorkspace { dir: PathBuf },
    #[error(
        "{} already exists; nothing was written (pick another name, or remove the folder first)",
        .dir.display()
    )]
    Exists { dir: PathBuf },
    #[error(
        "{}: {reason}; nothing was written (or pass --no-wire to write only the crate and print the wiring)",
        .path.display()
    )]
    CannotWire { path: PathBuf, reason: String },
    #[error(
        "{}: it already names {what}, so the plugin seems to exist; nothing was written (pick another name, or remove that wiring first)",
        .path.display()
    )]
    AlreadyWired { path: PathBuf, what: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Longest name accepted: the object's table and index names, built from it, stay well inside
/// PostgreSQL's 63-byte identifiers.
pub const MAX_NAME_LEN: usize = 30;

/// Names the core already uses for one of the things a plugin's name becomes: an `objectos.yml`
/// core key, a service or route of the data and HTTP plugins, a workspace crate
/// (`objectos-<name>`), a metadata kind or file suffix of the engine or a first-party plugin.
/// Compared in the `snake_case` form.
const RESERVED: &[&str] = &[
    // objectos.yml core keys and the core plugins' services and routes.
    "data",
    "http",
    "log",
    "listen",
    "mode",
    "metadata",
    "meta",
    "ui",
    "batch",
    "packages",
    "discovery",
    "docs",
    "openapi",
    "health",
    "ready",
    // Workspace crates outside crates/plugins.
    "spec",
    "kernel",
    "server",
    "testkit",
    "tests",
    "web_shell",
    // Metadata file suffixes of the engine and the permissions plugin.
    "object",
    "permission",
    "role",
    "sharing",
];

/// The forms of a plugin name, each where its rules need it (`my-thing` as the example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginName {
    /// As given: the crate (`objectos-my-thing`), its folder and the feature (`plugin-my-thing`).
    pub name: String,
    /// `my-thing`: the plugin id (`com.objectos.my-thing`: the spec audit allows no `_` in ids),
    /// the service and the route mount (`/api/v1/my-thing`).
    pub kebab: String,
    /// `my_thing`: the Rust crate (`objectos_my_thing`), the object (`my_thing_item`), the
    /// metadata kind (`*.my_thing.yml`) and the event (`my_thing.item.received`): identifiers.
    pub snake: String,
    /// `myThing`: the `objectos.yml` section, camelCase like the core keys.
    pub camel: String,
    /// `MyThing`: type names (`MyThingPlugin`, `MyThingSettings`).
    pub pascal: String,
    /// `My Thing`: labels and messages.
    pub title: String,
}

impl PluginName {
    /// Checks `name` and derives its forms.
    pub fn parse(name: &str) -> Result<Self, ScaffoldError> {
        let invalid = |reason: &str| ScaffoldError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let is_sep = |c: char| c == '-' || c == '_';
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(invalid("it must start with a lowercase letter (a-z)"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || is_sep(*c)))
        {
            return Err(invalid(&format!(
                "`{c}` is not allowed; use lowercase letters, digits, `-` and `_`"
            )));
        }
        if name.ends_with(is_sep) || has_double_separator(name) {
            return Err(invalid(
                "`-` and `_` only join words: not at the end, and not two in a row",
            ));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid(&format!(
                "it has {} characters; at most {MAX_NAME_LEN}",
                name.len()
            )));
        }
        let words: Vec<&str> = name.split(is_sep).collect();
        let snake = words.join("_");
        if RESERVED.contains(&snake.as_str()) {
            return Err(invalid(
                "the core already uses it (a configuration key, service, route, crate or metadata kind); pick a more specific name",
            ));
        }
        let capitalised: Vec<String> = words.iter().map(|w| capitalise(w)).collect();
        let pascal = capitalised.concat();
        let camel = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    (*w).to_owned()
                } else {
                    capitalise(w)
                }
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            kebab: words.join("-"),
            snake,
            camel,
            pascal,
            title: capitalised.join(" "),
        })
    }

    /// The package name, also the folder under `crates/plugins/`.
    pub fn package(&self) -> String {
        format!("objectos-{}", self.name)
    }

    /// The crate as Rust code names it.
    pub fn crate_ident(&self) -> String {
        format!("objectos_{}", self.snake)
    }

    /// Replaces every placeholder of a template.
    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{{name}}", &self.name)
            .replace("{{kebab}}", &self.kebab)
            .replace("{{snake}}", &self.snake)
            .replace("{{camel}}", &self.camel)
            .replace("{{Pascal}}", &self.pascal)
            .replace("{{title}}", &self.title)
    }
}

fn has_double_separator(name: &str) -> bool {
    name.as_bytes()
        .windows(2)
        .any(|w| matches!(w, [b'-' | b'_', b'-' | b'_']))
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The clap value parser of NAME, so a bad name is a usage error (exit code 2) with the reason.
pub fn check_name(name: &str) -> Result<String, String> {
    match PluginName::parse(name) {
        Ok(_) => Ok(name.to_owned()),
        Err(ScaffoldError::InvalidName { reason, .. }) => Err(reason),
        Err(other) => Err(other.to_string()),
    }
}

/// The templates: the path each is written to (placeholders allowed) and its text.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/plugin/Cargo.toml.tmpl"),
    ),
    ("README.md", include_str!("../templates/plugin/README.md")),
    ("src/lib.rs", include_str!("../templates/plugin/src/lib.rs")),
    (
        "src/config.rs",
        include_str!("../templates/plugin/src/config.rs"),
    ),
    (
        "src/schema.rs",
        include_str!("../templates/plugin/src/schema.rs"),
    ),
    (
        "src/event.rs",
        include_str!("../templates/plugin/src/event.rs"),
    ),
    (
        "src/routes.rs",
        include_str!("../templates/plugin/src/routes.rs"),
    ),
    (
        "src/plugin.rs",
        include_str!("../templates/plugin/src/plugin.rs"),
    ),
    (
        "objects/{{snake}}_item.object.yml",
        include_str!("../templates/plugin/objects/item.object.yml"),
    ),
    (
        "tests/it/main.rs",
        include_str!("../templates/plugin/tests/it/main.rs"),
    ),
];

/// Every file of the crate for `name`: its path relative to the crate folder, and its text.
pub fn render(name: &PluginName) -> Vec<(String, String)> {
    TEMPLATES
        .iter()
        .map(|(path, text)| (name.fill(path), name.fill(text)))
        .collect()
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub name: PluginName,
    /// The crate folder.
    pub dir: PathBuf,
    /// The files written, relative to [`Generated::dir`].
    pub files: Vec<String>,
    /// Whether the workspace's `members` already include `crates/plugins/*`.
    pub member_glob: bool,
    /// The shared files edited to wire the crate in, each with what was added (empty with
    /// `--no-wire`).
    pub wired: Vec<(String, Vec<String>)>,
}

/// Writes the crate for `name` into the workspace at `workspace` and, with `wire`, the lines
/// that compile it into the server; refuses a bad name, a folder that is not a workspace root,
/// an existing crate folder, a shared file without its marker or already naming the plugin,
/// writing nothing.
pub fn generate(workspace: &Path, name: &str, wire: bool) -> Result<Generated, ScaffoldError> {
    let name = PluginName::parse(name)?;
    let manifest_path = workspace.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap_or_default();
    if !manifest.lines().any(|l| l.trim() == "[workspace]") {
        return Err(ScaffoldError::NotAWorkspace {
            dir: workspace.to_path_buf(),
        });
    }
    let plugins = workspace.join("crates").join("plugins");
    let dir = plugins.join(name.package());
    if dir.symlink_metadata().is_ok() {
        return Err(ScaffoldError::Exists { dir });
    }
    let edits = if wire {
        wire::plan(workspace, &name)?
    } else {
        Vec::new()
    };
    let files = render(&name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    std::fs::create_dir_all(&plugins).map_err(io(&plugins))?;
    // `create_dir` fails when the folder appeared since the check above, so two runs cannot
    // write into one folder.
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::Exists { dir: dir.clone() },
        _ => ScaffoldError::Io {
            path: dir.clone(),
            source: e,
        },
    })?;
    if let Err(e) = write_all(&dir, &files).and_then(|()| wire::apply(&edits)) {
        // The folder is new and ours, and `apply` put back any file it replaced: removing the
        // folder leaves the workspace as it was.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(Generated {
        name,
        dir,
        files: files.into_iter().map(|(path, _)| path).collect(),
        member_glob: wire::members_glob(&manifest),
        wired: edits
            .into_iter()
            .map(|e| (e.file.to_owned(), e.added))
            .collect(),
    })
}

fn write_all(dir: &Path, files: &[(String, String)]) -> Result<(), ScaffoldError> {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// What the command did to the shared files and what is left, as text.
pub fn next_steps(g: &Generated) -> String {
    let n = &g.name;
    let package = n.package();
    let krate = n.crate_ident();
    let feature = format!("plugin-{}", n.name);
    let pascal = &n.pascal;
    let upper = n.snake.to_ascii_uppercase();
    let codemap = format!(
        "   ARCHITECTURE.md: add a codemap heading for it, ### `{package}`, with a paragraph on what
   it does (`cargo xtask deps`, also run as a test, fails until every workspace crate has one)."
    );
    let names = format!(
        "   crates/objectos-spec: add `pub const {upper}: &str = \"{kebab}\";` to manifest::services and
   its ALL (the spec audit flags unknown service names in `provides`, and discovery lists only
   those names), and before another crate subscribes, move `ItemReceived` with its name
   `{snake}.item.received` from src/event.rs to a module objectos_spec::event::{snake}.
   crates/objectos-http, routes/discovery.rs, route_of(): a line for {upper}, so discovery
   advertises the route /api/v1/{kebab} with the service.",
        kebab = n.kebab,
        snake = n.snake,
    );
    let check = format!(
        "       cargo nextest run -p {package}
       cargo clippy -p {package} --all-targets -- -D warnings
       cargo check -p objectos-server --features {feature}"
    );
    if !g.wired.is_empty() {
        let mut wired = String::new();
        for (file, added) in &g.wired {
            wired.push_str(&format!("  {file}: {}\n", added.join(", ")));
        }
        if g.member_glob {
            wired.push_str(
                "  (Cargo.toml: the workspace `members` already include \"crates/plugins/*\".)\n",
            );
        }
        return format!(
            "\
Wired it into the server behind the feature {feature}:
{wired}
Left to you (the words or the place are a reviewer's call; docs/specs/plugin.md,
\"Writing a plugin\", explains each):

1. Give it a codemap entry.
{codemap}

2. Ship it in the default build, if it should be: add \"{feature}\" to `standard` in
   apps/objectos-server/Cargo.toml (until then: --features {feature}).

3. Make its names known (spec 2.3 and 5.2):
{names}

4. Check it:
{check}
"
        );
    }
    let members = if g.member_glob {
        "   Cargo.toml: nothing to do, the workspace `members` already include \"crates/plugins/*\".".to_owned()
    } else {
        "   Cargo.toml: add \"crates/plugins/*\" to [workspace] `members` (and `default-members` if the workspace has them).".to_owned()
    };
    format!(
        "\
Next steps (with --no-wire the generator wrote only the new folder; docs/specs/plugin.md,
\"Writing a plugin\", explains each):

1. Make it a workspace crate.
{members}
{codemap}
   Cargo.toml, [workspace.dependencies]:
       {package} = {{ path = \"crates/plugins/{package}\" }}

2. Compile it into the server behind its feature: apps/objectos-server/Cargo.toml
   [features]       {feature} = [\"dep:{package}\"]
                    (and add \"{feature}\" to `standard` to ship it in the default build)
   [dependencies]   {package} = {{ workspace = true, optional = true }}

3. Start it: apps/objectos-server/src/lib.rs
   in compiled_plugins(), after the other plugins:
       #[cfg(feature = \"{feature}\")]
       out.push(CompiledPlugin {{
           manifest: &{krate}::MANIFEST,
           config: Some(&{krate}::CONFIG_SECTION),
       }});
   in kernel_with_plugins(), before the loop over config_sections():
       #[cfg(feature = \"{feature}\")]
       let kernel = kernel.plugin({krate}::{pascal}Plugin::default());

4. Make its names known (spec 2.3 and 5.2):
{names}

5. Check it:
{check}
"
    )
}

/// Runs `objectos new ...` from `cwd`.
pub fn run(args: &NewArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    match &args.command {
        NewCommand::Plugin(p) => {
            // Without `.` segments, so the paths in messages read plainly.
            let workspace: PathBuf = cwd.join(&p.dir).components().collect();
            let g = generate(&workspace, &p.name, !p.no_wire)?;
            let shown = g.dir.strip_prefix(cwd).unwrap_or(&g.dir);
            outln!(
                "Created {} (plugin com.objectos.{}):",
                shown.display(),
                g.name.kebab
            )?;
            for file in &g.files {
                outln!("  {file}")?;
            }
            outln!("\n{}", next_steps(&g))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_their_forms_derived() {
        let n = PluginName::parse("price-list_2").unwrap();
        assert_eq!(
            (
                n.kebab.as_str(),
                n.snake.as_str(),
                n.camel.as_str(),
                n.pascal.as_str(),
                n.title.as_str()
            ),
            (
                "price-list-2",
                "price_list_2",
                "priceList2",
                "PriceList2",
                "Price List 2"
            )
        );
        assert_eq!(n.package(), "objectos-price-list_2");
        for ok in ["demo", "a", "invoice2", "my-thing", "my_thing"] {
            assert!(PluginName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Demo",
            "1demo",
            "-demo",
            "_demo",
            "demo-",
            "de--mo",
            "de-_mo",
            "de mo",
            "de.mo",
            "démo",
            "data",
            "web-shell",
            "role",
        ] {
            assert!(
                matches!(
                    PluginName::parse(bad),
                    Err(ScaffoldError::InvalidName { .. })
                ),
                "{bad}"
            );
        }
        assert!(PluginName::parse(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(PluginName::parse(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn every_template_is_filled_and_every_rust_file_documented() {
        let n = PluginName::parse("my-thing").unwrap();
        let files = render(&n);
        assert_eq!(files.len(), TEMPLATES.len());
        for (path, text) in &files {
            // A placeholder with a typo would survive the replacements.
            assert!(
                !text.contains("{{") && !text.contains("}}") && !path.contains('{'),
                "{path}"
            );
            if path.ends_with(".rs") {
                assert!(text.starts_with("//!"), "{path}");
            }
        }
        let text = |p: &str| {
            files
                .iter()
                .find(|(path, _)| path == p)
                .map(|(_, t)| t.as_str())
                .unwrap_or_default()
        };
        assert!(text("Cargo.toml").contains("name = \"objectos-my-thing\""));
        assert!(text("src/lib.rs").contains("\"com.objectos.my-thing\""));
        assert!(
            text("src/lib.rs").contains("ConfigSection::of::<MyThingSettings>(\n    \"myThing\",")
        );
        assert!(
            text("src/schema.rs").contains("include_str!(\"../objects/my_thing_item.object.yml\")")
        );
        assert!(text("objects/my_thing_item.object.yml").contains("name: my_thing_item"));
        assert!(text("tests/it/main.rs").contains("use objectos_my_thing::"));
    }
}
