//! The plugin's private tables (declared as a [`PluginSchema`] the engine's migration plan
//! creates) and a small helper over the data crate's statement API that binds every value.
//!
//! Times are epoch milliseconds in BIGINT columns and flags are 0/1 BIGINTs, so the same SQL
//! compares them on both databases. Tokens, codes and keys are stored only as SHA-256 hex digests.

use std::sync::Arc;

use objectos_data::store::{Row, Sql, SqlValue, Store};
use objectos_data::{
    ColumnDefault, ColumnType, DataEngine, Dialect, OwnTransaction, PluginSchema, TableDef,
};

use crate::error::Result;
use crate::session_cache::Epoch;

/// The plugin's private tables, declared as data: the data plugin creates them (and adds what a
/// later release declares) through the engine's migration plan before any plugin starts, so
/// this crate issues no DDL. Names and types are those of the first releases, so existing
/// databases match without a step.
pub fn schema() -> PluginSchema {
    use ColumnType::{BigInt, Text, Varchar};
    let zero = || ColumnDefault::Int(0);
    PluginSchema::new()
        .table(
            TableDef::new("_objectos_auth_credential")
                .required("user_id", Varchar(64))
                .required("email", Varchar(255))
                .unique_column()
                .required("password_hash", Text)
                .required("is_admin", BigInt)
                .default(zero())
                .required("failed_count", BigInt)
                .default(zero())
                .column("locked_until", BigInt)
                .required("updated_at", BigInt)
                .primary_key(&["user_id"]),
        )
        .table(
            TableDef::new("_objectos_auth_session")
                .required("id", Varchar(64))
                .required("token_hash", Varchar(64))
                .unique_column()
                .required("user_id", Varchar(64))
                .column("active_org", Varchar(64))
                .required("created_at", BigInt)
                .required("last_seen_at", BigInt)
                .required("expires_at", BigInt)
                .column("ip", Text)
                .column("user_agent", Text)
                .column("revoked_at", BigInt)
                .primary_key(&["id"])
                .index("_objectos_auth_session_user", &["user_id"]),
        )
        .table(
            TableDef::new("_objectos_auth_member")
                .required("org_id", Varchar(64))
                .required("user_id", Varchar(64))
                .required("role", Varchar(32))
                .required("created_at", BigInt)
                .primary_key(&["org_id", "user_id"])
                .index("_objectos_auth_member_user", &["user_id"]),
        )
        .table(
            TableDef::new("_objectos_auth_api_key")
                .required("id", Varchar(64))
                .required("user_id", Varchar(64))
                .required("name", Text)
                .required("prefix", Varchar(16))
                .required("key_hash", Varchar(64))
                .unique_column()
                .required("scopes", Text)
                .column("org_id", Varchar(64))
                .required("created_at", BigInt)
                .column("last_used_at", BigInt)
                .column("expires_at", BigInt)
                .column("revoked_at", BigInt)
                .primary_key(&["id"]),
        )
        .table(
            TableDef::new("_objectos_auth_totp")
                .required("user_id", Varchar(64))
                .required("secret", Text)
                .required("enabled", BigInt)
                .default(zero())
                .column("last_step", BigInt)
                .required("created_at", BigInt)
                .primary_key(&["user_id"]),
        )
        .table(
            TableDef::new("_objectos_auth_recovery")
                .required("user_id", Varchar(64))
                .required("code_hash", Varchar(64))
                .column("used_at", BigInt)
                .primary_key(&["user_id", "code_hash"]),
        )
        .table(
            TableDef::new("_objectos_auth_password_history")
                .required("user_id", Varchar(64))
                .required("password_hash", Text)
                .required("created_at", BigInt)
                .index("_objectos_auth_password_history_user", &["user_id"]),
        )
        // Failed sign-ins per normalised email (its SHA-256), whether or not an account has that
        // email, so lockout behaves the same for every address and reveals nothing.
        .table(
            TableDef::new("_objectos_auth_attempt")
                .required("email_hash", Varchar(64))
                .required("failed_count", BigInt)
                .default(zero())
                .column("locked_until", BigInt)
                .required("updated_at", BigInt)
                .primary_key(&["email_hash"])
                .index("_objectos_auth_attempt_updated", &["updated_at"]),
        )
        .table(
            TableDef::new("_objectos_auth_reset")
                .required("token_hash", Varchar(64))
                .required("user_id", Varchar(64))
                .required("expires_at", BigInt)
                .column("used_at", BigInt)
                .primary_key(&["token_hash"])
                .index("_objectos_auth_reset_expires", &["expires_at"]),
        )
        // Single sign-on: external identities (one per provider and subject) and started flows.
        .table(
            TableDef::new("_objectos_auth_identity")
                .required("provider", Varchar(64))
                .required("subject", Varchar(255))
                .required("user_id", Varchar(64))
                .column("email", Varchar(255))
                .required("created_at", BigInt)
                .column("last_login_at", BigInt)
                // The issuer (oidc) or endpoint digest (oauth2) the subject belongs to; NULL on
                // rows linked before it existed, filled in at their next sign-in.
                .column("issuer", Text)
                .primary_key(&["provider", "subject"])
                .index("_objectos_auth_identity_user", &["user_id"]),
        )
        .table(
            TableDef::new("_objectos_auth_sso_state")
                .required("state_hash", Varchar(64))
                .required("provider", Varchar(64))
                .required("binding_hash", Varchar(64))
                .required("pkce_verifier", Text)
                .required("nonce", Text)
                .required("callback_url", Text)
                .column("error_callback_url", Text)
                .column("new_user_callback_url", Text)
                .required("created_at", BigInt)
                .required("expires_at", BigInt)
                .column("used_at", BigInt)
                // The account a `link-social` flow links to (NULL for a sign-in).
                .column("link_user_id", Varchar(64))
                .primary_key(&["state_hash"])
                // The periodic sweep deletes by expiry.
                .index("_objectos_auth_sso_state_expires", &["expires_at"]),
        )
        // Organization invitations. The id is 256 random bits (the accept link carries it), the
        // email is normalised; `status` is pending, accepted, rejected or canceled.
        .table(
            TableDef::new("_objectos_auth_invitation")
                .required("id", Varchar(64))
                .required("org_id", Varchar(64))
                .required("email", Varchar(255))
                .required("role", Varchar(32))
                .required("status", Varchar(16))
                .required("inviter_id", Varchar(64))
                .required("created_at", BigInt)
                .required("expires_at", BigInt)
                .required("updated_at", BigInt)
                // The SHA-256 of the token only the invitation mail carries (the proof that
                // whoever answers controls the invited address); NULL on invitations sent before
                // it existed, which then need a verified address.
                .column("token_hash", Varchar(64))
                .primary_key(&["id"])
                .index("_objectos_auth_invitation_org", &["org_id", "status"])
                .index("_objectos_auth_invitation_email", &["email", "status"])
                // One pending invitation per organization and address, so two concurrent
                // invitations cannot both be created (the second insert does nothing and is
                // answered like any repeat). Pending duplicates a database may hold from before
                // the index are canceled first, the newest kept.
                .unique_index("_objectos_auth_invitation_pending", &["org_id", "email"])
                .where_("\"status\" = 'pending'")
                .prepared_by(
                    r#"UPDATE "_objectos_auth_invitation" SET "status" = 'canceled' WHERE "status" = 'pending' AND EXISTS (SELECT 1 FROM "_objectos_auth_invitation" n WHERE n."org_id" = "_objectos_auth_invitation"."org_id" AND n."email" = "_objectos_auth_invitation"."email" AND n."status" = 'pending' AND (n."created_at" > "_objectos_auth_invitation"."created_at" OR (n."created_at" = "_objectos_auth_invitation"."created_at" AND n."id" > "_objectos_auth_invitation"."id")))"#,
                ),
        )
        // Email verification links, stored as the token's SHA-256 with the address they verify.
        .table(
            TableDef::new("_objectos_auth_verification")
                .required("token_hash", Varchar(64))
                .required("user_id", Varchar(64))
                .required("email", Varchar(255))
                .required("expires_at", BigInt)
                .column("used_at", BigInt)
                .primary_key(&["token_hash"])
                .index("_objectos_auth_verification_expires", &["expires_at"]),
        )
}

/// The engine's connection with dialect-aware statements.
#[derive(Clone)]
pub(crate) struct Db {
    engine: DataEngine,
    /// Bumped after every write that may change what a token resolves to (see
    /// [`crate::session_cache`]): cached resolutions older than the last bump are not used.
    epoch: Arc<Epoch>,
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
            epoch: Arc::default(),
        }
    }

    /// The generation itself, for the session cache's cluster link.
    pub(crate) fn epoch_handle(&self) -> Arc<Epoch> {
        self.epoch.clone()
    }

    /// Marks `user_id`'s cached session resolutions stale (writes made outside [`Db`] that
    /// concern that user alone, e.g. in a data-engine transaction by a hook).
    pub(crate) fn bump_user(&self, user_id: &str) {
        self.epoch.bump_user(user_id);
    }

    fn statement(&self, sql: &str, values: Vec<SqlValue>) -> Result<Sql> {
        Ok(Sql::with(self.engine.dialect(), sql, values)?)
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
            reach: None,
        })
    }

    /// Runs a statement that concerns `user_id` alone (their sessions, credential or
    /// memberships); returns the rows affected. Makes only that user's cached resolutions stale,
    /// here and on the other nodes, after the statement (so a resolution that read the old row
    /// is never kept).
    ///
    /// There is deliberately no plain write: each one says whom it concerns, or that it cannot
    /// change a resolution ([`Db::exec_uncached`]); a [`Tx`] that names nobody makes every
    /// resolution stale.
    pub(crate) async fn exec_for(
        &self,
        user_id: &str,
        sql: &str,
        values: Vec<SqlValue>,
    ) -> Result<u64> {
        let r = self
            .engine
            .pool()
            .execute(self.statement(sql, values)?)
            .await;
        self.epoch.bump_user(user_id);
        Ok(r?)
    }

    /// Runs a write that cannot change what any cached token resolves to (a session's activity
    /// time, a new session's row under a token nobody has presented yet, the one-time tokens of
    /// resets, verifications and SSO round trips) on the engine's writer
    /// connection, so it queues behind data writes instead of racing them for SQLite's write
    /// lock. Does not invalidate the session cache: a sign-in must not cost every node every
    /// cached session.
    pub(crate) async fn exec_uncached(&self, sql: &str, values: Vec<SqlValue>) -> Result<u64> {
        Ok(self
            .engine
            .writer()
            .execute(self.statement(sql, values)?)
            .await?)
    }

    /// The first row, if any.
    pub(crate) async fn one(&self, sql: &str, values: Vec<SqlValue>) -> Result<Option<Row>> {
        Ok(self
            .engine
            .pool()
            .fetch_optional(self.statement(sql, values)?)
            .await?)
    }

    /// Every row.
    pub(crate) async fn all(&self, sql: &str, values: Vec<SqlValue>) -> Result<Vec<Row>> {
        Ok(self
            .engine
            .pool()
            .fetch_all(self.statement(sql, values)?)
            .await?)
    }
}

/// An open transaction (see [`Db::begin`]).
pub(crate) struct Tx {
    tx: OwnTransaction,
    dialect: Dialect,
    epoch: Arc<Epoch>,
    /// The users whose cached resolutions the commit makes stale; `None`: everyone's.
    reach: Option<Vec<String>>,
}

impl Tx {
    /// The suffix that makes a `SELECT` in this transaction lock the rows it returns until the
    /// commit (PostgreSQL; SQLite's transaction already holds the whole database's write lock).
    pub(crate) fn for_update(&self) -> &'static str {
        self.dialect.for_update()
    }

    /// The first row, if any.
    pub(crate) async fn one(&self, sql: &str, values: Vec<SqlValue>) -> Result<Option<Row>> {
        Ok(self
            .tx
            .fetch_optional(Sql::with(self.dialect, sql, values)?)
            .await?)
    }

    /// Every row.
    pub(crate) async fn all(&self, sql: &str, values: Vec<SqlValue>) -> Result<Vec<Row>> {
        Ok(self
            .tx
            .fetch_all(Sql::with(self.dialect, sql, values)?)
            .await?)
    }

    /// Runs a statement; returns the rows affected.
    pub(crate) async fn exec(&self, sql: &str, values: Vec<SqlValue>) -> Result<u64> {
        Ok(self
            .tx
            .execute(Sql::with(self.dialect, sql, values)?)
            .await?)
    }

    /// Declares that every statement of this transaction concerns `user_id` (or another user
    /// declared the same way) alone: the commit then makes only their cached resolutions stale
    /// instead of everyone's. Call it once per user concerned.
    pub(crate) fn concerns_user(&mut self, user_id: &str) {
        self.reach
            .get_or_insert_with(Vec::new)
            .push(user_id.to_owned());
    }

    /// Makes every statement of the transaction durable.
    pub(crate) async fn commit(self) -> Result<()> {
        let r = self.tx.commit().await;
        match &self.reach {
            Some(users) => users.iter().for_each(|u| self.epoch.bump_user(u)),
            None => self.epoch.bump(),
        }
        r.map_err(crate::error::AuthError::Data)
    }
}

/// Bind helpers.
pub(crate) fn s(v: impl Into<String>) -> SqlValue {
    SqlValue::Text(Some(v.into()))
}

pub(crate) fn os(v: Option<impl Into<String>>) -> SqlValue {
    SqlValue::Text(v.map(Into::into))
}

pub(crate) fn i(v: i64) -> SqlValue {
    SqlValue::Int(Some(v))
}

pub(crate) fn oi(v: Option<i64>) -> SqlValue {
    SqlValue::Int(v)
}

/// Column readers that turn a missing or mistyped column into a storage error naming it.
pub(crate) fn get_s(row: &Row, idx: usize) -> Result<String> {
    row.get::<String>(idx)
        .map_err(|e| crate::error::AuthError::Database(e.to_string()))
}

pub(crate) fn get_os(row: &Row, idx: usize) -> Option<String> {
    row.get::<Option<String>>(idx).ok().flatten()
}

pub(crate) fn get_i(row: &Row, idx: usize) -> Result<i64> {
    row.get::<i64>(idx)
        .map_err(|e| crate::error::AuthError::Database(e.to_string()))
}

pub(crate) fn get_oi(row: &Row, idx: usize) -> Option<i64> {
    row.get::<Option<i64>>(idx).ok().flatten()
}
