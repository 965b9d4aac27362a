//! HTTP routes: the ObjectStack permission routes under `/api/v1/auth` and the ObjectOS ones
//! under `/api/v1/permissions`, including the admin-only assignment routes.

use std::sync::Arc;

use objectos_data::{DataError, OpContext, Principal};
use objectos_http::{HttpError, RequestContext, RouteOperation};
use objectos_spec::query::Filter;
use objectos_spec::security::AccessLevel;
use salvo::prelude::*;
use serde_json::{Map, Value, json};

use crate::authz::{AssignmentKind, Authz, Subject};
use crate::error::PermissionsError;

fn op_context(depot: &Depot) -> OpContext {
    depot
        .get_typed::<RequestContext>()
        .map(RequestContext::op_context)
        .unwrap_or_else(|_| OpContext::anonymous())
}

/// The reason of a record-level `false`: the same for a record that does not exist, one in
/// another organization and one the caller's row rules hide, so the answer never tells which.
const NOT_ACCESSIBLE: &str = "record not found or not accessible";

fn bad(message: impl Into<String>) -> HttpError {
    HttpError::invalid_body(None, message)
}

fn perm_err(e: PermissionsError) -> HttpError {
    match e {
        PermissionsError::InvalidAssignment(m) => bad(m),
        other => HttpError::data(Authz::to_data_error(other)),
    }
}

async fn body(req: &mut Request) -> Result<Map<String, Value>, HttpError> {
    let bytes = req
        .payload()
        .await
        .map_err(|e| bad(format!("cannot read the request body: {e}")))?;
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("request body must be a JSON object")),
        Err(e) => Err(bad(format!("request body is not valid JSON: {e}"))),
    }
}

/// The permission routes; `authz` is shared with the interceptor.
#[derive(Debug, Clone)]
struct Routes {
    authz: Arc<Authz>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Check,
    Object,
    Effective,
    Sets,
    Assign,
    Unassign,
    Assignments,
}

/// Routes for `/api/v1/permissions` (ObjectOS paths).
pub fn objectos_router(authz: Arc<Authz>) -> Router {
    let h = |kind| Routes {
        authz: authz.clone(),
        kind,
    };
    Router::new()
        .push(Router::with_path("check").post(h(Kind::Check)))
        .push(Router::with_path("effective").get(h(Kind::Effective)))
        .push(Router::with_path("sets").get(h(Kind::Sets)))
        .push(Router::with_path("object/{object}").get(h(Kind::Object)))
        .push(
            Router::with_path("assignments")
                .get(h(Kind::Assignments))
                .post(h(Kind::Assign))
                .delete(h(Kind::Unassign)),
        )
}

fn check_body() -> Value {
    json!({ "type": "object", "required": ["object", "action"], "properties": {
        "object": { "type": "string" }, "action": { "type": "string" },
        "recordId": { "type": "string" }, "field": { "type": "string" } } })
}

/// Refuses (403) a caller that is neither an administrator nor the system.
fn require_admin(cx: &OpContext, message: &str) -> Result<(), HttpError> {
    if matches!(
        cx.principal,
        Principal::System { .. } | Principal::User { is_admin: true, .. }
    ) {
        return Ok(());
    }
    Err(HttpError::data(DataError::Forbidden {
        object: String::new(),
        message: message.to_owned(),
    }))
}

/// The answer of `GET effective` (with `object`: that object's permissions, its fields' and
/// its row filters; without: every object's).
fn effective_schema() -> Value {
    let filter = json!({ "type": ["object", "null"],
        "description": "Filter in object form: {} for every record, null when not granted" });
    json!({ "type": "object", "properties": {
        "userId": { "type": ["string", "null"] },
        "organizationId": { "type": ["string", "null"] },
        "admin": { "type": "boolean", "description": "bypasses every check in the organization" },
        "object": { "type": "string" },
        "permissions": { "type": "object", "description": "allowCreate, allowRead, allowEdit, allowDelete, ..." },
        "fieldPermissions": { "type": "object", "additionalProperties": { "type": "object",
            "properties": { "readable": { "type": "boolean" }, "editable": { "type": "boolean" } } } },
        "rowFilter": filter.clone(),
        "editFilter": filter,
        "objects": { "type": "object" },
        "permissionSets": { "type": "array", "items": { "type": "string" } },
        "roles": { "type": "array", "items": { "type": "string" } } } })
}

/// The operations of [`objectos_router`], for the OpenAPI document (kept next to it so both
/// change together; a test checks every route is described).
pub fn objectos_operations() -> Vec<RouteOperation> {
    let assignment = json!({ "type": "object", "required": ["userId"], "properties": {
        "userId": { "type": "string" }, "permissionSet": { "type": "string" }, "role": { "type": "string" } } });
    vec![
        RouteOperation::post(
            "check",
            "Whether the caller may perform an action on an object, record or field",
        )
        .body(check_body()),
        RouteOperation::get(
            "effective",
            "Effective permissions on every object, or on one with its row filters (query: object); of another user of the caller's organization for administrators (query: userId; 403 PERMISSION_DENIED for others, 404 RECORD_NOT_FOUND for an unknown user, 404 OBJECT_NOT_FOUND for an unknown object)",
        )
        .returns(effective_schema()),
        RouteOperation::get("sets", "The permission sets defined in metadata"),
        RouteOperation::get("object/{object}", "The caller's permissions on one object"),
        RouteOperation::get(
            "assignments",
            "Who has which permission sets and roles in the caller's organization (administrators; query: userId)",
        ),
        RouteOperation::post(
            "assignments",
            "Assign a permission set or role to a user (administrators)",
        )
        .body(assignment.clone()),
        RouteOperation::delete(
            "assignments",
            "Remove a permission set or role from a user (administrators)",
        )
        .body(assignment),
    ]
}

/// The operations of [`objectstack_router`], for the OpenAPI document.
pub fn objectstack_operations() -> Vec<RouteOperation> {
    vec![
        RouteOperation::post("check", "Permission check (ObjectStack path)").body(check_body()),
        RouteOperation::get(
            "permissions/effective",
            "Effective permissions (ObjectStack path)",
        ),
        RouteOperation::get(
            "permissions/{object}",
            "Permissions on one object (ObjectStack path)",
        ),
    ]
}

/// Routes for `/api/v1/auth` (ObjectStack paths: `check`, `permissions/effective`, `permissions/{o}`).
pub fn objectstack_router(authz: Arc<Authz>) -> Router {
    let h = |kind| Routes {
        authz: authz.clone(),
        kind,
    };
    Router::new()
        .push(Router::with_path("check").post(h(Kind::Check)))
        .push(Router::with_path("permissions/effective").get(h(Kind::Effective)))
        .push(Router::with_path("permissions/{object}").get(h(Kind::Object)))
}

#[async_trait]
impl Handler for Routes {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        match self.run(req, depot).await {
            Ok(v) => res.render(Json(v)),
            Err(e) => res.render(e),
        }
    }
}

impl Routes {
    async fn run(&self, req: &mut Request, depot: &mut Depot) -> Result<Value, HttpError> {
        let cx = op_context(depot);
        match self.kind {
            Kind::Check => self.check(&cx, body(req).await?).await,
            Kind::Object => {
                let object = req.param::<String>("object").unwrap_or_default();
                self.object(&cx, &object)
            }
            Kind::Effective => {
                let user = req.query::<String>("userId");
                let object = req.query::<String>("object");
                if user.is_none() && object.is_none() {
                    return Ok(self.effective(&cx));
                }
                self.effective_of(&cx, user.as_deref(), object.as_deref())
                    .await
            }
            Kind::Sets => {
                let model = self.authz.model();
                let mut sets: Vec<_> = model.sets.values().collect();
                sets.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(json!({"sets": sets}))
            }
            Kind::Assignments => {
                require_admin(&cx, "Only administrators may list permission assignments")?;
                let only = req.query::<String>("userId").filter(|u| !u.is_empty());
                let list: Vec<Value> = self
                    .authz
                    .assignments_in(cx.tenant.as_deref())
                    .into_iter()
                    .filter(|(user, _, _)| only.as_ref().is_none_or(|u| u == user))
                    .map(|(user, sets, roles)| {
                        json!({"userId": user, "permissionSets": sets, "roles": roles})
                    })
                    .collect();
                Ok(json!({"organizationId": cx.tenant, "assignments": list}))
            }
            Kind::Assign | Kind::Unassign => {
                require_admin(&cx, "Only administrators may change permission assignments")?;
                let b = body(req).await?;
                let user = b
                    .get("userId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("userId is required (a string)"))?;
                let (kind, name) = match (
                    b.get("permissionSet").and_then(Value::as_str),
                    b.get("role").and_then(Value::as_str),
                ) {
                    (Some(s), None) => (AssignmentKind::PermissionSet, s),
                    (None, Some(r)) => (AssignmentKind::Role, r),
                    _ => return Err(bad("give exactly one of permissionSet or role (a string)")),
                };
                let changed = if matches!(self.kind, Kind::Assign) {
                    self.authz.assign(user, kind, name, &cx).await
                } else {
                    self.authz.unassign(user, kind, name, &cx).await
                }
                .map_err(perm_err)?;
                let (sets, roles) = self.authz.assignments_of(user, cx.tenant.as_deref());
                Ok(json!({"success": true, "changed": changed, "userId": user,
                          "organizationId": cx.tenant,
                          "permissionSets": sets, "roles": roles}))
            }
        }
    }

    async fn check(&self, cx: &OpContext, b: Map<String, Value>) -> Result<Value, HttpError> {
        let object = b
            .get("object")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("object is required (a string)"))?;
        let action = b
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("action is required: create, read, edit or delete"))?;
        let engine = self
            .authz
            .engine()
            .ok_or_else(|| HttpError::data(DataError::Internal("engine not started".into())))?;
        if engine.metadata().object(object).is_none() {
            return Err(HttpError::data(DataError::ObjectNotFound {
                object: object.to_owned(),
            }));
        }
        let answer = |allowed: bool, reason: &str| json!({"allowed": allowed, "reason": reason});
        let record = b.get("recordId").and_then(Value::as_str);
        let eff = match self.authz.subject(cx) {
            // An administrator may do anything to the records of their organization, and only
            // to records that exist there: another organization's record and a made-up id get
            // the same `false` (as a GET of either answers the same 404).
            Subject::Bypass => {
                if let Some(id) = record
                    && !self.record_visible(cx, object, id, Filter::True).await?
                {
                    return Ok(answer(false, NOT_ACCESSIBLE));
                }
                return Ok(answer(true, "administrator or system"));
            }
            Subject::User(eff) => eff,
        };
        let p = eff.object(object);
        let granted = match action {
            "read" => p.allow_read,
            "create" => p.allow_create,
            "edit" | "update" => p.allow_edit,
            "delete" => p.allow_delete,
            "transfer" => p.allow_transfer,
            "restore" => p.allow_restore,
            "purge" => p.allow_purge,
            other => {
                return Err(bad(format!(
                    "action {other:?} is unknown; expected create, read, edit, delete, transfer, restore or purge"
                )));
            }
        };
        if !granted {
            return Ok(answer(
                false,
                "no permission set grants this action on the object",
            ));
        }
        if let Some(field) = b.get("field").and_then(Value::as_str) {
            let fp = eff.field(object, field);
            let ok = if action == "read" {
                fp.readable
            } else {
                fp.editable
            };
            if !ok {
                return Ok(answer(false, "field-level security denies this field"));
            }
        }
        if let Some(id) = record {
            let filter = match action {
                "read" => self.authz.read_filter(&eff, cx, object),
                "delete" => self.authz.write_filter(&eff, cx, object, AccessLevel::Full),
                _ => self.authz.write_filter(&eff, cx, object, AccessLevel::Edit),
            };
            if !self.record_visible(cx, object, id, filter).await? {
                return Ok(answer(false, NOT_ACCESSIBLE));
            }
        }
        Ok(answer(true, "granted"))
    }

    /// Whether record `id` of `object` exists in the caller's organization and matches
    /// `filter` (the caller's row filter). Counted as system, within the caller's tenant: a
    /// signed-in caller without one (which the interceptor refuses everywhere else) sees no
    /// record rather than every organization's.
    async fn record_visible(
        &self,
        cx: &OpContext,
        object: &str,
        id: &str,
        filter: Filter,
    ) -> Result<bool, HttpError> {
        if matches!(cx.principal, Principal::User { .. }) && cx.tenant.is_none() {
            return Ok(false);
        }
        let engine = self
            .authz
            .engine()
            .ok_or_else(|| HttpError::data(DataError::Internal("engine not started".into())))?;
        let mut sys = OpContext::system("permissions.check");
        sys.tenant = cx.tenant.clone();
        let n = engine
            .count(&sys, object, Filter::eq("id", id.to_owned()).and(filter))
            .await
            .map_err(HttpError::data)?;
        Ok(n > 0)
    }

    fn object(&self, cx: &OpContext, object: &str) -> Result<Value, HttpError> {
        let engine = self
            .authz
            .engine()
            .ok_or_else(|| HttpError::data(DataError::Internal("engine not started".into())))?;
        let snap = engine.metadata();
        let Some(schema) = snap.object(object) else {
            return Err(HttpError::data(DataError::ObjectNotFound {
                object: object.to_owned(),
            }));
        };
        let (perm, fields) = match self.authz.subject(cx) {
            Subject::Bypass => (
                json!({"allowCreate": true, "allowRead": true, "allowEdit": true, "allowDelete": true,
                       "allowTransfer": true, "allowRestore": true, "allowPurge": true,
                       "viewAllRecords": true, "modifyAllRecords": true}),
                schema
                    .fields
                    .keys()
                    .map(|f| (f.clone(), json!({"readable": true, "editable": true})))
                    .collect::<Map<_, _>>(),
            ),
            Subject::User(eff) => (
                serde_json::to_value(eff.object(object)).unwrap_or(Value::Null),
                schema
                    .fields
                    .keys()
                    .map(|f| {
                        let fp = eff.field(object, f);
                        (
                            f.clone(),
                            json!({"readable": fp.readable, "editable": fp.editable}),
                        )
                    })
                    .collect(),
            ),
        };
        Ok(json!({"object": object, "permissions": perm, "fieldPermissions": fields}))
    }

    /// `GET effective?userId=&object=`: the effective permissions of `user` (administrators
    /// only; the caller when absent), on every object or on `object` with its row filters.
    async fn effective_of(
        &self,
        cx: &OpContext,
        user: Option<&str>,
        object: Option<&str>,
    ) -> Result<Value, HttpError> {
        let invalid = |param: &str, message: &str| HttpError::InvalidQuery {
            object: None,
            param: param.to_owned(),
            message: message.to_owned(),
        };
        if object.is_some_and(str::is_empty) {
            return Err(invalid("object", "object must name an object"));
        }
        let target = match user {
            None => cx.clone(),
            Some("") => return Err(invalid("userId", "userId must name a user")),
            Some(user) => {
                require_admin(cx, "Only administrators may see another user's permissions")?;
                self.principal_of(cx, user).await?
            }
        };
        let mut out = match object {
            None => self.effective(&target),
            Some(object) => {
                let mut v = self.object(&target, object)?;
                let (read, edit) = self.row_filters(&target, object);
                if let Value::Object(m) = &mut v {
                    m.insert("rowFilter".into(), read);
                    m.insert("editFilter".into(), edit);
                }
                v
            }
        };
        if let Value::Object(m) = &mut out {
            let bypass = matches!(self.authz.subject(&target), Subject::Bypass);
            m.insert("userId".into(), json!(target.principal.user_id()));
            m.insert("organizationId".into(), json!(target.tenant));
            m.insert("admin".into(), json!(bypass));
            if let Subject::User(eff) = self.authz.subject(&target) {
                m.insert("permissionSets".into(), json!(eff.permission_sets));
                m.insert("roles".into(), json!(eff.roles));
            }
        }
        Ok(out)
    }

    /// The context `user` acts in within the caller's organization, as a session of that user
    /// would have it: from the directory when one is installed, else a plain user checked
    /// against the stored membership. A user who does not exist, is inactive or belongs
    /// elsewhere is the same `404 RECORD_NOT_FOUND` (object `user`), so the answer does not tell
    /// which.
    async fn principal_of(&self, cx: &OpContext, user: &str) -> Result<OpContext, HttpError> {
        let not_found = || {
            HttpError::data(DataError::RecordNotFound {
                object: "user".to_owned(),
                id: user.to_owned(),
            })
        };
        let Some(directory) = self.authz.directory() else {
            if let Some(org) = cx.tenant.as_deref() {
                self.authz
                    .require_member(org, user)
                    .await
                    .map_err(perm_err)?;
            }
            let mut target = OpContext::anonymous();
            target.principal = Principal::user(user);
            target.tenant = cx.tenant.clone();
            return Ok(target);
        };
        let caller = directory
            .principal_for(user, cx.tenant.as_deref())
            .await
            .map_err(|e| HttpError::data(DataError::Internal(format!("directory: {e}"))))?
            .ok_or_else(not_found)?;
        Ok(crate::authorizer::op_context(&caller))
    }

    /// The read and edit row filters of `cx` on `object` in the filter's object form: `{}` for
    /// every record, `null` when the action is not granted at all.
    fn row_filters(&self, cx: &OpContext, object: &str) -> (Value, Value) {
        let eff = match self.authz.subject(cx) {
            Subject::Bypass => return (json!({}), json!({})),
            Subject::User(eff) => eff,
        };
        let p = eff.object(object);
        let read = p
            .allow_read
            .then(|| self.authz.read_filter(&eff, cx, object).to_json());
        let edit = p.allow_edit.then(|| {
            self.authz
                .write_filter(&eff, cx, object, AccessLevel::Edit)
                .to_json()
        });
        (read.unwrap_or(Value::Null), edit.unwrap_or(Value::Null))
    }

    fn effective(&self, cx: &OpContext) -> Value {
        match self.authz.subject(cx) {
            Subject::Bypass => json!({"objects": {}, "systemPermissions": ["*"], "admin": true}),
            Subject::User(eff) => {
                let mut objects: Vec<_> = eff.objects.iter().collect();
                objects.sort_by(|a, b| a.0.cmp(b.0));
                let objects: Map<String, Value> = objects
                    .into_iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
                    .collect();
                json!({"objects": objects, "systemPermissions": eff.system_permissions,
                       "permissionSets": eff.permission_sets, "roles": eff.roles})
            }
        }
    }
}
