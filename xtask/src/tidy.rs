//! `cargo xtask tidy`: every `.rs` file starts with a `//!` line, and no `dbg!`, `todo!` or `unimplemented!` outside tests.

use std::path::Path;

use crate::{display_path, project_root, walk_files};

/// Macros that must not ship. Split so this file does not flag itself.
const FORBIDDEN: &[&str] = &[
    concat!("dbg", "!("),
    concat!("todo", "!("),
    concat!("unimplemented", "!("),
];

pub(crate) fn run() -> anyhow::Result<bool> {
    let problems = check(&project_root())?;
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("tidy: ok");
    } else {
        println!("tidy: {} problem(s)", problems.len());
    }
    Ok(problems.is_empty())
}

/// All tidy problems under `root`, one line each.
pub(crate) fn check(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for path in walk_files(root)? {
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        problems.extend(check_file(&display_path(&path), &text));
    }
    Ok(problems)
}

/// Problems of one file. Code under `tests/`, `benches/` or after a `#[cfg(test)]` line counts as test code.
pub(crate) fn check_file(name: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !text.starts_with("//!") {
        problems.push(format!(
            "{name}:1: file must start with a `//!` line saying what it is for"
        ));
    }
    let test_file =
        name.contains("/tests/") || name.contains("/benches/") || name.starts_with("tests/");
    if test_file {
        return problems;
    }
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        for needle in FORBIDDEN {
            if line.contains(needle) {
                let mac = needle.trim_end_matches('(');
                problems.push(format!(
                    "{name}:{}: `{mac}` outside tests; remove it before landing",
                    i + 1
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_is_tidy() {
        let problems = check(&project_root()).unwrap();
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn flags_missing_header_and_forbidden_macros() {
        let src = format!(
            "fn main() {{\n    {}1);\n}}\n#[cfg(test)]\nmod t {{ fn f() {{ {}2); }} }}\n",
            "dbg!(", "dbg!("
        );
        let problems = check_file("crates/x/src/lib.rs", &src);
        assert_eq!(
            problems,
            vec![
                "crates/x/src/lib.rs:1: file must start with a `//!` line saying what it is for"
                    .to_owned(),
                "crates/x/src/lib.rs:2: `dbg!` outside tests; remove it before landing".to_owned(),
            ]
        );
    }

    #[test]
    fn test_files_may_use_anything() {
        let src = format!("//! t\nfn f() {{ {}); }}\n", "todo!(");
        assert!(check_file("crates/x/tests/it/main.rs", &src).is_empty());
    }
}
