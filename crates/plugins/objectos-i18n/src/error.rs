//! The plugin's one error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum I18nError {
    /// The translation files of a snapshot do not compile together.
    #[error("translations do not compile: {0}")]
    Compile(String),
    /// The `i18n:` settings are not usable.
    #[error("i18n settings: {0}")]
    Config(String),
    /// Reading the metadata folder for `objectos i18n extract`.
    #[error("{path}: {message}")]
    Extract { path: String, message: String },
}

pub type Result<T> = std::result::Result<T, I18nError>;
