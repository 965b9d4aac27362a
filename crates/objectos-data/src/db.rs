//! The dialect layer: connecting (pool, SQLite pragmas), identifier quoting and a tiny SQL buffer that binds every value.
//!
//! SQL text is assembled only from identifiers that come from validated metadata (always quoted
//! here) and fixed keywords; every value goes through [`Sql::param`] and is bound, never formatted.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value,
};

use crate::error::{DataError, Result};

/// The two supported SQL dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect a connection URL selects.
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(DataError::Config(format!(
                "database url `{}` is not supported; expected sqlite://<file>, sqlite::memory: or postgres://...",
                redact(url)
            )))
        }
    }

    /// The dialect of a sea-orm backend (only the two the engine opens reach here).
    pub(crate) fn of_backend(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Self::Postgres,
            _ => Self::Sqlite,
        }
    }

    pub(crate) fn backend(self) -> DbBackend {
        match self {
            Self::Sqlite => DbBackend::Sqlite,
            Self::Postgres => DbBackend::Postgres,
        }
    }

    /// Quotes an identifier (doubling embedded quotes, although metadata names never contain any).
    pub(crate) fn quote(self, ident: &str) -> String {
        let mut out = String::with_capacity(ident.len() + 2);
        out.push('"');
        for c in ident.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

/// Hides the password of a connection URL for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The connections of an engine: `read` serves queries outside write transactions, `write` the
/// engine's write transactions. On a SQLite file `write` is a pool of exactly one connection kept
/// open for the engine's lifetime: SQLite admits one writer at a time anyway, so a single
/// connection queues writers in the pool (FIFO) instead of having them collide on the file lock
/// and sleep in SQLite's busy handler, and that connection keeps the write statements prepared and
/// the pages they touch cached. Elsewhere (`:memory:`, PostgreSQL) both are the same pool.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub(crate) read: DatabaseConnection,
    pub(crate) write: DatabaseConnection,
    /// A SQLite file opened with `wal_autocheckpoint=0`: the engine must run [`checkpoint`].
    pub(crate) manual_checkpoint: bool,
}

/// How often the engine checkpoints a SQLite file's WAL (see [`checkpoint`]).
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Copies committed WAL frames into the database file (`PRAGMA wal_checkpoint(PASSIVE)`), on a
/// read connection.
///
/// SQLite's automatic checkpoint runs inside the COMMIT that crosses 1000 WAL pages, on the
/// committing connection, fsync included: every few hundred writes one of them stalled for
/// milliseconds while holding the write lock (the create and update p99). A passive checkpoint
/// neither takes the write lock nor waits for readers or writers, so running it from a timer on
/// another connection keeps that work off the write path.
pub(crate) async fn checkpoint(
    conn: &DatabaseConnection,
) -> std::result::Result<i64, sea_orm::DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?;
    // One row: (busy, frames in the WAL, frames copied into the database file).
    Ok(rows
        .first()
        .and_then(|r| r.try_get_by_index::<i64>(1).ok())
        .unwrap_or(0))
}

/// Copies the whole WAL into the database file and truncates the WAL to zero bytes
/// (`PRAGMA wal_checkpoint(TRUNCATE)`); `Ok(false)` when readers kept it from finishing.
pub(crate) async fn checkpoint_truncate(
    conn: &DatabaseConnection,
) -> std::result::Result<bool, sea_orm::DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ))
        .await?;
    // One row: (busy, frames in the WAL, frames copied); busy = 1 when it could not finish.
    Ok(rows
        .first()
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .is_some_and(|busy| busy == 0))
}

/// WAL size (in frames, about 4 KiB each) past which the checkpointer makes the WAL start over.
///
/// SQLite writes a WAL from the start again only when a write transaction begins with every
/// frame already checkpointed. Under a steady stream of writes that never happens by itself: a
/// checkpoint running beside the writer is always a commit or two behind, so the WAL grew
/// without bound (3.6 GB after 40 s of creates in the bench), appending to a growing file costs
/// the kernel a zeroed block per frame, and every read searched a longer WAL index. Past this
/// size the checkpointer holds the writer for one short catch-up checkpoint (a few frames, the
/// bulk was copied beside the writer), so the WAL stays within a few times this size.
pub(crate) const WAL_RESTART_FRAMES: i64 = 2048;

/// A WAL file larger than this is cut back to it when the WAL starts over
/// (`PRAGMA journal_size_limit`), so one burst does not leave a huge file behind; smaller files
/// are reused as they are (overwriting costs less than growing).
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Prepared statements kept per connection. The engine builds one statement text per object,
/// operation and filter shape; 100 (sqlx's default) is too few for a few dozen objects and
/// evicted statements cost a full parse and plan when they come back.
const STATEMENT_CACHE: usize = 256;

/// Rows a SQLite connection thread may produce ahead of the reader. sqlx's default (50) is one
/// less than a page of 50 plus the look-ahead row the engine fetches, which parks the connection
/// thread mid-query until the async side catches up.
const ROW_BUFFER: usize = 256;

/// Address space a SQLite file connection may map for reads (`PRAGMA mmap_size`).
const MMAP_BYTES: u64 = 256 * 1024 * 1024;

/// Opens the pools. SQLite gets WAL, `synchronous=NORMAL`, a busy timeout, in-memory temp
/// tables and foreign keys off (the engine enforces `deleteBehavior` itself); an in-memory SQLite
/// database is a single connection, because every pooled connection would otherwise see its own
/// empty database.
pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<(Pools, Dialect)> {
    let dialect = Dialect::from_url(url)?;
    let memory =
        dialect == Dialect::Sqlite && (url.contains(":memory:") || url.contains("mode=memory"));
    let max = if memory { 1 } else { max_connections.max(1) };
    let read = open_pool(url, dialect, memory, max, if memory { 1 } else { 0 }).await?;
    let write = if dialect == Dialect::Sqlite && !memory {
        open_pool(url, dialect, false, 1, 1).await?
    } else {
        read.clone()
    };
    Ok((
        Pools {
            read,
            write,
            manual_checkpoint: dialect == Dialect::Sqlite && !memory,
        },
        dialect,
    ))
}

async fn open_pool(
    url: &str,
    dialect: Dialect,
    memory: bool,
    max: u32,
    min: u32,
) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max)
        .min_connections(min)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    match dialect {
        // A SQLite connection is a file handle in this process: it cannot go stale, so the ping
        // sqlx sends before every acquire (a round trip to the connection's thread) buys nothing.
        Dialect::Sqlite => {
            opts.test_before_acquire(false);
        }
        // A PostgreSQL connection can be cut while idle; ping only those that sat unused.
        Dialect::Postgres => {
            opts.test_before_acquire_if_idle_for(Duration::from_secs(60));
        }
    }
    if memory || min > 0 {
        // The only copy of an in-memory database lives in its connection, and the SQLite writer
        // keeps its prepared statements and page cache: never let either expire.
        opts.idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>);
    }
    if dialect == Dialect::Sqlite {
        opts.map_sqlx_sqlite_opts(move |o| {
            let o = o
                .busy_timeout(Duration::from_secs(10))
                .statement_cache_capacity(STATEMENT_CACHE)
                .row_buffer_size(ROW_BUFFER)
                .pragma("synchronous", "NORMAL")
                .pragma("foreign_keys", "OFF")
                .pragma("temp_store", "MEMORY")
                .create_if_missing(true);
            if memory {
                o
            } else {
                // Reads through a memory map copy nothing out of the OS page cache (with
                // `pread` they did, per page, on every connection whose cache a write had
                // invalidated); the map only reserves address space, pages count as resident
                // once touched.
                o.pragma("journal_mode", "WAL")
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
                    .pragma("mmap_size", MMAP_BYTES.to_string())
            }
        });
    } else {
        opts.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(STATEMENT_CACHE));
    }
    Database::connect(opts).await.map_err(|e| {
        DataError::Config(format!("cannot connect to database `{}`: {e}", redact(url)))
    })
}

/// A statement under construction: SQL text plus the values bound to its placeholders.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) dialect: Dialect,
    pub(crate) text: String,
    pub(crate) values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::with_capacity(128),
            values: Vec::new(),
        }
    }

    /// Appends fixed SQL text (keywords, punctuation); never user input.
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a quoted identifier.
    pub(crate) fn ident(&mut self, name: &str) -> &mut Self {
        let q = self.dialect.quote(name);
        self.text.push_str(&q);
        self
    }

    /// Appends `"table"."column"`.
    pub(crate) fn qualified(&mut self, table: &str, column: &str) -> &mut Self {
        self.ident(table).push(".").ident(column)
    }

    /// Appends a placeholder and binds `v` to it.
    pub(crate) fn param(&mut self, v: Value) -> &mut Self {
        self.values.push(v);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.values.len().to_string());
            }
        }
        self
    }

    /// Appends a `LIMIT` row count.
    ///
    /// On SQLite the count is written as an integer literal instead of being bound: since 3.47
    /// SQLite marks a statement whose `LIMIT` is a bound parameter for re-preparation every time
    /// that parameter is rebound (the planner looks at the value), so a bound limit defeats the
    /// prepared-statement cache and costs a full parse and plan per query. The value is a
    /// `u64` formatted by Rust, never text from a request, so nothing can be injected.
    /// PostgreSQL keeps the bound parameter, which its statement cache handles well.
    pub(crate) fn limit(&mut self, n: u64) -> &mut Self {
        let n = n.min(i64::MAX as u64);
        self.text.push_str(" LIMIT ");
        match self.dialect {
            Dialect::Sqlite => {
                self.text.push_str(&n.to_string());
                self
            }
            Dialect::Postgres => self.param(Value::BigInt(Some(n as i64))),
        }
    }

    /// Appends another statement's text and values (placeholders renumbered on PostgreSQL).
    pub(crate) fn append(&mut self, other: Sql) -> &mut Self {
        match self.dialect {
            Dialect::Sqlite => {
                self.text.push_str(&other.text);
                self.values.extend(other.values);
            }
            Dialect::Postgres => {
                let offset = self.values.len();
                let bytes = other.text.as_bytes();
                let mut i = 0;
                let mut out = String::with_capacity(other.text.len() + 8);
                let mut in_str = false;
                while i < bytes.len() {
                    let c = bytes[i];
                    if c == b'\'' {
                        in_str = !in_str;
                    }
                    if c == b'$' && !in_str {
                        let start = i + 1;
                        let mut end = start;
                        while end < bytes.len() && bytes[end].is_ascii_digit() {
                            end += 1;
                        }
                        if end > start {
                            let n: usize = other.text[start..end].parse().unwrap_or(0);
                            out.push('$');
                            out.push_str(&(n + offset).to_string());
                            i = end;
                            continue;
                        }
                    }
                    // Copy whole UTF-8 characters, not bytes.
                    let ch_len = utf8_len(c);
                    out.push_str(&other.text[i..i + ch_len]);
                    i += ch_len;
                }
                self.text.push_str(&out);
                self.values.extend(other.values);
            }
        }
        self
    }

    pub(crate) fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.dialect.backend(), self.text, self.values)
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        b if b < 0x80 => 1,
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        _ => 2,
    }
}

/// Runs a statement without results.
pub(crate) async fn exec<C: ConnectionTrait>(conn: &C, sql: Sql) -> Result<u64> {
    let r = conn
        .execute_raw(sql.statement())
        .await
        .map_err(map_db_err)?;
    Ok(r.rows_affected())
}

/// Runs a query and returns all rows.
pub(crate) async fn query<C: ConnectionTrait>(
    conn: &C,
    sql: Sql,
) -> Result<Vec<sea_orm::QueryResult>> {
    conn.query_all_raw(sql.statement())
        .await
        .map_err(map_db_err)
}

/// Maps a database error, keeping unique violations recognisable for the caller and transient
/// failures (a full disk, a lost connection, a busy database) retryable.
pub(crate) fn map_db_err(err: sea_orm::DbErr) -> DataError {
    if let Some(sea_orm::SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
        return DataError::Duplicate {
            object: String::new(),
            message: format!("A record with the same unique value already exists ({detail})"),
            fields: Vec::new(),
        };
    }
    match transient(&err) {
        Some(Transient::StorageFull) => DataError::StorageFull(err.to_string()),
        Some(Transient::Unavailable) => DataError::Unavailable(err.to_string()),
        None => DataError::Database(err.to_string()),
    }
}

/// A database failure that says nothing about the request: retrying later may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transient {
    /// The disk (or the database's size limit) is full: nothing more can be written until space
    /// is freed.
    StorageFull,
    /// The database cannot be reached or is busy (lost connection, pool exhausted, busy
    /// timeout, I/O error, out of memory).
    Unavailable,
}

/// Classifies `err` as transient, or `None` for a failure of the statement itself (a constraint,
/// a bad value, a bug).
pub(crate) fn transient(err: &sea_orm::DbErr) -> Option<Transient> {
    use sea_orm::sqlx::Error as SqlxError;
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx_err = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return Some(Transient::Unavailable),
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return None,
    };
    match sqlx_err.as_ref() {
        SqlxError::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some()
            {
                sqlite_transient(code.parse().unwrap_or(0))
            } else {
                postgres_transient(&code)
            }
        }
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::Protocol(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => Some(Transient::Unavailable),
        _ => None,
    }
}

/// SQLite result codes (the primary code is the low byte of an extended one).
fn sqlite_transient(code: i32) -> Option<Transient> {
    match code & 0xff {
        // SQLITE_FULL: disk full, or `max_page_count` reached.
        13 => Some(Transient::StorageFull),
        // BUSY, LOCKED, NOMEM, READONLY (a read-only file system), IOERR, CORRUPT, CANTOPEN,
        // PROTOCOL, NOTADB: the statement may have been undone with the whole transaction.
        5 | 6 | 7 | 8 | 10 | 11 | 14 | 15 | 26 => Some(Transient::Unavailable),
        _ => None,
    }
}

/// PostgreSQL SQLSTATEs: connection exceptions (08), insufficient resources (53; 53100 is
/// disk full), operator intervention (57P01-57P05: shutdown, crash recovery), serialization
/// failures and deadlocks (40001, 40P01: the transaction was rolled back and may simply be run
/// again).
fn postgres_transient(code: &str) -> Option<Transient> {
    match code {
        "53100" => Some(Transient::StorageFull),
        "40001" | "40P01" | "55P03" | "57014" => Some(Transient::Unavailable),
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            Some(Transient::Unavailable)
        }
        _ => None,
    }
}

/// Whether a failed statement may have ended the transaction it ran in, so the connection's
/// idea of its transaction (sqlx counts BEGINs and SAVEPOINTs itself) can no longer be trusted:
/// SQLite rolls a whole transaction back on its own after a full disk, an I/O error, running
/// out of memory or a busy timeout.
pub(crate) fn leaves_transaction_unknown(err: &sea_orm::DbErr) -> bool {
    transient(err).is_some()
}
