//! Object metadata: ObjectSchema, Field, FieldType, validation rules, indexes.
