//! Thin wrappers around the validation module (`crate::validate`): one call site each, so the
//! engine's write path reads as a list of steps and the validation API can move independently.

use objectos_spec::object::{ObjectSchema, RuleEvent};
use serde_json::Value as Json;

use crate::Record;
use crate::error::{DataError, FieldError, Result};
use crate::meta::ObjectPlan;
use crate::validate::{UniqueCheck, WriteKind};

fn failed(object: &str, fields: Vec<FieldError>) -> DataError {
    let message = fields
        .first()
        .map(|f| f.message.clone())
        .unwrap_or_else(|| "The record is invalid".to_owned());
    DataError::Validation {
        object: object.to_owned(),
        message,
        fields,
    }
}

/// Normalises and type-checks client input (the record on insert, the patch on update). The
/// problems are returned, not raised: [`validate`] reports them together with its own, so a
/// request with an unknown field and a missing required one gets both in one answer.
pub(crate) fn coerce(plan: &ObjectPlan, input: &mut Record) -> Vec<FieldError> {
    plan.rules.coerce(input).err().unwrap_or_default()
}

/// Fills defaults for fields the input does not mention (insert only).
pub(crate) fn apply_defaults(plan: &ObjectPlan, input: &mut Record) {
    plan.rules.apply_defaults(input);
}

/// Field checks and validation rules on the write; warnings are dropped, errors refuse it.
/// `earlier` are the problems found before (refused and badly typed fields): they refuse the
/// write too, in the same error, first.
pub(crate) fn validate(
    plan: &ObjectPlan,
    kind: WriteKind,
    new: &Record,
    old: Option<&Record>,
    earlier: Vec<FieldError>,
) -> Result<()> {
    plan.rules
        .validate_after(kind, new, old, chrono::Utc::now(), earlier)
        .map(|_warnings| ())
        .map_err(|e| failed(&plan.name, e))
}

/// The error for a write whose input is refused (`earlier`: unknown fields, NUL characters,
/// wrong types) before the stored record is read: those, with every other mistake the input
/// alone shows (see `CompiledRules::validate_input`).
pub(crate) fn refuse_input(
    plan: &ObjectPlan,
    kind: WriteKind,
    input: &Record,
    earlier: Vec<FieldError>,
) -> DataError {
    failed(
        &plan.name,
        plan.rules
            .validate_input(kind, input, chrono::Utc::now(), earlier),
    )
}

/// Formula fields, computed on read.
pub(crate) fn compute_formulas(plan: &ObjectPlan, record: &mut Record) {
    plan.rules.compute_formulas(record, chrono::Utc::now());
}

/// Formats an autonumber (`ACC-{0000}`); without a format the bare number.
pub(crate) fn format_autonumber(format: Option<&str>, n: i64) -> String {
    match format {
        Some(f) => crate::validate::format_autonumber(f, n),
        None => n.to_string(),
    }
}

/// The uniqueness conditions for `record` (merged on update): unique fields and unique rules
/// from the validation module, plus unique indexes declared in `indexes:`.
pub(crate) fn unique_checks(
    plan: &ObjectPlan,
    schema: &ObjectSchema,
    record: &Record,
) -> Vec<UniqueCheck> {
    let mut out: Vec<UniqueCheck> = plan.rules.unique_checks(record);
    for ix in schema
        .indexes
        .iter()
        .filter(|ix| ix.unique && !ix.fields.is_empty())
    {
        if out
            .iter()
            .any(|u| u.fields == ix.fields && u.scope_fields.is_empty())
        {
            continue;
        }
        let values: Vec<Json> = ix
            .fields
            .iter()
            .map(|f| record.get(f).cloned().unwrap_or(Json::Null))
            .collect();
        if values.iter().any(Json::is_null) {
            continue;
        }
        let label = ix.fields.join(", ");
        out.push(UniqueCheck {
            fields: ix.fields.clone(),
            values,
            message: format!("The combination of {label} must be unique"),
            rule: None,
            case_sensitive: true,
            scope: None,
            scope_fields: Vec::new(),
            scope_values: Vec::new(),
            scope_condition: None,
            events: vec![RuleEvent::Insert, RuleEvent::Update],
        });
    }
    out
}
