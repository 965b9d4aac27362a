//! The i18n plugin (`com.objectos.i18n`, service `i18n`): translation bundles (the spec's
//! TranslationBundle, `*.translation.yml`) and Fluent resources (`*.ftl`) as metadata kinds,
//! the request's locale chain, translated metadata labels through the kernel's `I18n`
//! contract, locale-aware formatting, the official client's `/api/v1/i18n` routes, and
//! `objectos i18n extract`.

pub mod bundle;
pub mod catalog;
pub mod config;
pub mod error;
pub mod extract;
pub mod format;
pub mod negotiate;
pub mod plugin;
pub mod routes;
pub mod service;

pub use config::{CONFIG_SECTION, I18nSettings};
pub use error::{I18nError, Result};
pub use plugin::{I18nPlugin, MANIFEST, PLUGIN_ID, schema};
pub use service::I18nService;
