//! What the jobs plugin owns in the data engine, declared as data (plugin spec 6.5 and 6.6):
//! the `sys_job_run` object (whose table is the queue) with its storage settings, the private
//! tables for idempotency keys, leases and schedule ticks, and the `job` metadata kind
//! (`*.job.yml`).

use objectos_data::{ColumnType, MetadataKind, PluginSchema, TableDef, TableStorage};

use crate::schedule;
use crate::table::{KEY_TABLE, LEASE_TABLE, TICK_TABLE};

/// The object job runs are visible as (`/api/v1/data/sys_job_run`, administrators only unless
/// a permission set grants it).
pub const OBJECT: &str = "sys_job_run";

/// Percent of each job table page filled by inserts on PostgreSQL. The rest takes updates of
/// the same rows: an update that changes no indexed column and finds room on its page is a HOT
/// update, written without a new entry in each of the table's indexes: the relay's in-flight
/// and relayed marks (two of a RabbitMQ job's four updates) and lease renewals. Status changes
/// still touch every index. The data engine's schema sync sets it (the plugin issues no DDL);
/// SQLite has no such setting.
pub const JOB_FILLFACTOR: u8 = 70;

/// The system fields whose automatic index the job table goes without. Each index costs every
/// enqueue and every pruned row an entry, and on PostgreSQL every status change one more (a
/// status change is never a HOT update). No statement of the plugin reads the table through
/// them, and `/api/v1/data/sys_job_run` is an administrator's view, whose default sort on
/// `created_at` sorts the rows it selects rather than walking an index. `organization_id`
/// keeps its index: an organization administrator's lists (`/api/v1/jobs` and
/// `/api/v1/data`) select by it. With the pair of declared indexes and the primary key the
/// table has four indexes (nine before, with a `user` object; seven without).
pub const UNINDEXED_SYSTEM_FIELDS: [&str; 5] = [
    "created_at",
    "updated_at",
    "owner_id",
    "created_by",
    "updated_by",
];

/// The job table's storage settings: its fillfactor, and the system-field indexes it leaves
/// out.
fn job_storage() -> TableStorage {
    UNINDEXED_SYSTEM_FIELDS.iter().fold(
        TableStorage::new(OBJECT).fillfactor(JOB_FILLFACTOR),
        |st, f| st.without_system_index(f),
    )
}

/// Everything the plugin owns, contributed at `init`.
pub fn schema() -> PluginSchema {
    PluginSchema::new()
        .object(
            "objects/sys_job_run.object.yml",
            include_str!("../objects/sys_job_run.object.yml"),
        )
        .storage(job_storage())
        // A key row exists while its job is unfinished; the primary key makes a second
        // enqueue with the key in the same scope a no-op on both databases (the role a partial
        // unique index on the job table would play, which object tables cannot declare). The
        // scope is the job's organization, '' for system jobs (organization ids are never
        // empty), so one tenant's key never blocks another's. A new table rather than a new
        // key on the first one (`_objectos_jobs_key`, global keys), because the engine's plan
        // never changes a primary key; that table is no longer read.
        .table(
            TableDef::new(KEY_TABLE)
                .required("scope", ColumnType::Varchar(255))
                .required("key", ColumnType::Varchar(255))
                .required("job_id", ColumnType::Varchar(64))
                .required("created_ms", ColumnType::BigInt)
                .primary_key(&["scope", "key"])
                .index("_objectos_jobs_scoped_key_job", &["job_id"]),
        )
        .table(
            TableDef::new(LEASE_TABLE)
                .required("name", ColumnType::Varchar(128))
                .required("holder", ColumnType::Varchar(255))
                .required("until_ms", ColumnType::BigInt)
                .primary_key(&["name"]),
        )
        .table(
            TableDef::new(TICK_TABLE)
                .required("schedule", ColumnType::Varchar(255))
                .required("tick_ms", ColumnType::BigInt)
                .required("job_id", ColumnType::Varchar(64))
                .primary_key(&["schedule", "tick_ms"]),
        )
        .kind(MetadataKind::typed(
            schedule::KIND,
            schedule::KIND,
            schedule::name_of,
            schedule::validate,
        ))
}
