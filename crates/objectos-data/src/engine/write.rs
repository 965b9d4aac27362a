//! Single-record writes: create, update and delete, each with its before-hooks, validation,
//! uniqueness checks, SQL, after-hooks and outbox row in the operation's transaction, plus the
//! steps they share (sanitizing input, loading the previous record, the written record).

use objectos_spec::event::data::{RecordCreated, RecordDeleted, RecordRef, RecordUpdated};
use objectos_spec::object::{Storage, SummaryFunction};
use objectos_spec::query::QueryAst;
use sea_orm::{DatabaseTransaction, Value};
use serde_json::{Value as Json, json};

use super::follow_up::{FollowUp, NoFollowUp};
use super::refs::Deletion;
use super::runner::HookData;
use super::{
    Conn, DataEngine, WriteScope, check_id, id_filter, normalize_if_match, row_to_record,
    same_tenant, tenant_filter, unique, version_from,
};
use crate::Record;
use crate::checks;
use crate::context::OpContext;
use crate::db::{Dialect, Sql};
use crate::error::{DataError, FieldError, Result};
use crate::hooks::{Operation, WriteTx};
use crate::meta::{self, ObjectPlan};
use crate::observe::Op;
use crate::outbox;
use crate::sqlgen::FilterCompiler;
use crate::util::{format_ts, new_id, now};
use crate::validate::WriteKind;
use crate::value::{parse_datetime, to_db};

impl DataEngine {
    /// Creates one record; returns it as stored (with computed fields).
    pub async fn create(&self, cx: &OpContext, object: &str, data: Record) -> Result<Record> {
        self.create_with(cx, object, data, NoFollowUp)
            .await
            .map(|(rec, ())| rec)
    }

    /// Updates one record; `if_match` (an ETag from [`DataEngine::version_of`]) guards against lost updates.
    pub async fn update(
        &self,
        cx: &OpContext,
        object: &str,
        id: &str,
        patch: Record,
        if_match: Option<&str>,
    ) -> Result<Record> {
        self.update_with(cx, object, id, patch, if_match, NoFollowUp)
            .await
            .map(|(rec, ())| rec)
    }

    /// Deletes one record, applying `deleteBehavior` to records that reference it.
    #[tracing::instrument(name = "data.delete", level = "debug", skip_all, fields(object = object))]
    pub async fn delete(&self, cx: &OpContext, object: &str, id: &str) -> Result<()> {
        self.write_one(Op::Delete, cx, object, Some(id), async |scope| {
            self.delete_in(scope, id, 0).await.map(|_| ())
        })
        .await
    }

    /// One record's write as a unit of its own, what `create`, `update` and `delete` (and
    /// their follow-up forms) share: timed as `op`, on the metadata current now, `id` checked
    /// when there is one, admitted by the write limits, then `body` as the step of a write unit
    /// (a transaction, or an operation of the open group on a SQLite file) settled with its
    /// result. The scope `body` gets holds the unit's transaction, so its statements and hooks
    /// commit or roll back with it.
    pub(super) async fn write_one<T>(
        &self,
        op: Op,
        cx: &OpContext,
        object: &str,
        id: Option<&str>,
        body: impl AsyncFnOnce(WriteScope<'_>) -> Result<T>,
    ) -> Result<T> {
        let _timer = crate::observe::OpTimer::start(op);
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        if let Some(id) = id {
            check_id(object, id)?;
        }
        self.admit_writes(cx, 1)?;
        let unit = self.begin_write(cx).await?;
        let scope = WriteScope {
            tx: unit.tx(),
            cx,
            snap: &snap,
            plan: &plan,
        };
        let r = unit.run(body(scope)).await;
        unit.finish(r).await
    }

    /// Removes what clients may not write: system fields and computed fields are dropped silently
    /// (clients echo records back); unknown fields and values holding a NUL character are taken
    /// out too and returned as field errors, which refuse the write together with whatever
    /// validation finds (one answer with every mistake). They never reach the before-hooks,
    /// which may already query with the input.
    fn sanitize(&self, plan: &ObjectPlan, data: Record) -> (Record, Vec<FieldError>) {
        let mut out = Record::new();
        let mut refused = Vec::new();
        for (k, v) in data {
            if k == "_id" || meta::SYSTEM_FIELD_ORDER.contains(&k.as_str()) {
                continue;
            }
            match plan.field(&k) {
                Some(f)
                    if f.storage().is_none()
                        || f.kind == objectos_spec::object::FieldType::Autonumber => {}
                // Refused here, before the before-hooks, which may already query with the
                // input (the permissions plugin checks lookup ids): NUL would reach SQL there.
                Some(f) if crate::validate::has_nul(&v) => {
                    refused.push(crate::validate::nul_error(
                        &k,
                        &crate::validate::field_label(f),
                    ));
                }
                Some(_) => {
                    out.insert(k, v);
                }
                None => refused.push(FieldError::new(
                    &k,
                    "unknown_field",
                    format!("Field '{k}' does not exist on object '{}'", plan.name),
                )),
            }
        }
        (out, refused)
    }

    /// Converts and checks the values to write; type problems become field errors.
    fn to_values(&self, plan: &ObjectPlan, input: &Record) -> Result<Vec<(String, Value)>> {
        let mut out = Vec::with_capacity(input.len());
        let mut errors = Vec::new();
        for (k, v) in input {
            let Some(c) = plan.column(k) else { continue };
            match to_db(c.storage, self.inner.dialect, v) {
                Ok(val) => out.push((k.clone(), val)),
                Err(reason) => {
                    let label = plan
                        .field(k)
                        .map(|f| f.display_label().to_owned())
                        .unwrap_or_else(|| k.clone());
                    errors.push(
                        FieldError::new(k, "invalid_type", format!("{label}: {reason}"))
                            .with_label(label),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(DataError::Validation {
                object: plan.name.clone(),
                message: errors[0].message.clone(),
                fields: errors,
            })
        }
    }

    async fn next_autonumber(
        &self,
        tx: &DatabaseTransaction,
        object: &str,
        field: &str,
    ) -> Result<i64> {
        let mut sql = Sql::new(self.inner.dialect);
        sql.push("INSERT INTO \"_objectos_autonumber\" (\"object\", \"field\", \"value\") VALUES (")
            .param(Value::from(object.to_owned()))
            .push(", ")
            .param(Value::from(field.to_owned()))
            .push(", 1) ON CONFLICT (\"object\", \"field\") DO UPDATE SET \"value\" = \"_objectos_autonumber\".\"value\" + 1 RETURNING \"value\"");
        let rows = self.q(Conn::Tx(tx), sql).await?;
        rows.first()
            .and_then(|r| r.try_get_by_index::<i64>(0).ok())
            .ok_or_else(|| {
                DataError::Internal(format!(
                    "autonumber counter for {object}.{field} returned nothing"
                ))
            })
    }

    /// A unique violation of the INSERT/UPDATE itself (a race past the pre-check) becomes the
    /// pre-check's 409, naming the index's fields.
    fn map_dup(&self, plan: &ObjectPlan, e: DataError) -> DataError {
        match e {
            DataError::Duplicate { message, .. } => unique::duplicate_from_db(plan, &message),
            other => other,
        }
    }

    /// Creates one record in `scope`'s transaction: sanitize, before-hooks, coercion, defaults,
    /// validation, uniqueness, autonumbers, the INSERT, after-hooks, then the outbox row.
    pub(super) async fn create_in(&self, scope: WriteScope<'_>, data: Record) -> Result<Record> {
        self.create_then(scope, data, NoFollowUp)
            .await
            .map(|(rec, ())| rec)
    }

    /// [`DataEngine::create_in`] with the caller's follow-up writes between the after-hooks and
    /// the outbox row (see [`FollowUp`]).
    pub(super) async fn create_then<F: FollowUp>(
        &self,
        scope: WriteScope<'_>,
        data: Record,
        then: F,
    ) -> Result<(Record, F::Output)> {
        let WriteScope { tx, cx, plan, .. } = scope;
        let (mut input, mut refused) = self.sanitize(plan, data);
        let hooks = self.hooks(&plan.name, Operation::Create);
        self.run_hooks(
            &hooks,
            true,
            scope.read(),
            Operation::Create,
            HookData {
                input: Some(&mut input),
                ..HookData::default()
            },
        )
        .await?;
        refused.extend(checks::coerce(plan, &mut input));
        checks::apply_defaults(plan, &mut input);
        checks::validate(plan, WriteKind::Insert, &input, None, refused)?;
        let mut values = self.to_values(plan, &input)?;
        self.check_unique(scope, WriteKind::Insert, &input, &input, None)
            .await?;
        for (field, format) in &plan.autonumbers {
            let n = self.next_autonumber(tx, &plan.name, field).await?;
            values.push((
                field.clone(),
                Value::from(checks::format_autonumber(format.as_deref(), n)),
            ));
        }
        let id = new_id();
        let ts = now();
        let user = cx.principal.user_id().map(str::to_owned);
        let dialect = self.inner.dialect;
        let ts_val = to_db(Storage::DateTime, dialect, &Json::String(format_ts(ts)))
            .map_err(DataError::Internal)?;
        let mut sys: Vec<(String, Value)> = vec![
            ("id".into(), Value::from(id.clone())),
            ("created_at".into(), ts_val.clone()),
            ("updated_at".into(), ts_val),
            ("organization_id".into(), Value::String(cx.tenant.clone())),
            ("created_by".into(), Value::String(user.clone())),
            ("updated_by".into(), Value::String(user.clone())),
            ("owner_id".into(), Value::String(user)),
        ];
        sys.retain(|(k, _)| plan.column(k).is_some());
        sys.extend(values);
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO ").ident(&plan.table).push(" (");
        for (i, (k, _)) in sys.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(k);
        }
        sql.push(") VALUES (");
        for (i, (_, v)) in sys.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.param(v);
        }
        sql.push(")").push(&plan.returning);
        let rows = self
            .q(Conn::Tx(tx), sql)
            .await
            .map_err(|e| self.map_dup(plan, e))?;
        let mut rec = self.written_record(scope, &id, &rows, true).await?;
        self.run_hooks(
            &hooks,
            false,
            scope.read(),
            Operation::Create,
            HookData {
                input: Some(&mut input),
                result: Some(&mut rec),
                ..HookData::default()
            },
        )
        .await?;
        let out = then.run(WriteTx::new(tx), &mut rec).await?;
        outbox::write(
            tx,
            dialect,
            cx,
            &plan.name,
            &id,
            outbox::Payload::Created(RecordCreated {
                about: record_ref(plan, id.clone(), cx),
                record: rec.clone(),
            }),
        )
        .await?;
        Ok((rec, out))
    }

    /// The record an INSERT or UPDATE ... RETURNING handed back, completed like a read: a `fresh`
    /// record (just inserted) has no children yet, so its roll-ups are known without querying;
    /// an updated one gets roll-ups and formulas as a get would.
    async fn written_record(
        &self,
        scope: WriteScope<'_>,
        id: &str,
        rows: &[sea_orm::QueryResult],
        fresh: bool,
    ) -> Result<Record> {
        let plan = scope.plan;
        let Some(row) = rows.first() else {
            return Err(DataError::RecordNotFound {
                object: plan.name.clone(),
                id: id.to_owned(),
            });
        };
        let mut rec = row_to_record(plan, row, self.inner.dialect);
        if fresh {
            for s in &plan.summaries {
                let empty = match s.function {
                    SummaryFunction::Count | SummaryFunction::Sum => json!(0),
                    _ => Json::Null,
                };
                rec.insert(s.field.clone(), empty);
            }
            checks::compute_formulas(plan, &mut rec);
        } else {
            self.decorate(
                scope.read(),
                std::slice::from_mut(&mut rec),
                &QueryAst::default(),
                1,
            )
            .await?;
        }
        Ok(rec)
    }

    /// Loads the record an update/delete works on (locked on PostgreSQL), honouring the tenant.
    async fn load_previous(&self, scope: WriteScope<'_>, id: &str) -> Result<Record> {
        let WriteScope { tx, cx, snap, plan } = scope;
        let dialect = self.inner.dialect;
        let mut sql = Sql::new(dialect);
        sql.push(&plan.select_all).push(" WHERE ");
        let fc = FilterCompiler {
            snap,
            dialect,
            param: "filter",
        };
        fc.compile(
            plan,
            &plan.table,
            &tenant_filter(cx).and(id_filter(id)),
            &mut sql,
            0,
        )?;
        if dialect == Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        let rows = self.q(Conn::Tx(tx), sql).await?;
        let row = rows.first().ok_or_else(|| DataError::RecordNotFound {
            object: plan.name.clone(),
            id: id.to_owned(),
        })?;
        let mut rec = row_to_record(plan, row, dialect);
        self.decorate(
            scope.read(),
            std::slice::from_mut(&mut rec),
            &QueryAst::default(),
            1,
        )
        .await?;
        Ok(rec)
    }

    /// After before-hooks narrowed `query`, checks the record still matches it.
    async fn still_visible(&self, scope: WriteScope<'_>, id: &str, query: &QueryAst) -> Result<()> {
        let plan = scope.plan;
        if query.filter == id_filter(id) {
            return Ok(());
        }
        let found = self
            .select(
                scope.read(),
                &id_filter(id).and(query.filter.clone()),
                Some(1),
                "filter",
            )
            .await?;
        if found.is_empty() {
            return Err(DataError::RecordNotFound {
                object: plan.name.clone(),
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// Updates record `id` in `scope`'s transaction: the `if_match` check, before-hooks (which
    /// may narrow the query the record must still match), validation of the patch against the
    /// previous record, uniqueness, the UPDATE, after-hooks, then the outbox row.
    pub(super) async fn update_in(
        &self,
        scope: WriteScope<'_>,
        id: &str,
        patch: Record,
        if_match: Option<&str>,
    ) -> Result<Record> {
        self.update_then(scope, id, patch, if_match, NoFollowUp)
            .await
            .map(|(rec, ())| rec)
    }

    /// [`DataEngine::update_in`] with the caller's follow-up writes between the after-hooks and
    /// the outbox row (see [`FollowUp`]).
    pub(super) async fn update_then<F: FollowUp>(
        &self,
        scope: WriteScope<'_>,
        id: &str,
        patch: Record,
        if_match: Option<&str>,
        then: F,
    ) -> Result<(Record, F::Output)> {
        let WriteScope { tx, cx, plan, .. } = scope;
        let previous = self.load_previous(scope, id).await?;
        let current = version_from(&previous).unwrap_or_default();
        if let Some(expected) = if_match {
            let expected = normalize_if_match(expected);
            if expected != "*" && expected != current {
                return Err(DataError::ConcurrentModification {
                    object: plan.name.clone(),
                    id: id.to_owned(),
                    expected,
                    found: current,
                });
            }
        }
        let (mut input, mut refused) = self.sanitize(plan, patch);
        let hooks = self.hooks(&plan.name, Operation::Update);
        let mut query = QueryAst {
            filter: id_filter(id),
            ..QueryAst::default()
        };
        self.run_hooks(
            &hooks,
            true,
            scope.read(),
            Operation::Update,
            HookData {
                query: Some(&mut query),
                input: Some(&mut input),
                previous: Some(&previous),
                ..HookData::default()
            },
        )
        .await?;
        refused.extend(checks::coerce(plan, &mut input));
        // Mistakes of the input's shape (unknown fields, NUL characters, wrong types) depend on
        // nothing stored: they are answered all together and before the visibility check, so a
        // bad request is a 400 whatever record it names, with the other mistakes the input alone
        // shows (a required field blanked, a value too long). Rules that read the stored record
        // run only once the caller may see it.
        if !refused.is_empty() {
            return Err(checks::refuse_input(
                plan,
                WriteKind::Update,
                &input,
                refused,
            ));
        }
        self.still_visible(scope, id, &query).await?;
        let mut merged = previous.clone();
        for (k, v) in &input {
            merged.insert(k.clone(), v.clone());
        }
        checks::validate(plan, WriteKind::Update, &input, Some(&previous), refused)?;
        let values = self.to_values(plan, &input)?;
        self.check_unique(scope, WriteKind::Update, &merged, &input, Some(id))
            .await?;
        let dialect = self.inner.dialect;
        // The version is updated_at in milliseconds: make sure it moves even within one millisecond.
        let prev_ts = previous
            .get("updated_at")
            .and_then(Json::as_str)
            .and_then(parse_datetime);
        let mut ts = now();
        if let Some(p) = prev_ts
            && ts <= p
        {
            ts = p + chrono::TimeDelta::milliseconds(1);
        }
        let ts_val = to_db(Storage::DateTime, dialect, &Json::String(format_ts(ts)))
            .map_err(DataError::Internal)?;
        let mut sql = Sql::new(dialect);
        sql.push("UPDATE ")
            .ident(&plan.table)
            .push(" SET ")
            .ident("updated_at")
            .push(" = ")
            .param(ts_val);
        sql.push(", ")
            .ident("updated_by")
            .push(" = ")
            .param(Value::String(cx.principal.user_id().map(str::to_owned)));
        for (k, v) in values {
            sql.push(", ").ident(&k).push(" = ").param(v);
        }
        sql.push(" WHERE ")
            .ident("id")
            .push(" = ")
            .param(Value::from(id.to_owned()))
            .push(&plan.returning);
        let rows = self
            .q(Conn::Tx(tx), sql)
            .await
            .map_err(|e| self.map_dup(plan, e))?;
        let mut rec = self.written_record(scope, id, &rows, false).await?;
        self.run_hooks(
            &hooks,
            false,
            scope.read(),
            Operation::Update,
            HookData {
                input: Some(&mut input),
                previous: Some(&previous),
                result: Some(&mut rec),
                ..HookData::default()
            },
        )
        .await?;
        let out = then.run(WriteTx::new(tx), &mut rec).await?;
        // Every update stamps `updated_at`/`updated_by`; naming them would make every update
        // look like a change, and a subscriber could not tell a no-op write from a real one.
        let changed_fields = rec
            .iter()
            .filter(|(k, v)| {
                k.as_str() != "updated_at"
                    && k.as_str() != "updated_by"
                    && previous.get(*k) != Some(*v)
            })
            .map(|(k, _)| k.clone())
            .collect();
        outbox::write(
            tx,
            dialect,
            cx,
            &plan.name,
            id,
            outbox::Payload::Updated(RecordUpdated {
                about: record_ref(plan, id.to_owned(), cx),
                record: rec.clone(),
                previous,
                changed_fields,
            }),
        )
        .await?;
        Ok((rec, out))
    }

    /// Deletes record `id` in `scope`'s transaction: before-hooks, the record's `deleteBehavior`
    /// references (refusals first, then cascades and set-nulls), the DELETE, after-hooks, then
    /// the outbox row. `depth` counts the cascades that led here.
    pub(super) fn delete_in<'a>(
        &'a self,
        scope: WriteScope<'a>,
        id: &'a str,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Record>> + Send + 'a>> {
        Box::pin(async move {
            let WriteScope { tx, cx, snap, plan } = scope;
            if depth > 16 {
                return Err(DataError::DeleteRestricted {
                    object: plan.name.clone(),
                    message: format!(
                        "Cascade from {} {id} is deeper than 16 levels; delete the children first",
                        plan.name
                    ),
                });
            }
            let previous = self.load_previous(scope, id).await?;
            let hooks = self.hooks(&plan.name, Operation::Delete);
            let mut query = QueryAst {
                filter: id_filter(id),
                ..QueryAst::default()
            };
            self.run_hooks(
                &hooks,
                true,
                scope.read(),
                Operation::Delete,
                HookData {
                    query: Some(&mut query),
                    previous: Some(&previous),
                    ..HookData::default()
                },
            )
            .await?;
            self.still_visible(scope, id, &query).await?;
            let dialect = self.inner.dialect;
            // deleteBehavior applies within the parent's organization only: the caller's tenant,
            // or the record's own for work without one. Another organization's records that
            // hold this id are neither counted, nulled nor deleted: they are not the caller's
            // to see or change (and counting them would reveal them).
            let org: Option<String> = cx.tenant.clone().or_else(|| {
                previous
                    .get("organization_id")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            });
            // Refuse first, so nothing is half done when a restrict applies.
            for child in plan.children.iter().filter(|c| {
                c.behavior == objectos_spec::object::DeleteBehavior::Restrict && !c.multiple
            }) {
                let mut sql = Sql::new(dialect);
                sql.push("SELECT COUNT(*) FROM ")
                    .ident(&child.table)
                    .push(" WHERE ")
                    .ident(&child.column)
                    .push(" = ")
                    .param(Value::from(id.to_owned()));
                same_tenant(&mut sql, snap.plan(&child.object)?, org.as_deref());
                self.refuse_if_referenced(scope, id, child, sql).await?;
            }
            self.refuse_multi_refs(scope, id, org.as_deref()).await?;
            let deletion = Deletion {
                id,
                org: org.as_deref(),
                depth,
            };
            for child in plan.children.iter().filter(|c| !c.multiple) {
                match child.behavior {
                    objectos_spec::object::DeleteBehavior::Restrict => {}
                    objectos_spec::object::DeleteBehavior::Cascade => {
                        let mut sql = Sql::new(dialect);
                        sql.push("SELECT ")
                            .ident("id")
                            .push(" FROM ")
                            .ident(&child.table)
                            .push(" WHERE ")
                            .ident(&child.column)
                            .push(" = ")
                            .param(Value::from(id.to_owned()));
                        let cplan = snap.plan(&child.object)?;
                        same_tenant(&mut sql, cplan, org.as_deref());
                        self.cascade_to(scope, deletion, child, cplan, sql).await?;
                    }
                    objectos_spec::object::DeleteBehavior::SetNull => {
                        let ts = to_db(Storage::DateTime, dialect, &Json::String(format_ts(now())))
                            .map_err(DataError::Internal)?;
                        let mut sql = Sql::new(dialect);
                        sql.push("UPDATE ")
                            .ident(&child.table)
                            .push(" SET ")
                            .ident(&child.column)
                            .push(" = NULL, ")
                            .ident("updated_at")
                            .push(" = ")
                            .param(ts);
                        sql.push(" WHERE ")
                            .ident(&child.column)
                            .push(" = ")
                            .param(Value::from(id.to_owned()));
                        same_tenant(&mut sql, snap.plan(&child.object)?, org.as_deref());
                        self.x(Conn::Tx(tx), sql).await?;
                    }
                }
            }
            self.apply_multi_refs(scope, deletion).await?;
            let mut sql = Sql::new(dialect);
            sql.push("DELETE FROM ")
                .ident(&plan.table)
                .push(" WHERE ")
                .ident("id")
                .push(" = ")
                .param(Value::from(id.to_owned()));
            self.x(Conn::Tx(tx), sql).await?;
            self.run_hooks(
                &hooks,
                false,
                scope.read(),
                Operation::Delete,
                HookData {
                    previous: Some(&previous),
                    ..HookData::default()
                },
            )
            .await?;
            outbox::write(
                tx,
                dialect,
                cx,
                &plan.name,
                id,
                outbox::Payload::Deleted(RecordDeleted {
                    about: record_ref(plan, id.to_owned(), cx),
                    previous: previous.clone(),
                }),
            )
            .await?;
            Ok(previous)
        })
    }
}

/// What a record event says about the record `id` of `plan` written by `cx`.
fn record_ref(plan: &ObjectPlan, id: impl Into<String>, cx: &OpContext) -> RecordRef {
    RecordRef {
        object: plan.name.clone(),
        record_id: id.into(),
        user_id: cx.principal.user_id().map(str::to_owned),
        tenant_id: cx.tenant.clone(),
        request_id: cx.request_id.clone(),
    }
}
