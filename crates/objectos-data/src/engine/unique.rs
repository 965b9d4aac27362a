//! Uniqueness checked with SQL inside the write transaction, before the row is written: unique
//! fields, unique indexes and `unique` validation rules (with `scope` and `caseSensitive`).

use objectos_spec::object::Storage;
use sea_orm::{DatabaseTransaction, Value};
use serde_json::Value as Json;

use super::{Conn, DataEngine, WriteScope, row_to_record};
use crate::Record;
use crate::checks;
use crate::db::{Dialect, Sql};
use crate::error::{DataError, FieldError, Result};
use crate::meta::ObjectPlan;
use crate::schema::{WantedIndex, candidate_indexes};
use crate::validate::{UniqueCheck, WriteKind};
use crate::value::to_db;

/// Rows of a scoped rule's candidates read per query while looking for one in scope.
const SCOPE_PAGE: u64 = 256;

/// FNV-1a 64 over `parts` (separated), as a PostgreSQL advisory lock key.
fn lock_key(parts: &[&str]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h as i64
}

impl DataEngine {
    /// Refuses the write when another record already holds the combination a uniqueness
    /// condition of `record` (the merged record on update) protects. Only conditions over a field
    /// the write touches are checked on update (all of them for scope conditions, whose outcome
    /// may change with any field). Unique fields and indexes of a tenant-scoped object are
    /// checked within the record's organization, as the database index over
    /// (`organization_id`, fields) that backs them is; on a system object (`isSystem`) they are
    /// checked across organizations, like its global index. Unique rules have no index and are
    /// checked within the record's organization. Where no index backs the check (rules, and
    /// records without an organization, whose NULL the index does not compare) PostgreSQL takes
    /// a transaction-scoped advisory lock on the combination so two concurrent writes cannot both
    /// pass; SQLite runs one write at a time anyway.
    pub(super) async fn check_unique(
        &self,
        scope: WriteScope<'_>,
        kind: WriteKind,
        record: &Record,
        touched: &Record,
        self_id: Option<&str>,
    ) -> Result<()> {
        let WriteScope { tx, cx, plan, .. } = scope;
        for u in checks::unique_checks(plan, &plan.schema, record) {
            if !u.events.contains(&kind.event()) {
                continue;
            }
            let relevant = u.scope_condition.is_some()
                || u.fields
                    .iter()
                    .chain(&u.scope_fields)
                    .any(|f| touched.contains_key(f));
            if !relevant {
                continue;
            }
            // Per organization: unique rules, and every uniqueness of a tenant-scoped object
            // (telling a user that a value exists in another organization would leak it).
            // `Some(None)` is the records without an organization.
            let per_org = u.rule.is_some() || plan.tenant_scoped;
            let tenant = if per_org && plan.column("organization_id").is_some() {
                Some(
                    record
                        .get("organization_id")
                        .and_then(Json::as_str)
                        .map(str::to_owned)
                        .or_else(|| cx.tenant.clone()),
                )
            } else {
                None
            };
            if self.duplicate_exists(tx, plan, &u, tenant, self_id).await? {
                let fields = u
                    .fields
                    .iter()
                    .map(|f| {
                        let label = plan
                            .field(f)
                            .map(|x| x.display_label().to_owned())
                            .unwrap_or_else(|| f.clone());
                        FieldError::new(f, "duplicate_value", u.message.clone()).with_label(label)
                    })
                    .collect::<Vec<_>>();
                return Err(DataError::Duplicate {
                    object: plan.name.clone(),
                    message: u.message.clone(),
                    fields,
                });
            }
        }
        Ok(())
    }

    async fn duplicate_exists(
        &self,
        tx: &DatabaseTransaction,
        plan: &ObjectPlan,
        u: &UniqueCheck,
        tenant: Option<Option<String>>,
        self_id: Option<&str>,
    ) -> Result<bool> {
        let dialect = self.inner.dialect;
        let t = plan.table.as_str();
        let mut cond = Sql::new(dialect);
        let mut lock_parts: Vec<String> = vec![t.to_owned(), u.rule.clone().unwrap_or_default()];
        for (f, v) in u.fields.iter().zip(&u.values) {
            // A field without a column (a formula) cannot be compared in SQL.
            let Some(col) = plan.column(f) else {
                return Ok(false);
            };
            let fold = !u.case_sensitive && col.storage == Storage::Text;
            let v = match (fold, v) {
                (true, Json::String(s)) => Json::String(s.to_lowercase()),
                _ => v.clone(),
            };
            let b = to_db(col.storage, dialect, &v).map_err(|e| {
                DataError::Internal(format!("unique check on {}.{f}: {e}", plan.name))
            })?;
            cond.push(" AND ");
            if fold {
                // Folds ASCII only on SQLite (its LOWER); PostgreSQL folds per its collation.
                cond.push("LOWER(").qualified(t, &col.name).push(")");
            } else {
                cond.qualified(t, &col.name);
            }
            cond.push(" = ").param(b);
            lock_parts.push(v.to_string());
        }
        for (f, v) in u.scope_fields.iter().zip(&u.scope_values) {
            let Some(col) = plan.column(f) else {
                return Ok(false);
            };
            cond.push(" AND ").qualified(t, &col.name);
            if v.is_null() {
                cond.push(" IS NULL");
            } else {
                let b = to_db(col.storage, dialect, v).map_err(|e| {
                    DataError::Internal(format!("unique scope on {}.{f}: {e}", plan.name))
                })?;
                cond.push(" = ").param(b);
            }
            lock_parts.push(v.to_string());
        }
        if let Some(tenant) = &tenant {
            cond.push(" AND ").qualified(t, "organization_id");
            match tenant {
                Some(id) => {
                    cond.push(" = ").param(Value::from(id.clone()));
                }
                None => {
                    cond.push(" IS NULL");
                }
            }
            lock_parts.push(tenant.clone().unwrap_or_default());
        }
        if let Some(id) = self_id {
            cond.push(" AND ")
                .qualified(t, "id")
                .push(" <> ")
                .param(Value::from(id.to_owned()));
        }
        let unindexed = u.rule.is_some() || matches!(tenant, Some(None));
        if unindexed && dialect == Dialect::Postgres {
            // No index backs a rule, and a unique index compares no NULL `organization_id`:
            // serialise the writers of this combination until commit.
            let parts: Vec<&str> = lock_parts.iter().map(String::as_str).collect();
            let mut lock = Sql::new(dialect);
            lock.push("SELECT pg_advisory_xact_lock(")
                .param(Value::BigInt(Some(lock_key(&parts))))
                .push(")");
            self.q(Conn::Tx(tx), lock).await?;
        }
        let Some(scope) = &u.scope_condition else {
            let mut sql = Sql::new(dialect);
            sql.push("SELECT 1 FROM ").ident(t).push(" WHERE 1=1");
            sql.append(cond);
            sql.limit(1);
            return Ok(!self.q(Conn::Tx(tx), sql).await?.is_empty());
        };
        // A scope condition is a formula, evaluated on each candidate, a page at a time.
        let now = chrono::Utc::now();
        let mut after: Option<String> = None;
        loop {
            let mut sql = Sql::new(dialect);
            sql.push(&plan.select_all).push(" WHERE 1=1");
            sql.append(cond.clone());
            if let Some(last) = &after {
                sql.push(" AND ")
                    .qualified(t, "id")
                    .push(" > ")
                    .param(Value::from(last.clone()));
            }
            sql.push(" ORDER BY ").qualified(t, "id");
            sql.limit(SCOPE_PAGE);
            let rows = self.q(Conn::Tx(tx), sql).await?;
            for row in &rows {
                let mut r = row_to_record(plan, row, dialect);
                checks::compute_formulas(plan, &mut r);
                if scope.admits(&r, now) {
                    return Ok(true);
                }
                after = r.get("id").and_then(Json::as_str).map(str::to_owned);
            }
            if (rows.len() as u64) < SCOPE_PAGE || after.is_none() {
                return Ok(false);
            }
        }
    }
}

/// The duplicate error for a unique violation the database reported on `plan`'s table: a write
/// that raced past [`DataEngine::check_unique`] (two transactions both checked before either
/// committed). The index is found by name (PostgreSQL names it) or by its columns (SQLite lists
/// them); the error names its fields with the pre-check's message. The database's own text
/// (table, index, the other record's values) is not passed on.
pub(super) fn duplicate_from_db(plan: &ObjectPlan, detail: &str) -> DataError {
    let candidates: Vec<WantedIndex> = candidate_indexes(plan)
        .into_iter()
        .filter(|c| c.unique)
        .collect();
    let found = match violated(detail) {
        Violated::Index(name) => candidates
            .iter()
            .find(|c| c.name == name || c.legacy == name),
        Violated::Columns(cols) => candidates
            .iter()
            .find(|c| c.columns == cols || c.fields == cols),
        Violated::Unknown => None,
    };
    let Some(ix) = found else {
        return DataError::Duplicate {
            object: plan.name.clone(),
            message: "A record with the same unique value already exists".to_owned(),
            fields: Vec::new(),
        };
    };
    let label = |f: &String| {
        plan.field(f)
            .map(|x| x.display_label().to_owned())
            .unwrap_or_else(|| f.clone())
    };
    // The same texts as the pre-check (`validate::unique_checks`, `checks::unique_checks`).
    let message = match (ix.declared, ix.fields.as_slice()) {
        (false, [f]) => format!(
            "{} must be unique",
            plan.field(f)
                .map(crate::validate::field_label)
                .unwrap_or_else(|| f.clone())
        ),
        _ => format!("The combination of {} must be unique", ix.fields.join(", ")),
    };
    let fields = ix
        .fields
        .iter()
        .map(|f| FieldError::new(f, "duplicate_value", message.clone()).with_label(label(f)))
        .collect();
    DataError::Duplicate {
        object: plan.name.clone(),
        message,
        fields,
    }
}

/// What a database's unique-violation message says was violated.
#[derive(Debug, PartialEq, Eq)]
enum Violated {
    /// PostgreSQL: `duplicate key value violates unique constraint "ux_contact_..."`; SQLite for
    /// an expression index: `UNIQUE constraint failed: index 'name'`.
    Index(String),
    /// SQLite: `UNIQUE constraint failed: contact.organization_id, contact.code`.
    Columns(Vec<String>),
    Unknown,
}

fn violated(detail: &str) -> Violated {
    const SQLITE: &str = "UNIQUE constraint failed: ";
    if let Some(at) = detail.find(SQLITE) {
        let rest = &detail[at + SQLITE.len()..];
        if let Some(name) = rest.strip_prefix("index '") {
            return match name.split_once('\'') {
                Some((name, _)) => Violated::Index(name.to_owned()),
                None => Violated::Unknown,
            };
        }
        // The list ends the message; a wrapper may add a closing parenthesis.
        let list = rest.split([')', '\n']).next().unwrap_or_default();
        let cols = list
            .split(", ")
            .map(|c| {
                c.rsplit_once('.')
                    .map_or(c, |(_, col)| col)
                    .trim()
                    .to_owned()
            })
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>();
        return if cols.is_empty() {
            Violated::Unknown
        } else {
            Violated::Columns(cols)
        };
    }
    if let Some(at) = detail.find("unique constraint \"") {
        let rest = &detail[at + "unique constraint \"".len()..];
        if let Some((name, _)) = rest.split_once('"') {
            return Violated::Index(name.to_owned());
        }
    }
    Violated::Unknown
}

#[cfg(test)]
mod tests {
    use super::{Violated, violated};

    #[test]
    fn violation_messages_of_both_databases_are_read() {
        assert_eq!(
            violated(
                "A record with the same unique value already exists (UNIQUE constraint failed: contact.organization_id, contact.code)"
            ),
            Violated::Columns(vec!["organization_id".into(), "code".into()])
        );
        assert_eq!(
            violated("UNIQUE constraint failed: t.code"),
            Violated::Columns(vec!["code".into()])
        );
        assert_eq!(
            violated("UNIQUE constraint failed: index 'ux_expr'"),
            Violated::Index("ux_expr".into())
        );
        assert_eq!(
            violated(
                "x (duplicate key value violates unique constraint \"ux_contact_organization_id_code\")"
            ),
            Violated::Index("ux_contact_organization_id_code".into())
        );
        assert_eq!(violated("something else"), Violated::Unknown);
    }
}
