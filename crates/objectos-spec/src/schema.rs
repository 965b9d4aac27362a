//! JSON Schema export (schemars) for each top-level spec type.
