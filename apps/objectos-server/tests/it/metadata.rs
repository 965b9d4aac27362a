//! Metadata errors that point at their cause: `validate FILE` resolves against the file's
//! package, a syntax error comes first without its consequences, and `serve` refuses a misspelt key.

use crate::support::{objectos, run};

/// `presets/crm`, the example package, from this crate's folder.
fn crm() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../presets/crm")
}

#[test]
fn validate_one_file_resolves_references_in_its_package() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "objects/opportunity.object.yml",
        "permissions/sales_rep.permission.yml",
    ] {
        let path = crm().join(file);
        let (code, out, err) = run(objectos(dir.path()).arg("validate").arg(&path));
        assert_eq!(code, 0, "{file}: {out}{err}");
        assert!(!out.contains("no object named"), "{file}: {out}");
        assert!(out.contains("validate: 1 file(s)"), "{file}: {out}");
    }
    // Without a manifest, the files beside it are the context; their own problems are not
    // reported, and a reference nothing defines still is.
    let meta = dir.path().join("loose");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("deal.object.yml"),
        "name: deal\nfields:\n  account: { type: lookup, reference: account }\n  region: { type: lookup, reference: region }\n",
    )
    .unwrap();
    std::fs::write(
        meta.join("account.object.yml"),
        "name: account\nfields:\n  name: { type: textt }\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(dir.path())
        .arg("validate")
        .arg(meta.join("deal.object.yml")));
    assert_eq!(code, 1, "{out}{err}");
    let problems: Vec<&str> = out.lines().filter(|l| l.contains(".yml:")).collect();
    assert_eq!(problems.len(), 1, "{out}");
    assert!(
        problems[0]
            .contains("deal.object.yml:4: fields.region.reference: no object named `region`"),
        "{out}"
    );
}

#[test]
fn a_syntax_error_is_reported_first_without_follow_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("a_deal.object.yml"),
        "name: a_deal\nfields:\n  account: { type: lookup, reference: z_account }\n  title: { type: text, maxLength: -1 }\n",
    )
    .unwrap();
    std::fs::write(
        meta.join("z_account.object.yml"),
        "name: z_account\nfields:\n  name:\n    type: text\n   required: true\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(dir.path()).arg("validate").arg(&meta));
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with(
            "z_account.object.yml:5: YAML syntax error at column 4: this line does not line up with the keys above it; keys of one mapping start in the same column, and a `- item` cannot follow `key: value` lines at the same level; nothing else in this file was checked"
        ),
        "{out}"
    );
    assert!(!out.contains("no object named"), "{out}");
    assert!(
        out.contains("a_deal.object.yml:4: fields.title.maxLength"),
        "{out}"
    );

    // `serve` loads the same folder in the same order: the syntax error leads there too.
    let (code, _, err) = run(objectos(dir.path()).arg("serve").arg(&meta).args([
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "sqlite::memory:",
    ]));
    assert_eq!(code, 2, "{err}");
    let syntax = err.find("z_account.object.yml:5: YAML syntax error");
    let field = err.find("a_deal.object.yml:4: fields.title.maxLength");
    assert!(
        matches!((syntax, field), (Some(s), Some(f)) if s < f),
        "the syntax error must come first: {err}"
    );
}

#[test]
fn serve_refuses_a_misspelt_key_and_accepts_custom_keys() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("ticket.object.yml"),
        "name: ticket\nfields:\n  title: { type: text, requird: true }\n",
    )
    .unwrap();
    let (code, _, err) = run(objectos(dir.path()).arg("serve").arg(&meta).args([
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "sqlite::memory:",
    ]));
    assert_eq!(code, 2, "a misspelt key must stop the server: {err}");
    assert!(
        err.contains(
            "ticket.object.yml:3: fields.title: unknown key `requird`; did you mean `required`?"
        ),
        "{err}"
    );

    std::fs::write(
        meta.join("ticket.object.yml"),
        "name: ticket\nx-owner: support\nfields:\n  title: { type: text, required: true, x-hint: short }\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(dir.path()).arg("validate").arg(&meta));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
}

/// Files of a plugin's metadata kind (the permissions plugin's `*.role.yml`) are checked by
/// `validate` with the plugin's own parser, every problem with its file, line and path.
#[cfg(feature = "plugin-permissions")]
#[test]
fn validate_checks_plugin_metadata_kinds() {
    use crate::support::write_metadata;
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    std::fs::write(meta.join("ok.role.yml"), "name: manager\nlabel: Manager\n").unwrap();
    std::fs::write(
        meta.join("bad.role.yml"),
        "name: lead\nlabel: Lead\nparent: Not A Role Name\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(dir.path()).arg("validate").arg(&meta));
    assert_ne!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("bad.role.yml:3"), "{all}");
    assert!(!all.contains("ok.role.yml"), "{all}");
    std::fs::remove_file(meta.join("bad.role.yml")).unwrap();
    let (code, out, err) = run(objectos(dir.path()).arg("validate").arg(&meta));
    assert_eq!(code, 0, "{out}{err}");
}
