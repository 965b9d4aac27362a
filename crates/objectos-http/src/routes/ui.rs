//! `GET /api/v1/ui/view/{object}/{type}` (and `?type=`): list and form views generated from the
//! object's fields, for consoles that have no view metadata of their own.

use objectos_data::DataError;
use salvo::prelude::*;
use serde_json::{Value, json};

use crate::error::HttpError;
use crate::localize;
use crate::routes::{path_param, query_pairs};
use crate::schema_view::ObjectView;
use crate::state::ApiState;

/// The UI router, relative to the API base.
pub fn router() -> Router {
    Router::with_path("ui/view/{object}")
        .get(get_view)
        .push(Router::with_path("{type}").get(get_view))
}

/// Builds the generated view of `kind` (`list`/`grid` or `form`).
pub fn generated_view(view: &ObjectView, kind: &str) -> Option<Value> {
    let fields = view.fields();
    match kind {
        "list" | "grid" | "table" => {
            let columns: Vec<Value> = fields
                .iter()
                .filter(|f| {
                    !f.hidden() && (!f.system() || f.name == "created_at" || f.name == "updated_at")
                })
                .filter(|f| f.name != "id")
                .map(|f| json!({ "field": f.name, "label": f.label() }))
                .collect();
            Some(json!({ "list": { "type": "grid", "columns": columns } }))
        }
        "form" | "detail" | "edit" => {
            let names: Vec<&str> = fields
                .iter()
                .filter(|f| !f.hidden() && !f.system() && !f.readonly())
                .map(|f| f.name.as_str())
                .collect();
            Some(
                json!({ "form": { "type": "simple", "sections": [{ "columns": 2, "fields": names }] } }),
            )
        }
        _ => None,
    }
}

/// `GET /api/v1/ui/view/{object}[/{type}]`.
#[handler]
pub async fn get_view(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    let object = path_param(req, "object")?;
    let kind = req
        .params()
        .get("type")
        .cloned()
        .or_else(|| {
            query_pairs(req)
                .into_iter()
                .find(|(k, _)| k == "type")
                .map(|(_, v)| v)
        })
        .unwrap_or_else(|| "list".to_owned());
    let snapshot = state.engine().metadata();
    let schema = snapshot.object(&object).ok_or_else(|| {
        HttpError::data(DataError::ObjectNotFound {
            object: object.clone(),
        })
    })?;
    let mut view = ObjectView::new(&object, &**schema);
    // Column labels in the request's locale, when a plugin provides translations.
    if let Some(i18n) = state.i18n() {
        let chain = localize::request_chain(&**i18n, req, depot).await;
        localize::object_item(&**i18n, &chain, &object, &mut view.item);
        localize::vary_accept_language(res);
    }
    let body = generated_view(&view, &kind).ok_or_else(|| HttpError::InvalidQuery {
        object: Some(object.clone()),
        param: "type".into(),
        message: format!("View type '{kind}' is not supported; expected list or form"),
    })?;
    res.render(Json(body));
    Ok(())
}
