//! The ObjectQL data engine: metadata registry, schema sync, QueryAST to SQL, SQLite and PostgreSQL through sea-orm, interceptors, outbox.

mod checks;
pub mod context;
mod db;
mod engine;
pub mod error;
pub mod expr;
mod hooks;
mod meta;
mod outbox;
mod plugin;
mod schema;
mod sqlgen;
mod util;
pub mod validate;
mod value;

pub use context::{CascadeOrigin, OpContext, Principal};
pub use db::Dialect;
pub use engine::{
    BatchItem, BatchItemError, BatchItemResult, BatchOperation, BatchOptions, BatchRequest,
    BatchResult, CROSS_BATCH_MAX_OPERATIONS, CrossBatchFailure, CrossBatchItemResult,
    CrossBatchOperation, CrossBatchOptions, CrossBatchRequest, CrossBatchResult, DataConfig,
    DataEngine, FindResult, OwnTransaction, WriteLimits,
};
pub use error::{DataError, FieldError, FieldErrorDetail, Result};
pub use hooks::{HookContext, Interceptor, Operation, WriteTx};
pub use meta::MetadataSnapshot;
pub use outbox::{DispatcherHandle, EventSink};
pub use plugin::{
    DataHandle, DataPlugin, InterceptorContribution, MANIFEST, MetadataHandle, PLUGIN_ID,
};
pub use schema::{MigrationPlan, MigrationReport, MigrationStep};
pub use sqlgen::{DEFAULT_LIMIT, MAX_LIMIT};

/// A record: field name to JSON value, in field order.
pub type Record = serde_json::Map<String, serde_json::Value>;
