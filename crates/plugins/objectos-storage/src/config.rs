//! The settings of the storage plugin: the `storage:` section of `objectos.yml`
//! ([`crate::CONFIG_SECTION`]), checked by the server against [`StorageSettings`] and handed to
//! the plugin at `init`.

use std::path::{Path, PathBuf};

use objectos_spec::settings::{PluginSettings, Secret, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The smallest chunk of a chunked upload (the official server's minimum, and S3's smallest
/// multipart part).
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;

/// The variable read for the signing key when `signingKey` is not given.
pub const DEFAULT_SIGNING_KEY_ENV: &str = "OBJECTOS_STORAGE_SIGNING_KEY";

/// Where file contents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A directory on this machine (`local.root`).
    #[default]
    Local,
    /// An S3-compatible object store (`s3.*`).
    S3,
}

/// `storage.local`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LocalSettings {
    /// The folder holding the files (created when missing; a relative path is taken from the
    /// working folder). Not given: [`DEFAULT_LOCAL_DIR`] in the data folder, the folder of the
    /// SQLite database file (see [`LocalSettings::root_in`]).
    pub root: Option<PathBuf>,
}

/// The folder of the files inside the data folder when `local.root` is not given.
pub const DEFAULT_LOCAL_DIR: &str = "files";

impl LocalSettings {
    /// The folder the files go to: `root` when given, else [`DEFAULT_LOCAL_DIR`] inside
    /// `data_dir` (the server passes the SQLite database's folder; with PostgreSQL or an
    /// in-memory database there is none and the working folder is used, as `./files`).
    pub fn root_in(&self, data_dir: Option<&Path>) -> PathBuf {
        match (&self.root, data_dir) {
            (Some(root), _) => root.clone(),
            (None, Some(dir)) => dir.join(DEFAULT_LOCAL_DIR),
            (None, None) => PathBuf::from(DEFAULT_LOCAL_DIR),
        }
    }
}

/// `storage.s3`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    /// The store's URL for S3-compatible services (MinIO, R2, ...); AWS when not given.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// `https://host/bucket/key` instead of `https://bucket.host/key` (most self-hosted stores).
    pub path_style: bool,
    /// Plain `http://` endpoints (a store on loopback).
    pub allow_http: bool,
    /// A key prefix inside the bucket (`objectos/`).
    pub prefix: Option<String>,
}

/// The settings (camelCase keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct StorageSettings {
    pub backend: BackendKind,
    pub local: LocalSettings,
    pub s3: S3Settings,
    /// Largest file in bytes (larger uploads are refused with 413 before anything is stored).
    pub max_file_size: u64,
    /// Bytes of stored files one organization may hold; unlimited when not given.
    pub organization_quota: Option<u64>,
    /// Key of the signed upload and download URLs (HMAC-SHA256). Every node of a cluster needs
    /// the same key; without one (and without `signingKeyEnv` set) a random key is made at
    /// start, so signed URLs stop working after a restart.
    pub signing_key: Option<Secret>,
    /// The environment variable read for the signing key when `signingKey` is not given.
    pub signing_key_env: String,
    /// How long a signed URL is valid, in seconds.
    pub url_ttl_seconds: u64,
    /// How long an unfinished upload session lives, in seconds; its parts are then removed.
    pub upload_session_ttl_seconds: u64,
    /// How often expired upload sessions are removed, in seconds.
    pub cleanup_interval_seconds: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: BackendKind::Local,
            local: LocalSettings::default(),
            s3: S3Settings::default(),
            max_file_size: 1024 * 1024 * 1024,
            organization_quota: None,
            signing_key: None,
            signing_key_env: DEFAULT_SIGNING_KEY_ENV.to_owned(),
            url_ttl_seconds: 3600,
            upload_session_ttl_seconds: 24 * 3600,
            cleanup_interval_seconds: 600,
        }
    }
}

impl PluginSettings for StorageSettings {
    fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        if self.max_file_size == 0 {
            out.push(SettingsProblem::at(
                "maxFileSize",
                "0 is out of range; expected a size in bytes of at least 1",
            ));
        }
        for (path, value) in [
            ("urlTtlSeconds", self.url_ttl_seconds),
            ("uploadSessionTtlSeconds", self.upload_session_ttl_seconds),
            ("cleanupIntervalSeconds", self.cleanup_interval_seconds),
        ] {
            if value == 0 {
                out.push(SettingsProblem::at(
                    path,
                    "0 is out of range; expected a number of seconds of at least 1",
                ));
            }
        }
        if let Some(key) = &self.signing_key
            && key.expose().len() < 32
        {
            out.push(SettingsProblem::at(
                "signingKey",
                "the key is too short; expected at least 32 characters",
            ));
        }
        if self.backend == BackendKind::Local
            && self
                .local
                .root
                .as_ref()
                .is_some_and(|r| r.as_os_str().is_empty())
        {
            out.push(SettingsProblem::at(
                "local.root",
                "the folder is empty; expected a path such as `files`",
            ));
        }
        if self.backend == BackendKind::S3 && self.s3.bucket.trim().is_empty() {
            out.push(SettingsProblem::at(
                "s3.bucket",
                "`backend: s3` needs a bucket name",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::CONFIG_SECTION;
    use serde_json::json;

    #[test]
    fn the_section_fills_defaults_and_reports_every_problem() {
        let effective = (CONFIG_SECTION.check)(&serde_json::Value::Null).unwrap();
        assert_eq!(effective["backend"], "local");
        // No root: the plugin puts the files in the data folder.
        assert_eq!(effective["local"]["root"], serde_json::Value::Null);
        let problems =
            (CONFIG_SECTION.check)(&json!({ "backend": "s3", "maxFileSize": 0 })).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let unknown = (CONFIG_SECTION.check)(&json!({ "maxFileSiz": 5 })).unwrap_err();
        assert!(unknown[0].message.contains("maxFileSiz"), "{unknown:?}");
        let empty = (CONFIG_SECTION.check)(&json!({ "local": { "root": "" } })).unwrap_err();
        assert!(empty[0].message.contains("empty"), "{empty:?}");
    }

    #[test]
    fn the_default_root_is_in_the_data_folder() {
        use std::path::{Path, PathBuf};

        use crate::config::LocalSettings;
        let default = LocalSettings::default();
        assert_eq!(
            default.root_in(Some(Path::new("/var/lib/objectos"))),
            PathBuf::from("/var/lib/objectos/files")
        );
        assert_eq!(default.root_in(None), PathBuf::from("files"));
        let explicit = LocalSettings {
            root: Some(PathBuf::from("/srv/blobs")),
        };
        assert_eq!(
            explicit.root_in(Some(Path::new("/var/lib/objectos"))),
            PathBuf::from("/srv/blobs")
        );
    }
}
