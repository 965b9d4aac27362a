//! Wiring a generated plugin into the workspace and the server: lines inserted at marker lines
//! of the shared files, planned for every file before any is written, then written together.
//!
//! Each place a new plugin goes is a line starting with a marker comment
//! (`# objectos-new-plugin: features`, `// objectos-new-plugin: compiled-plugins`, ...). The
//! plugin's lines go just above it, indented like it, so plugins stay in the order they were
//! created and the marker stays last. A marker rather than a search for the last plugin's lines,
//! because code that moved would then take the insertion somewhere wrong or half-way: a missing
//! (or doubled) marker refuses the run instead, as does a file that already names the plugin.

use std::path::{Path, PathBuf};

use super::{PluginName, ScaffoldError};

/// The root manifest's members glob that already covers every generated crate.
const MEMBER_GLOB: &str = "\"crates/plugins/*\"";

/// Whether the `members` array of the root manifest `text` lists [`MEMBER_GLOB`]
/// (`default-members` does not count).
pub(super) fn members_glob(text: &str) -> bool {
    let Some(start) = text.lines().position(|l| {
        l.trim_start()
            .strip_prefix("members")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    }) else {
        return false;
    };
    let array: Vec<&str> = text.lines().skip(start).collect();
    let array = array.join("\n");
    let end = array.find(']').unwrap_or(array.len());
    array[..end].contains(MEMBER_GLOB)
}

/// One shared file and its text before and after the insertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    /// Relative to the workspace root, `/`-separated.
    pub(super) file: &'static str,
    pub(super) path: PathBuf,
    before: String,
    after: String,
    /// What was inserted, in words (`feature plugin-demo`).
    pub(super) added: Vec<String>,
}

/// Lines to insert above one marker.
struct Insertion {
    marker: &'static str,
    what: String,
    lines: Vec<String>,
}

/// The edits that wire `name` in; an error, and nothing planned, when a file cannot be read,
/// lacks a marker or already names the plugin.
pub(super) fn plan(workspace: &Path, name: &PluginName) -> Result<Vec<Edit>, ScaffoldError> {
    let package = name.package();
    let krate = name.crate_ident();
    let feature = format!("plugin-{}", name.name);
    let member = format!("\"crates/plugins/{package}\"");

    let root = read(workspace, "Cargo.toml")?;
    let mut root_inserts = Vec::new();
    // The repository's `crates/plugins/*` glob makes the crate a member already; listing it too
    // would only add a line to keep in step.
    if !members_glob(&root) {
        root_inserts.push(Insertion {
            marker: "# objectos-new-plugin: members",
            what: format!("workspace member {member}"),
            lines: vec![format!("{member},")],
        });
    }
    root_inserts.push(Insertion {
        marker: "# objectos-new-plugin: workspace-dependencies",
        what: format!("[workspace.dependencies] entry {package}"),
        lines: vec![format!(
            "{package} = {{ path = \"crates/plugins/{package}\" }}"
        )],
    });
    let root_names = [
        format!("{package} ="),
        format!("{package}."),
        member.clone(),
    ];

    let server_toml = "apps/objectos-server/Cargo.toml";
    let server_inserts = vec![
        Insertion {
            marker: "# objectos-new-plugin: features",
            what: format!("feature {feature}"),
            lines: vec![format!("{feature} = [\"dep:{package}\"]")],
        },
        Insertion {
            marker: "# objectos-new-plugin: dependencies",
            what: format!("optional dependency {package}"),
            lines: vec![format!(
                "{package} = {{ workspace = true, optional = true }}"
            )],
        },
    ];
    let server_names = [
        format!("{feature} ="),
        format!("{package} ="),
        format!("{package}."),
    ];

    let server_lib = "apps/objectos-server/src/lib.rs";
    let cfg = format!("#[cfg(feature = \"{feature}\")]");
    let lib_inserts = vec![
        Insertion {
            marker: "// objectos-new-plugin: compiled-plugins",
            what: "its entry in compiled_plugins()".to_owned(),
            lines: vec![
                cfg.clone(),
                "out.push(CompiledPlugin {".to_owned(),
                format!("    manifest: &{krate}::MANIFEST,"),
                format!("    config: Some(&{krate}::CONFIG_SECTION),"),
                "});".to_owned(),
            ],
        },
        Insertion {
            marker: "// objectos-new-plugin: kernel-plugins",
            what: "its instance in kernel_with_plugins()".to_owned(),
            lines: vec![
                cfg,
                format!(
                    "let kernel = kernel.plugin({krate}::{}Plugin::default());",
                    name.pascal
                ),
            ],
        },
    ];
    let lib_names = [format!("\"{feature}\""), format!("{krate}::")];

    Ok(vec![
        edit(workspace, "Cargo.toml", root, &root_names, root_inserts)?,
        edit(
            workspace,
            server_toml,
            read(workspace, server_toml)?,
            &server_names,
            server_inserts,
        )?,
        edit(
            workspace,
            server_lib,
            read(workspace, server_lib)?,
            &lib_names,
            lib_inserts,
        )?,
    ])
}

fn read(workspace: &Path, file: &'static str) -> Result<String, ScaffoldError> {
    let path = workspace.join(file);
    std::fs::read_to_string(&path).map_err(|e| ScaffoldError::CannotWire {
        path,
        reason: format!("cannot read it ({e})"),
    })
}

/// Plans the insertions into one file's `text`, refusing when a line already names the plugin
/// (a line starting with one of `names` in a manifest, containing one in Rust code).
fn edit(
    workspace: &Path,
    file: &'static str,
    text: String,
    names: &[String],
    inserts: Vec<Insertion>,
) -> Result<Edit, ScaffoldError> {
    let path = workspace.join(file);
    let rust = file.ends_with(".rs");
    for line in text.lines() {
        let line = line.trim();
        // Comments may mention anything; `#[cfg(..)]` in Rust is code.
        if (line.starts_with('#') && !rust) || line.starts_with("//") {
            continue;
        }
        let named = names.iter().find(|n| {
            if rust {
                line.contains(n.as_str())
            } else {
                line.starts_with(n.as_str())
            }
        });
        if let Some(n) = named {
            return Err(ScaffoldError::AlreadyWired {
                path,
                what: n.trim_end_matches([' ', '=', '.']).to_owned(),
            });
        }
    }
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut after = text.clone();
    let mut added = Vec::new();
    for insert in inserts {
        let (at, indent) =
            marker_line(&after, insert.marker).map_err(|reason| ScaffoldError::CannotWire {
                path: path.clone(),
                reason,
            })?;
        let block: String = insert
            .lines
            .iter()
            .map(|l| format!("{indent}{l}{eol}"))
            .collect();
        after.insert_str(at, &block);
        added.push(insert.what);
    }
    Ok(Edit {
        file,
        path,
        before: text,
        after,
        added,
    })
}

/// The byte offset where the one line starting with `marker` starts, and its indentation. The
/// marker may be followed by words after a space (`... features (new plugins go above)`).
fn marker_line(text: &str, marker: &str) -> Result<(usize, String), String> {
    let mut found = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let marked = content
            .trim_start()
            .strip_prefix(marker)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '));
        if marked {
            let indent: String = content.chars().take_while(|c| c.is_whitespace()).collect();
            found.push((offset, indent));
        }
        offset += line.len();
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!(
            "no line starts with `{marker}` to mark where a new plugin goes; add one at that place"
        )),
        n => Err(format!(
            "{n} lines start with `{marker}`; keep exactly one, where a new plugin goes"
        )),
    }
}

/// Writes every edit, or none: each new text goes to a temporary file beside its target first,
/// then the temporaries replace the targets; a failure on the way puts back what was replaced
/// and removes the temporaries. A file changed since [`plan`] read it is refused.
pub(super) fn apply(edits: &[Edit]) -> Result<(), ScaffoldError> {
    let staged: Vec<PathBuf> = edits.iter().map(|e| temporary(&e.path)).collect();
    let remove = |tmps: &[PathBuf]| {
        for tmp in tmps {
            let _ = std::fs::remove_file(tmp);
        }
    };
    for (i, (edit, tmp)) in edits.iter().zip(&staged).enumerate() {
        if let Err(source) = std::fs::write(tmp, &edit.after) {
            remove(&staged[..=i]);
            return Err(ScaffoldError::Io {
                path: tmp.clone(),
                source,
            });
        }
    }
    for edit in edits {
        let now = std::fs::read_to_string(&edit.path).unwrap_or_default();
        if now != edit.before {
            remove(&staged);
            return Err(ScaffoldError::CannotWire {
                path: edit.path.clone(),
                reason: "it changed while the plugin was being generated; run the command again"
                    .to_owned(),
            });
        }
    }
    for (i, (edit, tmp)) in edits.iter().zip(&staged).enumerate() {
        if let Err(source) = std::fs::rename(tmp, &edit.path) {
            for done in &edits[..i] {
                let _ = std::fs::write(&done.path, &done.before);
            }
            remove(&staged[i..]);
            return Err(ScaffoldError::Io {
                path: edit.path.clone(),
                source,
            });
        }
    }
    Ok(())
}

/// `dir/.name.objectos-new-plugin`: beside the target, so the rename stays on one file system.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.objectos-new-plugin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_members_array_counts_for_the_glob() {
        assert!(members_glob(
            "[workspace]\nmembers = [\"crates/*\", \"crates/plugins/*\"]\n"
        ));
        assert!(members_glob("members = [\n  \"crates/plugins/*\",\n]\n"));
        assert!(!members_glob(
            "members = [\"crates/*\"]\ndefault-members = [\"crates/plugins/*\"]\n"
        ));
        assert!(!members_glob("[workspace]\n"));
    }

    #[test]
    fn a_marker_starts_its_line_once_and_gives_its_indentation() {
        let text = "a\n    // objectos-new-plugin: x\nb\n";
        assert_eq!(
            marker_line(text, "// objectos-new-plugin: x"),
            Ok((2, "    ".to_owned()))
        );
        assert_eq!(
            marker_line(
                "  # objectos-new-plugin: x (words)\n",
                "# objectos-new-plugin: x"
            ),
            Ok((0, "  ".to_owned()))
        );
        assert!(marker_line("# objectos-new-plugin: xy\n", "# objectos-new-plugin: x").is_err());
        assert!(
            marker_line("a // objectos-new-plugin: x\n", "// objectos-new-plugin: x")
                .unwrap_err()
                .starts_with("no line starts with")
        );
        let twice = "# objectos-new-plugin: y\n# objectos-new-plugin: y\n";
        assert!(
            marker_line(twice, "# objectos-new-plugin: y")
                .unwrap_err()
                .starts_with("2 lines start with")
        );
    }

    #[test]
    fn lines_go_above_the_marker_with_its_line_endings() {
        let name = PluginName::parse("demo").unwrap();
        let e = edit(
            Path::new("/ws"),
            "Cargo.toml",
            "[features]\r\n  # objectos-new-plugin: f\r\n".to_owned(),
            &[],
            vec![Insertion {
                marker: "# objectos-new-plugin: f",
                what: "feature".to_owned(),
                lines: vec![format!("plugin-{} = []", name.name)],
            }],
        )
        .unwrap();
        assert_eq!(
            e.after,
            "[features]\r\n  plugin-demo = []\r\n  # objectos-new-plugin: f\r\n"
        );
    }
}
