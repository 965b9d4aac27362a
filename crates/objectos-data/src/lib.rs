//! The ObjectQL data engine: metadata registry, schema sync, QueryAST to SQL, SQLite and PostgreSQL through sea-orm, interceptors, outbox.

mod checks;
pub mod context;
mod db;
mod engine;
pub mod error;
pub mod expr;
mod hooks;
mod jobs;
mod kinds;
mod meta;
mod observe;
mod outbox;
mod owned;
mod plugin;
mod schema;
mod sqlgen;
pub mod store;
mod util;
pub mod validate;
mod value;

pub use context::{CascadeOrigin, OpContext, Principal};
pub use db::Dialect;
pub use engine::{
    BatchItem, BatchItemError, BatchItemResult, BatchOperation, BatchOptions, BatchRequest,
    BatchResult, CROSS_BATCH_MAX_OPERATIONS, CrossBatchFailure, CrossBatchItemResult,
    CrossBatchOperation, CrossBatchOptions, CrossBatchRequest, CrossBatchResult, DataConfig,
    DataEngine, FindResult, FollowUp, OwnTransaction, PoolStats, WriteLimits,
};
pub use error::{DataError, FieldError, FieldErrorDetail, Result};
pub use hooks::{HookContext, Interceptor, Operation, WriteTx};
pub use jobs::TransactionalJobQueue;
pub use kinds::{MetaItem, MetadataKind, ParseResult, TextParseResult};
pub use meta::MetadataSnapshot;
pub use outbox::{DispatcherHandle, EventSink};
pub use owned::{
    ColumnDef, ColumnDefault, ColumnType, INDEXED_SYSTEM_FIELDS, IndexDef, PluginSchema, TableDef,
    TableStorage,
};
pub use plugin::{
    DataHandle, DataPlugin, InterceptorContribution, MANIFEST, MetadataHandle, PLUGIN_ID,
    owned_schemas,
};
pub use schema::{MigrationPlan, MigrationReport, MigrationStep, PluginSteps};
pub use sqlgen::{DEFAULT_LIMIT, MAX_LIMIT};

/// A record: field name to JSON value, in field order.
pub type Record = serde_json::Map<String, serde_json::Value>;
