//! Translated metadata: when a plugin registers the kernel's `I18n` contract (service `i18n`),
//! `/api/v1/meta` object items and `/api/v1/ui` views carry the labels of the request's locale
//! (object label, plural label and description; field labels and help; option labels; rule
//! messages). Nothing is translated without such a plugin, and an untranslated string keeps
//! its authored text.

use objectos_kernel::contracts::{I18n, LabelPart, LocaleRequest};
use salvo::http::HeaderValue;
use salvo::http::header::{ACCEPT_LANGUAGE, VARY};
use salvo::prelude::*;
use serde_json::Value;

use crate::hoops::RequestContext;

/// The request's locale chain, asked of the `I18n` service (user setting, `Accept-Language`,
/// `?locale=`, then the configured fallbacks).
pub async fn request_chain(i18n: &dyn I18n, req: &Request, depot: &Depot) -> Vec<String> {
    let user = depot
        .get_typed::<RequestContext>()
        .ok()
        .and_then(|c| c.principal.user_id().map(str::to_owned));
    let header = req
        .headers()
        .get(ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let explicit: Option<String> = req.query::<String>("locale");
    i18n.locale_chain(LocaleRequest {
        user_id: user.as_deref(),
        accept_language: header.as_deref(),
        explicit: explicit.as_deref(),
    })
    .await
}

/// Answers differ per `Accept-Language` once translations are served.
pub fn vary_accept_language(res: &mut Response) {
    res.headers_mut()
        .append(VARY, HeaderValue::from_static("Accept-Language"));
}

fn set(map: &mut serde_json::Map<String, Value>, key: &str, text: Option<String>) {
    if let Some(t) = text {
        map.insert(key.to_owned(), Value::String(t));
    }
}

/// Overlays the translations of `chain` on an object item (the spec JSON `/meta` serves).
pub fn object_item(i18n: &dyn I18n, chain: &[String], object: &str, item: &mut Value) {
    let Some(map) = item.as_object_mut() else {
        return;
    };
    set(
        map,
        "label",
        i18n.object_label(chain, object, LabelPart::Label),
    );
    set(
        map,
        "pluralLabel",
        i18n.object_label(chain, object, LabelPart::PluralLabel),
    );
    set(
        map,
        "description",
        i18n.object_label(chain, object, LabelPart::Description),
    );
    let field = |name: &str, def: &mut Value| {
        let Some(def) = def.as_object_mut() else {
            return;
        };
        set(
            def,
            "label",
            i18n.field_label(chain, object, name, LabelPart::Label),
        );
        set(
            def,
            "inlineHelpText",
            i18n.field_label(chain, object, name, LabelPart::Help),
        );
        set(
            def,
            "placeholder",
            i18n.field_label(chain, object, name, LabelPart::Placeholder),
        );
        if let Some(options) = def.get_mut("options").and_then(Value::as_array_mut) {
            for o in options {
                let Some(o) = o.as_object_mut() else { continue };
                let value = match o.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                set(o, "label", i18n.option_label(chain, object, name, &value));
            }
        }
    };
    match map.get_mut("fields") {
        Some(Value::Object(fields)) => {
            for (name, def) in fields.iter_mut() {
                field(name, def);
            }
        }
        Some(Value::Array(fields)) => {
            for def in fields.iter_mut() {
                let name = def
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                field(&name, def);
            }
        }
        _ => {}
    }
    if let Some(rules) = map.get_mut("validations").and_then(Value::as_array_mut) {
        for r in rules {
            rule(i18n, chain, object, r);
        }
    }
}

/// A rule's message by its name, and those of a conditional rule's branches (`then`,
/// `otherwise`), which carry names of their own.
fn rule(i18n: &dyn I18n, chain: &[String], object: &str, r: &mut Value) {
    let Some(r) = r.as_object_mut() else { return };
    if let Some(name) = r.get("name").and_then(Value::as_str).map(str::to_owned) {
        set(r, "message", i18n.validation_message(chain, object, &name));
    }
    for branch in ["then", "otherwise"] {
        if let Some(b) = r.get_mut(branch) {
            rule(i18n, chain, object, b);
        }
    }
}

/// Translates the messages of a refused write (`400` with `fields`): each field error that
/// names its validation rule gets the rule's message in the request's locale, and so does the
/// summary when it was that rule's message. Codes, fields and rule names never change.
#[handler]
pub async fn translate_errors(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    ctrl.call_next(req, depot, res).await;
    if res.status_code.is_none_or(|s| s.as_u16() != 400) {
        return;
    }
    let Some(i18n) = depot
        .get_typed::<crate::state::ApiState>()
        .ok()
        .and_then(|s| s.i18n().cloned())
    else {
        return;
    };
    let salvo::http::ResBody::Once(bytes) = &res.body else {
        return;
    };
    let Ok(mut body) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let Some(object) = body
        .get("object")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    if !body.get("fields").is_some_and(Value::is_array) {
        return;
    }
    let chain = request_chain(&*i18n, req, depot).await;
    let summary = body
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut new_summary = None;
    if let Some(fields) = body.get_mut("fields").and_then(Value::as_array_mut) {
        for f in fields {
            let Some(rule) = f.get("rule").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let Some(text) = i18n.validation_message(&chain, &object, &rule) else {
                continue;
            };
            if let Some(obj) = f.as_object_mut() {
                let old = obj.insert("message".into(), Value::String(text.clone()));
                if new_summary.is_none()
                    && old.as_ref().and_then(Value::as_str) == summary.as_deref()
                {
                    new_summary = Some(text);
                }
            }
        }
    }
    if let (Some(text), Some(obj)) = (new_summary, body.as_object_mut()) {
        obj.insert("message".into(), Value::String(text.clone()));
        obj.insert("error".into(), Value::String(text));
    }
    vary_accept_language(res);
    if let Ok(bytes) = serde_json::to_vec(&body) {
        res.body = salvo::http::ResBody::Once(bytes.into());
        res.headers_mut()
            .remove(salvo::http::header::CONTENT_LENGTH);
    }
}
