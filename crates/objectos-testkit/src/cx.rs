//! Operation contexts and records for tests that call the engine directly.

use objectos_data::{OpContext, Record};
use serde_json::Value;

use crate::session::Who;

/// A restricted user without roles or permission sets, outside any organization; the request id
/// is `req-<id>` so a test can find what the user's writes produced.
pub fn user_cx(id: &str) -> OpContext {
    Who::user(id).op_context()
}

/// The administrator `root`, inside organization `tenant`.
pub fn admin_cx(tenant: &str) -> OpContext {
    Who::admin().tenant(tenant).op_context()
}

/// The JSON object `v` as a record.
///
/// # Panics
/// When `v` is not an object (a broken fixture).
pub fn rec(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        other => panic!("a record must be a JSON object, not {other}"),
    }
}
