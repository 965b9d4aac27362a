//! `cargo xtask json-schema [--check]`: writes the spec types' JSON Schemas to `docs/schemas/`, or checks they are current.
//!
//! Editors and CI validate metadata against these files; the `#[test]` below fails when a spec type
//! changed without regenerating them, so the published schemas never drift from the code.

use std::path::PathBuf;

use crate::project_root;

fn schema_dir() -> PathBuf {
    project_root().join("docs/schemas")
}

/// Every schema as (file name, pretty JSON text with a trailing newline).
fn rendered() -> anyhow::Result<Vec<(String, String)>> {
    objectos_spec::schema::json_schemas()
        .into_iter()
        .map(|(name, schema)| {
            Ok((
                format!("{name}.json"),
                serde_json::to_string_pretty(&schema)? + "\n",
            ))
        })
        .collect()
}

/// Files that are missing or differ from what the code generates.
fn stale() -> anyhow::Result<Vec<String>> {
    let dir = schema_dir();
    let mut out = Vec::new();
    for (file, text) in rendered()? {
        let current = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        if current != text {
            out.push(file);
        }
    }
    Ok(out)
}

pub(crate) fn run(check: bool) -> anyhow::Result<bool> {
    if check {
        let stale = stale()?;
        for f in &stale {
            println!(
                "docs/schemas/{f}: out of date; run `cargo xtask json-schema` and commit the result"
            );
        }
        if stale.is_empty() {
            println!("json-schema: up to date");
        }
        return Ok(stale.is_empty());
    }
    let dir = schema_dir();
    std::fs::create_dir_all(&dir)?;
    let files = rendered()?;
    for (file, text) in &files {
        std::fs::write(dir.join(file), text)?;
    }
    println!(
        "json-schema: wrote {} schema(s) to docs/schemas/",
        files.len()
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_schemas_are_current() {
        let stale = stale().unwrap();
        assert!(
            stale.is_empty(),
            "out of date under docs/schemas (run `cargo xtask json-schema`): {stale:?}"
        );
    }
}
