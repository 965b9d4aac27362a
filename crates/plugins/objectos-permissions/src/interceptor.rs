//! The data-engine interceptor that enforces object permissions, sharing, RLS and field-level
//! security on every operation (get, find, count, aggregate, expand, create, update, delete and
//! everything built on them, such as batches).

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{
    DataError, FieldError, HookContext, Interceptor, OpContext, Operation, Principal, Record,
};
use objectos_kernel::recorder::Kept;
use objectos_spec::object::{FieldType, ObjectSchema};
use objectos_spec::query::{FieldSelection, Filter, QueryAst};
use objectos_spec::security::{AccessLevel, RlsOperation};
use serde_json::Value;
use tracing::Instrument as _;

use crate::authz::{Authz, Effective, Subject};
use crate::rls;

/// Runs before every other interceptor so validation and audit see the narrowed operation.
pub const ORDER: i32 = -1000;

/// The permissions interceptor.
#[derive(Debug, Clone)]
pub struct PermissionInterceptor {
    authz: Arc<Authz>,
}

impl PermissionInterceptor {
    pub fn new(authz: Arc<Authz>) -> Self {
        Self { authz }
    }
}

fn forbidden(object: &str, message: String) -> DataError {
    DataError::Forbidden {
        object: object.to_owned(),
        message,
    }
}

/// The refusal of a signed-in user whose context has no tenant: without one the engine would
/// scope nothing, so the request would reach every organization's rows.
pub const NO_TENANT_MESSAGE: &str =
    "This request has no active organization; a signed-in user always acts within one";

/// The answer to a lookup value that names no record the caller can see. It is the same for a
/// record that does not exist and one hidden by sharing, RLS or another organization (and does
/// not repeat the id), so it never tells which.
fn bad_reference(schema: &ObjectSchema, field: &str, target: &str) -> DataError {
    let label = schema
        .field(field)
        .and_then(|f| f.label.clone())
        .unwrap_or_else(|| field.to_owned());
    let message = format!("{label} must refer to an existing {target} record");
    DataError::Validation {
        object: schema.name.clone(),
        message: message.clone(),
        fields: vec![FieldError::new(field, "invalid_reference", message).with_label(label)],
    }
}

/// The record ids a lookup value names: an id, an expanded record's id, or a list of either.
/// Anything else is left to the engine's type checks.
fn referenced_ids(value: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(m) => m.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

impl PermissionInterceptor {
    fn require_object(
        &self,
        eff: &Effective,
        object: &str,
        op: Operation,
    ) -> Result<(), DataError> {
        let p = eff.object(object);
        let (ok, verb, slot) = match op {
            Operation::Find | Operation::Get | Operation::Count | Operation::Aggregate => {
                (p.allow_read, "read", 0)
            }
            Operation::Create => (p.allow_create, "create", 1),
            Operation::Update => (p.allow_edit, "edit", 2),
            Operation::Delete => (p.allow_delete, "delete", 3),
        };
        // Labels from closed sets: the verb and the outcome, never the object or the user; so
        // each pair keeps its counter instead of looking it up per decision.
        static DECISIONS: [Kept<metrics::Counter>; 8] = [const { Kept::new() }; 8];
        let decision = if ok { "allow" } else { "deny" };
        DECISIONS[slot * 2 + usize::from(ok)].with(
            || {
                metrics::counter!(
                    "objectos_permissions_decisions_total",
                    "operation" => verb,
                    "decision" => decision
                )
            },
            |c| c.increment(1),
        );
        if ok {
            Ok(())
        } else {
            Err(forbidden(
                object,
                format!("You do not have permission to {verb} {object} records"),
            ))
        }
    }

    /// Refuses lookup and master-detail values (create and update input) that name a record the
    /// caller cannot see: missing, hidden by sharing or RLS, or in another organization, all
    /// answered alike ([`bad_reference`]). `eff` is `None` for administrators, who see every
    /// record of their organization. Links an update leaves unchanged are not checked again, so
    /// echoing a record back works. The check runs through the write's transaction.
    async fn check_references(
        &self,
        eff: Option<&Effective>,
        hook: &HookContext<'_>,
    ) -> Result<(), DataError> {
        let Some(input) = hook.input.as_deref() else {
            return Ok(());
        };
        let Some(engine) = self.authz.engine() else {
            return Ok(());
        };
        let snap = engine.metadata();
        let schema = hook.object;
        for (name, value) in input {
            let Some(field) = schema.field(name) else {
                continue;
            };
            if !matches!(
                field.kind,
                FieldType::Lookup | FieldType::MasterDetail | FieldType::Tree | FieldType::User
            ) {
                continue;
            }
            let Some(target) = field.reference_target(&schema.name) else {
                continue;
            };
            let before = hook
                .previous
                .and_then(|p| p.get(name))
                .map(referenced_ids)
                .unwrap_or_default();
            let mut ids: Vec<String> = referenced_ids(value)
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect();
            ids.sort();
            ids.dedup();
            if ids.is_empty() {
                continue;
            }
            // A user field (or a lookup to users) names people: they must belong to the
            // organization the record is written in. Users are global records, so the row
            // filter of the user object would not say that; membership does. Administrators
            // are held to it too: a record must not point at a stranger.
            if field.kind == FieldType::User || target == "user" {
                let Some(org) = hook.cx.tenant.as_deref() else {
                    continue;
                };
                let members = self
                    .authz
                    .members_among(org, &ids, hook.write_tx()?)
                    .await
                    .map_err(|e| DataError::Internal(format!("permissions: {e}")))?;
                if members != ids.len() {
                    return Err(bad_reference(schema, name, target));
                }
                continue;
            }
            // An object that is not installed keeps bare ids, as the engine does.
            if snap.object(target).is_none() {
                continue;
            }
            let visible = match eff {
                None => Filter::True,
                Some(eff) if !eff.object(target).allow_read => {
                    return Err(bad_reference(schema, name, target));
                }
                Some(eff) => self.authz.read_filter(eff, hook.cx, target),
            };
            // Counted as system (no hooks) within the caller's tenant, with the caller's row
            // filter, so the answer is "visible to the caller" and nothing more.
            let mut sys = OpContext::system("permissions.references");
            sys.tenant = hook.cx.tenant.clone();
            let filter = Filter::condition(
                "id",
                objectos_spec::query::Operator::In,
                objectos_spec::query::FilterValue::Value(Value::Array(
                    ids.iter().cloned().map(Value::String).collect(),
                )),
            )
            .and(visible);
            let n = engine
                .count_within(hook.write_tx()?, &sys, target, &filter)
                .await?;
            if n != ids.len() as u64 {
                return Err(bad_reference(schema, name, target));
            }
        }
        Ok(())
    }

    /// Refuses a query parameter that names a field the user may not read; dotted paths are
    /// checked hop by hop through the lookup targets.
    fn check_path(
        &self,
        eff: &Effective,
        schema: &ObjectSchema,
        param: &str,
        path: &str,
    ) -> Result<(), DataError> {
        // Only a dotted path needs the lookup targets; plain names stay allocation-free.
        let snap = if path.contains('.') {
            self.authz.engine().map(|e| e.metadata())
        } else {
            None
        };
        let mut object = schema.name.clone();
        for part in path.split('.') {
            let name = if part == "_id" { "id" } else { part };
            if !eff.field(&object, name).readable {
                return Err(forbidden(
                    &schema.name,
                    format!("{param}: field {path} is not readable for you"),
                ));
            }
            let Some(snap) = &snap else { break };
            let target = snap
                .object(&object)
                .and_then(|o| o.field(name))
                .and_then(|f| f.reference.clone());
            match target {
                Some(t) => object = t,
                None => break,
            }
        }
        Ok(())
    }

    fn check_selection(
        &self,
        eff: &Effective,
        schema: &ObjectSchema,
        sel: &[FieldSelection],
        prefix: &str,
    ) -> Result<(), DataError> {
        for s in sel {
            let path = if prefix.is_empty() {
                s.name().to_owned()
            } else {
                format!("{prefix}.{}", s.name())
            };
            self.check_path(eff, schema, "select", &path)?;
            if let FieldSelection::Nested { fields, .. } = s {
                self.check_selection(eff, schema, fields, &path)?;
            }
        }
        Ok(())
    }

    /// The before-hook's decision: `Ok("bypass")` for an administrator (or system work),
    /// `Ok("allow")` once every check passed, else the refusal.
    async fn decide(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<&'static str> {
        // Second line of tenant isolation: the engine scopes rows by the context's tenant, and
        // a missing tenant scopes nothing. Sessions always carry one and the engine's cascades
        // run within the parent's, so a signed-in user (administrators included) without one is
        // refused rather than shown every organization's rows; system work may span tenants.
        if matches!(hook.cx.principal, Principal::User { .. }) && hook.cx.tenant.is_none() {
            return Err(forbidden(&hook.object.name, NO_TENANT_MESSAGE.to_owned()));
        }
        let is_write = matches!(hook.operation, Operation::Create | Operation::Update);
        let eff = match self.authz.subject(hook.cx) {
            Subject::User(eff) => eff,
            Subject::Bypass => {
                // Administrators pass every check but stay within their organization: a link
                // to another organization's record is refused like one to a missing record.
                if is_write
                    && matches!(hook.cx.principal, Principal::User { .. })
                    && hook.cx.tenant.is_some()
                {
                    self.check_references(None, hook).await?;
                }
                return Ok("bypass");
            }
        };
        let object = hook.object.name.clone();
        if let Err(denied) = self.require_object(&eff, &object, hook.operation) {
            if let Some(origin) = &hook.cx.cascade_of {
                // A cascade runs the children's deletes as the caller: say why the parent's
                // delete is refused, naming the child object (never a child id).
                return Err(forbidden(
                    &object,
                    format!(
                        "Cannot delete {} {}: its {object} records are deleted with it (deleteBehavior: cascade) and you do not have permission to delete {object} records",
                        origin.object, origin.id
                    ),
                ));
            }
            // The engine answers 404 for a missing id before any hook runs; a record the user
            // cannot even see must answer the same, or the 403 would reveal that it exists.
            if let Some(previous) = hook.previous {
                let visible = eff.object(&object).allow_read
                    && rls::matches(&self.authz.read_filter(&eff, hook.cx, &object), previous);
                if !visible {
                    return Err(DataError::RecordNotFound {
                        object,
                        id: previous
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
            }
            return Err(denied);
        }
        match hook.operation {
            Operation::Find | Operation::Get | Operation::Count | Operation::Aggregate => {
                if let Some(q) = hook.query.as_deref_mut() {
                    self.check_query(&eff, hook.object, q)?;
                    self.check_expand(&eff, hook.object, q)?;
                    self.narrow_search(&eff, hook.object, q);
                    let f = std::mem::take(&mut q.filter);
                    q.filter = self.guard_paths(&eff, hook.cx, &object, "filter", f)?;
                    for a in &mut q.aggregations {
                        if let Some(f) = a.filter.take() {
                            a.filter = Some(self.guard_paths(
                                &eff,
                                hook.cx,
                                &object,
                                "aggregations",
                                f,
                            )?);
                        }
                    }
                    let narrow = self.authz.read_filter(&eff, hook.cx, &object);
                    q.filter = std::mem::take(&mut q.filter).and(narrow);
                }
            }
            Operation::Update | Operation::Delete => {
                let need = if hook.operation == Operation::Delete {
                    AccessLevel::Full
                } else {
                    AccessLevel::Edit
                };
                if let Some(q) = hook.query.as_deref_mut() {
                    let narrow = self.authz.write_filter(&eff, hook.cx, &object, need);
                    q.filter = std::mem::take(&mut q.filter).and(narrow);
                }
            }
            Operation::Create => {}
        }
        if let Some(input) = hook.input.as_deref_mut() {
            let previous = hook.previous;
            let mut refused = Vec::new();
            input.retain(|k, v| {
                let access = eff.field(&object, k);
                if access.editable {
                    return true;
                }
                // Echoing a record back unchanged is not a write of the field. Only readable
                // fields qualify: for an unreadable one, "unchanged" would confirm a guess.
                if access.readable && previous.and_then(|p| p.get(k)) == Some(v) {
                    return false;
                }
                refused.push(k.clone());
                true
            });
            if let Some(first) = refused.first() {
                return Err(forbidden(
                    &object,
                    format!("You do not have permission to edit field {first} of {object}"),
                ));
            }
        }
        if is_write {
            self.check_references(Some(&eff), hook).await?;
        }
        Ok("allow")
    }

    fn check_query(
        &self,
        eff: &Effective,
        schema: &ObjectSchema,
        q: &QueryAst,
    ) -> Result<(), DataError> {
        for f in q.filter.fields() {
            self.check_path(eff, schema, "filter", f)?;
        }
        for s in &q.order_by {
            self.check_path(eff, schema, "sort", &s.field)?;
        }
        self.check_selection(eff, schema, &q.fields, "")?;
        for g in &q.group_by {
            self.check_path(eff, schema, "groupBy", g)?;
        }
        for a in &q.aggregations {
            if let Some(f) = &a.field {
                self.check_path(eff, schema, "aggregations", f)?;
            }
            if let Some(filter) = &a.filter {
                for f in filter.fields() {
                    self.check_path(eff, schema, "aggregations", f)?;
                }
            }
        }
        if let Some(search) = &q.search {
            for f in &search.fields {
                self.check_path(eff, schema, "search", f)?;
            }
        }
        // `having` names aliases and group fields; anything else is checked like a field.
        for f in q.having.fields() {
            if !q.aggregations.iter().any(|a| a.alias == f) {
                self.check_path(eff, schema, "having", f)?;
            }
        }
        Ok(())
    }

    /// Makes conditions on lookup paths (`account.name = 'x'`) respect the target object's
    /// rules: the engine compiles such a path to `account IN (SELECT id FROM account WHERE ...)`,
    /// which would otherwise let a user probe records they cannot see through records they can.
    /// Each hop needs read access to its object and gets that object's row filter (and the
    /// tenant) ANDed in under the same path prefix.
    fn guard_paths(
        &self,
        eff: &Effective,
        cx: &objectos_data::OpContext,
        object: &str,
        param: &str,
        filter: Filter,
    ) -> Result<Filter, DataError> {
        Ok(match filter {
            Filter::And(items) => Filter::And(
                items
                    .into_iter()
                    .map(|f| self.guard_paths(eff, cx, object, param, f))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Or(items) => Filter::Or(
                items
                    .into_iter()
                    .map(|f| self.guard_paths(eff, cx, object, param, f))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Not(inner) => {
                Filter::Not(Box::new(self.guard_paths(eff, cx, object, param, *inner)?))
            }
            Filter::True => Filter::True,
            Filter::Condition(c) => {
                let mut paths = vec![c.field.clone()];
                if let Some(other) = c.value.as_field() {
                    paths.push(other.to_owned());
                }
                let mut extra = Vec::new();
                for path in paths.iter().filter(|p| p.contains('.')) {
                    let Some(snap) = self.authz.engine().map(|e| e.metadata()) else {
                        break;
                    };
                    let segments: Vec<&str> = path.split('.').collect();
                    let mut current = object.to_owned();
                    let mut prefix = String::new();
                    for seg in &segments[..segments.len() - 1] {
                        let Some(target) = snap
                            .object(&current)
                            .and_then(|o| o.field(seg))
                            .and_then(|f| f.reference.clone())
                        else {
                            break;
                        };
                        prefix.push_str(seg);
                        prefix.push('.');
                        if !eff.object(&target).allow_read {
                            return Err(forbidden(
                                object,
                                format!(
                                    "{param}: {path} goes through {target} records, which you may not read"
                                ),
                            ));
                        }
                        let mut visible = self.authz.read_filter(eff, cx, &target);
                        if let Some(t) = &cx.tenant {
                            visible = visible.and(Filter::eq("organization_id", t.clone()));
                        }
                        if !visible.is_true() {
                            visible.for_each_field_mut(&mut |n: &mut String| {
                                *n = format!("{prefix}{n}")
                            });
                            extra.push(visible);
                        }
                        current = target;
                    }
                }
                Filter::all(std::iter::once(Filter::Condition(c)).chain(extra))
            }
        })
    }

    /// A search without `fields` would match on the engine's default fields (the searchable
    /// ones, else the display name); narrow it to the readable ones so a search can never probe
    /// an unreadable field's value.
    fn narrow_search(&self, eff: &Effective, schema: &ObjectSchema, q: &mut QueryAst) {
        let Some(search) = q.search.as_mut() else {
            return;
        };
        if !search.fields.is_empty() || search.query.trim().is_empty() {
            return;
        }
        let mut defaults: Vec<String> = schema
            .fields
            .values()
            .filter(|f| f.searchable)
            .map(|f| f.name.clone())
            .collect();
        if defaults.is_empty()
            && let Some(d) = schema.display_name_field()
        {
            defaults.push(d.to_owned());
        }
        let readable: Vec<String> = defaults
            .iter()
            .filter(|f| eff.field(&schema.name, f).readable)
            .cloned()
            .collect();
        if readable.len() == defaults.len() {
            return;
        }
        if readable.is_empty() {
            q.search = None;
            q.filter = std::mem::take(&mut q.filter).and(rls::match_nothing());
        } else {
            search.fields = readable;
        }
    }

    fn check_expand(
        &self,
        eff: &Effective,
        schema: &ObjectSchema,
        q: &QueryAst,
    ) -> Result<(), DataError> {
        // The expanded object's own rules run in its Find hook; here only the key is checked.
        for key in q.expand.keys() {
            self.check_path(eff, schema, "expand", key)?;
        }
        Ok(())
    }

    /// Removes unreadable fields from a record and from the records expanded into it.
    fn strip(&self, eff: &Effective, schema: &ObjectSchema, record: &mut Record, depth: usize) {
        record.retain(|k, _| eff.field(&schema.name, k).readable);
        if depth > 4 {
            return;
        }
        let mut snap = None;
        for (name, value) in record.iter_mut() {
            if !matches!(value, Value::Object(_) | Value::Array(_)) {
                continue;
            }
            let Some(target) = schema.field(name).and_then(|f| f.reference.as_deref()) else {
                continue;
            };
            let snap = snap.get_or_insert_with(|| self.authz.engine().map(|e| e.metadata()));
            let Some(tschema) = snap.as_ref().and_then(|s| s.object(target)).cloned() else {
                continue;
            };
            match value {
                Value::Object(inner) => self.strip(eff, &tschema, inner, depth + 1),
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(inner) = item {
                            self.strip(eff, &tschema, inner, depth + 1);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[async_trait]
impl Interceptor for PermissionInterceptor {
    fn name(&self) -> &str {
        "permissions"
    }

    fn order(&self) -> i32 {
        ORDER
    }

    async fn before(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        // One span per decision, with the object, the operation and the outcome (never a
        // record value or a user id); a disabled span (tracing off) costs one check.
        let span = tracing::debug_span!(
            "permissions.check",
            object = %hook.object.name,
            operation = hook.operation.as_str(),
            outcome = tracing::field::Empty,
        );
        if span.is_disabled() {
            return self.decide(hook).await.map(|_| ());
        }
        let result = self.decide(hook).instrument(span.clone()).await;
        span.record("outcome", outcome_of(&result));
        result.map(|_| ())
    }

    async fn after(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        // The result side of the decision (the write's row-level check, field-level stripping
        // of what is returned) in its own span, next to the operation's `permissions.check`:
        // object, operation, outcome and, for a find, how many records it returned; never a value.
        let span = tracing::debug_span!(
            "permissions.filter",
            object = %hook.object.name,
            operation = hook.operation.as_str(),
            records = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        if span.is_disabled() {
            return self.filter_result(hook).map(|_| ());
        }
        let result = span.in_scope(|| self.filter_result(hook));
        if let Some(n) = hook.records.as_deref().map(|r| r.len()) {
            span.record("records", n);
        }
        span.record("outcome", outcome_of(&result));
        result.map(|_| ())
    }
}

impl PermissionInterceptor {
    /// The after-hook's work: `bypass` for callers the policies do not apply to, `allow` once
    /// the result passed the row-level check and lost the fields the caller may not read.
    fn filter_result(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<&'static str> {
        let Subject::User(eff) = self.authz.subject(hook.cx) else {
            return Ok("bypass");
        };
        let object = hook.object.name.clone();
        let check_op = match hook.operation {
            Operation::Create => Some(RlsOperation::Insert),
            Operation::Update => Some(RlsOperation::Update),
            _ => None,
        };
        if let (Some(op), Some(result)) = (check_op, hook.result.as_deref()) {
            let check = self.authz.check_filter(&eff, hook.cx, &object, op);
            if !check.is_true() && !rls::matches(&check, result) {
                return Err(forbidden(
                    &object,
                    format!(
                        "The {} record does not satisfy the row-level security policy of {object}",
                        op_word(op)
                    ),
                ));
            }
        }
        if let Some(result) = hook.result.as_deref_mut() {
            self.strip(&eff, hook.object, result, 0);
        }
        if hook.operation == Operation::Find
            && let Some(records) = hook.records.as_deref_mut()
        {
            for r in records.iter_mut() {
                self.strip(&eff, hook.object, r, 0);
            }
        }
        Ok("allow")
    }
}

/// The `outcome` of a `permissions.check` span: `allow`, `bypass` (administrators, system
/// work), `deny` (refused, or answered as not found so the refusal does not reveal the record),
/// or `error`.
fn outcome_of(result: &objectos_data::Result<&'static str>) -> &'static str {
    match result {
        Ok(outcome) => outcome,
        Err(DataError::Forbidden { .. } | DataError::RecordNotFound { .. }) => "deny",
        Err(DataError::Validation { .. }) => "deny",
        Err(_) => "error",
    }
}

fn op_word(op: RlsOperation) -> &'static str {
    match op {
        RlsOperation::Insert => "created",
        _ => "updated",
    }
}
