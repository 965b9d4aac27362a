//! Validation rules compiled once per object: expressions parsed, regexes built, ready to run per write.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use objectos_spec::object::{ObjectSchema, RuleEvent, RuleKind, RuleSeverity, ValidationRule};
use serde_json::Value;

use super::coerce::{is_email, is_phone, is_url, parse_date, parse_datetime, parse_time};
use super::{Record, check_paths, is_engine_managed};
use crate::error::FieldError;
use crate::expr::{EvalContext, Expr};

/// Named formats accepted by `format` rules.
pub(crate) const NAMED_FORMATS: &[&str] = &[
    "email",
    "url",
    "phone",
    "json",
    "uuid",
    "date",
    "datetime",
    "time",
    "ipv4",
    "ipv6",
    "alphanumeric",
    "numeric",
];

/// How a `format` rule checks its field.
#[derive(Debug, Clone)]
pub(crate) enum FormatCheck {
    Regex(regex::Regex),
    Named(String),
}

/// The runnable part of a rule.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// `script` and `cross_field`: fails when the condition is TRUE.
    Condition(Expr),
    Format {
        field: String,
        check: FormatCheck,
    },
    StateMachine {
        field: String,
        transitions: IndexMap<String, Vec<String>>,
    },
    JsonSchema {
        field: String,
        schema: Value,
    },
    Conditional {
        when: Expr,
        then: Box<CompiledRule>,
        otherwise: Option<Box<CompiledRule>>,
    },
    /// Unique rules run in SQL (see `unique_checks`).
    Unique,
    /// `async` and `custom`: not run here; reported as a warning.
    Skipped,
    /// The rule could not be compiled (lenient mode only); it fails closed.
    Broken(String),
}

/// A validation rule ready to run.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) name: String,
    pub(crate) type_name: &'static str,
    pub(crate) message: String,
    pub(crate) active: bool,
    pub(crate) events: Vec<RuleEvent>,
    pub(crate) severity: RuleSeverity,
    pub(crate) check: Check,
    /// The fields the rule concerns, as a form shows them: a failure is reported on each (see
    /// [`concerned_fields`]); empty when it reads none.
    pub(crate) fields: Vec<String>,
}

/// The input fields behind the paths an expression reads, each once, in order: a lookup path
/// (`account.name`) is its lookup field, a formula field is replaced by the fields its own
/// expression reads (a form has no input for `net`, it has `amount` and `discount`), and fields
/// the engine fills (system, tenant, soft-delete) are left out. Unknown names are skipped (the
/// compiler reports them).
pub(crate) fn concerned_fields(schema: &ObjectSchema, paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Formulas already expanded: formulas may share inputs, and a cycle must end.
    let mut expanded: Vec<String> = Vec::new();
    let mut stack: Vec<String> = paths.iter().rev().cloned().collect();
    while let Some(path) = stack.pop() {
        let head = path.split('.').next().unwrap_or(&path).to_owned();
        let Some(field) = schema.field(&head) else {
            continue;
        };
        if is_engine_managed(schema, &head) {
            continue;
        }
        if field.kind == objectos_spec::object::FieldType::Formula {
            if expanded.contains(&head) {
                continue;
            }
            expanded.push(head);
            if let Some(expr) = field
                .expression
                .as_deref()
                .and_then(|e| Expr::parse(e).ok())
            {
                stack.extend(expr.fields().into_iter().rev());
            }
            continue;
        }
        if !out.contains(&head) {
            out.push(head);
        }
    }
    out
}

/// Compiles one rule; `parent` names the enclosing conditional rule for nested ones.
pub(crate) fn compile_rule(
    schema: &ObjectSchema,
    rule: &ValidationRule,
    parent: Option<&str>,
    errors: &mut Vec<String>,
) -> CompiledRule {
    let name = if rule.name.is_empty() {
        parent.unwrap_or("unnamed").to_owned()
    } else {
        rule.name.clone()
    };
    let mut problems = Vec::new();
    let parse = |what: &str, src: &str, problems: &mut Vec<String>| match Expr::parse(src) {
        Ok(e) => {
            for p in check_paths(schema, &e) {
                problems.push(format!("{what} {p}"));
            }
            Some(e)
        }
        Err(e) => {
            problems.push(format!("{what} `{src}` does not parse: {e}"));
            None
        }
    };
    let known_field = |field: &str, problems: &mut Vec<String>| {
        if !schema.has_field(field) && !is_engine_managed(schema, field) {
            problems.push(format!("refers to unknown field `{field}`"));
        }
    };
    let check = match &rule.rule {
        RuleKind::Script { condition } | RuleKind::CrossField { condition, .. } => {
            parse("condition", condition, &mut problems).map(Check::Condition)
        }
        RuleKind::Format {
            field,
            regex,
            format,
        } => {
            known_field(field, &mut problems);
            match (regex, format) {
                (Some(re), _) => match regex::RegexBuilder::new(re).size_limit(1 << 20).build() {
                    Ok(r) => Some(Check::Format {
                        field: field.clone(),
                        check: FormatCheck::Regex(r),
                    }),
                    Err(e) => {
                        let detail = e
                            .to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        problems.push(format!("regex `{re}` is invalid: {detail}"));
                        None
                    }
                },
                (None, Some(f)) if NAMED_FORMATS.contains(&f.as_str()) => Some(Check::Format {
                    field: field.clone(),
                    check: FormatCheck::Named(f.clone()),
                }),
                (None, Some(f)) => {
                    problems.push(format!(
                        "format `{f}` is unknown; expected one of {}",
                        NAMED_FORMATS.join(", ")
                    ));
                    None
                }
                (None, None) => {
                    problems.push("needs `regex` or `format`".to_owned());
                    None
                }
            }
        }
        RuleKind::StateMachine { field, transitions } => {
            known_field(field, &mut problems);
            Some(Check::StateMachine {
                field: field.clone(),
                transitions: transitions.clone(),
            })
        }
        RuleKind::JsonSchema { field, schema: s } => {
            known_field(field, &mut problems);
            Some(Check::JsonSchema {
                field: field.clone(),
                schema: s.clone(),
            })
        }
        RuleKind::Conditional {
            when,
            then,
            otherwise,
        } => {
            let when = parse("`when`", when, &mut problems);
            let then = compile_rule(schema, then, Some(&name), errors);
            let otherwise = otherwise
                .as_ref()
                .map(|o| Box::new(compile_rule(schema, o, Some(&name), errors)));
            when.map(|when| Check::Conditional {
                when,
                then: Box::new(then),
                otherwise,
            })
        }
        RuleKind::Unique { fields, scope, .. } => {
            for f in fields {
                known_field(f, &mut problems);
            }
            if let Some(Err(p)) = scope.as_deref().map(|s| unique_scope(schema, s)) {
                problems.push(p);
            }
            Some(Check::Unique)
        }
        RuleKind::Async { .. } | RuleKind::Custom { .. } => Some(Check::Skipped),
    };
    let fields = match (&rule.rule, &check) {
        // Declared fields are the author's word on what the rule concerns.
        (RuleKind::CrossField { fields, .. }, _) if !fields.is_empty() => {
            concerned_fields(schema, fields)
        }
        (_, Some(Check::Condition(expr))) => concerned_fields(schema, &expr.fields()),
        (
            RuleKind::Format { field, .. }
            | RuleKind::StateMachine { field, .. }
            | RuleKind::JsonSchema { field, .. }
            | RuleKind::Async { field, .. },
            _,
        ) => concerned_fields(schema, std::slice::from_ref(field)),
        (RuleKind::Unique { fields, .. }, _) => concerned_fields(schema, fields),
        (
            _,
            Some(Check::Conditional {
                when,
                then,
                otherwise,
            }),
        ) => {
            // Everything it may look at: its condition and both branches.
            let mut paths = when.fields();
            paths.extend(then.fields.iter().cloned());
            if let Some(o) = otherwise {
                paths.extend(o.fields.iter().cloned());
            }
            concerned_fields(schema, &paths)
        }
        _ => Vec::new(),
    };
    let check = if problems.is_empty() {
        check.unwrap_or(Check::Skipped)
    } else {
        let text = format!(
            "validation rule `{name}` ({}): {}",
            rule.rule.type_name(),
            problems.join("; ")
        );
        errors.push(text.clone());
        Check::Broken(text)
    };
    CompiledRule {
        name,
        type_name: rule.rule.type_name(),
        message: rule.message.clone(),
        active: rule.active,
        events: rule.events.clone(),
        severity: rule.severity,
        check,
        fields,
    }
}

/// The outcome of running one rule.
pub(crate) enum Outcome {
    Pass,
    /// One error per field the rule concerns, all with the rule's message and name.
    Fail(Vec<FieldError>, RuleSeverity),
}

impl CompiledRule {
    /// The rule's failure, on `field` when one value is at fault, else on every field the rule
    /// concerns (on its name when it concerns none).
    fn failure(&self, field: Option<&str>, code: &str, default_message: String) -> Outcome {
        let message = if self.message.is_empty() {
            default_message
        } else {
            self.message.clone()
        };
        self.failure_with(field, code, message, self.severity)
    }

    fn failure_with(
        &self,
        field: Option<&str>,
        code: &str,
        message: String,
        severity: RuleSeverity,
    ) -> Outcome {
        let targets: Vec<&str> = match field {
            Some(f) => vec![f],
            None if self.fields.is_empty() => vec![self.name.as_str()],
            None => self.fields.iter().map(String::as_str).collect(),
        };
        let errors = targets
            .into_iter()
            .map(|f| FieldError::new(f, code, message.clone()).with_rule(&self.name))
            .collect();
        Outcome::Fail(errors, severity)
    }

    /// Runs the rule against the merged record (`record`), with the stored record for updates.
    pub(crate) fn run(
        &self,
        event: RuleEvent,
        record: &Record,
        patch: &Record,
        old: Option<&Record>,
        now: DateTime<Utc>,
    ) -> Outcome {
        if !self.active || !self.events.contains(&event) {
            return Outcome::Pass;
        }
        let cx = EvalContext::new(record, now);
        match &self.check {
            Check::Condition(expr) => match expr.eval_bool(&cx) {
                Ok(false) => Outcome::Pass,
                Ok(true) => self.failure(
                    None,
                    "rule_failed",
                    format!("Validation rule `{}` failed", self.name),
                ),
                Err(e) => self.failure(
                    None,
                    "rule_failed",
                    format!(
                        "Validation rule `{}` could not be evaluated: {e}",
                        self.name
                    ),
                ),
            },
            Check::Format { field, check } => {
                let value = record.get(field).unwrap_or(&Value::Null);
                let text = match value {
                    Value::Null => return Outcome::Pass,
                    Value::String(s) if s.is_empty() => return Outcome::Pass,
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let ok = match check {
                    FormatCheck::Regex(re) => re.is_match(&text),
                    FormatCheck::Named(name) => named_format_ok(name, &text),
                };
                if ok {
                    Outcome::Pass
                } else {
                    let what = match check {
                        FormatCheck::Regex(re) => format!("match `{}`", re.as_str()),
                        FormatCheck::Named(n) => format!("be a valid {n}"),
                    };
                    self.failure(Some(field), "rule_failed", format!("`{field}` must {what}"))
                }
            }
            Check::StateMachine { field, transitions } => {
                let (Some(old), Some(new)) = (old, patch.get(field)) else {
                    return Outcome::Pass;
                };
                let Some(from) = old.get(field).and_then(Value::as_str) else {
                    return Outcome::Pass;
                };
                let Some(to) = new.as_str() else {
                    return Outcome::Pass;
                };
                if from == to
                    || transitions
                        .get(from)
                        .is_some_and(|t| t.iter().any(|s| s == to))
                {
                    return Outcome::Pass;
                }
                let allowed = transitions
                    .get(from)
                    .map(|t| t.join(", "))
                    .unwrap_or_default();
                let tail = if allowed.is_empty() {
                    format!("`{from}` is a final state")
                } else {
                    format!("allowed next values: {allowed}")
                };
                self.failure(
                    Some(field),
                    "invalid_transition",
                    format!("`{field}` cannot change from `{from}` to `{to}`; {tail}"),
                )
            }
            Check::JsonSchema { field, schema } => {
                let value = record.get(field).unwrap_or(&Value::Null);
                if value.is_null() {
                    return Outcome::Pass;
                }
                match check_json_schema(schema, value, field, 0) {
                    Ok(()) => Outcome::Pass,
                    Err(detail) => self.failure(Some(field), "rule_failed", detail),
                }
            }
            Check::Conditional {
                when,
                then,
                otherwise,
            } => {
                let branch = match when.eval_bool(&cx) {
                    Ok(true) => Some(then),
                    Ok(false) => otherwise.as_ref(),
                    Err(e) => {
                        return self.failure(
                            None,
                            "rule_failed",
                            format!(
                                "Validation rule `{}` could not be evaluated: {e}",
                                self.name
                            ),
                        );
                    }
                };
                match branch {
                    Some(rule) => rule.run(event, record, patch, old, now),
                    None => Outcome::Pass,
                }
            }
            Check::Unique => Outcome::Pass,
            Check::Skipped => Outcome::Fail(
                vec![
                    FieldError::new(
                        self.name.clone(),
                        "rule_skipped",
                        format!(
                            "Validation rule `{}` ({}) is not run by this server",
                            self.name, self.type_name
                        ),
                    )
                    .with_rule(&self.name),
                ],
                RuleSeverity::Warning,
            ),
            // The rule's own message would blame the record for a metadata problem.
            Check::Broken(text) => self.failure_with(
                None,
                "rule_failed",
                format!("Cannot run {text}"),
                RuleSeverity::Error,
            ),
        }
    }
}

/// The two readings of a unique rule's `scope`.
pub(crate) enum UniqueScope {
    /// Field names (`account`, `account, region`): unique per value of these fields.
    Fields(Vec<String>),
    /// A condition (the spec's reading, `active = true`): only records meeting it are compared.
    Condition(Expr),
}

/// Reads a `scope`: a comma-separated list of the object's field names is the field form,
/// anything else must parse as a condition over known fields. A bare boolean field name is the
/// field form; write `active = true` for the condition.
pub(crate) fn unique_scope(schema: &ObjectSchema, src: &str) -> Result<UniqueScope, String> {
    let names: Vec<&str> = src.split(',').map(str::trim).collect();
    let is_name = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && (schema.has_field(n) || is_engine_managed(schema, n))
    };
    if names.iter().all(|n| is_name(n)) {
        return Ok(UniqueScope::Fields(
            names.into_iter().map(str::to_owned).collect(),
        ));
    }
    let expr = Expr::parse(src).map_err(|e| {
        format!("scope `{src}` is neither a list of field names nor a condition that parses: {e}")
    })?;
    let problems = check_paths(schema, &expr);
    if problems.is_empty() {
        Ok(UniqueScope::Condition(expr))
    } else {
        Err(format!("scope {}", problems.join("; ")))
    }
}

fn named_format_ok(name: &str, s: &str) -> bool {
    match name {
        "email" => is_email(s),
        "url" => is_url(s),
        "phone" => is_phone(s),
        "json" => serde_json::from_str::<Value>(s).is_ok(),
        "uuid" => is_uuid(s),
        "date" => s.len() == 10 && parse_date(s).is_some(),
        "datetime" => parse_datetime(s).is_some(),
        "time" => parse_time(s).is_some(),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "alphanumeric" => s.chars().all(char::is_alphanumeric),
        "numeric" => s.trim().parse::<f64>().is_ok_and(f64::is_finite),
        _ => false,
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Schemas deeper than this are not followed further (they come from metadata, but stay bounded).
const MAX_SCHEMA_DEPTH: usize = 32;

/// A basic JSON Schema check: `type`, `enum`, `const`, `required`, `properties`,
/// `additionalProperties: false`, `items`, `minimum`/`maximum`, `minLength`/`maxLength`,
/// `minItems`/`maxItems`. Returns the first problem with its path.
pub(crate) fn check_json_schema(
    schema: &Value,
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<(), String> {
    let Value::Object(s) = schema else {
        return Ok(());
    };
    if depth > MAX_SCHEMA_DEPTH {
        return Ok(());
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| json_type_matches(t, value)) {
            return Err(format!("`{path}` must be of type {}", types.join(" or ")));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(value)
    {
        let list = options
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!("`{path}` must be one of: {list}"));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        return Err(format!("`{path}` must be {c}"));
    }
    if let Some(x) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            return Err(format!("`{path}` must be at least {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            return Err(format!("`{path}` must be at most {max}"));
        }
    }
    if let Value::String(text) = value {
        let len = text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            return Err(format!("`{path}` must be at least {min} characters long"));
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            return Err(format!("`{path}` must be at most {max} characters long"));
        }
    }
    if let Value::Object(map) = value {
        if let Some(Value::Array(required)) = s.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(key) {
                    return Err(format!("`{path}.{key}` is required"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, v) in map {
            match props.and_then(|p| p.get(key)) {
                Some(sub) => check_json_schema(sub, v, &format!("{path}.{key}"), depth + 1)?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("`{path}.{key}` is not allowed"));
                }
                None => {}
            }
        }
    }
    if let Value::Array(items) = value {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            return Err(format!("`{path}` must have at least {min} items"));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            return Err(format!("`{path}` must have at most {max} items"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check_json_schema(item_schema, item, &format!("{path}[{i}]"), depth + 1)?;
            }
        }
    }
    Ok(())
}

fn json_type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|x| x.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => true,
    }
}
