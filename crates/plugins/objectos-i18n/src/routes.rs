//! The official client's `i18n` namespace, mounted at `/api/v1/i18n` and open to anonymous
//! callers: `GET /locales`, `GET /translations/{locale}` (or `?locale=`) and
//! `GET /labels/{object}/{locale}`, each in the dispatcher envelope `{success:true,data}`;
//! errors are `{success:false,error:{code,message,httpStatus}}`.

use std::sync::Arc;

use objectos_http::RouteOperation;
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::{Map, Value, json};

use crate::bundle::canonical_locale;
use crate::service::I18nService;
use objectos_kernel::contracts::I18n;

#[derive(Clone)]
struct State(Arc<I18nService>);

/// The groups `/translations` always answers, empty when nothing translates them.
const GROUPS: &[&str] = &[
    "objects",
    "messages",
    "apps",
    "dashboards",
    "pages",
    "metadataForms",
    "settingsCommon",
    "settings",
];

/// The routes mounted at `/api/v1/i18n`.
pub fn router(service: Arc<I18nService>) -> Router {
    Router::new()
        .hoop(salvo::affix_state::inject(State(service)))
        .push(Router::with_path("locales").get(get_locales))
        .push(
            Router::with_path("translations")
                .get(get_translations)
                .push(Router::with_path("{locale}").get(get_translations)),
        )
        .push(Router::with_path("labels/{object}/{locale}").get(get_labels))
}

fn envelope() -> Value {
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": { "success": { "const": true } },
    })
}

fn with_data(data: Value) -> Value {
    let mut e = envelope();
    if let Some(props) = e.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("data".into(), data);
    }
    e
}

/// The dispatcher's error body, for the OpenAPI document.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": { "const": false },
            "error": { "type": "object", "required": ["code", "message", "httpStatus"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" }, "httpStatus": { "type": "integer" } } },
        },
    })
}

/// The operations of [`router`], for the OpenAPI document; all public.
pub fn operations() -> Vec<RouteOperation> {
    let locale_list = with_data(json!({
        "type": "object", "required": ["locales"],
        "properties": { "locales": { "type": "array", "items": { "type": "object",
            "required": ["code", "label", "isDefault"],
            "properties": { "code": { "type": "string" }, "label": { "type": "string" }, "isDefault": { "type": "boolean" } } } } },
    }));
    let translations = with_data(json!({
        "type": "object", "required": ["locale", "translations"],
        "properties": {
            "locale": { "type": "string" },
            "requestedLocale": { "type": "string", "description": "The locale asked for, when a fallback answered" },
            "translations": { "type": "object", "description": "The spec's TranslationData of the locale" },
        },
    }));
    let labels = with_data(json!({
        "type": "object", "required": ["object", "locale", "labels"],
        "properties": {
            "object": { "type": "string" }, "locale": { "type": "string" },
            "labels": { "type": "object", "additionalProperties": { "type": "object",
                "properties": { "label": { "type": "string" }, "help": { "type": "string" },
                    "options": { "type": "object", "additionalProperties": { "type": "string" } } } } },
        },
    }));
    vec![
        RouteOperation::get("locales", "Locales this server serves")
            .public()
            .returns(locale_list)
            .errors(error_schema()),
        RouteOperation::get(
            "translations",
            "Translations of the locale named by ?locale= (400 without one)",
        )
        .public()
        .returns(translations.clone())
        .errors(error_schema()),
        RouteOperation::get("translations/{locale}", "Translations of a locale")
            .public()
            .returns(translations)
            .errors(error_schema()),
        RouteOperation::get(
            "labels/{object}/{locale}",
            "Translated field labels, help and option labels of an object",
        )
        .public()
        .returns(labels)
        .errors(error_schema()),
    ]
}

fn ok(res: &mut Response, data: Value) {
    res.render(Json(json!({ "success": true, "data": data })));
}

fn fail(res: &mut Response, status: StatusCode, code: &str, message: String) {
    res.status_code(status);
    res.render(Json(json!({
        "success": false,
        "error": { "code": code, "message": message, "httpStatus": status.as_u16() },
    })));
}

fn state(depot: &Depot) -> Option<Arc<I18nService>> {
    depot.get_typed::<State>().ok().map(|s| s.0.clone())
}

fn internal(res: &mut Response) {
    fail(
        res,
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "The i18n routes are mounted without their service".into(),
    );
}

/// The requested locale, canonical; a 400 when it is missing or not a locale tag.
fn requested(res: &mut Response, raw: Option<String>) -> Option<String> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        fail(
            res,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "A locale is required: GET /api/v1/i18n/translations/{locale} or ?locale=".into(),
        );
        return None;
    };
    match canonical_locale(&raw) {
        Ok(l) => Some(l),
        Err(e) => {
            fail(res, StatusCode::BAD_REQUEST, "VALIDATION_ERROR", e);
            None
        }
    }
}

#[handler]
async fn get_locales(depot: &mut Depot, res: &mut Response) {
    let Some(service) = state(depot) else {
        return internal(res);
    };
    let list: Vec<Value> = service
        .locales()
        .into_iter()
        .map(|l| json!({ "code": l.code, "label": l.label, "isDefault": l.is_default }))
        .collect();
    ok(res, json!({ "locales": list }));
}

#[handler]
async fn get_translations(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(service) = state(depot) else {
        return internal(res);
    };
    let raw = req
        .params()
        .get("locale")
        .cloned()
        .or_else(|| req.query::<String>("locale"));
    let Some(asked) = requested(res, raw) else {
        return;
    };
    let chain = service.chain_for(std::slice::from_ref(&asked));
    let locale = chain
        .first()
        .cloned()
        .unwrap_or_else(|| service.default_locale());
    let catalog = service.catalog();
    let mut translations = catalog
        .data(&locale)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Fluent messages that need no argument join the bundle's messages (a bundle wins a clash).
    let fluent = catalog.plain_fluent_messages(&locale);
    if !fluent.is_empty() {
        let messages = translations
            .entry("messages")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = messages.as_object_mut() {
            for (k, v) in fluent {
                m.entry(k).or_insert(v);
            }
        }
    }
    for g in GROUPS {
        translations
            .entry((*g).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let mut data = json!({ "locale": locale, "translations": translations });
    if asked != locale
        && let Some(obj) = data.as_object_mut()
    {
        obj.insert("requestedLocale".into(), Value::String(asked));
    }
    ok(res, data);
}

#[handler]
async fn get_labels(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(service) = state(depot) else {
        return internal(res);
    };
    let object = req.params().get("object").cloned().unwrap_or_default();
    let Some(asked) = requested(res, req.params().get("locale").cloned()) else {
        return;
    };
    let chain = service.chain_for(std::slice::from_ref(&asked));
    let locale = chain
        .first()
        .cloned()
        .unwrap_or_else(|| service.default_locale());
    // The translated texts of the resolved locale only, as the official server answers.
    let catalog = service.catalog();
    let mut labels = Map::new();
    if let Some(fields) = catalog
        .data(&locale)
        .and_then(|d| d.get("objects"))
        .and_then(|o| o.get(&object))
        .and_then(|o| o.get("fields"))
        .and_then(Value::as_object)
    {
        for (name, f) in fields {
            let mut entry = Map::new();
            for key in ["label", "help", "options"] {
                if let Some(v) = f.get(key) {
                    entry.insert(key.into(), v.clone());
                }
            }
            labels.insert(name.clone(), Value::Object(entry));
        }
    }
    ok(
        res,
        json!({ "object": object, "locale": locale, "labels": labels }),
    );
}
