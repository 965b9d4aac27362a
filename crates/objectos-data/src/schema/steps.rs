//! The migration plan's vocabulary: its steps, the plan per object and per plugin, and what a run did.

use std::fmt;

/// One step of a migration plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationStep {
    CreateTable {
        object: String,
        sql: String,
    },
    AddColumn {
        object: String,
        column: String,
        sql: String,
    },
    CreateIndex {
        object: String,
        index: String,
        sql: String,
    },
    /// Drops an index an older DDL version created that `replaced_by` (over `columns`, created
    /// earlier in the same plan or already present) supersedes, or (`replaced_by` empty) the
    /// unique index of `columns`, a field no longer declared unique. An index holds no data of
    /// its own: dropping it loses nothing. Tables and columns are never dropped.
    DropIndex {
        object: String,
        index: String,
        replaced_by: String,
        columns: Vec<String>,
        sql: String,
    },
    /// Drops an index the plugin that owns the table retired: one it lists in its `TableDef`,
    /// or the automatic index of a system field of its object that it leaves out
    /// (`TableStorage::without_system_index`). An index holds no data of its own.
    RetireIndex {
        object: String,
        index: String,
        sql: String,
    },
    /// Sets a plugin's storage settings on its table (PostgreSQL only: `fillfactor`), planned
    /// when the table's `reloptions` lack them.
    SetStorage {
        object: String,
        sql: String,
    },
    /// Something the engine will not do automatically (type change); printed as a SQL comment.
    Manual {
        object: String,
        column: String,
        message: String,
    },
}

impl MigrationStep {
    /// The SQL to run, `None` for manual steps.
    pub fn sql(&self) -> Option<&str> {
        match self {
            Self::CreateTable { sql, .. }
            | Self::AddColumn { sql, .. }
            | Self::CreateIndex { sql, .. }
            | Self::DropIndex { sql, .. }
            | Self::RetireIndex { sql, .. }
            | Self::SetStorage { sql, .. } => Some(sql),
            Self::Manual { .. } => None,
        }
    }

    /// The object the step belongs to.
    pub fn object(&self) -> &str {
        match self {
            Self::CreateTable { object, .. }
            | Self::AddColumn { object, .. }
            | Self::CreateIndex { object, .. }
            | Self::DropIndex { object, .. }
            | Self::RetireIndex { object, .. }
            | Self::SetStorage { object, .. }
            | Self::Manual { object, .. } => object,
        }
    }
}

impl fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manual {
                object,
                column,
                message,
            } => {
                write!(
                    f,
                    "-- manual step (skipped): {object}.{column}: {}",
                    message.replace('\n', " ")
                )
            }
            Self::DropIndex {
                sql,
                replaced_by,
                columns,
                ..
            } if replaced_by.is_empty() => write!(
                f,
                "{sql}; -- {} is no longer unique; dropping an index loses no data",
                columns.join(", ")
            ),
            Self::DropIndex {
                sql,
                replaced_by,
                columns,
                ..
            } => write!(
                f,
                "{sql}; -- superseded by {} ({}); dropping an index loses no data",
                replaced_by,
                columns.join(", ")
            ),
            Self::RetireIndex { sql, .. } => {
                write!(
                    f,
                    "{sql}; -- retired by its plugin; dropping an index loses no data"
                )
            }
            other => write!(f, "{};", other.sql().unwrap_or_default()),
        }
    }
}

/// The additive plan: what `migrate` would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationPlan {
    /// The steps of the metadata's objects and the engine's own tables.
    pub steps: Vec<MigrationStep>,
    /// Objects whose recorded hash differs from the current metadata (recorded on migrate).
    pub changed_objects: Vec<String>,
    /// The steps of each plugin's private tables, per plugin (in the order plugins were
    /// given; plugins with nothing to do included, with no steps).
    pub plugins: Vec<PluginSteps>,
}

/// The steps of one plugin's private tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSteps {
    pub plugin: String,
    /// The tables the plugin declares.
    pub tables: Vec<String>,
    pub steps: Vec<MigrationStep>,
}

impl MigrationPlan {
    /// True when there is nothing to run (manual steps do not count: they are never run).
    pub fn is_empty(&self) -> bool {
        self.all_steps()
            .all(|s| matches!(s, MigrationStep::Manual { .. }))
    }

    /// Every step: the objects' first, then each plugin's.
    pub fn all_steps(&self) -> impl Iterator<Item = &MigrationStep> {
        self.steps
            .iter()
            .chain(self.plugins.iter().flat_map(|p| p.steps.iter()))
    }
}

impl fmt::Display for MigrationPlan {
    /// One SQL statement per line; each plugin's tables under a comment naming the plugin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        for p in &self.plugins {
            if p.steps.is_empty() {
                writeln!(
                    f,
                    "-- plugin {}: {} up to date",
                    p.plugin,
                    p.tables.join(", ")
                )?;
            } else {
                writeln!(f, "-- plugin {}: {}", p.plugin, p.tables.join(", "))?;
                for s in &p.steps {
                    writeln!(f, "{s}")?;
                }
            }
        }
        Ok(())
    }
}

/// What `migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: usize,
    pub skipped_manual: usize,
    pub objects_recorded: usize,
}
