//! Metrics the engine records through the `metrics` facade: operation latency, group-commit
//! size, outbox dispatch. Names follow `objectos_<plugin>_<what>_<unit>`; the metrics plugin
//! installs the recorder, and without one every call here is a no-op.

use std::time::Instant;

/// Histogram: duration of one engine operation, by `operation`.
pub(crate) const OPERATION_DURATION: &str = "objectos_data_operation_duration_seconds";
/// Histogram: writes committed together by one SQLite group commit.
pub(crate) const GROUP_COMMIT_SIZE: &str = "objectos_data_group_commit_size";
/// Counter: outbox events published.
pub(crate) const OUTBOX_DISPATCHED: &str = "objectos_data_outbox_dispatched_total";
/// Histogram: time from the write to the publication of its outbox event.
pub(crate) const OUTBOX_LAG: &str = "objectos_data_outbox_dispatch_lag_seconds";

/// Records an operation's duration when dropped, however the operation ends (an error, a
/// cancelled request future).
#[must_use = "the timer records when dropped"]
pub(crate) struct OpTimer {
    operation: Op,
    started: Instant,
}

/// The engine operations timed by [`OpTimer`]: a closed set, so each keeps its histogram
/// handle in a slot of its own instead of looking the series up on every call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Find,
    Aggregate,
    Count,
    Get,
    Create,
    Update,
    Delete,
    Batch,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::Find,
        Op::Aggregate,
        Op::Count,
        Op::Get,
        Op::Create,
        Op::Update,
        Op::Delete,
        Op::Batch,
    ];

    /// The `operation` label.
    fn label(self) -> &'static str {
        match self {
            Op::Find => "find",
            Op::Aggregate => "aggregate",
            Op::Count => "count",
            Op::Get => "get",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Batch => "batch",
        }
    }
}

type Kept = objectos_kernel::recorder::Kept<metrics::Histogram>;

/// One kept handle per [`Op`], in [`Op::ALL`] order.
static OPERATION_HANDLES: [Kept; Op::ALL.len()] = [const { Kept::new() }; Op::ALL.len()];

impl OpTimer {
    pub(crate) fn start(operation: Op) -> Self {
        Self {
            operation,
            started: Instant::now(),
        }
    }
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        let op = self.operation;
        OPERATION_HANDLES[op as usize].with(
            || metrics::histogram!(OPERATION_DURATION, "operation" => op.label()),
            |h| h.record(seconds),
        );
    }
}

/// Histogram: how long a write waited for the database (a pooled connection on PostgreSQL,
/// the single writer on SQLite) before its transaction began.
pub(crate) const POOL_WAIT: &str = "objectos_data_pool_wait_seconds";

/// A write waited since `since` for its connection.
pub(crate) fn pool_waited(since: Instant) {
    metrics::histogram!(POOL_WAIT, "pool" => "write").record(since.elapsed().as_secs_f64());
}

/// A group commit of `members` writes went through.
pub(crate) fn group_committed(members: usize) {
    metrics::histogram!(GROUP_COMMIT_SIZE).record(members as f64);
}

/// Outbox events written at `stamps` were published now.
pub(crate) fn outbox_published(stamps: &[chrono::DateTime<chrono::Utc>]) {
    if stamps.is_empty() {
        return;
    }
    let now = chrono::Utc::now();
    metrics::counter!(OUTBOX_DISPATCHED).increment(stamps.len() as u64);
    let lag = metrics::histogram!(OUTBOX_LAG);
    for t in stamps {
        lag.record((now - *t).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
    }
}

/// The span of one SQL statement (debug level: created only when the tracing backend asks for
/// it). It carries the statement text with its placeholders, never the bound values, which may
/// be record data or secrets.
pub(crate) fn statement_span(sql: &crate::db::Sql) -> tracing::Span {
    text_span(sql.dialect, &sql.text, None)
}

/// The span of a statement a plugin runs through [`crate::store`] (its own tables, the jobs
/// queue, the audit chain): the same `db.statement` span as the engine's, with `db.caller =
/// "plugin"` so a trace tells the two apart. Free while tracing is off: the text is only
/// formatted when the span is enabled.
pub(crate) fn store_span(dialect: crate::db::Dialect, text: &str) -> tracing::Span {
    text_span(dialect, text, Some("plugin"))
}

fn text_span(dialect: crate::db::Dialect, text: &str, caller: Option<&str>) -> tracing::Span {
    tracing::debug_span!(
        "db.statement",
        otel.name = statement_verb(text),
        db.system = match dialect {
            crate::db::Dialect::Sqlite => "sqlite",
            crate::db::Dialect::Postgres => "postgresql",
        },
        db.statement = %text,
        db.caller = caller,
    )
}

/// The statement's first keyword (`SELECT`, `INSERT`, ...), a short span name from a closed set.
fn statement_verb(text: &str) -> &'static str {
    let first = text.split_whitespace().next().unwrap_or("");
    for verb in [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "SAVEPOINT",
        "RELEASE",
    ] {
        if first.eq_ignore_ascii_case(verb) {
            return verb;
        }
    }
    "SQL"
}
