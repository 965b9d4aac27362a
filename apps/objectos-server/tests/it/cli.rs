//! Configuration precedence, config-file errors, `validate` and `migrate --dry-run`.

use crate::support::{objectos, run, write_metadata};

#[test]
fn precedence_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("objectos.yml"),
        "listen: 127.0.0.1:4000\ndatabaseUrl: postgres://app:s3cret@db.internal/app\nmode: test\nhttp:\n  bodyLimit: 2MiB\n  cors:\n    origins: [http://a.example]\nlog:\n  level: debug\n  format: json\n",
    )
    .unwrap();

    // File only.
    let (code, out, err) = run(objectos(dir.path()).args(["serve", "--print-config"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen: 127.0.0.1:4000"), "{out}");
    assert!(
        out.contains("databaseUrl: postgres://app:***@db.internal/app"),
        "password must be redacted: {out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
    assert!(out.contains("mode: test"), "{out}");
    assert!(out.contains("http.bodyLimit: 2097152"), "{out}");
    assert!(
        out.contains("http.cors.origins: [http://a.example]"),
        "{out}"
    );
    assert!(out.contains("log.format: json"), "{out}");

    // Env beats the file.
    let (code, out, err) = run(objectos(dir.path())
        .args(["serve", "--print-config"])
        .env("OBJECTOS_LISTEN", "127.0.0.1:5000")
        .env("OBJECTOS_MODE", "production"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen: 127.0.0.1:5000"), "{out}");
    assert!(out.contains("mode: production"), "{out}");

    // Flags beat env.
    let (code, out, err) = run(objectos(dir.path())
        .args([
            "serve",
            "--print-config",
            "--listen",
            "127.0.0.1:6000",
            "--database-url",
            "sqlite::memory:",
            "./meta",
        ])
        .env("OBJECTOS_LISTEN", "127.0.0.1:5000"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen: 127.0.0.1:6000"), "{out}");
    assert!(out.contains("databaseUrl: sqlite::memory:"), "{out}");
    assert!(out.contains("metadataDirs: [./meta]"), "{out}");

    // --config points at another file.
    let other = dir.path().join("other.yml");
    std::fs::write(&other, "listen: 0.0.0.0:7000\n").unwrap();
    let (code, out, _) = run(objectos(dir.path())
        .args(["serve", "--print-config", "--config"])
        .arg(&other));
    assert_eq!(code, 0);
    assert!(out.contains("listen: 0.0.0.0:7000"), "{out}");
    assert!(
        out.contains("databaseUrl: sqlite://./objectos.db?mode=rwc"),
        "defaults apply: {out}"
    );
}

#[test]
fn config_file_problems_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("objectos.yml"),
        "listen: 127.0.0.1:4000\nlistn: typo\nhttp:\n  bodyLimt: 1\n",
    )
    .unwrap();
    let (code, _, err) = run(objectos(dir.path()).args(["serve", "--print-config"]));
    assert_eq!(code, 2, "unknown keys are errors: {err}");
    assert!(
        err.contains("objectos.yml:2: listn: unknown key; known keys here: listen, databaseUrl"),
        "{err}"
    );
    assert!(
        err.contains("objectos.yml:4: http.bodyLimt: unknown key"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("objectos.yml"),
        "listen: nowhere\nhttp:\n  bodyLimit: lots\n",
    )
    .unwrap();
    let (code, _, err) = run(objectos(dir.path()).args(["serve", "--print-config"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("objectos.yml:1: listen: `nowhere` is not an address"),
        "{err}"
    );
    assert!(
        err.contains("objectos.yml:3: http.bodyLimit: `lots` is not a size"),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("objectos.yml")).unwrap();
    let (code, _, err) = run(objectos(dir.path())
        .args(["serve", "--print-config"])
        .env("OBJECTOS_HTTP_BODY_LIMIT", "huge"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("OBJECTOS_HTTP_BODY_LIMIT: `huge` is not a size"),
        "{err}"
    );

    let (code, _, err) = run(objectos(dir.path()).args(["serve", "--listen", "localhost"]));
    assert_eq!(code, 2, "clap usage errors exit with 2: {err}");
    assert!(err.contains("is not an address"), "{err}");
}

#[test]
fn validate_reports_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    let (code, out, err) = run(objectos(dir.path()).arg("validate").arg(&meta));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 error(s)"), "{out}");

    std::fs::write(
        meta.join("broken.object.yml"),
        "name: Broken Name\nfields:\n  amount:\n    type: moneyish\n  status:\n    type: select\n    options: 5\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(dir.path()).arg("validate").arg(&meta));
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("broken.object.yml:"))
        .collect();
    assert!(lines.len() >= 2, "every problem is listed: {out}");
    assert!(
        lines.iter().any(|l| l.contains(":4: fields.amount.type: ")),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().starts_with("validate: "),
        "{out}"
    );

    let (code, _, err) = run(objectos(dir.path()).args(["validate", "no/such/dir"]));
    assert_eq!(code, 2);
    assert!(err.contains("no/such/dir"), "{err}");
}

#[test]
fn serve_refuses_broken_metadata_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    std::fs::write(
        meta.join("broken.object.yml"),
        "name: broken\nfields:\n  x:\n    type: nonsense\n",
    )
    .unwrap();
    let (code, _, err) = run(objectos(dir.path()).arg("serve").arg(&meta).args([
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "sqlite::memory:",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("broken.object.yml:4: fields.x.type: "),
        "{err}"
    );
}

#[test]
fn migrate_dry_run_prints_the_plan_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    let db = dir.path().join("plan.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let (code, out, err) = run(objectos(dir.path()).arg("migrate").arg(&meta).args([
        "--dry-run",
        "--database-url",
        &url,
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.to_ascii_uppercase().contains("CREATE TABLE"), "{out}");
    assert!(out.contains("contact"), "{out}");
    // The plan of a database that does not exist yet is shown without creating it.
    assert!(out.contains("does not exist yet"), "{out}");
    assert!(!db.exists(), "a dry run created {}", db.display());
    assert!(!err.contains("no metadata folder"), "{err}");

    let (code, out, err) = run(objectos(dir.path())
        .arg("migrate")
        .arg(&meta)
        .args(["--database-url", &url]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Done"), "{out}");
    assert!(db.exists());

    // Once applied, the plan has nothing to create, and says so.
    let (code, out, _) = run(objectos(dir.path()).arg("migrate").arg(&meta).args([
        "--dry-run",
        "--database-url",
        &url,
    ]));
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    assert!(
        !out.to_ascii_uppercase()
            .contains("CREATE TABLE \"CONTACT\"")
            && !out.to_ascii_uppercase().contains("CREATE TABLE CONTACT"),
        "{out}"
    );
    let (code, out, _) = run(objectos(dir.path())
        .arg("migrate")
        .arg(&meta)
        .args(["--database-url", &url]));
    assert_eq!(code, 0);
    assert!(out.contains("Up to date"), "{out}");

    // Without a metadata folder only the system objects are migrated: a warning says so.
    let (code, _, err) =
        run(objectos(dir.path()).args(["migrate", "--dry-run", "--database-url", &url]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no metadata folder given"), "{err}");
}

/// `--database-url`, `--mode` and `--config` are accepted before and after the subcommand.
#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.yml");
    std::fs::write(&other, "listen: 127.0.0.1:7001\n").unwrap();
    let orders: [&[&str]; 3] = [
        &[
            "--database-url",
            "sqlite::memory:",
            "--mode",
            "test",
            "--config",
            "other.yml",
            "serve",
            "--print-config",
        ],
        &[
            "serve",
            "--print-config",
            "--database-url",
            "sqlite::memory:",
            "--mode",
            "test",
            "--config",
            "other.yml",
        ],
        &[
            "--mode",
            "test",
            "serve",
            "--database-url",
            "sqlite::memory:",
            "--print-config",
            "--config",
            "other.yml",
        ],
    ];
    for args in orders {
        let (code, out, err) = run(objectos(dir.path()).args(args));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            out.contains("databaseUrl: sqlite::memory:"),
            "{args:?}: {out}"
        );
        assert!(out.contains("mode: test"), "{args:?}: {out}");
        assert!(out.contains("listen: 127.0.0.1:7001"), "{args:?}: {out}");
    }

    // A nested subcommand takes them too, and uses them: the database is created where the
    // flag after `audit verify` says.
    #[cfg(feature = "plugin-audit")]
    for (n, args) in [
        ["audit", "verify", "--database-url"],
        ["--database-url", "audit", "verify"],
    ]
    .iter()
    .enumerate()
    {
        let db = dir.path().join(format!("audit-{n}.db"));
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let mut cmd = objectos(dir.path());
        if args[0] == "--database-url" {
            cmd.arg("--database-url")
                .arg(&url)
                .args(["audit", "verify"]);
        } else {
            cmd.args(args).arg(&url);
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(out.contains("audit verify: 0 chain(s)"), "{out}");
        assert!(db.exists(), "{args:?} did not use {url}");
    }

    // `audit` reads the database only: a metadata folder is refused, not silently ignored.
    #[cfg(feature = "plugin-audit")]
    {
        let (code, _, err) = run(objectos(dir.path()).args(["audit", "presets/crm", "verify"]));
        assert_eq!(code, 2, "{err}");
        let (code, _, err) = run(objectos(dir.path()).args(["audit", "verify", "presets/crm"]));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("unexpected argument"), "{err}");
    }
}

/// Every command that prints ends with exit code 0 and no panic when its reader has gone
/// (`objectos audit export | head`). The pipe's read end is closed before the child starts,
/// so its first write fails, whatever the timing.
#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pipe.db").display());
    let (code, _, err) = run(objectos(dir.path())
        .arg("migrate")
        .arg(&meta)
        .args(["--database-url", &url]));
    assert_eq!(code, 0, "{err}");
    let meta = meta.display().to_string();
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["config", "schema"],
        vec!["validate", &meta],
        vec!["validate", &meta, "--json"],
        vec!["serve", "--print-config"],
        vec!["migrate", &meta, "--dry-run", "--database-url", &url],
        vec!["migrate", &meta, "--database-url", &url],
        vec!["--help"],
    ];
    if cfg!(feature = "plugin-audit") {
        commands.push(vec!["audit", "verify", "--database-url", &url]);
        commands.push(vec!["audit", "export", "--database-url", &url]);
        commands.push(vec![
            "audit",
            "export",
            "--format",
            "csv",
            "--database-url",
            &url,
        ]);
    }
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = objectos(dir.path())
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            !err.to_lowercase().contains("broken pipe"),
            "{args:?}: {err}"
        );
    }
}

/// `objectos --help` names every command with a one-line description.
#[test]
fn top_level_help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(objectos(dir.path()).arg("--help"));
    assert_eq!(code, 0, "{err}");
    let mut commands = vec!["serve", "migrate", "validate", "config"];
    if cfg!(feature = "plugin-audit") {
        commands.push("audit");
    }
    if cfg!(feature = "plugin-auth") {
        commands.push("user");
    }
    for name in commands {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {out}"));
        let description = line.trim_start()[name.len()..].trim();
        assert!(description.len() > 20, "{name} has no description: {out}");
    }
    // A bare `objectos` shows the same list instead of a usage error alone.
    let (_, out, err) = run(&mut objectos(dir.path()));
    assert!(format!("{out}{err}").contains("serve "), "{out}{err}");
}

/// `objectos user create` reads the password from stdin and never echoes it.
#[cfg(feature = "plugin-auth")]
#[test]
fn user_create_reads_the_password_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let create = |email: &str, password: &str, admin: bool| {
        let mut cmd = objectos(dir.path());
        cmd.args(["user", "create", "--email", email, "--password-stdin"]);
        if admin {
            cmd.arg("--admin");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = create("Ops@Example.com", "Owner-Passw0rd!", true);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(ops@example.com) as administrator"), "{out}");
    assert!(!out.contains("Owner-Passw0rd!") && !err.contains("Owner-Passw0rd!"));
    let (code, _, err) = create("ops@example.com", "Owner-Passw0rd!", false);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = create("weak@example.com", "weak", false);
    assert_eq!(code, 1);
    assert!(err.contains("at least 8 characters"), "{err}");
}

#[test]
fn trusted_proxies_are_configured_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("objectos.yml"),
        "http:\n  trustedProxies: [10.0.0.0/8, \"::1\"]\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(dir.path()).args(["serve", "--print-config"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("http.trustedProxies: [10.0.0.0/8, ::1/128]"),
        "{out}"
    );
    let (code, out, err) = run(objectos(dir.path())
        .args(["serve", "--print-config"])
        .env("OBJECTOS_HTTP_TRUSTED_PROXIES", "127.0.0.1"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("http.trustedProxies: [127.0.0.1/32]"), "{out}");

    // A bad range stops the start, naming the key and the line.
    std::fs::write(
        dir.path().join("objectos.yml"),
        "http:\n  trustedProxies:\n    - 10.0.0.0/8\n    - 300.0.0.1\n",
    )
    .unwrap();
    let (code, _, err) = run(objectos(dir.path()).args(["serve"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "objectos.yml:4: http.trustedProxies[1]: `300.0.0.1` is not an IP address or CIDR range"
        ),
        "{err}"
    );
}

#[test]
fn config_schema_lists_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(objectos(dir.path()).args(["config", "schema"]));
    assert_eq!(code, 0, "{err}");
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    let props = schema["properties"].as_object().unwrap();
    for key in ["listen", "databaseUrl", "http", "log", "data"] {
        assert!(props.contains_key(key), "{key}: {out}");
    }
    #[cfg(feature = "standard")]
    for key in ["auth", "audit", "permissions"] {
        assert!(props.contains_key(key), "{key}: {out}");
    }
}

#[cfg(feature = "plugin-auth")]
#[test]
fn print_config_shows_plugin_sections_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("objectos.yml"),
        "auth:\n  cookieSecure: true\n  sso:\n    baseUrl: https://crm.example.com\n    providers:\n      - id: corp\n        kind: oidc\n        issuer: https://id.example.com\n        clientId: crm\n        clientSecret: s3cr3t-value\n",
    )
    .unwrap();
    let (code, out, err) = run(objectos(dir.path()).args(["serve", "--print-config=json"]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cr3t-value"), "{out}");
    let config: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(config["auth"]["cookieSecure"], true);
    assert_eq!(config["auth"]["sso"]["providers"][0]["clientSecret"], "***");
    // Every default of the section is shown.
    assert_eq!(config["auth"]["lockout"]["maxFailedAttempts"], 5);
    let (code, out, err) = run(objectos(dir.path()).args(["serve", "--print-config"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("auth.sso.providers[0].clientSecret: ***\n"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t-value"), "{out}");
}
