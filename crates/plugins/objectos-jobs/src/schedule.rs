//! Schedules: the `job` metadata kind (`*.job.yml`, spec `system/Job.json`), typed and
//! checked at load (a bad cron expression, time zone, interval or date is refused with file
//! and YAML path), and the scheduler loop that turns ticks into jobs.
//!
//! In a cluster each tick runs once: one node at a time holds the scheduler lease (a row of
//! `_objectos_jobs_lease`, renewed every pass, taken over when its holder stops renewing), and
//! a tick is enqueued together with a `(schedule, tick)` row whose primary key refuses a second
//! enqueue of the same tick, even from a node that briefly believed it led too.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use objectos_kernel::contracts::{BuiltinSchedule, DEFAULT_QUEUE};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::core::Core;
use crate::service::JobsService;
use crate::table::{NewJob, now_ms};

/// The kind's name and file suffix (`*.job.yml`, `/api/v1/meta/job`).
pub const KIND: &str = "job";

/// The lease the scheduling node holds.
pub const SCHEDULER_LEASE: &str = "scheduler";

/// One `*.job.yml` (spec 17.4 `system/Job.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schedule: ScheduleDef,
    /// A handler some plugin registers.
    pub handler: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicyDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Handed to the handler as `payload` of `{schedule, tick, payload}` (an ObjectOS
    /// extension of the spec's Job; the `http.request` handler reads its request here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// `schedule`: a cron string, or `{type: cron|interval|once, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScheduleDef {
    Cron(String),
    Typed(TypedSchedule),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum TypedSchedule {
    Cron {
        expression: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    Interval {
        #[serde(rename = "intervalMs")]
        interval_ms: u64,
    },
    Once {
        at: String,
    },
}

/// `retryPolicy` as the spec writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicyDef {
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    #[serde(default)]
    pub backoff_multiplier: Option<f64>,
    #[serde(default)]
    pub max_retry_delay_ms: Option<u64>,
    #[serde(default)]
    pub jitter: Option<bool>,
}

pub(crate) fn name_of(d: &JobDefinition) -> String {
    d.name.clone()
}

/// A schedule ready to compute ticks.
#[derive(Debug, Clone)]
pub enum Compiled {
    Cron { cron: Box<Cron>, tz: chrono_tz::Tz },
    Interval(i64),
    Once(i64),
}

fn parse_cron(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("invalid cron expression `{expr}`: {e}"))
}

/// Compiles `schedule`, or says what is wrong and where (YAML path under the file).
pub fn compile(schedule: &ScheduleDef) -> Result<Compiled, (String, String)> {
    match schedule {
        ScheduleDef::Cron(expr) => parse_cron(expr)
            .map(|cron| Compiled::Cron {
                cron: Box::new(cron),
                tz: chrono_tz::UTC,
            })
            .map_err(|m| ("schedule".into(), m)),
        ScheduleDef::Typed(TypedSchedule::Cron {
            expression,
            timezone,
        }) => {
            let cron = parse_cron(expression).map_err(|m| ("schedule.expression".into(), m))?;
            let tz = match timezone.as_deref() {
                None => chrono_tz::UTC,
                Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| {
                    (
                        "schedule.timezone".to_owned(),
                        format!("unknown time zone `{name}`; expected an IANA name such as `Europe/Berlin`"),
                    )
                })?,
            };
            Ok(Compiled::Cron {
                cron: Box::new(cron),
                tz,
            })
        }
        ScheduleDef::Typed(TypedSchedule::Interval { interval_ms }) => {
            if *interval_ms < 1_000 {
                return Err((
                    "schedule.intervalMs".into(),
                    "must be at least 1000 (one second)".into(),
                ));
            }
            Ok(Compiled::Interval(
                i64::try_from(*interval_ms).unwrap_or(i64::MAX),
            ))
        }
        ScheduleDef::Typed(TypedSchedule::Once { at }) => DateTime::parse_from_rfc3339(at)
            .map(|t| Compiled::Once(t.timestamp_millis()))
            .map_err(|e| {
                (
                    "schedule.at".into(),
                    format!("`{at}` is not an RFC 3339 date-time: {e}"),
                )
            }),
    }
}

/// The checks serde cannot make, each as `(yaml path, message)`.
pub(crate) fn validate(d: &JobDefinition) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !objectos_spec::object::is_valid_name(&d.name) {
        out.push((
            "name".into(),
            format!(
                "`{}` is not a valid name; expected lowercase letters, digits and `_`, starting with a letter",
                d.name
            ),
        ));
    }
    if d.handler.trim().is_empty() {
        out.push(("handler".into(), "must name a registered handler".into()));
    }
    if let Err(p) = compile(&d.schedule) {
        out.push(p);
    }
    if d.timeout_ms == Some(0) {
        out.push(("timeoutMs".into(), "must be at least 1".into()));
    }
    if let Some(m) = d.retry_policy.as_ref().and_then(|r| r.backoff_multiplier)
        && !(m >= 1.0 && m.is_finite())
    {
        out.push((
            "retryPolicy.backoffMultiplier".into(),
            "must be a number of at least 1".into(),
        ));
    }
    out
}

impl Compiled {
    /// The latest tick at or before `now` and after `after` (both epoch ms), if any.
    pub fn due(&self, after: i64, now: i64) -> Option<i64> {
        match self {
            Self::Interval(every) => {
                let tick = now - now.rem_euclid(*every);
                (tick > after).then_some(tick)
            }
            Self::Once(at) => (*at > after && *at <= now).then_some(*at),
            Self::Cron { cron, tz } => {
                let start = tz.timestamp_millis_opt(after).single()?;
                let mut last = None;
                // Missed ticks (downtime) are coalesced into the latest one.
                for t in cron.iter_after(start).take(10_000) {
                    let ms = t.timestamp_millis();
                    if ms > now {
                        break;
                    }
                    last = Some(ms);
                }
                last
            }
        }
    }
}

/// One schedule the loop runs: from a file or installed by a plugin.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) name: String,
    pub(crate) file: Option<String>,
    pub(crate) handler: String,
    pub(crate) compiled: Compiled,
    pub(crate) retry: Option<RetryPolicyDef>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) payload: serde_json::Value,
}

impl Planned {
    fn from_builtin(b: &BuiltinSchedule) -> Self {
        Self {
            name: b.name.clone(),
            file: None,
            handler: b.handler.clone(),
            compiled: Compiled::Interval(
                i64::try_from(b.every.as_millis())
                    .unwrap_or(i64::MAX)
                    .max(1),
            ),
            retry: None,
            timeout_ms: None,
            payload: b.payload.clone(),
        }
    }
}

/// Every enabled schedule of the current metadata plus the plugins' built-in ones.
pub(crate) fn planned(service: &JobsService, core: &Core) -> Vec<Planned> {
    let snapshot = core.table.engine().metadata();
    let mut out = Vec::new();
    for item in snapshot.items(KIND) {
        let Ok(def) = serde_json::from_value::<JobDefinition>(item.value.clone()) else {
            continue;
        };
        if !def.enabled {
            continue;
        }
        // Checked at load; a failure here would be a parser change between versions.
        let Ok(compiled) = compile(&def.schedule) else {
            continue;
        };
        out.push(Planned {
            name: def.name.clone(),
            file: Some(item.file.clone()),
            handler: def.handler.clone(),
            compiled,
            retry: def.retry_policy.clone(),
            timeout_ms: def.timeout_ms,
            payload: def.payload.clone().unwrap_or(serde_json::Value::Null),
        });
    }
    for b in service.builtin_schedules() {
        out.push(Planned::from_builtin(&b));
    }
    out
}

/// The definitions whose handler no plugin registered, as `file: handler: message` lines.
pub(crate) fn unknown_handlers(plans: &[Planned], handlers: &BTreeSet<String>) -> Vec<String> {
    plans
        .iter()
        .filter(|p| !handlers.contains(&p.handler))
        .map(|p| {
            format!(
                "{}: handler: no plugin registers a job handler `{}` (job `{}` will not run; registered: {})",
                p.file.as_deref().unwrap_or("(built-in schedule)"),
                p.handler,
                p.name,
                if handlers.is_empty() {
                    "none".to_owned()
                } else {
                    handlers.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            )
        })
        .collect()
}

/// The schedules whose payload their (registered) handler refuses, as `file: payload: message`
/// lines; such a schedule still runs, and each run fails until the file is fixed.
pub(crate) fn invalid_payloads(
    plans: &[Planned],
    handlers: &std::collections::HashMap<String, Arc<dyn objectos_kernel::contracts::JobHandler>>,
) -> Vec<String> {
    plans
        .iter()
        .filter_map(|p| {
            let message = handlers.get(&p.handler)?.validate(&p.payload).err()?;
            Some(format!(
                "{}: payload: {message} (job `{}`, handler `{}`)",
                p.file.as_deref().unwrap_or("(built-in schedule)"),
                p.name,
                p.handler
            ))
        })
        .collect()
}

fn new_job(core: &Core, p: &Planned, tick: i64) -> NewJob {
    let base = core.settings.retry.clone();
    let mut retry = base.policy();
    if let Some(r) = &p.retry {
        if let Some(n) = r.max_retries {
            retry.max_attempts = n.saturating_add(1);
        }
        if let Some(b) = r.backoff_ms {
            retry.backoff = Duration::from_millis(b);
        }
        if let Some(m) = r.backoff_multiplier {
            retry.multiplier = m;
        }
        if let Some(m) = r.max_retry_delay_ms {
            retry.max_delay = Duration::from_millis(m);
        }
        if let Some(j) = r.jitter {
            retry.jitter = j;
        }
    }
    NewJob {
        id: crate::service::new_id(),
        handler: p.handler.clone(),
        queue: DEFAULT_QUEUE.to_owned(),
        priority: 0,
        payload: serde_json::json!({"schedule": p.name, "tick": tick, "payload": p.payload})
            .to_string(),
        retry,
        timeout_ms: p
            .timeout_ms
            .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
        idempotency_key: None,
        schedule: Some(p.name.clone()),
        run_at_ms: tick,
        // A tick belongs to no request: each run starts a trace of its own.
        traceparent: None,
        // Schedules are the operator's (or a plugin's housekeeping): system jobs.
        organization_id: None,
    }
}

/// The scheduler: every pass, takes or renews the scheduler lease and, while it holds it,
/// enqueues each due tick once. Ticks missed while no node led are coalesced into one.
pub(crate) async fn run(
    service: Arc<JobsService>,
    core: Arc<Core>,
    mut stop: watch::Receiver<bool>,
) {
    let pass = core.settings.poll_interval().min(Duration::from_secs(1));
    let lease_ms = i64::try_from(core.settings.lease_ms).unwrap_or(30_000);
    // Per schedule, the last tick known to be enqueued (by any node).
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let started = now_ms();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(pass) => {},
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let leading = match core
            .table
            .try_lease(SCHEDULER_LEASE, &core.worker, now_ms() + lease_ms)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "Scheduler lease check failed.");
                false
            }
        };
        if !leading {
            // Another node schedules; forget what we knew, it may have moved on.
            last.clear();
            continue;
        }
        let plans = planned(&service, &core);
        let handlers: BTreeSet<String> = service.handlers_set();
        for line in unknown_handlers(&plans, &handlers) {
            if reported.insert(line.clone()) {
                tracing::error!(problem = %line, "Job schedule refers to an unknown handler.");
            }
        }
        let now = now_ms();
        for p in plans.iter().filter(|p| handlers.contains(&p.handler)) {
            let after = match last.get(&p.name) {
                Some(t) => *t,
                None => match core.table.last_tick(&p.name).await {
                    Ok(Some(t)) => t,
                    // Never ran: from when this node started leading (no backfill of ticks
                    // before the schedule existed), except a `once` in the past, which runs.
                    Ok(None) => match p.compiled {
                        Compiled::Once(_) => i64::MIN,
                        _ => started.min(now - 1),
                    },
                    Err(e) => {
                        tracing::warn!(schedule = %p.name, error = %e, "Reading the last tick failed.");
                        continue;
                    }
                },
            };
            let Some(tick) = p.compiled.due(after, now) else {
                last.insert(p.name.clone(), after);
                continue;
            };
            let job = new_job(&core, p, tick);
            match core.table.enqueue_tick(&job, &p.name, tick).await {
                Ok(created) => {
                    last.insert(p.name.clone(), tick);
                    if created {
                        tracing::debug!(schedule = %p.name, tick, job = %job.id, "Scheduled job enqueued.");
                        service.wake_queue(&job.queue);
                    }
                }
                Err(e) => {
                    tracing::warn!(schedule = %p.name, error = %e, "Enqueueing a scheduled job failed; retrying next pass.");
                }
            }
        }
    }
    let _ = core
        .table
        .release_lease(SCHEDULER_LEASE, &core.worker)
        .await;
}
