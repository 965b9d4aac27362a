//! HTTP routes under `/api/v1/jobs`: enqueue, list and get jobs, retry, cancel, the dead-letter
//! store and replay. Errors as `{error, code, message}` like the other plugins' routes.
//!
//! Who sees what: anonymous callers get 401, users who are not administrators 403. An
//! organization's administrator (`is_admin` of the organization the request acts in) sees and
//! manages only that organization's jobs (rows whose `organization_id` is the request's
//! tenant): another organization's job, or a system job without an organization, is 404
//! `NOT_FOUND` exactly like a missing one, so ids leak nothing. Platform administrators (the
//! auth plugin's directory, looked up at request time through `lazy_requires`) see every job
//! and alone may enqueue over HTTP (anyone else: 403 `PLATFORM_ADMIN_REQUIRED`). A retry or
//! cancel the job's state does not allow is 409 `INVALID_STATE`; an enqueue the queue refuses
//! is 400 with `UNKNOWN_HANDLER`, `UNKNOWN_QUEUE`, `INVALID_PAYLOAD` or `INVALID_BODY`.

use std::sync::Arc;
use std::time::Duration;

use objectos_data::Principal;
use objectos_http::RouteOperation;
use objectos_kernel::PluginHandle;
use objectos_kernel::contracts::{
    DEFAULT_QUEUE, Directory, EnqueueRequest, JobError, JobFilter, JobInfo, JobQueue, JobStatus,
    RetryPolicy,
};
use objectos_spec::manifest::services;
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::service::JobsService;

/// Largest page size.
pub const MAX_PAGE: u32 = 1000;

/// Longest `delayMs` of an enqueue (ten years): a job's time stays a valid date.
pub const MAX_DELAY_MS: u64 = 10 * 366 * 86_400_000;
/// 9999-12-31T23:59:59.999Z, the latest time RFC 3339 can write.
const LATEST_RUN_AT_MS: i64 = 253_402_300_799_999;
/// Most `maxAttempts` of an enqueue.
pub const MAX_ATTEMPTS: u32 = 100;
/// Longest `timeoutMs` of an enqueue (a day).
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// Largest `|priority|` of an enqueue.
pub const MAX_PRIORITY: i32 = 1_000_000;

/// The body of `POST /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnqueueBody {
    handler: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    run_at: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

const ENQUEUE_EXPECTED: &str = "{handler, payload?, queue?, priority?, runAt?, delayMs?, idempotencyKey?, maxAttempts?, timeoutMs?}";

/// Why an enqueue was refused: `(code, message)`, always a 400.
type Refusal = (&'static str, String);

fn bad(message: impl Into<String>) -> Refusal {
    ("INVALID_BODY", message.into())
}

/// The request an enqueue body asks for, checked field by field.
fn enqueue_request(service: &JobsService, body: EnqueueBody) -> Result<EnqueueRequest, Refusal> {
    if body.handler.trim().is_empty() {
        return Err(bad("handler: must name a registered handler"));
    }
    if !service.handlers_set().contains(&body.handler) {
        return Err((
            "UNKNOWN_HANDLER",
            format!(
                "handler: no job handler `{}` is registered; registered: {}",
                body.handler.chars().take(255).collect::<String>(),
                service
                    .handlers_set()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(q) = &body.queue {
        // A queue no node configured would get workers only on the node that took the
        // enqueue; the route accepts the configured ones.
        if q != DEFAULT_QUEUE && !service.settings().queues.contains_key(q) {
            let mut known: Vec<&str> = service
                .settings()
                .queues
                .keys()
                .map(String::as_str)
                .collect();
            if !known.contains(&DEFAULT_QUEUE) {
                known.insert(0, DEFAULT_QUEUE);
            }
            return Err((
                "UNKNOWN_QUEUE",
                format!(
                    "queue: `{}` is not a configured queue (jobs.queues); known: {}",
                    q.chars().take(64).collect::<String>(),
                    known.join(", ")
                ),
            ));
        }
    }
    if body.priority.unsigned_abs() > MAX_PRIORITY.unsigned_abs() {
        return Err(bad(format!(
            "priority: must be from -{MAX_PRIORITY} to {MAX_PRIORITY}"
        )));
    }
    let run_at = match &body.run_at {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| bad(format!("runAt: `{t}` is not an RFC 3339 date-time: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
    };
    if body.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
        return Err(bad(format!("delayMs: must be from 0 to {MAX_DELAY_MS}")));
    }
    if let Some(t) = run_at {
        // Times are stored as epoch milliseconds and shown as RFC 3339, which has four-digit
        // years; the delay is added to runAt.
        let due = t
            .timestamp_millis()
            .saturating_add(i64::try_from(body.delay_ms.unwrap_or(0)).unwrap_or(i64::MAX));
        if !(0..=LATEST_RUN_AT_MS).contains(&due) {
            return Err(bad(
                "runAt: with delayMs, must fall between 1970-01-01 and 9999-12-31",
            ));
        }
    }
    if let Some(k) = &body.idempotency_key
        && (k.is_empty() || k.chars().count() > 255 || k.chars().any(char::is_control))
    {
        return Err(bad(
            "idempotencyKey: must be 1-255 characters without control characters",
        ));
    }
    let retry = match body.max_attempts {
        None => None,
        Some(n) if (1..=MAX_ATTEMPTS).contains(&n) => Some(RetryPolicy {
            max_attempts: n,
            ..service.settings().retry.policy()
        }),
        Some(_) => {
            return Err(bad(format!(
                "maxAttempts: must be from 1 to {MAX_ATTEMPTS}"
            )));
        }
    };
    if body
        .timeout_ms
        .is_some_and(|t| t == 0 || t > MAX_TIMEOUT_MS)
    {
        return Err(bad(format!(
            "timeoutMs: must be from 1 to {MAX_TIMEOUT_MS}"
        )));
    }
    Ok(EnqueueRequest {
        handler: body.handler,
        payload: body.payload,
        queue: body.queue,
        priority: body.priority,
        run_at,
        delay: body.delay_ms.map(Duration::from_millis),
        idempotency_key: body.idempotency_key,
        retry,
        timeout: body.timeout_ms.map(Duration::from_millis),
        // Over HTTP only platform administrators enqueue, and what they enqueue is a system job.
        organization_id: None,
    })
}

fn error(res: &mut Response, status: StatusCode, code: &str, message: &str) {
    res.status_code(status);
    res.render(Json(
        json!({ "error": message, "code": code, "message": message }),
    ));
}

/// What a caller may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// A platform administrator (or internal work): every job, and enqueue.
    Platform,
    /// An organization's administrator: that organization's jobs only.
    Organization(String),
}

impl Scope {
    /// Whether `job` is visible in this scope.
    fn sees(&self, job: &JobInfo) -> bool {
        match self {
            Self::Platform => true,
            Self::Organization(org) => job.organization_id.as_deref() == Some(org.as_str()),
        }
    }
}

/// Tells platform administrators apart through the auth plugin's directory, looked up when a
/// request needs it: the jobs plugin starts before auth (auth -> notification -> jobs), so the
/// manifest lists `auth` in `lazy_requires`, which allows the lookup without ordering the
/// start. Without a directory (no auth plugin, or it failed) nobody is a platform
/// administrator.
#[derive(Clone, Default)]
pub struct JobsAccess {
    handle: Option<PluginHandle>,
}

impl std::fmt::Debug for JobsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsAccess")
            .field("directory", &self.handle.is_some())
            .finish()
    }
}

impl JobsAccess {
    /// Looks the directory up through `handle` at each request.
    pub fn new(handle: PluginHandle) -> Self {
        Self {
            handle: Some(handle),
        }
    }

    /// Whether user `id` is a platform administrator; a directory that fails to answer is
    /// [`JobError::Unavailable`] (a 503), never a guess.
    async fn platform_admin(&self, id: &str) -> Result<bool, JobError> {
        let Some(handle) = &self.handle else {
            return Ok(false);
        };
        let directory = match handle.get_named::<dyn Directory>(services::AUTH) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "jobs: no directory; nobody is a platform administrator");
                return Ok(false);
            }
        };
        match directory.user(id).await {
            Ok(user) => Ok(user.is_some_and(|u| u.platform_admin && u.active)),
            Err(e) => Err(JobError::Unavailable(format!("the directory: {e}"))),
        }
    }

    /// The caller's scope, or the refusal already rendered.
    async fn scope(&self, depot: &Depot, res: &mut Response) -> Option<Scope> {
        let cx = match objectos_http::gate::require_admin(depot, "manage jobs") {
            Ok(cx) => cx,
            Err(refusal) => {
                res.render(refusal);
                return None;
            }
        };
        // An administrator or the system; which jobs it reaches depends on who it is.
        let Principal::User { id, .. } = &cx.principal else {
            return Some(Scope::Platform);
        };
        let tenant = cx.tenant.clone();
        match self.platform_admin(id).await {
            Ok(true) => Some(Scope::Platform),
            Ok(false) => match tenant {
                Some(org) => Some(Scope::Organization(org)),
                None => {
                    error(
                        res,
                        StatusCode::FORBIDDEN,
                        "PERMISSION_DENIED",
                        "An organization's administrators manage its jobs; this request acts in no organization",
                    );
                    None
                }
            },
            Err(e) => {
                answer_error(res, e);
                None
            }
        }
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
        // Set by the route from the caller's scope, never from the query.
        organization_id: None,
        limit: page_param(req, "limit", 50, MAX_PAGE)?,
        offset: page_param(req, "offset", 0, u32::MAX)?,
    })
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Enqueue,
    List,
    Get,
    Retry,
    Cancel,
    DeadLetters,
    Replay,
}

struct JobsRoute {
    service: Arc<JobsService>,
    access: JobsAccess,
    kind: Kind,
}

impl JobsRoute {
    /// `POST /api/v1/jobs`: refusals of the body are rendered here (400 with their code);
    /// what the queue itself fails with is returned.
    async fn enqueue(&self, req: &mut Request, res: &mut Response) -> Result<(), JobError> {
        let body = match objectos_http::body::json_typed::<EnqueueBody>(req, None, ENQUEUE_EXPECTED)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                error(res, e.status(), e.code(), &e.to_string());
                return Ok(());
            }
        };
        let request = match enqueue_request(&self.service, body) {
            Ok(r) => r,
            Err((code, message)) => {
                error(res, StatusCode::BAD_REQUEST, code, &message);
                return Ok(());
            }
        };
        match self.service.enqueue(request).await {
            Ok(out) => {
                let mut answer = json!({ "id": out.id, "created": out.created });
                if let Some(job) = self.service.get(&out.id).await? {
                    answer["job"] =
                        serde_json::to_value(job).map_err(|e| JobError::Backend(e.to_string()))?;
                }
                res.render(Json(answer));
                Ok(())
            }
            Err(JobError::InvalidPayload { handler, message }) => {
                error(
                    res,
                    StatusCode::BAD_REQUEST,
                    "INVALID_PAYLOAD",
                    &format!("payload (handler `{handler}`): {message}"),
                );
                Ok(())
            }
            Err(JobError::UnknownHandler(h)) => {
                error(
                    res,
                    StatusCode::BAD_REQUEST,
                    "UNKNOWN_HANDLER",
                    &format!("handler: no job handler `{h}` is registered"),
                );
                Ok(())
            }
            Err(JobError::Invalid(m)) => {
                error(res, StatusCode::BAD_REQUEST, "INVALID_BODY", &m);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Job `id` when `scope` sees it; a job outside the scope is [`JobError::NotFound`] like
    /// a missing one. A job's organization never changes, so the check holds for the
    /// operation that follows it.
    async fn visible(&self, scope: &Scope, id: &str) -> Result<JobInfo, JobError> {
        match self.service.get(id).await? {
            Some(info) if scope.sees(&info) => Ok(info),
            _ => Err(JobError::NotFound(id.to_owned())),
        }
    }

    async fn run(
        &self,
        scope: &Scope,
        req: &mut Request,
        res: &mut Response,
    ) -> Result<(), JobError> {
        let id = req.param::<String>("id").unwrap_or_default();
        let s = &self.service;
        let org = match scope {
            Scope::Platform => None,
            Scope::Organization(org) => Some(org.clone()),
        };
        match self.kind {
            Kind::Enqueue => {
                if *scope != Scope::Platform {
                    error(
                        res,
                        StatusCode::FORBIDDEN,
                        "PLATFORM_ADMIN_REQUIRED",
                        "Only platform administrators may enqueue jobs over HTTP; an organization's jobs are enqueued by the plugins that work for it",
                    );
                    return Ok(());
                }
                self.enqueue(req, res).await?;
            }
            Kind::List => {
                let mut f = filter_from(req)?;
                f.organization_id = org;
                res.render(Json(s.list(f).await?));
            }
            Kind::DeadLetters => {
                let mut f = filter_from(req)?;
                f.status = Some(JobStatus::Dead);
                f.organization_id = org;
                res.render(Json(s.list(f).await?));
            }
            Kind::Get => res.render(Json(self.visible(scope, &id).await?)),
            Kind::Retry => {
                self.visible(scope, &id).await?;
                res.render(Json(s.retry(&id).await?));
            }
            Kind::Cancel => {
                self.visible(scope, &id).await?;
                res.render(Json(s.cancel(&id).await?));
            }
            Kind::Replay => {
                self.visible(scope, &id).await?;
                res.render(Json(s.replay(&id).await?));
            }
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
        let Some(scope) = self.access.scope(depot, res).await else {
            return;
        };
        if let Err(e) = self.run(&scope, req, res).await {
            answer_error(res, e);
        }
    }
}

/// The router mounted at `/api/v1/jobs`.
pub(crate) fn router(service: Arc<JobsService>, access: JobsAccess) -> Router {
    let r = |kind| JobsRoute {
        service: service.clone(),
        access: access.clone(),
        kind,
    };
    Router::new()
        .get(r(Kind::List))
        .post(r(Kind::Enqueue))
        .push(Router::with_path("dead-letters").get(r(Kind::DeadLetters)))
        .push(Router::with_path("dead-letters/{id}/replay").post(r(Kind::Replay)))
        .push(Router::with_path("{id}").get(r(Kind::Get)))
        .push(Router::with_path("{id}/retry").post(r(Kind::Retry)))
        .push(Router::with_path("{id}/cancel").post(r(Kind::Cancel)))
}

/// [`router`], for tests that compare it with [`operations`].
pub fn router_for_tests(service: Arc<JobsService>) -> Router {
    router(service, JobsAccess::default())
}

/// The operations of [`router`], for the OpenAPI document. Every route needs an
/// administrator (see the module docs for who sees which jobs).
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
        "worker": { "type": ["string", "null"] },
        "organizationId": { "type": ["string", "null"],
            "description": "The organization the job works for; null for a system job" } } });
    let page = json!({ "type": "object", "properties": {
        "items": { "type": "array", "items": job.clone() }, "total": { "type": "integer" } } });
    let enqueue = json!({
        "type": "object",
        "required": ["handler"],
        "additionalProperties": false,
        "properties": {
            "handler": { "type": "string", "minLength": 1, "maxLength": 255,
                "description": "A registered handler, e.g. http.request" },
            "payload": { "description": "Handed to the handler; checked by it before anything is stored" },
            "queue": { "type": "string", "description": "default, or a queue under jobs.queues" },
            "priority": { "type": "integer", "minimum": -MAX_PRIORITY, "maximum": MAX_PRIORITY },
            "runAt": { "type": "string", "format": "date-time" },
            "delayMs": { "type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS },
            "idempotencyKey": { "type": "string", "minLength": 1, "maxLength": 255 },
            "maxAttempts": { "type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS },
            "timeoutMs": { "type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS }
        }
    });
    let enqueued = json!({ "type": "object", "required": ["id", "created"], "properties": {
        "id": { "type": "string" }, "created": { "type": "boolean" }, "job": job.clone() } });
    vec![
        RouteOperation::post(
            "",
            "Enqueues a system job for a registered handler; platform administrators only (403 PLATFORM_ADMIN_REQUIRED) (400 UNKNOWN_HANDLER, UNKNOWN_QUEUE, INVALID_PAYLOAD or INVALID_BODY); a repeated idempotencyKey of a waiting or running job answers that job with created: false",
        )
        .body(enqueue)
        .returns(enqueued),
        RouteOperation::get(
            "",
            "Jobs, newest first (query: status, queue, handler, limit, offset); an organization's administrator sees that organization's jobs only",
        )
        .returns(page.clone()),
        RouteOperation::get("dead-letters", "Dead jobs (attempts used up or failed fatally)")
            .returns(page),
        RouteOperation::post(
            "dead-letters/{id}/replay",
            "Runs a dead job again with fresh attempts (409 INVALID_STATE unless dead)",
        )
        .returns(job.clone()),
        RouteOperation::get(
            "{id}",
            "One job (404 NOT_FOUND for a job outside the caller's organization, as for a missing one)",
        )
        .returns(job.clone()),
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
