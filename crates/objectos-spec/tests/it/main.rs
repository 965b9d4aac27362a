//! Integration tests of objectos-spec: fixture snapshots, the loaders, robustness and schema export.

mod fixtures;
mod fuzz;
mod loader;
mod manifest;
mod schema;

use support::{audit, files_under, read, render};

/// Fixture helpers. In a `#[cfg(test)]` module so clippy allows them to unwrap, like test code.
#[cfg(test)]
mod support {
    use std::path::{Path, PathBuf};

    use objectos_spec::audit::{AuditReport, Auditor};

    /// `tests/data/audit`.
    pub(crate) fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/audit")
    }

    /// Every file under `dir`, as paths relative to [`data_dir`] with `/` separators, sorted.
    pub(crate) fn files_under(dir: &str) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let rel = path.strip_prefix(root).unwrap();
                    out.push(
                        rel.components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/"),
                    );
                }
            }
        }
        let root = data_dir();
        let mut out = Vec::new();
        walk(&root, &root.join(dir), &mut out);
        out.sort();
        out
    }

    pub(crate) fn read(rel: &str) -> String {
        std::fs::read_to_string(data_dir().join(rel)).unwrap()
    }

    /// Audits the given fixture files together; diagnostics name them by their path relative to [`data_dir`].
    pub(crate) fn audit(rel: &[&str]) -> AuditReport {
        let mut auditor = Auditor::new();
        for r in rel {
            auditor.add_file(r, &read(r));
        }
        auditor.finish()
    }

    /// One diagnostic per line, as `Display` renders them.
    pub(crate) fn render(report: &AuditReport) -> String {
        report
            .diagnostics
            .iter()
            .map(|d| format!("{d}\n"))
            .collect()
    }
}
