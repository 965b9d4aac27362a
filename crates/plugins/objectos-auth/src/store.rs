//! The plugin's private tables (created with `IF NOT EXISTS` DDL that runs on SQLite and
//! PostgreSQL) and a small helper that binds every value and adapts placeholders per dialect.
//!
//! Times are epoch milliseconds in BIGINT columns and flags are 0/1 BIGINTs, so the same SQL
//! compares them on both databases. Tokens, codes and keys are stored only as SHA-256 hex digests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use objectos_data::{DataEngine, Dialect, OwnTransaction};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};

use crate::error::Result;

/// The DDL run at start; every statement is idempotent.
const DDL: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_credential" ("user_id" VARCHAR(64) PRIMARY KEY, "email" VARCHAR(255) NOT NULL UNIQUE, "password_hash" TEXT NOT NULL, "is_admin" BIGINT NOT NULL DEFAULT 0, "failed_count" BIGINT NOT NULL DEFAULT 0, "locked_until" BIGINT, "updated_at" BIGINT NOT NULL)"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_session" ("id" VARCHAR(64) PRIMARY KEY, "token_hash" VARCHAR(64) NOT NULL UNIQUE, "user_id" VARCHAR(64) NOT NULL, "active_org" VARCHAR(64), "created_at" BIGINT NOT NULL, "last_seen_at" BIGINT NOT NULL, "expires_at" BIGINT NOT NULL, "ip" TEXT, "user_agent" TEXT, "revoked_at" BIGINT)"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_session_user" ON "_objectos_auth_session" ("user_id")"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_member" ("org_id" VARCHAR(64) NOT NULL, "user_id" VARCHAR(64) NOT NULL, "role" VARCHAR(32) NOT NULL, "created_at" BIGINT NOT NULL, PRIMARY KEY ("org_id", "user_id"))"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_member_user" ON "_objectos_auth_member" ("user_id")"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_api_key" ("id" VARCHAR(64) PRIMARY KEY, "user_id" VARCHAR(64) NOT NULL, "name" TEXT NOT NULL, "prefix" VARCHAR(16) NOT NULL, "key_hash" VARCHAR(64) NOT NULL UNIQUE, "scopes" TEXT NOT NULL, "org_id" VARCHAR(64), "created_at" BIGINT NOT NULL, "last_used_at" BIGINT, "expires_at" BIGINT, "revoked_at" BIGINT)"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_totp" ("user_id" VARCHAR(64) PRIMARY KEY, "secret" TEXT NOT NULL, "enabled" BIGINT NOT NULL DEFAULT 0, "last_step" BIGINT, "created_at" BIGINT NOT NULL)"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_recovery" ("user_id" VARCHAR(64) NOT NULL, "code_hash" VARCHAR(64) NOT NULL, "used_at" BIGINT, PRIMARY KEY ("user_id", "code_hash"))"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_password_history" ("user_id" VARCHAR(64) NOT NULL, "password_hash" TEXT NOT NULL, "created_at" BIGINT NOT NULL)"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_password_history_user" ON "_objectos_auth_password_history" ("user_id")"#,
    // Failed sign-ins per normalised email (its SHA-256), whether or not an account has that
    // email, so lockout behaves the same for every address and reveals nothing.
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_attempt" ("email_hash" VARCHAR(64) PRIMARY KEY, "failed_count" BIGINT NOT NULL DEFAULT 0, "locked_until" BIGINT, "updated_at" BIGINT NOT NULL)"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_attempt_updated" ON "_objectos_auth_attempt" ("updated_at")"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_reset" ("token_hash" VARCHAR(64) PRIMARY KEY, "user_id" VARCHAR(64) NOT NULL, "expires_at" BIGINT NOT NULL, "used_at" BIGINT)"#,
    // Single sign-on: external identities (one per provider and subject) and started flows.
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_identity" ("provider" VARCHAR(64) NOT NULL, "subject" VARCHAR(255) NOT NULL, "user_id" VARCHAR(64) NOT NULL, "email" VARCHAR(255), "created_at" BIGINT NOT NULL, "last_login_at" BIGINT, PRIMARY KEY ("provider", "subject"))"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_identity_user" ON "_objectos_auth_identity" ("user_id")"#,
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_sso_state" ("state_hash" VARCHAR(64) PRIMARY KEY, "provider" VARCHAR(64) NOT NULL, "binding_hash" VARCHAR(64) NOT NULL, "pkce_verifier" TEXT NOT NULL, "nonce" TEXT NOT NULL, "callback_url" TEXT NOT NULL, "error_callback_url" TEXT, "new_user_callback_url" TEXT, "created_at" BIGINT NOT NULL, "expires_at" BIGINT NOT NULL, "used_at" BIGINT)"#,
    // The periodic sweep deletes by expiry.
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_sso_state_expires" ON "_objectos_auth_sso_state" ("expires_at")"#,
    // Organization invitations. The id is 256 random bits (the accept link carries it), the email
    // is normalised; `status` is pending, accepted, rejected or canceled.
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_invitation" ("id" VARCHAR(64) PRIMARY KEY, "org_id" VARCHAR(64) NOT NULL, "email" VARCHAR(255) NOT NULL, "role" VARCHAR(32) NOT NULL, "status" VARCHAR(16) NOT NULL, "inviter_id" VARCHAR(64) NOT NULL, "created_at" BIGINT NOT NULL, "expires_at" BIGINT NOT NULL, "updated_at" BIGINT NOT NULL)"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_invitation_org" ON "_objectos_auth_invitation" ("org_id", "status")"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_invitation_email" ON "_objectos_auth_invitation" ("email", "status")"#,
    // One pending invitation per organization and address, so two concurrent invitations cannot
    // both be created (the second insert does nothing and is answered like any repeat). Pending
    // duplicates a database may hold from before the index are canceled first, the newest kept.
    r#"UPDATE "_objectos_auth_invitation" SET "status" = 'canceled' WHERE "status" = 'pending' AND EXISTS (SELECT 1 FROM "_objectos_auth_invitation" n WHERE n."org_id" = "_objectos_auth_invitation"."org_id" AND n."email" = "_objectos_auth_invitation"."email" AND n."status" = 'pending' AND (n."created_at" > "_objectos_auth_invitation"."created_at" OR (n."created_at" = "_objectos_auth_invitation"."created_at" AND n."id" > "_objectos_auth_invitation"."id")))"#,
    r#"CREATE UNIQUE INDEX IF NOT EXISTS "_objectos_auth_invitation_pending" ON "_objectos_auth_invitation" ("org_id", "email") WHERE "status" = 'pending'"#,
    // Email verification links, stored as the token's SHA-256 with the address they verify.
    r#"CREATE TABLE IF NOT EXISTS "_objectos_auth_verification" ("token_hash" VARCHAR(64) PRIMARY KEY, "user_id" VARCHAR(64) NOT NULL, "email" VARCHAR(255) NOT NULL, "expires_at" BIGINT NOT NULL, "used_at" BIGINT)"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_verification_expires" ON "_objectos_auth_verification" ("expires_at")"#,
    r#"CREATE INDEX IF NOT EXISTS "_objectos_auth_reset_expires" ON "_objectos_auth_reset" ("expires_at")"#,
];

/// Columns added to a table after its first release: `(table, column, type)`, all nullable, added
/// at start when missing so existing databases gain them without a separate migration step.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // The issuer (oidc) or endpoint digest (oauth2) the identity's subject belongs to; NULL on
    // rows linked before it existed, filled in at their next sign-in.
    ("_objectos_auth_identity", "issuer", "TEXT"),
    // The account a `link-social` flow links to (NULL for a sign-in).
    ("_objectos_auth_sso_state", "link_user_id", "VARCHAR(64)"),
    // The SHA-256 of the token only the invitation mail carries (the proof that whoever answers
    // controls the invited address); NULL on invitations sent before it existed, which then need
    // a verified address.
    ("_objectos_auth_invitation", "token_hash", "VARCHAR(64)"),
];

/// The engine's connection with dialect-aware statements.
#[derive(Clone)]
pub(crate) struct Db {
    engine: DataEngine,
    /// Bumped after every write that may change what a token resolves to (see
    /// [`crate::session_cache`]): cached resolutions older than the last bump are not used.
    epoch: Arc<AtomicU64>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dialect", &self.engine.dialect())
            .finish()
    }
}

impl Db {
    pub(crate) fn new(engine: DataEngine) -> Self {
        Self {
            engine,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The write generation: changes after any write of this crate's tables has committed.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Marks the cached session resolutions stale (writes made outside [`Db`], e.g. in a
    /// data-engine transaction by a hook).
    pub(crate) fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Creates the private tables.
    pub(crate) async fn create_tables(&self) -> Result<()> {
        for sql in DDL {
            self.exec(sql, vec![]).await?;
        }
        for (table, column, ty) in ADDED_COLUMNS {
            self.add_column(table, column, ty).await?;
        }
        Ok(())
    }

    /// Adds a nullable column unless the table has it already.
    async fn add_column(&self, table: &str, column: &str, ty: &str) -> Result<()> {
        match self.engine.dialect() {
            Dialect::Postgres => {
                let sql =
                    format!(r#"ALTER TABLE "{table}" ADD COLUMN IF NOT EXISTS "{column}" {ty}"#);
                self.exec(&sql, vec![]).await?;
            }
            Dialect::Sqlite => {
                let alter = format!(r#"ALTER TABLE "{table}" ADD COLUMN "{column}" {ty}"#);
                let probe =
                    format!(r#"SELECT 1 FROM pragma_table_info('{table}') WHERE "name" = ?"#);
                if self.one(&probe, vec![s(column)]).await?.is_none()
                    && let Err(e) = self.exec(&alter, vec![]).await
                    // Another process sharing the file may have added it since the probe.
                    && self.one(&probe, vec![s(column)]).await?.is_none()
                {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        statement(self.engine.dialect(), sql, values)
    }

    /// Starts a write transaction: statements on it commit together or not at all (dropping
    /// it without [`Tx::commit`] rolls back).
    ///
    /// On SQLite it runs on the engine's writer connection as `BEGIN IMMEDIATE`, so it holds the
    /// database's write lock from its first statement: what it reads stays true until it commits
    /// (a deferred transaction would read, then fail with `SQLITE_BUSY_SNAPSHOT` or act on a stale
    /// read when another writer got in between). On PostgreSQL reads that must stay true take row
    /// locks ([`Tx::for_update`]). Statements inside must all go through the [`Tx`], and no
    /// engine call may run while it is open (on SQLite that would wait for this connection).
    pub(crate) async fn begin(&self) -> Result<Tx> {
        let dialect = self.engine.dialect();
        // The engine's own write transaction for plugin tables: it queues for the writer with
        // the engine's writes and reopens the writer connection after a failure that may have
        // ended the transaction (a full disk), which a plain transaction would leave out of step.
        let tx = self
            .engine
            .begin_own_transaction()
            .await
            .map_err(crate::error::AuthError::Data)?;
        Ok(Tx {
            tx,
            dialect,
            epoch: self.epoch.clone(),
        })
    }

    /// Runs a statement; returns the rows affected. Counts as a write for the session cache
    /// (after the statement, so a resolution that read the old row is never kept).
    pub(crate) async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64> {
        let r = self
            .engine
            .connection()
            .execute_raw(self.statement(sql, values))
            .await;
        self.bump_epoch();
        Ok(r?.rows_affected())
    }

    /// Runs a write that cannot change what any token resolves to (a session's activity time)
    /// on the engine's writer connection, so it queues behind data writes instead of racing
    /// them for SQLite's write lock. Does not invalidate the session cache.
    pub(crate) async fn exec_activity(&self, sql: &str, values: Vec<Value>) -> Result<u64> {
        let r = self
            .engine
            .write_connection()
            .execute_raw(self.statement(sql, values))
            .await?;
        Ok(r.rows_affected())
    }

    /// The first row, if any.
    pub(crate) async fn one(&self, sql: &str, values: Vec<Value>) -> Result<Option<QueryResult>> {
        Ok(self
            .engine
            .connection()
            .query_one_raw(self.statement(sql, values))
            .await?)
    }

    /// Every row.
    pub(crate) async fn all(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>> {
        Ok(self
            .engine
            .connection()
            .query_all_raw(self.statement(sql, values))
            .await?)
    }
}

/// A statement for `dialect`: `?` placeholders become `$1, $2, ...` on PostgreSQL (the SQL of
/// this crate has no `?` inside literals).
fn statement(dialect: Dialect, sql: &str, values: Vec<Value>) -> Statement {
    match dialect {
        Dialect::Sqlite => Statement::from_sql_and_values(DbBackend::Sqlite, sql, values),
        Dialect::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(ch);
                }
            }
            Statement::from_sql_and_values(DbBackend::Postgres, out, values)
        }
    }
}

/// An open transaction (see [`Db::begin`]).
pub(crate) struct Tx {
    tx: OwnTransaction,
    dialect: Dialect,
    epoch: Arc<AtomicU64>,
}

impl Tx {
    /// The suffix that makes a `SELECT` in this transaction lock the rows it returns until the
    /// commit (PostgreSQL; SQLite's transaction already holds the whole database's write lock).
    pub(crate) fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// The first row, if any.
    pub(crate) async fn one(&self, sql: &str, values: Vec<Value>) -> Result<Option<QueryResult>> {
        Ok(self
            .tx
            .query_one_raw(statement(self.dialect, sql, values))
            .await?)
    }

    /// Every row.
    pub(crate) async fn all(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>> {
        Ok(self
            .tx
            .query_all_raw(statement(self.dialect, sql, values))
            .await?)
    }

    /// Runs a statement; returns the rows affected.
    pub(crate) async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64> {
        let r = self
            .tx
            .execute_raw(statement(self.dialect, sql, values))
            .await?;
        Ok(r.rows_affected())
    }

    /// Makes every statement of the transaction durable.
    pub(crate) async fn commit(self) -> Result<()> {
        let r = self.tx.commit().await;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        r.map_err(crate::error::AuthError::Data)
    }
}

/// Bind helpers.
pub(crate) fn s(v: impl Into<String>) -> Value {
    Value::String(Some(v.into()))
}

pub(crate) fn os(v: Option<impl Into<String>>) -> Value {
    Value::String(v.map(Into::into))
}

pub(crate) fn i(v: i64) -> Value {
    Value::BigInt(Some(v))
}

pub(crate) fn oi(v: Option<i64>) -> Value {
    Value::BigInt(v)
}

/// Column readers that turn a missing or mistyped column into a storage error naming it.
pub(crate) fn get_s(row: &QueryResult, idx: usize) -> Result<String> {
    row.try_get_by_index::<String>(idx)
        .map_err(|e| crate::error::AuthError::Database(format!("column {idx}: {e}")))
}

pub(crate) fn get_os(row: &QueryResult, idx: usize) -> Option<String> {
    row.try_get_by_index::<Option<String>>(idx).ok().flatten()
}

pub(crate) fn get_i(row: &QueryResult, idx: usize) -> Result<i64> {
    row.try_get_by_index::<i64>(idx)
        .map_err(|e| crate::error::AuthError::Database(format!("column {idx}: {e}")))
}

pub(crate) fn get_oi(row: &QueryResult, idx: usize) -> Option<i64> {
    row.try_get_by_index::<Option<i64>>(idx).ok().flatten()
}
