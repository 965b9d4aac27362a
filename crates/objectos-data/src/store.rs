//! The statement API plugins reach their own tables through: a SQL buffer that binds every value
//! ([`Sql`]), typed values ([`SqlValue`]) and rows ([`Row`]), and the [`Store`] trait the engine's
//! pools and transactions implement. Plugins depend on this, never on sea-orm (`cargo xtask deps`
//! refuses it), so the database layer stays the data crate's to change.
//!
//! The tables themselves are declared as data ([`crate::TableDef`]) and created and migrated by
//! the engine's migration plan; a plugin issues no DDL.

use std::fmt;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement, Value};
use tracing::Instrument as _;

use crate::db::{self, Dialect};
use crate::error::{DataError, Result};

/// A value bound to a placeholder. Nulls are typed (`Text(None)`, `Int(None)`): PostgreSQL
/// checks a parameter's type against its column even when it is null.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

impl SqlValue {
    fn into_value(self) -> Value {
        match self {
            Self::Text(v) => Value::String(v),
            Self::Int(v) => Value::BigInt(v),
            Self::Float(v) => Value::Double(v),
            Self::Bool(v) => Value::Bool(v),
            Self::Bytes(v) => Value::Bytes(v),
        }
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        Self::Text(Some(v.clone()))
    }
}

impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}

impl From<Option<&str>> for SqlValue {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}

impl From<&Option<String>> for SqlValue {
    fn from(v: &Option<String>) -> Self {
        Self::Text(v.clone())
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        Self::Int(Some(i64::from(v)))
    }
}

impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        Self::Int(Some(i64::from(v)))
    }
}

impl From<Option<i64>> for SqlValue {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        Self::Float(Some(v))
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        Self::Bool(Some(v))
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(Some(v))
    }
}

/// A statement under construction: fixed SQL text plus the values bound to its placeholders,
/// written `?` by the caller and numbered `$1, $2, ...` on PostgreSQL as they are appended.
///
/// Values only ever travel as bound parameters; text appended with [`Sql::push`] must be fixed
/// SQL of the plugin (keywords, its own table and column names), never input.
#[derive(Clone)]
pub struct Sql {
    dialect: Dialect,
    text: String,
    values: Vec<Value>,
}

impl fmt::Debug for Sql {
    /// The text only: bound values may be secrets (hashes, tokens) and stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sql")
            .field("text", &self.text)
            .field("values", &self.values.len())
            .finish()
    }
}

impl Sql {
    /// An empty statement for `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::with_capacity(128),
            values: Vec::new(),
        }
    }

    /// A whole statement at once: every `?` outside a quoted literal or identifier in `text`
    /// takes the next of `values`.
    ///
    /// # Errors
    /// [`DataError::Internal`] when the number of placeholders and values differ (a bug in the
    /// calling plugin, reported rather than sent to the database).
    pub fn with(dialect: Dialect, text: &str, values: Vec<SqlValue>) -> Result<Self> {
        let mut sql = Self::new(dialect);
        let mut values = values.into_iter();
        let mut quote: Option<char> = None;
        for ch in text.chars() {
            match (quote, ch) {
                (None, '\'' | '"') => {
                    quote = Some(ch);
                    sql.text.push(ch);
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    sql.text.push(ch);
                }
                (None, '?') => {
                    let Some(v) = values.next() else {
                        return Err(DataError::Internal(format!(
                            "statement has more placeholders than values: {text}"
                        )));
                    };
                    sql.bind(v);
                }
                _ => sql.text.push(ch),
            }
        }
        if values.next().is_some() {
            return Err(DataError::Internal(format!(
                "statement has fewer placeholders than values: {text}"
            )));
        }
        Ok(sql)
    }

    /// The dialect the statement is written for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The SQL text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends fixed SQL text (keywords, punctuation, the plugin's own identifiers).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a quoted identifier.
    pub fn ident(&mut self, name: &str) -> &mut Self {
        let q = self.dialect.quote(name);
        self.text.push_str(&q);
        self
    }

    /// Appends a placeholder and binds `v` to it.
    pub fn bind(&mut self, v: impl Into<SqlValue>) -> &mut Self {
        self.values.push(v.into().into_value());
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.values.len().to_string());
            }
        }
        self
    }

    /// Appends `?, ?, ...`, one bound placeholder per value (for `IN (...)` and `VALUES (...)`).
    pub fn bind_list<V: Into<SqlValue>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.dialect.backend(), self.text, self.values)
    }
}

impl Dialect {
    /// The suffix that makes a `SELECT` inside a transaction lock the rows it returns until the
    /// commit: ` FOR UPDATE` on PostgreSQL, nothing on SQLite (whose write transaction already
    /// holds the whole database's write lock).
    pub fn for_update(self) -> &'static str {
        match self {
            Self::Postgres => " FOR UPDATE",
            Self::Sqlite => "",
        }
    }
}

/// One result row; columns are read by position (the `SELECT` list's order) or by name.
pub struct Row(QueryResult);

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("columns", &self.0.column_names())
            .finish()
    }
}

impl Row {
    /// Column `idx` (0-based) as `T`; an error names the column when it is missing, null where
    /// `T` is not an `Option`, or of another type.
    pub fn get<T: FromColumn>(&self, idx: usize) -> Result<T> {
        T::from_column(self, Column::Index(idx))
    }

    /// Column `name` as `T` (see [`Row::get`]).
    pub fn get_named<T: FromColumn>(&self, name: &str) -> Result<T> {
        T::from_column(self, Column::Name(name))
    }

    /// The column names, in order.
    pub fn columns(&self) -> Vec<String> {
        self.0.column_names()
    }
}

/// A column of a [`Row`], by position or name.
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    Index(usize),
    Name(&'a str),
}

impl fmt::Display for Column<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Index(i) => write!(f, "column {i}"),
            Self::Name(n) => write!(f, "column `{n}`"),
        }
    }
}

/// A Rust type a column can be read as: `String`, `i64`, `f64`, `bool`, `Vec<u8>` and their
/// `Option`s (null as `None`).
pub trait FromColumn: Sized {
    /// Reads `col` of `row`.
    fn from_column(row: &Row, col: Column<'_>) -> Result<Self>;
}

fn read<T: sea_orm::TryGetable>(row: &Row, col: Column<'_>) -> Result<T> {
    let r = match col {
        Column::Index(i) => row.0.try_get_by_index::<T>(i),
        Column::Name(n) => row.0.try_get::<T>("", n),
    };
    r.map_err(|e| DataError::Database(format!("{col}: {e}")))
}

macro_rules! from_column {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_column(row: &Row, col: Column<'_>) -> Result<Self> {
                read::<$t>(row, col)
            }
        }
        impl FromColumn for Option<$t> {
            fn from_column(row: &Row, col: Column<'_>) -> Result<Self> {
                read::<Option<$t>>(row, col)
            }
        }
    )*};
}

from_column!(String, f64, bool, Vec<u8>);

// Integers are read as i64 whatever the column's width (SQLite INTEGER, PostgreSQL INT4 or
// INT8): a COUNT(*) is INT8 on PostgreSQL and a plugin's BIGINT columns are too, but a
// literal or a small column may come back as INT4.
impl FromColumn for i64 {
    fn from_column(row: &Row, col: Column<'_>) -> Result<Self> {
        Option::<i64>::from_column(row, col)?
            .ok_or_else(|| DataError::Database(format!("{col}: unexpected null")))
    }
}

impl FromColumn for Option<i64> {
    fn from_column(row: &Row, col: Column<'_>) -> Result<Self> {
        match read::<Option<i64>>(row, col) {
            Ok(v) => Ok(v),
            Err(first) => read::<Option<i32>>(row, col)
                .map(|v| v.map(i64::from))
                .map_err(|_| first),
        }
    }
}

/// Somewhere statements run: the engine's pools ([`crate::DataEngine::pool`],
/// [`crate::DataEngine::writer`]), a hook's [`crate::WriteTx`], an [`crate::OwnTransaction`] or
/// a [`ReadSnapshot`].
#[async_trait]
pub trait Store: Send + Sync {
    /// The dialect statements must be written for.
    fn dialect(&self) -> Dialect;

    /// A new empty statement for this store's dialect.
    fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    /// Runs a statement; returns the number of rows it changed.
    async fn execute(&self, sql: Sql) -> Result<u64>;

    /// Runs a query; returns every row.
    async fn fetch_all(&self, sql: Sql) -> Result<Vec<Row>>;

    /// Runs a query; returns its first row, if any.
    async fn fetch_optional(&self, sql: Sql) -> Result<Option<Row>>;
}

/// Runs statements through any sea-orm connection (a pool, a transaction), each in a
/// `db.statement` span like the engine's own (text with placeholders, never the values).
pub(crate) async fn execute_on<C: ConnectionTrait>(c: &C, sql: Sql) -> Result<u64> {
    let span = crate::observe::store_span(sql.dialect, &sql.text);
    c.execute_raw(sql.statement())
        .instrument(span)
        .await
        .map(|r| r.rows_affected())
        .map_err(db::map_db_err)
}

pub(crate) async fn fetch_all_on<C: ConnectionTrait>(c: &C, sql: Sql) -> Result<Vec<Row>> {
    let span = crate::observe::store_span(sql.dialect, &sql.text);
    c.query_all_raw(sql.statement())
        .instrument(span)
        .await
        .map(|rows| rows.into_iter().map(Row).collect())
        .map_err(db::map_db_err)
}

pub(crate) async fn fetch_optional_on<C: ConnectionTrait>(c: &C, sql: Sql) -> Result<Option<Row>> {
    let span = crate::observe::store_span(sql.dialect, &sql.text);
    c.query_one_raw(sql.statement())
        .instrument(span)
        .await
        .map(|row| row.map(Row))
        .map_err(db::map_db_err)
}

/// One of the engine's connection pools as a [`Store`] (see [`crate::DataEngine::pool`] and
/// [`crate::DataEngine::writer`]).
#[derive(Clone, Copy)]
pub struct Pool<'a> {
    pub(crate) conn: &'a DatabaseConnection,
    pub(crate) dialect: Dialect,
}

impl fmt::Debug for Pool<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("dialect", &self.dialect)
            .finish()
    }
}

#[async_trait]
impl Store for Pool<'_> {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn execute(&self, sql: Sql) -> Result<u64> {
        execute_on(self.conn, sql).await
    }

    async fn fetch_all(&self, sql: Sql) -> Result<Vec<Row>> {
        fetch_all_on(self.conn, sql).await
    }

    async fn fetch_optional(&self, sql: Sql) -> Result<Option<Row>> {
        fetch_optional_on(self.conn, sql).await
    }
}

#[async_trait]
impl Store for crate::hooks::WriteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::of_backend(self.get_database_backend())
    }

    async fn execute(&self, sql: Sql) -> Result<u64> {
        execute_on(self, sql).await
    }

    async fn fetch_all(&self, sql: Sql) -> Result<Vec<Row>> {
        fetch_all_on(self, sql).await
    }

    async fn fetch_optional(&self, sql: Sql) -> Result<Option<Row>> {
        fetch_optional_on(self, sql).await
    }
}

#[async_trait]
impl Store for crate::engine::OwnTransaction {
    fn dialect(&self) -> Dialect {
        Dialect::of_backend(self.get_database_backend())
    }

    async fn execute(&self, sql: Sql) -> Result<u64> {
        execute_on(self, sql).await
    }

    async fn fetch_all(&self, sql: Sql) -> Result<Vec<Row>> {
        fetch_all_on(self, sql).await
    }

    async fn fetch_optional(&self, sql: Sql) -> Result<Option<Row>> {
        fetch_optional_on(self, sql).await
    }
}

/// A read-only transaction that sees one consistent state of the database for its whole life
/// (repeatable read on PostgreSQL; on SQLite a read transaction on one connection): for reads
/// that must agree with each other, such as walking an audit chain while appends continue.
pub struct ReadSnapshot {
    pub(crate) tx: sea_orm::DatabaseTransaction,
    pub(crate) dialect: Dialect,
}

impl fmt::Debug for ReadSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSnapshot")
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl ReadSnapshot {
    /// Ends the snapshot.
    pub async fn finish(self) -> Result<()> {
        self.tx.rollback().await.map_err(db::map_db_err)
    }
}

#[async_trait]
impl Store for ReadSnapshot {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn execute(&self, sql: Sql) -> Result<u64> {
        execute_on(&self.tx, sql).await
    }

    async fn fetch_all(&self, sql: Sql) -> Result<Vec<Row>> {
        fetch_all_on(&self.tx, sql).await
    }

    async fn fetch_optional(&self, sql: Sql) -> Result<Option<Row>> {
        fetch_optional_on(&self.tx, sql).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_and_skip_quoted_text() {
        let sql = Sql::with(
            Dialect::Postgres,
            "SELECT '?' FROM \"t?\" WHERE a = ? AND b = ?",
            vec!["x".into(), 1i64.into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sql.text(), "SELECT '?' FROM \"t?\" WHERE a = $1 AND b = $2");
        let sql = Sql::with(
            Dialect::Sqlite,
            "a = ? AND b = ?",
            vec!["x".into(), 2i64.into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sql.text(), "a = ? AND b = ?");
    }

    #[test]
    fn a_count_mismatch_is_an_error_not_a_statement() {
        assert!(Sql::with(Dialect::Sqlite, "a = ? AND b = ?", vec!["x".into()]).is_err());
        assert!(Sql::with(Dialect::Sqlite, "a = ?", vec!["x".into(), "y".into()]).is_err());
    }

    #[test]
    fn bind_list_appends_one_placeholder_per_value() {
        let mut sql = Sql::new(Dialect::Postgres);
        sql.push("IN (").bind_list(["a", "b", "c"]).push(")");
        assert_eq!(sql.text(), "IN ($1, $2, $3)");
        let debug = format!("{sql:?}");
        assert!(!debug.contains('a') || debug.contains("text"), "{debug}");
    }
}
