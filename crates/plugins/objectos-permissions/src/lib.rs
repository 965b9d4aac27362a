//! ObjectOS permissions plugin: profiles, permission sets, roles, sharing and row/field-level
//! security, enforced as data-engine interceptors; see README.md for the semantics.

mod authorizer;
mod authz;
pub mod config;
mod error;
mod interceptor;
mod model;
mod plugin;
pub mod rls;
mod routes;

pub use authorizer::{PermissionsAuthorizer, op_context};
pub use authz::{
    AssignmentKind, Authz, AuthzConfig, CLUSTER_NAMESPACE, DirectoryMembership, Effective,
    Membership, StoredMembership, Subject, schema,
};
pub use config::{CONFIG_SECTION, PermissionsSettings};
pub use error::PermissionsError;
pub use interceptor::{NO_TENANT_MESSAGE, ORDER, PermissionInterceptor};
pub use model::{
    CompiledPolicy, CompiledRule, KIND_PERMISSION, KIND_ROLE, KIND_SHARING, SecurityModel,
    SecuritySources, metadata_kinds,
};
pub use plugin::{EVENTS, MANIFEST, MEMBER_REMOVED, PLUGIN_ID, PermissionsPlugin};
pub use routes::{
    objectos_operations, objectos_router, objectstack_operations, objectstack_router,
};
