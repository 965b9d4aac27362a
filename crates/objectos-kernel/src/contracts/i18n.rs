//! The translation contract (service `i18n`): which locales a request reads in, translated
//! messages and metadata labels, and locale-aware formatting of numbers, amounts and dates.
//!
//! An i18n plugin implements it; the HTTP plugin asks it (when registered) to translate the
//! labels of `/api/v1/meta` items and `/api/v1/ui` views, and templates format values through
//! it. Every lookup takes a locale chain (most preferred first, as [`I18n::locale_chain`]
//! builds it) and answers `None` when no locale of the chain translates the string, so the
//! caller keeps the authored text.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

/// What a request says about its language: the caller (whose `locale` setting wins), the
/// `Accept-Language` header, and an explicit choice (a `?locale=` parameter or a path segment).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocaleRequest<'a> {
    /// The signed-in user's id, when there is one.
    pub user_id: Option<&'a str>,
    /// The raw `Accept-Language` header.
    pub accept_language: Option<&'a str>,
    /// A locale the request names itself; it comes before everything else.
    pub explicit: Option<&'a str>,
}

/// One locale this deployment serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocaleInfo {
    /// BCP 47 tag (`de`, `de-CH`).
    pub code: String,
    /// Its name in its own language (`Deutsch`).
    pub label: String,
    pub is_default: bool,
}

/// An argument of a translated message (Fluent's variables).
#[derive(Debug, Clone, PartialEq)]
pub enum I18nArg {
    Text(String),
    Number(f64),
}

impl From<&str> for I18nArg {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for I18nArg {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<f64> for I18nArg {
    fn from(v: f64) -> Self {
        Self::Number(v)
    }
}

impl From<i64> for I18nArg {
    fn from(v: i64) -> Self {
        // Counts shown to people are far below 2^53, where f64 stays exact.
        #[allow(clippy::cast_precision_loss)]
        Self::Number(v as f64)
    }
}

/// Which text of an object or field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelPart {
    /// The label (singular for an object).
    Label,
    /// An object's plural label.
    PluralLabel,
    Description,
    /// A field's help text.
    Help,
    /// A field's input placeholder.
    Placeholder,
}

/// How long a formatted date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    /// Digits only (`06.12.2026`, `12/6/2026`).
    Short,
    /// With the month's name (`6. Dezember 2026`, `December 6, 2026`).
    Long,
}

/// Translations and locale-aware formatting.
#[async_trait]
pub trait I18n: Send + Sync + fmt::Debug + 'static {
    /// The locales served, the default one first.
    fn locales(&self) -> Vec<LocaleInfo>;

    /// The default locale's tag.
    fn default_locale(&self) -> String;

    /// The locales a request reads in, most preferred first, each followed by its fallbacks
    /// (`de-CH`, `de`), ending with the fallback and default locales; only served locales.
    async fn locale_chain(&self, request: LocaleRequest<'_>) -> Vec<String>;

    /// A message by id (a bundle's `messages`, or a Fluent message), rendered with `args`.
    fn translate(&self, chain: &[String], key: &str, args: &[(&str, I18nArg)]) -> Option<String>;

    /// A text of an object (`Label`, `PluralLabel`, `Description`).
    fn object_label(&self, chain: &[String], object: &str, part: LabelPart) -> Option<String>;

    /// A text of a field (`Label`, `Help`, `Placeholder`).
    fn field_label(
        &self,
        chain: &[String],
        object: &str,
        field: &str,
        part: LabelPart,
    ) -> Option<String>;

    /// The label of one option of a select field.
    fn option_label(
        &self,
        chain: &[String],
        object: &str,
        field: &str,
        value: &str,
    ) -> Option<String>;

    /// The message of an object's validation rule.
    fn validation_message(&self, chain: &[String], object: &str, rule: &str) -> Option<String>;

    /// A tag that changes whenever the translations change (after a metadata reload), so a
    /// translated answer's ETag can include it.
    fn revision(&self) -> String;

    /// `value` with the locale's grouping and decimal separators and `decimals` digits.
    fn format_number(&self, locale: &str, value: f64, decimals: usize) -> String;

    /// An amount in `currency` (ISO 4217 code) as the locale writes it (`1.234,50 €`).
    fn format_currency(&self, locale: &str, value: f64, currency: &str) -> String;

    /// A calendar date as the locale writes it.
    fn format_date(&self, locale: &str, date: NaiveDate, style: DateStyle) -> String;

    /// A point in time (shown in UTC) as the locale writes it.
    fn format_datetime(&self, locale: &str, at: DateTime<Utc>, style: DateStyle) -> String;
}
