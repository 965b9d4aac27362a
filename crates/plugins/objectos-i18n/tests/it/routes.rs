//! The client's `i18n` routes and translated metadata over HTTP.

use objectos_i18n::I18nSettings;
use serde_json::Value;

use objectos_testkit::TestDatabase;

use crate::on_both;
use crate::support::Server;

async fn the_three_routes_answer_in_the_dispatcher_envelope(db: TestDatabase) {
    let s = Server::start(db, I18nSettings::default()).await;
    let r = s.get("/api/v1/i18n/locales", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["success"], true);
    let codes: Vec<&str> = v["data"]["locales"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["en", "de", "fr"]);
    assert_eq!(v["data"]["locales"][0]["isDefault"], true);
    assert_eq!(v["data"]["locales"][1]["label"], "Deutsch");

    let r = s.get("/api/v1/i18n/translations/de", &[]).await;
    let v = r.json();
    assert_eq!(v["data"]["locale"], "de", "{}", r.text());
    assert!(v["data"].get("requestedLocale").is_none());
    let t = &v["data"]["translations"];
    assert_eq!(t["objects"]["account"]["label"], "Firma");
    assert_eq!(t["messages"]["welcome"], "Willkommen");
    // Fluent messages without arguments are rendered into `messages`.
    assert!(t["messages"].get("greeting").is_none(), "{t}");
    for group in [
        "apps",
        "dashboards",
        "pages",
        "metadataForms",
        "settingsCommon",
        "settings",
    ] {
        assert!(t[group].is_object(), "{group}: {t}");
    }
    // A regional tag falls back, and says what was asked.
    let v = s.get("/api/v1/i18n/translations/de-AT", &[]).await.json();
    assert_eq!(
        (
            v["data"]["locale"].as_str(),
            v["data"]["requestedLocale"].as_str()
        ),
        (Some("de"), Some("de-AT"))
    );
    let v = s
        .get("/api/v1/i18n/translations?locale=fr", &[])
        .await
        .json();
    assert_eq!(
        v["data"]["translations"]["objects"]["account"]["label"],
        "Compte"
    );

    let v = s.get("/api/v1/i18n/labels/account/de", &[]).await.json();
    assert_eq!(v["data"]["object"], "account");
    assert_eq!(v["data"]["labels"]["type"]["label"], "Typ");
    assert_eq!(
        v["data"]["labels"]["type"]["options"]["prospect"],
        "Interessent"
    );
    assert_eq!(
        v["data"]["labels"]["name"]["help"],
        "Der eingetragene Name."
    );
    let v = s.get("/api/v1/i18n/labels/nothing/de", &[]).await.json();
    assert_eq!(v["data"]["labels"], serde_json::json!({}));

    // A missing or malformed locale: 400 in the dispatcher's error shape.
    for path in [
        "/api/v1/i18n/translations",
        "/api/v1/i18n/translations/german!",
        "/api/v1/i18n/labels/account/x_y",
    ] {
        let r = s.get(path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(v["error"]["httpStatus"], 400);
    }
    s.stop().await;
}
on_both!(
    the_three_routes_answer_in_the_dispatcher_envelope_sqlite,
    the_three_routes_answer_in_the_dispatcher_envelope_postgres,
    the_three_routes_answer_in_the_dispatcher_envelope
);

async fn the_routes_are_public_documented_and_discovered(db: TestDatabase) {
    let s = Server::start(db, I18nSettings::default()).await;
    let doc = s.get("/api/v1/openapi.json", &[]).await.json();
    for path in [
        "/api/v1/i18n/locales",
        "/api/v1/i18n/translations/{locale}",
        "/api/v1/i18n/labels/{object}/{locale}",
    ] {
        let op = &doc["paths"][path]["get"];
        assert_eq!(op["security"], serde_json::json!([]), "{path}: {op}");
        assert!(
            op["responses"]["default"]["content"]["application/json"]["schema"]["properties"]
                ["error"]
                .is_object(),
            "{op}"
        );
    }
    let d = s.get("/api/v1/discovery", &[]).await.json();
    assert_eq!(d["routes"]["i18n"], "/api/v1/i18n", "{d}");
    assert_eq!(d["services"]["i18n"]["provider"], objectos_i18n::PLUGIN_ID);
    assert_eq!(
        d["locale"]["supported"],
        serde_json::json!(["en", "de", "fr"])
    );
    // The public marker: what an authentication hoop reads to let anonymous callers in.
    s.stop().await;
}
on_both!(
    the_routes_are_public_documented_and_discovered_sqlite,
    the_routes_are_public_documented_and_discovered_postgres,
    the_routes_are_public_documented_and_discovered
);

fn item(v: &Value) -> &Value {
    &v["item"]
}

async fn object_metadata_is_translated_per_accept_language_with_its_own_etag(db: TestDatabase) {
    let s = Server::start(db, I18nSettings::default()).await;
    let de = s
        .get("/api/v1/meta/object/account", &[("Accept-Language", "de")])
        .await;
    assert_eq!(de.status, 200, "{}", de.text());
    let v = de.json();
    let i = item(&v);
    assert_eq!(i["label"], "Firma");
    assert_eq!(i["pluralLabel"], "Firmen");
    assert_eq!(i["fields"]["name"]["label"], "Firmenname");
    assert_eq!(
        i["fields"]["name"]["inlineHelpText"],
        "Der eingetragene Name."
    );
    assert_eq!(i["fields"]["type"]["options"][1]["label"], "Kunde");
    assert_eq!(i["fields"]["type"]["options"][1]["value"], "customer");
    // Untranslated strings keep their authored text.
    assert_eq!(i["fields"]["ticker"]["label"], "Ticker");
    assert_eq!(
        i["validations"][0]["message"],
        "Das Kürzel besteht aus Großbuchstaben"
    );
    assert!(
        de.header("vary")
            .unwrap_or_default()
            .contains("Accept-Language"),
        "{de:?}"
    );

    let en = s.get("/api/v1/meta/object/account", &[]).await;
    assert_eq!(item(&en.json())["label"], "Account");
    assert!(
        en.header("vary")
            .unwrap_or_default()
            .contains("Accept-Language")
    );
    let fr = s
        .get("/api/v1/meta/object/account", &[("Accept-Language", "fr")])
        .await;
    assert_eq!(item(&fr.json())["label"], "Compte");
    let (etag_de, etag_en, etag_fr) = (
        de.header("etag").unwrap_or_default(),
        en.header("etag").unwrap_or_default(),
        fr.header("etag").unwrap_or_default(),
    );
    assert!(!etag_de.is_empty() && !etag_en.is_empty());
    assert_ne!(etag_de, etag_en);
    assert_ne!(etag_de, etag_fr);
    // Each representation revalidates under its own tag only.
    let r = s
        .get(
            "/api/v1/meta/object/account",
            &[("Accept-Language", "de"), ("If-None-Match", &etag_de)],
        )
        .await;
    assert_eq!(r.status, 304);
    let r = s
        .get(
            "/api/v1/meta/object/account",
            &[("Accept-Language", "de"), ("If-None-Match", &etag_en)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(item(&r.json())["label"], "Firma");
    // `?locale=` wins over the header; the list of objects is translated too.
    let v = s
        .get(
            "/api/v1/meta/object/account?locale=fr",
            &[("Accept-Language", "de")],
        )
        .await
        .json();
    assert_eq!(item(&v)["label"], "Compte");
    let list = s
        .get("/api/v1/meta/objects", &[("Accept-Language", "de-CH")])
        .await
        .json();
    let account = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "account")
        .cloned()
        .unwrap();
    assert_eq!(account["label"], "Firma");
    s.stop().await;
}
on_both!(
    object_metadata_is_translated_per_accept_language_with_its_own_etag_sqlite,
    object_metadata_is_translated_per_accept_language_with_its_own_etag_postgres,
    object_metadata_is_translated_per_accept_language_with_its_own_etag
);

async fn ui_views_and_refused_writes_speak_the_locale(db: TestDatabase) {
    let s = Server::start(db, I18nSettings::default()).await;
    let v = s
        .get("/api/v1/ui/view/account/list", &[("Accept-Language", "de")])
        .await
        .json();
    let columns = v["list"]["columns"].as_array().unwrap();
    let name = columns.iter().find(|c| c["field"] == "name").unwrap();
    assert_eq!(name["label"], "Firmenname", "{v}");
    // A refused write: the rule's message in German, the code, field and rule unchanged.
    let r = s
        .post(
            "/api/v1/data/account",
            &[("Accept-Language", "de")],
            r#"{"name": "Acme", "ticker": "abc"}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], "VALIDATION_FAILED", "{v}");
    let f = &v["fields"][0];
    assert_eq!(f["field"], "ticker", "{v}");
    assert_eq!(f["rule"], "ticker_format", "{v}");
    assert_eq!(f["message"], "Das Kürzel besteht aus Großbuchstaben", "{v}");
    let r = s
        .post(
            "/api/v1/data/account",
            &[],
            r#"{"name": "Acme", "ticker": "abc"}"#,
        )
        .await;
    assert_eq!(
        r.json()["fields"][0]["message"],
        "Ticker must be upper-case letters"
    );
    s.stop().await;
}
on_both!(
    ui_views_and_refused_writes_speak_the_locale_sqlite,
    ui_views_and_refused_writes_speak_the_locale_postgres,
    ui_views_and_refused_writes_speak_the_locale
);
