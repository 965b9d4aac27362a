//! ObjectOS storage plugin (`com.objectos.storage`, service `file-storage`): files as
//! `sys_file` records with their contents in a blob store (a local folder or an S3-compatible
//! bucket), the official client's `storage` namespace (presigned, chunked and resumable uploads,
//! signed download URLs), and reads that follow the records referencing a file.
//!
//! Modules: settings ([`config`]), what the plugin owns ([`schema`]), the backends ([`local`],
//! [`s3`]; the local one's file streaming in `fileio`), the service with the upload and read logic ([`service`]), the check of file ids
//! written into records ([`guard`]), stream measuring ([`meter`]), MIME sniffing ([`sniff`]),
//! signed tokens ([`sign`]), the routes ([`routes`]) and the kernel plugin ([`plugin`]).

pub mod config;
pub mod error;
mod fileio;
pub mod guard;
pub mod local;
pub mod meter;
pub mod plugin;
pub mod routes;
pub mod s3;
pub mod schema;
pub mod service;
pub mod sign;
pub mod sniff;

use objectos_spec::PluginManifest;
use objectos_spec::manifest::{ConfigProperty, PluginDependency, capabilities, services};
use objectos_spec::settings::ConfigSection;

pub use config::StorageSettings;
pub use error::StorageError;
pub use local::LocalBlobStore;
pub use plugin::StoragePlugin;
pub use schema::schema;
pub use service::StorageService;

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.storage";

/// The plugin's human-readable name.
pub const NAME: &str = "Storage";

/// The service the plugin provides: the [`StorageService`], registered as
/// `dyn objectos_kernel::contracts::BlobStore` and as itself.
pub const SERVICE: &str = services::FILE_STORAGE;

/// The `storage:` section of `objectos.yml`.
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<StorageSettings>("storage", PLUGIN_ID);

/// The manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Files as objects in a local or S3 blob store; presigned, chunked and resumable uploads; signed downloads for readers of the referencing records",
    dependencies: &[PluginDependency {
        id: objectos_data::PLUGIN_ID,
        version: ">=0.1",
        optional: false,
    }],
    provides: &[SERVICE],
    requires: &[services::DATA],
    // The permissions plugin's `Authorizer` decides who reads the records a file is attached
    // to; the job queue runs the cleanup of expired uploads when present.
    optional_requires: &[services::PERMISSIONS, services::JOB],
    permissions: &[
        capabilities::DATA_READ,
        capabilities::DATA_WRITE,
        capabilities::ROUTES_MOUNT,
        capabilities::FS_READ,
        capabilities::FS_WRITE,
        capabilities::NET_HTTP,
    ],
    objects: &["objects/*.object.yml"],
    configuration: &[
        ConfigProperty {
            key: "backend",
            kind: "string",
            description: "local (default) or s3",
            required: false,
            secret: false,
            default: Some("\"local\""),
        },
        ConfigProperty {
            key: "maxFileSize",
            kind: "integer",
            description: "Largest file in bytes",
            required: false,
            secret: false,
            default: Some("1073741824"),
        },
        ConfigProperty {
            key: "signingKey",
            kind: "string",
            description: "HMAC key of signed URLs (or signingKeyEnv)",
            required: false,
            secret: true,
            default: None,
        },
    ],
    ..PluginManifest::new(PLUGIN_ID, NAME, env!("CARGO_PKG_VERSION"))
};
