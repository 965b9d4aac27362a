//! Record validation: defaults, coercion, field checks, validation rules, formulas and autonumbers.
//!
//! Everything here is pure (no database access): the engine calls it inside its write
//! transaction. A typical write runs, with one [`CompiledRules`] per object kept in the metadata
//! snapshot:
//!
//! 1. [`CompiledRules::coerce`] on the client input (normalise values, refuse unknown and
//!    computed fields);
//! 2. on insert, [`CompiledRules::apply_defaults`];
//! 3. [`CompiledRules::validate`] with the input (the patch on update) and the stored record;
//!    it computes formulas on the merged record itself so rules can read them;
//! 4. the engine checks [`CompiledRules::unique_checks`] with SQL and writes;
//! 5. on read, [`CompiledRules::compute_formulas`] fills formula fields.
//!
//! The free functions do the same with a schema that is compiled on each call; prefer the
//! cached [`CompiledRules`] on hot paths.

mod coerce;
mod formula;
mod rules;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use objectos_spec::object::{
    Field, FieldType, ObjectSchema, RuleEvent, RuleSeverity, is_system_field,
};
use serde_json::Value;

use crate::error::FieldError;
use crate::expr::{EvalContext, Expr, FieldResolver};

pub(crate) use coerce::{has_nul, nul_error};
pub use formula::{format_autonumber, format_autonumber_on};
use rules::{Check, CompiledRule, Outcome};

/// A record as the engine passes it around (the crate's `Record`).
pub use crate::Record;

/// Which write is being validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteKind {
    Insert,
    Update,
}

impl WriteKind {
    /// The rule event this write triggers.
    pub fn event(self) -> RuleEvent {
        match self {
            WriteKind::Insert => RuleEvent::Insert,
            WriteKind::Update => RuleEvent::Update,
        }
    }
}

/// A uniqueness condition the engine must check with SQL before writing.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueCheck {
    /// The fields whose combined values must be unique.
    pub fields: Vec<String>,
    /// The record's values for `fields`, in the same order.
    pub values: Vec<Value>,
    /// The message to report (as a `duplicate_value` FieldError on the first field) on conflict.
    pub message: String,
    /// The unique rule's name; `None` for a field's `unique: true`.
    pub rule: Option<String>,
    /// False when the rule asks for a case-insensitive comparison of text values.
    pub case_sensitive: bool,
    /// The unique rule's `scope`, passed through unchanged.
    pub scope: Option<String>,
    /// A `scope` naming fields (`scope: account`): the combination only has to be unique among
    /// records with the same values of these fields (`null` compares equal to `null` here).
    pub scope_fields: Vec<String>,
    /// The record's values of `scope_fields`, in the same order.
    pub scope_values: Vec<Value>,
    /// A `scope` condition (`scope: "status = 'active'"`): only records for which it is true are
    /// compared. The record being written satisfies it, or there would be no check.
    pub scope_condition: Option<ScopeCondition>,
    /// The writes the check applies to.
    pub events: Vec<RuleEvent>,
}

/// The condition form of a unique rule's `scope`, compiled once per snapshot.
#[derive(Debug, Clone)]
pub struct ScopeCondition(Expr);

impl PartialEq for ScopeCondition {
    fn eq(&self, other: &Self) -> bool {
        self.0.source() == other.0.source()
    }
}

impl ScopeCondition {
    /// The condition as written.
    pub fn source(&self) -> &str {
        self.0.source()
    }

    /// Whether `record` (with its formulas computed) is in scope. A condition that cannot be
    /// evaluated on the record (a type error) leaves it out of scope.
    pub fn admits(&self, record: &Record, now: DateTime<Utc>) -> bool {
        self.0
            .eval_bool(&EvalContext::new(record, now))
            .unwrap_or(false)
    }
}

/// Everything compiled from one object's metadata: formulas in dependency order, conditional
/// requirements and validation rules, each expression parsed once.
#[derive(Debug, Clone)]
pub struct CompiledRules {
    schema: ObjectSchema,
    /// Formula fields in evaluation order.
    formulas: Vec<(String, Expr)>,
    /// Formula fields that cannot be computed (missing or broken expression, or a cycle).
    null_formulas: Vec<String>,
    conditional_required: Vec<(String, Expr)>,
    /// Rules sorted by priority (stable, so equal priorities keep declaration order).
    rules: Vec<CompiledRule>,
    /// Unique rules, kept with their keys for [`CompiledRules::unique_checks`].
    unique_rules: Vec<UniqueRule>,
}

#[derive(Debug, Clone)]
struct UniqueRule {
    name: String,
    message: String,
    fields: Vec<String>,
    scope: Option<String>,
    scope_fields: Vec<String>,
    scope_condition: Option<ScopeCondition>,
    case_sensitive: bool,
    events: Vec<RuleEvent>,
}

/// The label used in messages: the field's label, else its name in words (`first_name` -> `First Name`).
pub(crate) fn field_label(field: &Field) -> String {
    match &field.label {
        Some(l) if !l.is_empty() => l.clone(),
        _ => field
            .name
            .split('_')
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Keys the engine owns (system fields, the soft-delete and tenant columns); never checked here.
pub(crate) fn is_engine_managed(schema: &ObjectSchema, key: &str) -> bool {
    is_system_field(key)
        || schema.soft_delete_field() == Some(key)
        || schema
            .tenancy
            .as_ref()
            .is_some_and(|t| t.tenant_field == key)
}

/// Problems with the field paths an expression reads (unknown first segment).
pub(crate) fn check_paths(schema: &ObjectSchema, expr: &Expr) -> Vec<String> {
    expr.fields()
        .iter()
        .filter_map(|path| {
            let head = path.split('.').next().unwrap_or(path);
            let known = schema.has_field(head) || is_engine_managed(schema, head);
            (!known).then(|| format!("refers to unknown field `{head}`"))
        })
        .collect()
}

fn blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

impl CompiledRules {
    /// Compiles every expression of `schema`; any problem (parse error, unknown field, bad regex,
    /// formula cycle) is reported, one line each, so metadata fails at load time.
    pub fn compile(schema: &ObjectSchema) -> Result<CompiledRules, Vec<String>> {
        let (compiled, errors) = Self::compile_lenient(schema);
        if errors.is_empty() {
            Ok(compiled)
        } else {
            Err(errors)
        }
    }

    /// Compiles what can be compiled and lists the problems. Broken formulas evaluate to `null`;
    /// broken rules fail every write they apply to (fail closed) with a message naming the problem.
    pub fn compile_lenient(schema: &ObjectSchema) -> (CompiledRules, Vec<String>) {
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        let mut null_formulas = Vec::new();
        let mut conditional_required = Vec::new();
        for field in schema.fields.values() {
            if field.kind == FieldType::Formula {
                match field.expression.as_deref().map(Expr::parse) {
                    None => {
                        errors.push(format!("formula field `{}` has no expression", field.name));
                        null_formulas.push(field.name.clone());
                    }
                    Some(Err(e)) => {
                        errors.push(format!(
                            "formula field `{}`: expression does not parse: {e}",
                            field.name
                        ));
                        null_formulas.push(field.name.clone());
                    }
                    Some(Ok(expr)) => {
                        let problems = check_paths(schema, &expr);
                        if problems.is_empty() {
                            parsed.push((field.name.clone(), expr));
                        } else {
                            errors.push(format!(
                                "formula field `{}`: expression {}",
                                field.name,
                                problems.join("; ")
                            ));
                            null_formulas.push(field.name.clone());
                        }
                    }
                }
            }
            if let Some(src) = &field.conditional_required {
                match Expr::parse(src) {
                    Ok(expr) => {
                        let problems = check_paths(schema, &expr);
                        if problems.is_empty() {
                            conditional_required.push((field.name.clone(), expr));
                        } else {
                            errors.push(format!(
                                "field `{}`: conditionalRequired {}",
                                field.name,
                                problems.join("; ")
                            ));
                        }
                    }
                    Err(e) => errors.push(format!(
                        "field `{}`: conditionalRequired `{src}` does not parse: {e}",
                        field.name
                    )),
                }
            }
        }
        let (order, stuck, cycles) = formula::order(&parsed);
        errors.extend(cycles);
        null_formulas.extend(stuck.iter().map(|&i| parsed[i].0.clone()));
        let mut slots: Vec<Option<(String, Expr)>> = parsed.into_iter().map(Some).collect();
        let formulas = order.iter().filter_map(|&i| slots[i].take()).collect();

        let mut indexed: Vec<_> = schema.validations.iter().collect();
        indexed.sort_by_key(|r| r.priority);
        let mut rules = Vec::new();
        let mut unique_rules = Vec::new();
        for rule in indexed {
            let compiled = rules::compile_rule(schema, rule, None, &mut errors);
            if let objectos_spec::object::RuleKind::Unique {
                fields,
                scope,
                case_sensitive,
            } = &rule.rule
                && rule.active
                && !matches!(compiled.check, Check::Broken(_))
            {
                let (scope_fields, scope_condition) =
                    match scope.as_deref().map(|s| rules::unique_scope(schema, s)) {
                        Some(Ok(rules::UniqueScope::Fields(f))) => (f, None),
                        Some(Ok(rules::UniqueScope::Condition(e))) => {
                            (Vec::new(), Some(ScopeCondition(e)))
                        }
                        // Reported by `compile_rule`, which marked the rule broken.
                        Some(Err(_)) | None => (Vec::new(), None),
                    };
                unique_rules.push(UniqueRule {
                    name: rule.name.clone(),
                    message: rule.message.clone(),
                    fields: fields.clone(),
                    scope: scope.clone(),
                    scope_fields,
                    scope_condition,
                    case_sensitive: *case_sensitive,
                    events: rule.events.clone(),
                });
            }
            rules.push(compiled);
        }
        let compiled = CompiledRules {
            schema: schema.clone(),
            formulas,
            null_formulas,
            conditional_required,
            rules,
            unique_rules,
        };
        (compiled, errors)
    }

    /// The schema these rules were compiled from.
    pub fn schema(&self) -> &ObjectSchema {
        &self.schema
    }

    /// Formula field names in evaluation order (formulas that cannot be computed are left out).
    pub fn formula_order(&self) -> Vec<&str> {
        self.formulas.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Fills missing fields from `defaultValue`, or from the options marked `default: true`
    /// (all of them for multi-choice fields). Call on insert only.
    pub fn apply_defaults(&self, record: &mut Record) {
        for field in self.schema.fields.values() {
            if field.is_computed()
                || record.contains_key(&field.name)
                || is_engine_managed(&self.schema, &field.name)
            {
                continue;
            }
            if let Some(v) = &field.default_value {
                record.insert(field.name.clone(), v.clone());
                continue;
            }
            let defaults: Vec<Value> = field
                .options
                .iter()
                .filter(|o| o.default)
                .map(|o| Value::String(o.value.clone()))
                .collect();
            if defaults.is_empty() {
                continue;
            }
            let value = if field.kind.is_multi_choice() || field.multiple {
                Value::Array(defaults)
            } else {
                defaults.into_iter().next().unwrap_or(Value::Null)
            };
            record.insert(field.name.clone(), value);
        }
    }

    /// Normalises and type-checks the input; see [`coerce()`].
    pub fn coerce(&self, record: &mut Record) -> Result<(), Vec<FieldError>> {
        coerce::coerce(&self.schema, record)
    }

    /// Dotted paths (`account.name`) read by formulas, conditional requirements and rule
    /// conditions, each once: what the engine should resolve through lookups (or expand into
    /// the record as nested objects) before evaluating.
    pub fn related_paths(&self) -> Vec<String> {
        let mut exprs: Vec<&Expr> = self.formulas.iter().map(|(_, e)| e).collect();
        exprs.extend(self.conditional_required.iter().map(|(_, e)| e));
        let mut stack: Vec<&CompiledRule> = self.rules.iter().collect();
        while let Some(rule) = stack.pop() {
            match &rule.check {
                Check::Condition(e) => exprs.push(e),
                Check::Conditional {
                    when,
                    then,
                    otherwise,
                } => {
                    exprs.push(when);
                    stack.push(then);
                    if let Some(o) = otherwise {
                        stack.push(o);
                    }
                }
                _ => {}
            }
        }
        let mut out: Vec<String> = Vec::new();
        for path in exprs.iter().flat_map(|e| e.fields()) {
            if path.contains('.') && !out.contains(&path) {
                out.push(path);
            }
        }
        out
    }

    /// Evaluates formula fields into `record` in dependency order; failures become `null`.
    pub fn compute_formulas(&self, record: &mut Record, now: DateTime<Utc>) {
        self.compute_formulas_with(record, now, None);
    }

    /// Like [`CompiledRules::compute_formulas`], resolving dotted paths through `resolver`.
    pub fn compute_formulas_with(
        &self,
        record: &mut Record,
        now: DateTime<Utc>,
        resolver: Option<&dyn FieldResolver>,
    ) {
        for name in &self.null_formulas {
            record.insert(name.clone(), Value::Null);
        }
        for (name, expr) in &self.formulas {
            let mut cx = EvalContext::new(record, now);
            cx.resolver = resolver;
            let value = match expr.eval_json(&cx) {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(object = %self.schema.name, field = %name, error = %e, "formula evaluation failed; storing null");
                    Value::Null
                }
            };
            record.insert(name.clone(), value);
        }
    }

    /// Checks a write; see [`validate`].
    pub fn validate(
        &self,
        kind: WriteKind,
        new: &Record,
        old: Option<&Record>,
        now: DateTime<Utc>,
    ) -> Result<Vec<FieldError>, Vec<FieldError>> {
        self.validate_after(kind, new, old, now, Vec::new())
    }

    /// Checks a write that earlier steps already found problems in (`earlier`: unknown fields,
    /// values of the wrong type), so one answer lists every mistake of the request: `earlier`
    /// first, then this check's. The fields `earlier` names are not checked again, nor are the
    /// rules that concern them: a value that could not be read has no length to check, and a
    /// rule reading it would only fail (or pass) for the same reason.
    pub fn validate_after(
        &self,
        kind: WriteKind,
        new: &Record,
        old: Option<&Record>,
        now: DateTime<Utc>,
        earlier: Vec<FieldError>,
    ) -> Result<Vec<FieldError>, Vec<FieldError>> {
        let failed: Vec<&str> = earlier.iter().map(|e| e.field.as_str()).collect();
        let mut merged = old.cloned().unwrap_or_default();
        for (k, v) in new {
            merged.insert(k.clone(), v.clone());
        }
        self.compute_formulas(&mut merged, now);
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        self.field_checks(kind, new, &merged, now, &failed, true, &mut errors);
        let event = kind.event();
        for rule in &self.rules {
            if rule.fields.iter().any(|f| failed.contains(&f.as_str())) {
                continue;
            }
            match rule.run(event, &merged, new, old, now) {
                Outcome::Pass => {}
                Outcome::Fail(e, RuleSeverity::Error) => errors.extend(e),
                Outcome::Fail(e, _) => warnings.extend(e),
            }
        }
        if earlier.is_empty() && errors.is_empty() {
            Ok(warnings)
        } else {
            let mut all = earlier;
            all.append(&mut errors);
            Err(all)
        }
    }

    /// The checks of a write that need nothing stored: `earlier` first, then required fields
    /// missing (insert) or blanked by the patch (update), and the lengths and ranges of the
    /// values sent; no conditional requirement and no rule, which read the stored record. For a
    /// write whose input is refused before the stored record may be read: the answer then lists
    /// every mistake the input alone shows, and is the same whether or not the caller may see
    /// that record.
    pub fn validate_input(
        &self,
        kind: WriteKind,
        new: &Record,
        now: DateTime<Utc>,
        earlier: Vec<FieldError>,
    ) -> Vec<FieldError> {
        let failed: Vec<String> = earlier.iter().map(|e| e.field.clone()).collect();
        let failed: Vec<&str> = failed.iter().map(String::as_str).collect();
        let mut errors = earlier;
        self.field_checks(kind, new, new, now, &failed, false, &mut errors);
        errors
    }

    /// Required fields, conditional requirements (when `conditional`, as they read `merged`),
    /// lengths and ranges.
    #[allow(
        clippy::too_many_arguments,
        reason = "one private step of `validate_after` and `validate_input`, which differ in these"
    )]
    fn field_checks(
        &self,
        kind: WriteKind,
        new: &Record,
        merged: &Record,
        now: DateTime<Utc>,
        failed: &[&str],
        conditional: bool,
        errors: &mut Vec<FieldError>,
    ) {
        for field in self.schema.fields.values() {
            if field.is_computed()
                || is_engine_managed(&self.schema, &field.name)
                || failed.contains(&field.name.as_str())
            {
                continue;
            }
            let name = &field.name;
            let label = field_label(field);
            let in_patch = new.contains_key(name);
            let required =
                FieldError::new(name.clone(), "required", format!("{label} is required"))
                    .with_label(&label);
            let missing = match kind {
                WriteKind::Insert => blank(merged.get(name)),
                WriteKind::Update => in_patch && blank(new.get(name)),
            };
            if field.required && missing {
                errors.push(required);
                continue;
            }
            if conditional
                && let Some((_, expr)) = self.conditional_required.iter().find(|(f, _)| f == name)
                && blank(merged.get(name))
            {
                match expr.eval_bool(&EvalContext::new(merged, now)) {
                    Ok(true) => {
                        errors.push(required);
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(object = %self.schema.name, field = %name, error = %e, "conditionalRequired could not be evaluated");
                    }
                }
            }
            // Range checks look at values being written, so stored legacy values do not block
            // unrelated updates.
            let value = match kind {
                WriteKind::Insert => merged.get(name),
                WriteKind::Update => new.get(name),
            };
            match value {
                Some(Value::Number(n)) if field.kind.is_numeric() => {
                    if let Some(x) = n.as_f64() {
                        number_checks(field, &label, x, errors);
                    }
                }
                Some(Value::String(s)) if field.kind.is_text() && !s.is_empty() => {
                    let len = s.chars().count() as u64;
                    if let Some(max) = field.max_length
                        && len > max
                    {
                        errors.push(
                            FieldError::new(
                                name.clone(),
                                "too_long",
                                format!("{label} must be at most {max} characters"),
                            )
                            .with_label(&label),
                        );
                    }
                    if let Some(min) = field.min_length
                        && len < min
                    {
                        errors.push(
                            FieldError::new(
                                name.clone(),
                                "too_short",
                                format!("{label} must be at least {min} characters"),
                            )
                            .with_label(&label),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// The uniqueness conditions the engine must check with SQL for `record` (pass the merged
    /// record on update). Values that are null (or empty text for single fields) are skipped,
    /// as SQL unique indexes do; so is a rule whose scope condition the record does not meet.
    pub fn unique_checks(&self, record: &Record) -> Vec<UniqueCheck> {
        let mut out = Vec::new();
        // Scope conditions may read formulas, which the stored or patched record lacks or has stale.
        let with_formulas = self
            .unique_rules
            .iter()
            .any(|r| r.scope_condition.is_some())
            .then(|| {
                let mut r = record.clone();
                self.compute_formulas(&mut r, Utc::now());
                r
            });
        for field in self.schema.fields.values() {
            if !field.unique || is_engine_managed(&self.schema, &field.name) {
                continue;
            }
            let value = record.get(&field.name);
            if blank(value) {
                continue;
            }
            out.push(UniqueCheck {
                fields: vec![field.name.clone()],
                values: vec![value.cloned().unwrap_or(Value::Null)],
                message: format!("{} must be unique", field_label(field)),
                rule: None,
                case_sensitive: true,
                scope: None,
                scope_fields: Vec::new(),
                scope_values: Vec::new(),
                scope_condition: None,
                events: vec![RuleEvent::Insert, RuleEvent::Update],
            });
        }
        for rule in &self.unique_rules {
            let values: Vec<Value> = rule
                .fields
                .iter()
                .map(|f| record.get(f).cloned().unwrap_or(Value::Null))
                .collect();
            if values.iter().any(Value::is_null) {
                continue;
            }
            if let (Some(cond), Some(r)) = (&rule.scope_condition, &with_formulas)
                && !cond.admits(r, Utc::now())
            {
                continue;
            }
            let message = if rule.message.is_empty() {
                let labels: Vec<String> = rule
                    .fields
                    .iter()
                    .map(|f| self.schema.field(f).map_or_else(|| f.clone(), field_label))
                    .collect();
                format!("The combination of {} must be unique", labels.join(", "))
            } else {
                rule.message.clone()
            };
            out.push(UniqueCheck {
                fields: rule.fields.clone(),
                values,
                message,
                rule: Some(rule.name.clone()),
                case_sensitive: rule.case_sensitive,
                scope: rule.scope.clone(),
                scope_values: rule
                    .scope_fields
                    .iter()
                    .map(|f| record.get(f).cloned().unwrap_or(Value::Null))
                    .collect(),
                scope_fields: rule.scope_fields.clone(),
                scope_condition: rule.scope_condition.clone(),
                events: rule.events.clone(),
            });
        }
        out
    }
}

/// min/max and precision/scale of one number.
fn number_checks(field: &Field, label: &str, x: f64, errors: &mut Vec<FieldError>) {
    let fmt = crate::expr::format_number;
    let err = |code: &str, message: String| {
        FieldError::new(field.name.clone(), code, message).with_label(label)
    };
    if let Some(min) = field.min
        && x < min
    {
        errors.push(err(
            "too_small",
            format!("{label} must be at least {}", fmt(min)),
        ));
    }
    if let Some(max) = field.max
        && x > max
    {
        errors.push(err(
            "too_large",
            format!("{label} must be at most {}", fmt(max)),
        ));
    }
    let text = fmt(x.abs());
    let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
    let int_digits = int_part.trim_start_matches('0').len() as u32;
    let frac_digits = frac_part.len() as u32;
    if let Some(scale) = field.scale
        && frac_digits > scale
    {
        errors.push(err(
            "invalid_format",
            format!(
                "{label} must have at most {scale} decimal place{}",
                if scale == 1 { "" } else { "s" }
            ),
        ));
    }
    if let Some(precision) = field.precision {
        let int_max = precision.saturating_sub(field.scale.unwrap_or(0));
        if int_digits > int_max {
            errors.push(err(
                "too_large",
                format!(
                    "{label} must have at most {int_max} digit{} before the decimal point",
                    if int_max == 1 { "" } else { "s" }
                ),
            ));
        } else if field.scale.is_none() && int_digits + frac_digits > precision {
            errors.push(err(
                "too_large",
                format!("{label} must have at most {precision} digits"),
            ));
        }
    }
}

/// Fills missing fields with their defaults (insert only); see [`CompiledRules::apply_defaults`].
pub fn apply_defaults(schema: &ObjectSchema, record: &mut Record) {
    CompiledRules::compile_lenient(schema)
        .0
        .apply_defaults(record);
}

/// Normalises and type-checks input values per field type, collecting every problem:
///
/// - text types need strings (email, url and phone are format-checked); numbers accept numeric
///   strings; booleans accept `"true"`/`"false"`; dates are `YYYY-MM-DD`; date-times RFC 3339,
///   normalised to UTC milliseconds (`2026-11-23T16:45:10.709Z`); times `HH:MM[:SS]`;
/// - select values must be options (`Status must be one of: new, active, closed`,
///   `invalid_option`); multi-choice fields take lists (a single value is wrapped);
/// - references take string ids (lists when `multiple`; an expanded record is reduced to its id);
/// - json-like types take any JSON; computed fields are refused (`readonly`); unknown fields are
///   refused (`unknown_field`); system fields are skipped.
pub fn coerce(schema: &ObjectSchema, record: &mut Record) -> Result<(), Vec<FieldError>> {
    coerce::coerce(schema, record)
}

/// Checks a write and returns its warnings, or every error.
///
/// `new` is the input (the patch on update); `old` is the stored record on update. Field checks:
/// `required` (on insert: missing, null, empty text or empty list; on update only when the patch
/// blanks the field), `conditionalRequired`, `min`/`max`, `minLength`/`maxLength`,
/// `precision`/`scale`. Then the validation rules in priority order, on the merged record with
/// formulas computed, honouring `active`, `events` and `severity` (warning and info failures
/// are returned as warnings). Unique rules are left to [`unique_checks`]; async and custom rules
/// are not run and produce a `rule_skipped` warning.
pub fn validate(
    schema: &ObjectSchema,
    kind: WriteKind,
    new: &Record,
    old: Option<&Record>,
    now: DateTime<Utc>,
) -> Result<Vec<FieldError>, Vec<FieldError>> {
    CompiledRules::compile_lenient(schema)
        .0
        .validate(kind, new, old, now)
}

/// Evaluates formula fields in dependency order; failures and cycles give `null`.
pub fn compute_formulas(schema: &ObjectSchema, record: &mut Record, now: DateTime<Utc>) {
    CompiledRules::compile_lenient(schema)
        .0
        .compute_formulas(record, now);
}

/// Cycles among formula fields, one message each (`formula fields form a cycle: a -> b -> a`),
/// for load-time validation.
pub fn check_formula_cycles(schema: &ObjectSchema) -> Vec<String> {
    let parsed: Vec<(String, Expr)> = schema
        .fields
        .values()
        .filter(|f| f.kind == FieldType::Formula)
        .filter_map(|f| Some((f.name.clone(), Expr::parse(f.expression.as_deref()?).ok()?)))
        .collect();
    formula::order(&parsed).2
}

/// The uniqueness conditions the engine must check with SQL; see [`CompiledRules::unique_checks`].
pub fn unique_checks(schema: &ObjectSchema, record: &Record) -> Vec<UniqueCheck> {
    CompiledRules::compile_lenient(schema)
        .0
        .unique_checks(record)
}
