//! The `I18n` contract's implementation (service `i18n`): the current catalog (swapped whole on
//! a metadata reload), the settings, and the users' `locale` settings read through the engine
//! and kept for a minute (dropped early when a `user` record changes).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use objectos_data::{DataEngine, OpContext};
use objectos_kernel::contracts::{DateStyle, I18n, I18nArg, LabelPart, LocaleInfo, LocaleRequest};
use objectos_spec::QueryAst;
use parking_lot::Mutex;
use serde_json::Value;

use crate::bundle::canonical_locale;
use crate::catalog::Catalog;
use crate::config::I18nSettings;
use crate::error::Result;
use crate::{format, negotiate};

/// How long a user's locale setting is kept before it is read again.
const USER_LOCALE_TTL: Duration = Duration::from_secs(60);
/// Users whose setting is kept at most; the cache starts over beyond it.
const USER_LOCALE_CAPACITY: usize = 10_000;

/// The service behind the `i18n` contract and the plugin's routes.
pub struct I18nService {
    settings: I18nSettings,
    catalog: ArcSwap<Catalog>,
    engine: OnceLock<DataEngine>,
    user_locales: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl std::fmt::Debug for I18nService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I18nService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Names of locales in their own language, for `/i18n/locales`.
fn own_name(tag: &str) -> String {
    let name = match tag.split('-').next().unwrap_or(tag) {
        "en" => "English",
        "de" => "Deutsch",
        "fr" => "Français",
        "es" => "Español",
        "it" => "Italiano",
        "nl" => "Nederlands",
        "pt" => "Português",
        "ja" => "日本語",
        "zh" => "中文",
        _ => return tag.to_owned(),
    };
    if tag.contains('-') {
        format!("{name} ({tag})")
    } else {
        name.to_owned()
    }
}

impl I18nService {
    /// A service with `settings` (tags are made canonical; a bad tag is an error) and no
    /// translations until [`I18nService::reload`].
    pub fn new(settings: &I18nSettings) -> Result<Self> {
        let settings = settings
            .canonical()
            .map_err(crate::error::I18nError::Config)?;
        Ok(Self {
            settings,
            catalog: ArcSwap::from_pointee(Catalog::default()),
            engine: OnceLock::new(),
            user_locales: Mutex::new(HashMap::new()),
        })
    }

    /// Gives the service the engine: its snapshot's translations, and user records.
    pub fn attach(&self, engine: DataEngine) -> Result<()> {
        let _ = self.engine.set(engine);
        self.reload()
    }

    /// Compiles the translations of the engine's current snapshot and swaps them in; on error
    /// the previous catalog stays.
    pub fn reload(&self) -> Result<()> {
        let Some(engine) = self.engine.get() else {
            return Ok(());
        };
        let catalog = Catalog::compile(&engine.metadata())?;
        for locale in catalog.translated_locales() {
            if !self.serves(locale) {
                tracing::warn!(
                    locale,
                    "Translations for a locale not in i18n.supportedLocales are not served."
                );
            }
        }
        self.catalog.store(Arc::new(catalog));
        Ok(())
    }

    /// Forgets the cached locale of `user` (its record changed), or of everyone.
    pub fn forget_user(&self, user: Option<&str>) {
        let mut cache = self.user_locales.lock();
        match user {
            Some(id) => {
                cache.remove(id);
            }
            None => cache.clear(),
        }
    }

    pub fn settings(&self) -> &I18nSettings {
        &self.settings
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Whether `locale` is served: configured, or (with none configured) translated or default.
    pub fn serves(&self, locale: &str) -> bool {
        if locale == self.settings.default_locale {
            return true;
        }
        if self.settings.supported_locales.is_empty() {
            self.catalog.load().locales.contains_key(locale)
        } else {
            self.settings.supported_locales.iter().any(|l| l == locale)
        }
    }

    /// The served locales, default first.
    pub fn served(&self) -> Vec<String> {
        let mut out = vec![self.settings.default_locale.clone()];
        let rest: Vec<String> = if self.settings.supported_locales.is_empty() {
            self.catalog.load().locales.keys().cloned().collect()
        } else {
            self.settings.supported_locales.clone()
        };
        for l in rest {
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }

    /// The chain for explicit preferences (a path's locale), without a request's headers.
    pub fn chain_for(&self, preferences: &[String]) -> Vec<String> {
        negotiate::chain(
            preferences,
            &|l| self.serves(l),
            self.settings.fallback_locale.as_deref(),
            &self.settings.default_locale,
        )
    }

    /// The `locale` setting of `user`, when the `user` object has such a field.
    async fn user_locale(&self, user: &str) -> Option<String> {
        if let Some((locale, at)) = self.user_locales.lock().get(user)
            && at.elapsed() < USER_LOCALE_TTL
        {
            return locale.clone();
        }
        let engine = self.engine.get()?;
        // The field's default (the base preset gives every user `en`) counts as not chosen,
        // so a user who never picked a language is served by Accept-Language.
        let default = {
            let snapshot = engine.metadata();
            let field = snapshot.object("user")?.fields.get("locale")?.clone();
            field
                .default_value
                .as_ref()
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    field
                        .options
                        .iter()
                        .find(|o| o.default)
                        .map(|o| o.value.clone())
                })
        };
        let cx = OpContext::system("i18n: the user's locale setting");
        let locale = match engine.get(&cx, "user", user, QueryAst::default()).await {
            Ok(record) => record
                .get("locale")
                .and_then(Value::as_str)
                .filter(|l| default.as_deref() != Some(*l))
                .and_then(|l| canonical_locale(l).ok()),
            Err(e) => {
                tracing::debug!(error = %e, "The user's locale setting could not be read.");
                None
            }
        };
        let mut cache = self.user_locales.lock();
        if cache.len() >= USER_LOCALE_CAPACITY {
            cache.clear();
        }
        cache.insert(user.to_owned(), (locale.clone(), Instant::now()));
        locale
    }
}

#[async_trait]
impl I18n for I18nService {
    fn locales(&self) -> Vec<LocaleInfo> {
        self.served()
            .into_iter()
            .map(|code| LocaleInfo {
                label: own_name(&code),
                is_default: code == self.settings.default_locale,
                code,
            })
            .collect()
    }

    fn default_locale(&self) -> String {
        self.settings.default_locale.clone()
    }

    async fn locale_chain(&self, request: LocaleRequest<'_>) -> Vec<String> {
        let mut prefs = Vec::new();
        if let Some(l) = request.explicit.and_then(|l| canonical_locale(l).ok()) {
            prefs.push(l);
        }
        if let Some(user) = request.user_id
            && let Some(l) = self.user_locale(user).await
        {
            prefs.push(l);
        }
        if let Some(header) = request.accept_language {
            prefs.extend(negotiate::parse_accept_language(header));
        }
        self.chain_for(&prefs)
    }

    fn translate(&self, chain: &[String], key: &str, args: &[(&str, I18nArg)]) -> Option<String> {
        self.catalog.load().translate(chain, key, args)
    }

    fn object_label(&self, chain: &[String], object: &str, part: LabelPart) -> Option<String> {
        self.catalog.load().object_label(chain, object, part)
    }

    fn field_label(
        &self,
        chain: &[String],
        object: &str,
        field: &str,
        part: LabelPart,
    ) -> Option<String> {
        self.catalog.load().field_label(chain, object, field, part)
    }

    fn option_label(
        &self,
        chain: &[String],
        object: &str,
        field: &str,
        value: &str,
    ) -> Option<String> {
        self.catalog
            .load()
            .option_label(chain, object, field, value)
    }

    fn validation_message(&self, chain: &[String], object: &str, rule: &str) -> Option<String> {
        self.catalog.load().validation_message(chain, object, rule)
    }

    fn revision(&self) -> String {
        self.catalog.load().revision.clone()
    }

    fn format_number(&self, locale: &str, value: f64, decimals: usize) -> String {
        format::number(locale, value, decimals)
    }

    fn format_currency(&self, locale: &str, value: f64, currency: &str) -> String {
        format::currency(locale, value, currency)
    }

    fn format_date(&self, locale: &str, date: NaiveDate, style: DateStyle) -> String {
        format::date(locale, date, style)
    }

    fn format_datetime(&self, locale: &str, at: DateTime<Utc>, style: DateStyle) -> String {
        format::datetime(locale, at, style)
    }
}
