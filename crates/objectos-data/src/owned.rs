//! What a plugin owns, declared as data: private tables ([`TableDef`]), objects shipped as
//! metadata inside its crate, and metadata kinds ([`crate::MetadataKind`]), contributed at
//! `init` as a [`PluginSchema`].
//! The engine creates and migrates them through the same additive plan as the user's objects
//! (`objectos migrate --dry-run` lists them under their plugin), so no plugin issues DDL.
//!
//! Private tables (credentials, sessions, audit chains) stay out of `/api/v1/data` and
//! `/api/v1/meta`; objects users should see (job runs, notifications, files) are contributed as
//! object metadata and become ordinary objects: REST, permissions, audit, OpenAPI.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::db::Dialect;

/// A column's storage type, portable between SQLite and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Unbounded text.
    Text,
    /// Text of at most `n` characters (`VARCHAR(n)`; SQLite does not enforce the bound).
    Varchar(u16),
    /// A 64-bit integer (also times in epoch milliseconds and 0/1 flags, so the same SQL
    /// compares them on both databases).
    BigInt,
    /// A double-precision float.
    Double,
    /// Raw bytes.
    Blob,
}

impl ColumnType {
    fn sql(self, dialect: Dialect) -> String {
        match (self, dialect) {
            (Self::Text, _) => "TEXT".into(),
            (Self::Varchar(n), _) => format!("VARCHAR({n})"),
            (Self::BigInt, _) => "BIGINT".into(),
            (Self::Double, Dialect::Sqlite) => "REAL".into(),
            (Self::Double, Dialect::Postgres) => "DOUBLE PRECISION".into(),
            (Self::Blob, Dialect::Sqlite) => "BLOB".into(),
            (Self::Blob, Dialect::Postgres) => "BYTEA".into(),
        }
    }
}

/// A column's default, written into the DDL as a literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnDefault {
    Int(i64),
    Text(String),
}

impl ColumnDefault {
    fn sql(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Text(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

/// One column of a [`TableDef`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    pub not_null: bool,
    pub unique: bool,
    pub default: Option<ColumnDefault>,
}

/// A secondary index of a [`TableDef`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexDef {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// A partial index's condition (fixed SQL of the plugin, such as `"status" = 'pending'`).
    pub predicate: Option<String>,
    /// A data statement run just before the index is created on an existing table, so that
    /// rows written before a unique index existed satisfy it (see [`TableDef::prepared_by`]).
    pub prepare: Option<String>,
}

/// A private table a plugin owns, declared as data and created or extended by the engine's
/// migration plan: a missing table is created with its indexes, a missing column added (it must
/// be nullable or have a default, as every column added after a table's first release is), a
/// missing index created, a retired index dropped. Nothing is ever dropped or narrowed; a column
/// whose type changed, or a primary key that changed, is reported as a manual step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableDef {
    name: String,
    columns: Vec<ColumnDef>,
    primary_key: Vec<String>,
    uniques: Vec<Vec<String>>,
    indexes: Vec<IndexDef>,
    retired_indexes: Vec<String>,
}

impl TableDef {
    /// A table named `name`; a plugin's tables are named `_objectos_<plugin>_<what>` by
    /// convention (the leading underscore keeps them apart from object tables).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            uniques: Vec::new(),
            indexes: Vec::new(),
            retired_indexes: Vec::new(),
        }
    }

    fn push(mut self, name: &str, ty: ColumnType, not_null: bool) -> Self {
        self.columns.push(ColumnDef {
            name: name.to_owned(),
            ty,
            not_null,
            unique: false,
            default: None,
        });
        self
    }

    /// A nullable column.
    pub fn column(self, name: &str, ty: ColumnType) -> Self {
        self.push(name, ty, false)
    }

    /// A `NOT NULL` column.
    pub fn required(self, name: &str, ty: ColumnType) -> Self {
        self.push(name, ty, true)
    }

    /// Gives the last column a default.
    pub fn default(mut self, value: ColumnDefault) -> Self {
        if let Some(c) = self.columns.last_mut() {
            c.default = Some(value);
        }
        self
    }

    /// Makes the last column unique on its own.
    pub fn unique_column(mut self) -> Self {
        if let Some(c) = self.columns.last_mut() {
            c.unique = true;
        }
        self
    }

    /// The primary key's columns.
    pub fn primary_key(mut self, columns: &[&str]) -> Self {
        self.primary_key = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// A `UNIQUE (...)` constraint over several columns, created with the table.
    pub fn unique(mut self, columns: &[&str]) -> Self {
        self.uniques
            .push(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// A secondary index.
    pub fn index(mut self, name: &str, columns: &[&str]) -> Self {
        self.indexes.push(IndexDef {
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            unique: false,
            predicate: None,
            prepare: None,
        });
        self
    }

    /// A unique secondary index (created on existing tables too, unlike [`TableDef::unique`]).
    pub fn unique_index(mut self, name: &str, columns: &[&str]) -> Self {
        self.indexes.push(IndexDef {
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            unique: true,
            predicate: None,
            prepare: None,
        });
        self
    }

    /// A statement (fixed DML of the plugin, such as an `UPDATE` that retires duplicates) run
    /// in the same migration just before the last index is created on a table that already
    /// exists: a unique index added in a later release would otherwise fail on rows written
    /// before it. Never run when the table is new.
    pub fn prepared_by(mut self, statement: &str) -> Self {
        if let Some(i) = self.indexes.last_mut() {
            i.prepare = Some(statement.to_owned());
        }
        self
    }

    /// Makes the last index partial: it covers (and, when unique, constrains) only the rows
    /// matching `predicate`, fixed SQL of the plugin valid on SQLite and PostgreSQL
    /// (`"status" = 'pending'`).
    pub fn where_(mut self, predicate: &str) -> Self {
        if let Some(i) = self.indexes.last_mut() {
            i.predicate = Some(predicate.to_owned());
        }
        self
    }

    /// An index an earlier version of the plugin created and no longer wants: dropped when
    /// present (an index holds no data of its own).
    pub fn retired_index(mut self, name: &str) -> Self {
        self.retired_indexes.push(name.to_owned());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn columns(&self) -> &[ColumnDef] {
        &self.columns
    }

    pub fn indexes(&self) -> &[IndexDef] {
        &self.indexes
    }

    pub(crate) fn retired(&self) -> &[String] {
        &self.retired_indexes
    }

    pub(crate) fn primary(&self) -> &[String] {
        &self.primary_key
    }

    /// Every problem of the declaration (names the database would reject or misread, columns
    /// named twice or missing), for the plugin's author.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= 60
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !ident(&self.name) {
            out.push(format!(
                "table name `{}` must be 1-60 lowercase letters, digits or underscores",
                self.name
            ));
        }
        let mut seen = BTreeSet::new();
        for c in &self.columns {
            if !ident(&c.name) {
                out.push(format!(
                    "{}: column name `{}` must be 1-60 lowercase letters, digits or underscores",
                    self.name, c.name
                ));
            }
            if !seen.insert(c.name.as_str()) {
                out.push(format!(
                    "{}: column `{}` is declared twice",
                    self.name, c.name
                ));
            }
        }
        if self.columns.is_empty() {
            out.push(format!("{}: a table needs at least one column", self.name));
        }
        let named = |cols: &[String], what: &str, out: &mut Vec<String>| {
            for c in cols {
                if !seen.contains(c.as_str()) {
                    out.push(format!("{}: {what} names unknown column `{c}`", self.name));
                }
            }
        };
        named(&self.primary_key, "the primary key", &mut out);
        for u in &self.uniques {
            named(u, "a unique constraint", &mut out);
        }
        for i in &self.indexes {
            if !ident(&i.name) {
                out.push(format!(
                    "{}: index name `{}` must be 1-60 lowercase letters, digits or underscores",
                    self.name, i.name
                ));
            }
            if i.columns.is_empty() {
                out.push(format!("{}: index `{}` has no columns", self.name, i.name));
            }
            named(&i.columns, &format!("index `{}`", i.name), &mut out);
        }
        out
    }

    /// The column's definition as it appears in `CREATE TABLE` / `ADD COLUMN`.
    pub(crate) fn column_sql(&self, dialect: Dialect, c: &ColumnDef) -> String {
        let mut s = format!("{} {}", dialect.quote(&c.name), c.ty.sql(dialect));
        if self.primary_key.len() == 1 && self.primary_key[0] == c.name {
            s.push_str(" PRIMARY KEY");
        } else if c.not_null {
            s.push_str(" NOT NULL");
        }
        if c.unique {
            s.push_str(" UNIQUE");
        }
        if let Some(d) = &c.default {
            let _ = write!(s, " DEFAULT {}", d.sql());
        }
        s
    }

    /// `CREATE TABLE` for a database without the table.
    pub(crate) fn create_sql(&self, dialect: Dialect) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| self.column_sql(dialect, c))
            .collect();
        let list = |cols: &[String]| {
            cols.iter()
                .map(|c| dialect.quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.primary_key.len() > 1 {
            parts.push(format!("PRIMARY KEY ({})", list(&self.primary_key)));
        }
        for u in &self.uniques {
            parts.push(format!("UNIQUE ({})", list(u)));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            dialect.quote(&self.name),
            parts.join(", ")
        )
    }

    pub(crate) fn index_sql(&self, dialect: Dialect, i: &IndexDef) -> String {
        let predicate = i
            .predicate
            .as_ref()
            .map(|p| format!(" WHERE {p}"))
            .unwrap_or_default();
        format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {} ({}){predicate}",
            if i.unique { "UNIQUE " } else { "" },
            dialect.quote(&i.name),
            dialect.quote(&self.name),
            i.columns
                .iter()
                .map(|c| dialect.quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// A stable digest of the declaration: recorded when applied, so a start whose plugins
    /// declare exactly what was applied skips introspection.
    pub(crate) fn digest_into(&self, out: &mut String) {
        // The SQLite DDL is a complete, stable rendering of every part of the declaration.
        out.push_str(&self.create_sql(Dialect::Sqlite));
        for i in &self.indexes {
            out.push(';');
            out.push_str(&self.index_sql(Dialect::Sqlite, i));
            if let Some(p) = &i.prepare {
                out.push_str(";<");
                out.push_str(p);
            }
        }
        for r in &self.retired_indexes {
            out.push_str(";-");
            out.push_str(r);
        }
        out.push('\n');
    }
}

/// The system fields the engine indexes on every object's table (`ix_<table>_<field>`; the
/// user references among them only when a `user` object exists): the ones an object's plugin
/// may leave out with [`TableStorage::without_system_index`].
pub const INDEXED_SYSTEM_FIELDS: [&str; 6] = [
    "created_at",
    "updated_at",
    "organization_id",
    "owner_id",
    "created_by",
    "updated_by",
];

/// Storage settings of a table a plugin owns (one of its private tables, or the table of an
/// object it ships). PostgreSQL's per-table options (`fillfactor`), which SQLite has no
/// equivalent of: the schema sync applies them on PostgreSQL when the table's `reloptions` lack
/// them (after creating the table, at a start whose declarations changed, and whenever a start
/// finds them reset), and ignores them on SQLite. And, on the table of an object the plugin
/// ships, the automatic system-field indexes it leaves out, on both databases. Either way a
/// plugin never issues DDL for them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableStorage {
    table: String,
    fillfactor: Option<u8>,
    /// System fields whose automatic index the object's table goes without.
    unindexed: Vec<String>,
}

impl TableStorage {
    /// Settings of table `table` (none yet).
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            fillfactor: None,
            unindexed: Vec::new(),
        }
    }

    /// Leaves out the index the engine gives system field `field` (one of
    /// [`INDEXED_SYSTEM_FIELDS`]) on the table of an object the plugin ships. Every index
    /// costs each insert and delete an entry, and on PostgreSQL every update that is not HOT
    /// one more: worth it for a table the plugin writes with its own statements and never
    /// reads through that field (a queue). The schema sync does not create it, and drops it
    /// where an earlier start created it, as a step of the plan (`objectos migrate --dry-run`
    /// lists it as retired by its plugin; an index holds no data of its own). An index the
    /// object file declares under `indexes:` over the field is kept.
    pub fn without_system_index(mut self, field: &str) -> Self {
        if !self.unindexed.iter().any(|f| f == field) {
            self.unindexed.push(field.to_owned());
        }
        self
    }

    /// The system fields whose automatic index the table goes without.
    pub fn unindexed_system_fields(&self) -> &[String] {
        &self.unindexed
    }

    /// Percent of each page inserts fill (10 to 100), leaving the rest for updates of the same
    /// rows: an update that changes no indexed column and finds room on its page is a HOT
    /// update, which adds no index entries. Worth it for a table whose rows are updated
    /// several times each (a queue).
    pub fn fillfactor(mut self, percent: u8) -> Self {
        self.fillfactor = Some(percent);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The settings as PostgreSQL lists them in `pg_class.reloptions` (`fillfactor=70`).
    pub(crate) fn options(&self) -> Vec<String> {
        self.fillfactor
            .map(|f| format!("fillfactor={f}"))
            .into_iter()
            .collect()
    }

    /// The statement setting every option on PostgreSQL (`None` when there is none).
    pub(crate) fn alter_sql(&self) -> Option<String> {
        let options = self.options();
        (!options.is_empty()).then(|| {
            let set: Vec<String> = options.iter().map(|o| o.replace('=', " = ")).collect();
            format!(
                "ALTER TABLE {} SET ({})",
                Dialect::Postgres.quote(&self.table),
                set.join(", ")
            )
        })
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = self.fillfactor
            && !(10..=100).contains(&f)
        {
            out.push(format!(
                "table `{}`: fillfactor {f} is out of range; PostgreSQL accepts 10 to 100",
                self.table
            ));
        }
        for f in &self.unindexed {
            if !INDEXED_SYSTEM_FIELDS.contains(&f.as_str()) {
                out.push(format!(
                    "table `{}`: `{f}` has no automatic index to leave out; the system fields with one are {}",
                    self.table,
                    INDEXED_SYSTEM_FIELDS.join(", ")
                ));
            }
        }
        out
    }
}

/// What one plugin owns: private tables and objects shipped inside its crate. A plugin
/// contributes it at `init` (`cx.contribute(PluginSchema::new().table(...))`); the data plugin
/// collects every contribution, names it after the contributing plugin and hands it to the
/// engine before it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSchema {
    plugin: String,
    tables: Vec<TableDef>,
    objects: Vec<(String, String)>,
    kinds: Vec<crate::kinds::MetadataKind>,
    storage: Vec<TableStorage>,
}

impl PluginSchema {
    pub fn new() -> Self {
        Self::default()
    }

    /// A private table.
    pub fn table(mut self, table: TableDef) -> Self {
        self.tables.push(table);
        self
    }

    /// An object the plugin ships as metadata (`*.object.yml` text, usually `include_str!`);
    /// `path` names it in diagnostics (`objects/job_run.object.yml`).
    pub fn object(mut self, path: impl Into<String>, text: impl Into<String>) -> Self {
        self.objects.push((path.into(), text.into()));
        self
    }

    /// A metadata kind the plugin reads from the metadata folders (`*.flow.yml`, ...).
    pub fn kind(mut self, kind: crate::kinds::MetadataKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Storage settings of one of its tables (a private table, or the table of an object it
    /// ships): applied by the schema sync on PostgreSQL, ignored on SQLite.
    pub fn storage(mut self, storage: TableStorage) -> Self {
        self.storage.push(storage);
        self
    }

    pub fn storage_settings(&self) -> &[TableStorage] {
        &self.storage
    }

    /// True when the schema sync has something of this plugin to plan and record: tables or
    /// storage settings (system-field indexes left out included).
    pub(crate) fn declares_storage(&self) -> bool {
        !self.tables.is_empty() || !self.storage.is_empty()
    }

    /// The same schema, owned by `plugin` (the data plugin sets it from the contribution).
    pub fn owned_by(mut self, plugin: impl Into<String>) -> Self {
        self.plugin = plugin.into();
        let plugin = self.plugin.clone();
        self.kinds = self
            .kinds
            .into_iter()
            .map(|k| k.owned_by(plugin.clone()))
            .collect();
        self
    }

    pub fn kinds(&self) -> &[crate::kinds::MetadataKind] {
        &self.kinds
    }

    /// Every metadata kind the plugins declare.
    pub fn all_kinds(
        schemas: &[PluginSchema],
    ) -> impl Iterator<Item = &crate::kinds::MetadataKind> {
        schemas.iter().flat_map(|s| s.kinds.iter())
    }

    /// The plugin metadata kind a file at `path` belongs to, if any.
    pub fn kind_of<'a>(
        schemas: &'a [PluginSchema],
        path: &str,
    ) -> Option<&'a crate::kinds::MetadataKind> {
        Self::all_kinds(schemas).find(|k| k.matches(path))
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn tables(&self) -> &[TableDef] {
        &self.tables
    }

    /// The object files, as `(path, text)`.
    pub fn objects(&self) -> &[(String, String)] {
        &self.objects
    }

    /// The name an object file of this plugin carries in diagnostics.
    pub(crate) fn object_label(&self, path: &str) -> String {
        format!("plugin {}: {path}", self.plugin)
    }

    /// The `_objectos_schema` key its tables' digest is recorded under (object names never
    /// start with `_`).
    pub(crate) fn record_key(&self) -> String {
        format!("__plugin:{}", self.plugin)
    }

    pub(crate) fn digest(&self) -> String {
        let mut text = String::new();
        for t in &self.tables {
            t.digest_into(&mut text);
        }
        // Only when present, so the digest of a plugin without storage settings is the one
        // recorded before they existed.
        for st in &self.storage {
            text.push_str("storage ");
            text.push_str(&st.table);
            for o in st.options() {
                text.push(' ');
                text.push_str(&o);
            }
            // Likewise only when present: the digest of settings without them is unchanged.
            for f in &st.unindexed {
                text.push_str(" -index:");
                text.push_str(f);
            }
            text.push('\n');
        }
        crate::meta::stable_hash(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> TableDef {
        TableDef::new("_objectos_demo_session")
            .required("id", ColumnType::Varchar(64))
            .required("token_hash", ColumnType::Varchar(64))
            .unique_column()
            .required("failed", ColumnType::BigInt)
            .default(ColumnDefault::Int(0))
            .column("note", ColumnType::Text)
            .primary_key(&["id"])
            .index("_objectos_demo_session_note", &["note"])
    }

    #[test]
    fn the_ddl_is_portable_and_quoted() {
        let t = session();
        assert_eq!(
            t.create_sql(Dialect::Postgres),
            "CREATE TABLE IF NOT EXISTS \"_objectos_demo_session\" (\"id\" VARCHAR(64) PRIMARY KEY, \
             \"token_hash\" VARCHAR(64) NOT NULL UNIQUE, \"failed\" BIGINT NOT NULL DEFAULT 0, \"note\" TEXT)"
        );
        let multi = TableDef::new("_objectos_demo_member")
            .required("org_id", ColumnType::Varchar(64))
            .required("user_id", ColumnType::Varchar(64))
            .primary_key(&["org_id", "user_id"]);
        assert!(
            multi
                .create_sql(Dialect::Sqlite)
                .ends_with("PRIMARY KEY (\"org_id\", \"user_id\"))")
        );
        assert!(t.problems().is_empty(), "{:?}", t.problems());
    }

    #[test]
    fn declaration_mistakes_are_named() {
        let bad = TableDef::new("Bad Name")
            .column("a", ColumnType::Text)
            .column("a", ColumnType::Text)
            .primary_key(&["missing"])
            .index("ix", &["nope"]);
        let p = bad.problems().join("\n");
        assert!(p.contains("table name `Bad Name`"), "{p}");
        assert!(p.contains("column `a` is declared twice"), "{p}");
        assert!(
            p.contains("primary key names unknown column `missing`"),
            "{p}"
        );
        assert!(p.contains("index `ix` names unknown column `nope`"), "{p}");
    }

    #[test]
    fn the_digest_follows_the_declaration() {
        let a = PluginSchema::new().table(session()).owned_by("x");
        let b = PluginSchema::new()
            .table(session().column("extra", ColumnType::Text))
            .owned_by("x");
        assert_eq!(a.digest(), a.clone().digest());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn left_out_system_indexes_change_the_digest_and_are_checked() {
        let plain = PluginSchema::new()
            .storage(TableStorage::new("run").fillfactor(70))
            .owned_by("x");
        let lean = PluginSchema::new()
            .storage(
                TableStorage::new("run")
                    .fillfactor(70)
                    .without_system_index("created_at")
                    .without_system_index("created_at"),
            )
            .owned_by("x");
        assert_ne!(plain.digest(), lean.digest());
        assert_eq!(
            lean.storage_settings()[0].unindexed_system_fields(),
            ["created_at"]
        );
        // The options PostgreSQL is compared against stay the fillfactor alone.
        assert_eq!(lean.storage_settings()[0].options(), ["fillfactor=70"]);
        assert!(lean.storage_settings()[0].problems().is_empty());
        let bad = TableStorage::new("run").without_system_index("title");
        assert!(
            bad.problems()[0].contains("`title` has no automatic index"),
            "{:?}",
            bad.problems()
        );
    }
}
