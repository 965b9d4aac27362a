//! Redaction of secrets and the before/after diff of a record.

use objectos_data::Record;
use objectos_spec::object::{FieldType, ObjectSchema};
use serde_json::Value;

use crate::event::Change;

/// The value written in place of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// System fields that change on every write and say nothing about the change itself.
const NOISE_FIELDS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "owner_id",
    "organization_id",
];

/// Decides which field names are secrets (case-insensitive fragments).
#[derive(Debug, Clone)]
pub struct Redactor {
    fragments: Vec<String>,
}

impl Redactor {
    pub fn new(fragments: &[String]) -> Self {
        Self {
            fragments: fragments
                .iter()
                .map(|f| f.trim().to_ascii_lowercase())
                .filter(|f| !f.is_empty())
                .collect(),
        }
    }

    /// True when the name contains a configured fragment.
    pub fn is_secret_name(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        self.fragments.iter().any(|f| n.contains(f.as_str()))
    }

    /// True for password/secret fields and configured names.
    pub fn is_secret_field(&self, schema: &ObjectSchema, field: &str) -> bool {
        if self.is_secret_name(field) {
            return true;
        }
        schema
            .fields
            .get(field)
            .is_some_and(|f| matches!(f.kind, FieldType::Password | FieldType::Secret))
    }

    /// Replaces, at any depth, the value of every key that is a secret name.
    pub fn redact_value(&self, v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if self.is_secret_name(k) && !x.is_null() {
                        *x = Value::String(REDACTED.into());
                    } else {
                        self.redact_value(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_value(x)),
            _ => {}
        }
    }

    fn mask(&self, secret: bool, v: Value) -> Value {
        if secret && !v.is_null() {
            Value::String(REDACTED.into())
        } else {
            v
        }
    }

    /// The changed fields between `before` and `after` (either may be absent), in schema order,
    /// skipping system fields and computed fields; secrets are masked but still listed.
    pub fn diff(
        &self,
        schema: &ObjectSchema,
        before: Option<&Record>,
        after: Option<&Record>,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for (name, field) in &schema.fields {
            if NOISE_FIELDS.contains(&name.as_str())
                || matches!(
                    field.kind,
                    FieldType::Formula | FieldType::Summary | FieldType::Autonumber
                )
            {
                continue;
            }
            let old = before
                .and_then(|r| r.get(name))
                .cloned()
                .unwrap_or(Value::Null);
            let new = after
                .and_then(|r| r.get(name))
                .cloned()
                .unwrap_or(Value::Null);
            if old == new {
                continue;
            }
            // A value that is only absent on one side (not selected) is not a change.
            if (before.is_some() && after.is_some())
                && (before.is_some_and(|r| !r.contains_key(name))
                    || after.is_some_and(|r| !r.contains_key(name)))
            {
                continue;
            }
            let secret = self.is_secret_field(schema, name);
            out.push(Change {
                field: name.clone(),
                old_value: self.mask(secret, old),
                new_value: self.mask(secret, new),
            });
        }
        out
    }
}
