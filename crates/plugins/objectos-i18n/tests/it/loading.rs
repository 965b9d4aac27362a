//! Bundles and Fluent files as metadata kinds: loaded with the objects, problems refused with
//! file, line and path, lookups along the locale chain, reloads, and the extract skeleton.

use objectos_data::{MetadataKind, PluginSchema};
use objectos_i18n::{I18nSettings, schema};
use objectos_kernel::contracts::{I18n, I18nArg, LabelPart, LocaleRequest};

use objectos_testkit::TestDatabase;

use crate::on_both;
use crate::support::{ACCOUNT, Server};

fn kind(file: &str) -> MetadataKind {
    let schemas = [schema().owned_by(objectos_i18n::PLUGIN_ID)];
    PluginSchema::kind_of(&schemas, file)
        .cloned()
        .unwrap_or_else(|| panic!("no kind reads {file}"))
}

#[test]
fn a_bundle_error_names_file_line_and_path() {
    let file = "meta/app.translation.yml";
    let text = "de:\n  objects:\n    account:\n      fields:\n        name:\n          lable: Firmenname\n";
    let errors = kind(file).parse_file(file, text).err().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.file, file);
    assert_eq!(e.path, "de.objects.account.fields.name.lable", "{e:?}");
    assert_eq!(e.line, 6, "{e:?}");

    assert!(e.message.contains("lable"), "{e:?}");
}

#[test]
fn an_unknown_locale_tag_is_refused_at_its_key() {
    let file = "meta/app.translation.yml";
    let text = "de:\n  messages: { a: b }\ndeutsch:\n  messages: { a: b }\n";
    let errors = kind(file).parse_file(file, text).err().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].path.as_str(), errors[0].line), ("deutsch", 3));
    assert!(errors[0].message.contains("locale"), "{errors:?}");
}

#[test]
fn a_yaml_syntax_error_is_located() {
    let file = "meta/app.translation.yml";
    let errors = kind(file)
        .parse_file(file, "de:\n  messages: [\n")
        .err()
        .unwrap_or_default();
    assert!(!errors.is_empty() && errors[0].line > 0, "{errors:?}");
}

#[test]
fn a_fluent_syntax_error_is_located() {
    let file = "meta/app.de.ftl";
    let errors = kind(file)
        .parse_file(file, "ok = fine\n\nbroken = { $x\n")
        .err()
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, file);
    assert!((3..=4).contains(&errors[0].line), "{errors:?}");
    assert!(errors[0].message.contains("Fluent"), "{errors:?}");
    let nameless = "meta/app.ftl";
    let errors = kind(nameless)
        .parse_file(nameless, "a = b\n")
        .err()
        .unwrap_or_default();
    assert!(errors[0].message.contains("locale"), "{errors:?}");
}

async fn lookups_follow_the_chain_and_fluent_renders_plurals(db: TestDatabase) {
    let server = Server::start(db, I18nSettings::default()).await;
    let i18n: &dyn I18n = &*server.service;
    let chain = i18n
        .locale_chain(LocaleRequest {
            accept_language: Some("de-CH, fr;q=0.8"),
            ..LocaleRequest::default()
        })
        .await;
    assert_eq!(chain, vec!["de", "fr", "en"]);
    assert_eq!(
        i18n.object_label(&chain, "account", LabelPart::PluralLabel)
            .as_deref(),
        Some("Firmen")
    );
    assert_eq!(
        i18n.option_label(&chain, "account", "type", "customer")
            .as_deref(),
        Some("Kunde")
    );
    assert_eq!(
        i18n.field_label(&chain, "account", "name", LabelPart::Help)
            .as_deref(),
        Some("Der eingetragene Name.")
    );
    // French first: the account label is French, the rest falls back to German.
    let fr = i18n
        .locale_chain(LocaleRequest {
            accept_language: Some("fr, de;q=0.5"),
            ..LocaleRequest::default()
        })
        .await;
    assert_eq!(
        i18n.object_label(&fr, "account", LabelPart::Label)
            .as_deref(),
        Some("Compte")
    );
    assert_eq!(
        i18n.object_label(&fr, "account", LabelPart::PluralLabel)
            .as_deref(),
        Some("Firmen")
    );
    // An English reader gets the authored texts, never another language.
    let en = i18n
        .locale_chain(LocaleRequest {
            accept_language: Some("en-US, de;q=0.5"),
            ..LocaleRequest::default()
        })
        .await;
    assert_eq!(en, vec!["en"]);
    assert_eq!(i18n.object_label(&en, "account", LabelPart::Label), None);
    // Fluent: plural selection and variables.
    let one = i18n.translate(&chain, "open-items", &[("count", I18nArg::from(1_i64))]);
    let many = i18n.translate(&chain, "open-items", &[("count", I18nArg::from(3_i64))]);
    assert_eq!(one.as_deref(), Some("Ein offener Eintrag"));
    assert_eq!(many.as_deref(), Some("3 offene Einträge"));
    assert_eq!(
        i18n.translate(&chain, "greeting", &[("name", "Ada".into())])
            .as_deref(),
        Some("Hallo Ada!")
    );
    // A bundle message, and a missing one.
    assert_eq!(
        i18n.translate(&chain, "welcome", &[]).as_deref(),
        Some("Willkommen")
    );
    assert_eq!(i18n.translate(&chain, "nope", &[]), None);
    // Formatting helpers.
    assert_eq!(i18n.format_number("de", 1234.5, 2), "1.234,50");
    assert_eq!(i18n.format_currency("fr", 12.0, "EUR"), "12,00\u{a0}€");
    server.stop().await;
}
on_both!(
    lookups_follow_the_chain_and_fluent_renders_plurals_sqlite,
    lookups_follow_the_chain_and_fluent_renders_plurals_postgres,
    lookups_follow_the_chain_and_fluent_renders_plurals
);

async fn configured_locales_limit_the_chain(db: TestDatabase) {
    let server = Server::start(
        db,
        I18nSettings {
            default_locale: "en".into(),
            supported_locales: vec!["en".into(), "fr".into()],
            fallback_locale: Some("fr".into()),
        },
    )
    .await;
    let chain = server.service.chain_for(&["de-CH".into()]);
    // German is not served here: the fallback answers, then the default.
    assert_eq!(chain, vec!["fr", "en"]);
    server.stop().await;
}
on_both!(
    configured_locales_limit_the_chain_sqlite,
    configured_locales_limit_the_chain_postgres,
    configured_locales_limit_the_chain
);

async fn a_reload_swaps_the_translations_and_a_broken_file_keeps_them(db: TestDatabase) {
    let server = Server::start(db, I18nSettings::default()).await;
    let chain = vec!["de".to_owned(), "en".to_owned()];
    let before = server.service.revision();
    std::fs::write(
        server.meta_dir.join("translations/app.de.translation.yml"),
        crate::support::BUNDLE_DE.replace("Firmen", "Unternehmen"),
    )
    .unwrap();
    server.metadata.reload().await.unwrap();
    // The subscriber runs on the bus; wait for it a bounded time.
    let mut label = None;
    for _ in 0..100 {
        label = server
            .service
            .object_label(&chain, "account", LabelPart::PluralLabel);
        if label.as_deref() == Some("Unternehmen") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(label.as_deref(), Some("Unternehmen"));
    assert_ne!(server.service.revision(), before);
    // A broken Fluent file: the reload is refused with its line, the translations stay.
    std::fs::write(
        server.meta_dir.join("translations/app.de.ftl"),
        "greeting = { $name\n",
    )
    .unwrap();
    let err = server.metadata.reload().await.err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("app.de.ftl")),
        "{err:?}"
    );
    assert_eq!(
        server
            .service
            .object_label(&chain, "account", LabelPart::PluralLabel)
            .as_deref(),
        Some("Unternehmen")
    );
    server.stop().await;
}
on_both!(
    a_reload_swaps_the_translations_and_a_broken_file_keeps_them_sqlite,
    a_reload_swaps_the_translations_and_a_broken_file_keeps_them_postgres,
    a_reload_swaps_the_translations_and_a_broken_file_keeps_them
);

#[test]
fn extract_writes_every_string_and_keeps_translations() {
    let dir = tempfile::tempdir().unwrap();
    let meta = crate::support::write_metadata(dir.path());
    let de = objectos_i18n::extract::skeleton(&meta, "de").unwrap();
    // The skeleton is a valid bundle of the kind itself.
    let file = "x.de.translation.yml";
    let items = kind(file)
        .parse_file(file, &de)
        .unwrap_or_else(|e| panic!("{e:?}\n{de}"));
    let v = &items[0].value["objects"]["account"];
    assert_eq!(v["label"], "Firma", "{de}");
    assert_eq!(v["fields"]["ticker"]["label"], "Ticker", "{de}");
    assert_eq!(v["fields"]["type"]["options"]["customer"], "Kunde", "{de}");
    assert_eq!(
        v["_validations"]["ticker_format"]["message"],
        "Das Kürzel besteht aus Großbuchstaben"
    );
    let it = objectos_i18n::extract::skeleton(&meta, "it").unwrap();
    assert!(it.contains("label: \"Account Name\""), "{it}");
    assert!(objectos_i18n::extract::skeleton(&meta, "italian").is_err());
}

#[test]
fn missing_keys_are_warnings_per_locale_and_object() {
    let dir = tempfile::tempdir().unwrap();
    let meta = crate::support::write_metadata(dir.path());
    let warnings = objectos_i18n::extract::missing_keys(&meta);
    assert!(
        warnings
            .iter()
            .all(|w| w.severity == objectos_spec::Severity::Warning)
    );
    let de: Vec<_> = warnings
        .iter()
        .filter(|w| w.path.starts_with("de."))
        .collect();
    let fr: Vec<_> = warnings
        .iter()
        .filter(|w| w.path.starts_with("fr."))
        .collect();
    // German misses the ticker label only; French everything but the label.
    assert_eq!(de.len(), 1, "{warnings:?}");
    assert!(
        de[0].message.contains("fields.ticker.label") && de[0].message.contains("1 translatable"),
        "{de:?}"
    );
    assert!(fr[0].message.contains("pluralLabel"), "{fr:?}");
    assert!(!fr[0].message.contains(": label,"), "{fr:?}");
    assert!(ACCOUNT.contains("ticker"));
}
