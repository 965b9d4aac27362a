//! A read-only view of an object's metadata in the spec's JSON form, shared by the metadata, UI
//! and OpenAPI routes.
//!
//! Working from the serialized spec form (the same JSON `/meta/object/{name}` serves) keeps these
//! routes in step with what clients see and independent of the Rust field names of `ObjectSchema`.

use serde_json::{Map, Value};

/// One field of an object, as the spec serializes it.
#[derive(Debug, Clone)]
pub struct FieldView {
    pub name: String,
    pub def: Map<String, Value>,
}

impl FieldView {
    /// The spec field type (`text`, `number`, `lookup`...); `text` when missing.
    pub fn kind(&self) -> &str {
        self.def
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("text")
    }

    /// The label, or the name turned into words.
    pub fn label(&self) -> String {
        self.def
            .get("label")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| humanize(&self.name))
    }

    fn flag(&self, key: &str) -> bool {
        self.def.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    pub fn required(&self) -> bool {
        self.flag("required")
    }

    pub fn hidden(&self) -> bool {
        self.flag("hidden")
    }

    pub fn readonly(&self) -> bool {
        self.flag("readonly")
    }

    /// True for the injected system fields (`id`, `created_at`...).
    pub fn system(&self) -> bool {
        self.flag("system") || objectos_spec::object::is_system_field(&self.name)
    }

    /// True when the field holds a list (`multiple: true`).
    pub fn multiple(&self) -> bool {
        self.flag("multiple")
    }

    /// Option values of a select-like field.
    pub fn option_values(&self) -> Vec<Value> {
        self.def
            .get("options")
            .and_then(Value::as_array)
            .map(|opts| {
                opts.iter()
                    .filter_map(|o| match o {
                        Value::Object(m) => m.get("value").cloned(),
                        Value::String(_) | Value::Number(_) => Some(o.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The referenced object of a lookup / master-detail field.
    pub fn reference(&self) -> Option<&str> {
        self.def.get("reference").and_then(Value::as_str)
    }
}

/// An object's metadata in JSON form.
#[derive(Debug, Clone)]
pub struct ObjectView {
    pub name: String,
    pub item: Value,
}

impl ObjectView {
    /// Serializes a schema; a schema that cannot be serialized yields an empty item (never a panic).
    pub fn new<T: serde::Serialize>(name: &str, schema: &T) -> Self {
        let item = serde_json::to_value(schema).unwrap_or_else(|e| {
            tracing::error!(object = name, error = %e, "Object metadata could not be serialized.");
            Value::Object(Map::new())
        });
        Self {
            name: name.to_owned(),
            item,
        }
    }

    pub fn label(&self) -> String {
        self.item
            .get("label")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| humanize(&self.name))
    }

    /// Fields in declaration order; both the map form and the list-of-`{name}` form are read.
    pub fn fields(&self) -> Vec<FieldView> {
        match self.item.get("fields") {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(name, def)| {
                    def.as_object().map(|d| FieldView {
                        name: name.clone(),
                        def: d.clone(),
                    })
                })
                .collect(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|def| {
                    let d = def.as_object()?;
                    let name = d.get("name")?.as_str()?.to_owned();
                    Some(FieldView {
                        name,
                        def: d.clone(),
                    })
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `first_name` -> `First Name`.
pub fn humanize(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
