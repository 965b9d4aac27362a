//! Temporary databases: a SQLite file (or an in-memory one) or a fresh PostgreSQL schema per test.
//!
//! Creating and dropping a whole PostgreSQL schema is test infrastructure, not plugin code, so
//! it lives here (the one crate besides the data crate that may name sea-orm, and only tests
//! depend on it).

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database};

/// The variable that points the service-backed suites at a PostgreSQL server.
pub const POSTGRES_URL_VAR: &str = "OBJECTOS_TEST_POSTGRES_URL";

/// The PostgreSQL server of the service-backed suites, when `OBJECTOS_TEST_POSTGRES_URL` is set.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// A database one test runs on: a SQLite file in a temporary folder (or an in-memory one), or a
/// fresh PostgreSQL schema of its own. [`TestDatabase::cleanup`] drops the schema; a failed test
/// that never reaches it leaves the schema behind for inspection.
#[derive(Debug)]
pub struct TestDatabase {
    /// `sqlite` or `postgres`, for messages.
    pub label: &'static str,
    /// The URL to hand to the engine.
    pub url: String,
    dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDatabase {
    /// A SQLite file in a new temporary folder (removed with the value).
    ///
    /// # Panics
    /// When no temporary folder can be created (a broken test machine).
    #[allow(clippy::expect_used)]
    pub fn sqlite_file() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self {
            label: "sqlite",
            url,
            dir: Some(dir),
            pg: None,
        }
    }

    /// An in-memory SQLite database (one connection; gone with the engine).
    pub fn sqlite_memory() -> Self {
        Self {
            label: "sqlite",
            url: "sqlite::memory:".to_owned(),
            dir: None,
            pg: None,
        }
    }

    /// A fresh schema on the PostgreSQL server of `OBJECTOS_TEST_POSTGRES_URL`, named after
    /// `prefix`; `None` (with a note on stderr) when the variable is not set.
    ///
    /// # Panics
    /// When the variable is set but the server cannot be reached: a misconfigured run must fail,
    /// not pass as skipped.
    #[allow(clippy::expect_used)]
    pub async fn postgres(prefix: &str) -> Option<Self> {
        let Some(base) = postgres_url() else {
            eprintln!("{POSTGRES_URL_VAR} is not set; {prefix}: the PostgreSQL run is skipped");
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let schema = format!(
            "{}_{nanos:x}_{}",
            prefix.to_ascii_lowercase(),
            std::process::id()
        );
        let db = Database::connect(&base)
            .await
            .expect("the PostgreSQL server of OBJECTOS_TEST_POSTGRES_URL");
        db.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
            .await
            .expect("a fresh schema");
        db.close().await.ok();
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            label: "postgres",
            url: format!("{base}{sep}options[search_path]={schema}"),
            dir: None,
            pg: Some((base, schema)),
        })
    }

    /// SQLite (a file), then PostgreSQL when configured.
    pub async fn all(prefix: &str) -> Vec<Self> {
        let mut out = vec![Self::sqlite_file()];
        out.extend(Self::postgres(prefix).await);
        out
    }

    /// The same, with SQLite in memory.
    pub async fn all_in_memory(prefix: &str) -> Vec<Self> {
        let mut out = vec![Self::sqlite_memory()];
        out.extend(Self::postgres(prefix).await);
        out
    }

    /// The temporary folder of a SQLite file database.
    pub fn dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_path_buf())
    }

    /// The PostgreSQL schema's name, if this is one.
    pub fn schema(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, s)| s.as_str())
    }

    /// Drops the PostgreSQL schema (and, by dropping `self`, the SQLite folder).
    pub async fn cleanup(self) {
        if let Some((base, schema)) = &self.pg
            && let Ok(db) = Database::connect(base).await
        {
            let _ = db
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await;
            db.close().await.ok();
        }
    }
}
