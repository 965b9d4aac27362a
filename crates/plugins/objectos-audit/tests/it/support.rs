//! The audit plugin's fixtures on the shared test kernel (`objectos-testkit`): metadata with
//! tracked history, an interceptor that fails after the audit hook, and request helpers in the
//! shape these tests use.

use std::sync::Arc;

use async_trait::async_trait;
use objectos_audit::{AuditConfig, AuditPlugin, AuditStore};
use objectos_data::{DataEngine, DataError, HookContext, Interceptor, Operation};
use objectos_kernel::{Kernel, PluginHandle};
use objectos_testkit::{Request, TestDatabase, TestKernel};
use serde_json::Value;

pub(crate) use objectos_testkit::{rec, user_cx};

pub(crate) const CONTACT_YML: &str = "\
name: contact
label: Contact
enable:
  trackHistory: true
fields:
  name:
    type: text
    label: Name
    required: true
  email:
    type: email
    label: Email
  pin:
    type: password
    label: PIN
  api_token:
    type: text
    label: API token
  score:
    type: number
    label: Score
";

pub(crate) const TASK_YML: &str = "\
name: task
label: Task
fields:
  title:
    type: text
    label: Title
";

/// Deleted with its task (deleteBehavior: cascade).
pub(crate) const SUBTASK_YML: &str = "\
name: subtask
label: Subtask
fields:
  title:
    type: text
    label: Title
  task:
    type: master_detail
    reference: task
    deleteBehavior: cascade
";

/// Fails the after-hook of creating a record named `FAIL`, after the audit hook ran.
#[derive(Debug)]
struct FailAfterAudit;

#[async_trait]
impl Interceptor for FailAfterAudit {
    fn name(&self) -> &str {
        "fail-after-audit"
    }
    fn order(&self) -> i32 {
        objectos_audit::recorder::INTERCEPTOR_ORDER + 1
    }
    async fn after(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        let bad = hook.operation == Operation::Create
            && hook
                .result
                .as_deref()
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                == Some("FAIL");
        if bad {
            return Err(DataError::Forbidden {
                object: hook.object.name.clone(),
                message: "refused after audit".into(),
            });
        }
        Ok(())
    }
}

pub(crate) struct Harness {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) engine: DataEngine,
    pub(crate) store: AuditStore,
    /// The test plugin's handle, to publish fake auth events.
    pub(crate) publisher: PluginHandle,
    tk: TestKernel,
}

impl Harness {
    pub(crate) async fn sqlite() -> Harness {
        Self::boot(TestDatabase::sqlite_file()).await
    }

    /// A fresh schema on the test PostgreSQL server, or `None` (with a note) when unset.
    pub(crate) async fn postgres() -> Option<Harness> {
        Some(Self::boot(TestDatabase::postgres("audit").await?).await)
    }

    async fn boot(db: TestDatabase) -> Harness {
        let tk = TestKernel::builder()
            .database(db)
            .file("contact.object.yml", CONTACT_YML)
            .file("task.object.yml", TASK_YML)
            .file("subtask.object.yml", SUBTASK_YML)
            .config(
                objectos_audit::PLUGIN_ID,
                serde_json::to_value(AuditConfig {
                    // The periodic task stays out of the way; tests prune explicitly.
                    prune_interval_secs: 86_400,
                    ..AuditConfig::default()
                })
                .unwrap(),
            )
            .plugin(AuditPlugin::default())
            .interceptor(Arc::new(FailAfterAudit))
            .boot()
            .await;
        Harness {
            kernel: tk.kernel.clone(),
            engine: tk.engine.clone(),
            store: AuditStore::from_engine(&tk.engine),
            publisher: tk.handle.clone(),
            tk,
        }
    }

    /// Shuts the kernel down, closes the database and drops its PostgreSQL schema.
    pub(crate) async fn stop(self) {
        let Harness {
            kernel,
            engine,
            store,
            publisher,
            tk,
        } = self;
        drop((kernel, engine, store, publisher));
        tk.stop().await;
    }

    /// Runs raw SQL against the database (tampering).
    pub(crate) async fn raw(&self, sql: &str) -> u64 {
        self.tk.exec(sql).await
    }

    pub(crate) async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, String) {
        let mut req = Request::new(method, path).headers(headers);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = self.tk.send(req).await;
        (r.status, r.text())
    }

    pub(crate) async fn get_json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let (s, body) = self.http("GET", path, headers, None).await;
        assert_eq!(s, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

pub(crate) const ADMIN: &[(&str, &str)] = &[
    (objectos_testkit::session::USER, "root"),
    (objectos_testkit::session::ADMIN, "1"),
];

/// Every event of the store, oldest first.
pub(crate) async fn all_events(h: &Harness) -> Vec<objectos_audit::AuditEvent> {
    let mut v = h
        .store
        .export(&objectos_audit::EventFilter::default())
        .await
        .unwrap();
    v.reverse();
    v
}
