//! HTTP routes under `/api/v1/jobs`: list and get jobs, retry, cancel, the dead-letter store
//! and replay. Administrators only (anonymous: 401, other users: 403), errors as
//! `{error, code, message}` like the other plugins' routes; a retry or cancel the job's state
//! does not allow is 409 `INVALID_STATE`.

use std::sync::Arc;

use objectos_data::Principal;
use objectos_http::{RequestContext, RouteOperation};
use objectos_kernel::contracts::{JobError, JobFilter, JobQueue, JobStatus};
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;

use crate::service::JobsService;

/// Largest page size.
pub const MAX_PAGE: u32 = 1000;

fn error(res: &mut Response, status: StatusCode, code: &str, message: &str) {
    res.status_code(status);
    res.render(Json(
        json!({ "error": message, "code": code, "message": message }),
    ));
}

fn authorize(depot: &Depot, res: &mut Response) -> bool {
    let principal = depot
        .get_typed::<RequestContext>()
        .map(|cx| cx.principal.clone())
        .unwrap_or(Principal::Anonymous);
    match principal {
        Principal::Anonymous => {
            error(
                res,
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Authentication required to manage jobs",
            );
            false
        }
        Principal::User {
            is_admin: false, ..
        } => {
            error(
                res,
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "Only administrators may manage jobs",
            );
            false
        }
        _ => true,
    }
}

fn answer_error(res: &mut Response, e: JobError) {
    match &e {
        JobError::NotFound(_) => error(res, StatusCode::NOT_FOUND, "NOT_FOUND", &e.to_string()),
        JobError::InvalidState { .. } => {
            error(res, StatusCode::CONFLICT, "INVALID_STATE", &e.to_string())
        }
        JobError::Invalid(_) | JobError::UnknownHandler(_) | JobError::DuplicateHandler(_) => {
            error(
                res,
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                &e.to_string(),
            )
        }
        JobError::Unavailable(_) => error(
            res,
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "The job queue is not available yet",
        ),
        _ => {
            tracing::error!(error = %e, "Jobs route failed.");
            error(
                res,
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal server error",
            )
        }
    }
}

fn invalid_query(param: &str, message: String) -> JobError {
    JobError::Invalid(format!("query parameter `{param}`: {message}"))
}

fn page_param(req: &Request, param: &str, default: u32, max: u32) -> Result<u32, JobError> {
    match req.query::<String>(param) {
        None => Ok(default),
        Some(s) => s.parse::<u32>().ok().filter(|n| *n <= max).ok_or_else(|| {
            invalid_query(param, format!("`{s}` is not an integer from 0 to {max}"))
        }),
    }
}

fn filter_from(req: &Request) -> Result<JobFilter, JobError> {
    let q = |k: &str| req.query::<String>(k).filter(|s| !s.is_empty());
    let status = match q("status") {
        None => None,
        Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| {
            invalid_query(
                "status",
                format!(
                    "`{s}` is not a status; expected one of {}",
                    JobStatus::ALL.map(JobStatus::as_str).join(", ")
                ),
            )
        })?),
    };
    Ok(JobFilter {
        status,
        queue: q("queue"),
        handler: q("handler"),
        limit: page_param(req, "limit", 50, MAX_PAGE)?,
        offset: page_param(req, "offset", 0, u32::MAX)?,
    })
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    List,
    Get,
    Retry,
    Cancel,
    DeadLetters,
    Replay,
}

struct JobsRoute {
    service: Arc<JobsService>,
    kind: Kind,
}

impl JobsRoute {
    async fn run(&self, req: &mut Request, res: &mut Response) -> Result<(), JobError> {
        let id = req.param::<String>("id").unwrap_or_default();
        let s = &self.service;
        match self.kind {
            Kind::List => res.render(Json(s.list(filter_from(req)?).await?)),
            Kind::DeadLetters => {
                let mut f = filter_from(req)?;
                f.status = Some(JobStatus::Dead);
                res.render(Json(s.list(f).await?));
            }
            Kind::Get => match s.get(&id).await? {
                Some(info) => res.render(Json(info)),
                None => return Err(JobError::NotFound(id)),
            },
            Kind::Retry => res.render(Json(s.retry(&id).await?)),
            Kind::Cancel => res.render(Json(s.cancel(&id).await?)),
            Kind::Replay => res.render(Json(s.replay(&id).await?)),
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for JobsRoute {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        if !authorize(depot, res) {
            return;
        }
        if let Err(e) = self.run(req, res).await {
            answer_error(res, e);
        }
    }
}

/// The router mounted at `/api/v1/jobs`.
pub(crate) fn router(service: Arc<JobsService>) -> Router {
    let r = |kind| JobsRoute {
        service: service.clone(),
        kind,
    };
    Router::new()
        .get(r(Kind::List))
        .push(Router::with_path("dead-letters").get(r(Kind::DeadLetters)))
        .push(Router::with_path("dead-letters/{id}/replay").post(r(Kind::Replay)))
        .push(Router::with_path("{id}").get(r(Kind::Get)))
        .push(Router::with_path("{id}/retry").post(r(Kind::Retry)))
        .push(Router::with_path("{id}/cancel").post(r(Kind::Cancel)))
}

/// [`router`], for tests that compare it with [`operations`].
pub fn router_for_tests(service: Arc<JobsService>) -> Router {
    router(service)
}

/// The operations of [`router`], for the OpenAPI document. Every route needs an
/// administrator.
pub fn operations() -> Vec<RouteOperation> {
    let job = json!({ "type": "object", "properties": {
        "id": { "type": "string" }, "handler": { "type": "string" }, "queue": { "type": "string" },
        "status": { "type": "string", "enum": JobStatus::ALL.map(JobStatus::as_str) },
        "priority": { "type": "integer" }, "payload": {}, "attempts": { "type": "integer" },
        "maxAttempts": { "type": "integer" }, "error": { "type": ["string", "null"] },
        "idempotencyKey": { "type": ["string", "null"] }, "schedule": { "type": ["string", "null"] },
        "cancelRequested": { "type": "boolean" }, "createdAt": { "type": "string", "format": "date-time" },
        "runAt": { "type": "string", "format": "date-time" },
        "startedAt": { "type": ["string", "null"], "format": "date-time" },
        "finishedAt": { "type": ["string", "null"], "format": "date-time" },
        "worker": { "type": ["string", "null"] } } });
    let page = json!({ "type": "object", "properties": {
        "items": { "type": "array", "items": job.clone() }, "total": { "type": "integer" } } });
    vec![
        RouteOperation::get(
            "",
            "Jobs, newest first (query: status, queue, handler, limit, offset)",
        )
        .returns(page.clone()),
        RouteOperation::get("dead-letters", "Dead jobs (attempts used up or failed fatally)")
            .returns(page),
        RouteOperation::post(
            "dead-letters/{id}/replay",
            "Runs a dead job again with fresh attempts (409 INVALID_STATE unless dead)",
        )
        .returns(job.clone()),
        RouteOperation::get("{id}", "One job").returns(job.clone()),
        RouteOperation::post(
            "{id}/retry",
            "Runs a failed, dead or cancelled job again (409 INVALID_STATE for a waiting, running or completed job)",
        )
        .returns(job.clone()),
        RouteOperation::post(
            "{id}/cancel",
            "Cancels a waiting job, or asks a running one to stop (409 INVALID_STATE for a finished job)",
        )
        .returns(job),
    ]
}
