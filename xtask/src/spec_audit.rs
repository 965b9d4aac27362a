//! `cargo xtask spec-audit [PATH...]`: every compiled-in plugin manifest and every metadata file checked against the spec.
//!
//! Output is one line per problem, `file:line: yaml.path: what is wrong and what is expected`, then a summary.
//! The exit status is non-zero when any error was found; `--json` prints the whole report for machines.

use std::path::{Path, PathBuf};

use objectos_spec::PluginManifest;
use objectos_spec::audit::{AuditReport, Auditor};

use crate::{display_path, project_root, walk_files};

/// Plugin manifests compiled into the `objectos` binary with its default features (every plugin).
pub(crate) fn compiled_manifests() -> Vec<&'static PluginManifest> {
    objectos_server::compiled_manifests()
}

pub(crate) fn run(paths: &[PathBuf], json: bool, only: bool) -> anyhow::Result<bool> {
    let report = audit(paths, only)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        for d in &report.diagnostics {
            println!("{d}");
        }
        println!(
            "spec-audit: {} file(s), {} object(s), {} manifest(s): {} error(s), {} warning(s)",
            report.files_checked,
            report.objects,
            compiled_manifests().len(),
            report.error_count(),
            report.warning_count()
        );
    }
    Ok(report.error_count() == 0)
}

/// Audits presets/ and the plugin crates' shipped metadata (unless `only`), plus `paths`.
pub(crate) fn audit(paths: &[PathBuf], only: bool) -> anyhow::Result<AuditReport> {
    let root = project_root();
    let mut roots: Vec<PathBuf> = Vec::new();
    if !only {
        roots.push(root.join("presets"));
        roots.push(root.join("crates"));
    }
    for p in paths {
        if !p.exists() {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
        roots.push(p.clone());
    }
    let mut auditor = Auditor::new();
    let mut seen = std::collections::BTreeSet::new();
    // What the compiled-in plugins own: their embedded objects are audited like files, the
    // files of their metadata kinds by the plugins' own parsers.
    let schemas = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(objectos_server::compiled_plugin_schemas())?;
    let mut kind_files = Vec::new();
    for r in &roots {
        if !r.exists() {
            continue;
        }
        let explicit = paths.iter().any(|p| p == r);
        for file in walk_files(r)? {
            let name = display_path(&file);
            // Test fixtures are deliberately broken; they are audited by their own tests.
            if !explicit && is_fixture(&file) {
                continue;
            }
            let of_kind = objectos_data::PluginSchema::kind_of(&schemas, &name).is_some();
            let auditable = objectos_spec::audit::is_auditable(&name);
            if !(auditable || of_kind) || !seen.insert(file.clone()) {
                continue;
            }
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{name}: cannot read: {e}"))?;
            // A compiled-in plugin's embedded object is audited once, as the plugin's (below,
            // `audit_plugin_objects`); read again as a file it would clash with itself.
            let embedded = !explicit
                && schemas.iter().any(|s| {
                    s.objects()
                        .iter()
                        .any(|(path, body)| name.ends_with(&format!("/{path}")) && *body == text)
                });
            if embedded {
                continue;
            }
            if auditable {
                auditor.add_file(&name, &text);
            } else {
                kind_files.push((name, text));
            }
        }
    }
    if !only {
        for m in compiled_manifests() {
            auditor.add_manifest(m);
        }
        objectos_server::audit_plugin_objects(&mut auditor, &schemas);
    }
    let mut report = auditor.finish();
    objectos_server::audit_plugin_kinds(&mut report, &kind_files, &schemas);
    // Strings the translation bundles miss, per locale: warnings.
    for r in roots.iter().filter(|r| r.exists()) {
        objectos_server::audit_translations(&mut report, r);
    }
    Ok(report)
}

fn is_fixture(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "tests")
}

fn report_json(report: &AuditReport) -> serde_json::Value {
    serde_json::json!({
        "filesChecked": report.files_checked,
        "objects": report.objects,
        "errors": report.error_count(),
        "warnings": report.warning_count(),
        "diagnostics": report.diagnostics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_metadata_passes_the_audit() {
        let report = audit(&[], false).unwrap();
        let errors: Vec<String> = report
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "spec-audit errors:\n{}",
            errors.join("\n")
        );
        assert!(report.files_checked > 0, "presets/ should contain metadata");
    }

    #[test]
    fn broken_fixtures_fail_the_audit() {
        let dir = project_root().join("crates/objectos-spec/tests/data/audit/invalid");
        let report = audit(&[dir], true).unwrap();
        assert!(report.error_count() > 0);
        // Every broken fixture file is named by at least one diagnostic.
        let files =
            walk_files(&project_root().join("crates/objectos-spec/tests/data/audit/invalid"))
                .unwrap();
        for f in files
            .iter()
            .filter(|f| objectos_spec::audit::is_auditable(&display_path(f)))
        {
            let name = display_path(f);
            assert!(
                report.diagnostics.iter().any(|d| d.file == name),
                "{name} produced no diagnostic"
            );
        }
    }

    #[test]
    fn valid_fixtures_pass_the_audit() {
        let dir = project_root().join("crates/objectos-spec/tests/data/audit/valid");
        let report = audit(&[dir], true).unwrap();
        assert_eq!(report.error_count(), 0, "{:#?}", report.diagnostics);
    }
}
