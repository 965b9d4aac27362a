//! The `auth` service as other plugins see it (the kernel's `Directory` contract), and mail
//! through a mailer another plugin registers under `notification`.

use std::sync::Arc;

use objectos_auth::{AuthConfig, AuthPlugin, LoggingMailer, Mail, Mailer, RequestMeta};
use objectos_data::{DataConfig, DataPlugin};
use objectos_kernel::contracts::Principal;
use objectos_kernel::{Directory, InitContext, Kernel, Plugin, PluginError, async_trait};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::services;
use std::sync::Mutex;

use crate::support::{H, PASSWORD};

#[tokio::test]
async fn the_directory_answers_users_organizations_memberships_and_principals() {
    let h = H::new().await;
    let dir = h
        .kernel
        .registry()
        .get_named::<dyn Directory>(services::AUTH)
        .unwrap();
    let svc = h.auth.service().unwrap();
    let (owner, org) = svc
        .create_account("ops@example.com", PASSWORD, Some("Ops"), true, false)
        .await
        .unwrap();
    let org = org.unwrap();
    let (member, _) = svc
        .create_account("member@example.com", PASSWORD, None, false, false)
        .await
        .unwrap();

    let u = dir.user(&owner).await.unwrap().unwrap();
    assert_eq!(
        (u.email.as_str(), u.name.as_deref(), u.active),
        ("ops@example.com", Some("Ops"), true)
    );
    assert!(u.platform_admin);
    assert!(!dir.user(&member).await.unwrap().unwrap().platform_admin);
    assert!(dir.user("nope").await.unwrap().is_none());
    assert!(dir.user(&"x".repeat(500)).await.unwrap().is_none());
    assert!(dir.organization(&org).await.unwrap().is_some());
    assert!(dir.organization("nope").await.unwrap().is_none());

    let ms = dir.memberships(&member).await.unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(
        (ms[0].organization_id.as_str(), ms[0].role.as_str()),
        (org.as_str(), "member")
    );
    assert_eq!(
        dir.membership(&org, &owner).await.unwrap().unwrap().role,
        "owner"
    );
    assert!(dir.membership("other", &owner).await.unwrap().is_none());
    let ids = [
        owner.clone(),
        member.clone(),
        member.clone(),
        "stranger".to_owned(),
    ];
    assert_eq!(dir.members_among(&org, &ids).await.unwrap(), 2);
    assert_eq!(dir.members_among("other", &ids).await.unwrap(), 0);

    // As a session would: the owner administers the organization, a member does not.
    let caller = dir.principal_for(&owner, None).await.unwrap().unwrap();
    assert_eq!(caller.tenant.as_deref(), Some(org.as_str()));
    assert!(matches!(
        caller.principal,
        Principal::User { is_admin: true, .. }
    ));
    let caller = dir
        .principal_for(&member, Some(&org))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(caller.principal, Principal::User { is_admin: false, ref id, .. } if *id == member)
    );
    assert!(
        dir.principal_for(&member, Some("other"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(dir.principal_for("nope", None).await.unwrap().is_none());
}

/// A notification plugin's mailer, recording what it is handed.
#[derive(Debug, Default)]
struct Outbox(Mutex<Vec<Mail>>);

impl Mailer for Outbox {
    fn send(&self, mail: Mail) -> Result<(), PluginError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(mail);
        Ok(())
    }
}

struct Notify(Arc<Outbox>);

const NOTIFY: PluginManifest = PluginManifest {
    provides: &[services::NOTIFICATION],
    ..PluginManifest::new("com.example.notify", "Notify", "0.1.0")
};

#[async_trait]
impl Plugin for Notify {
    fn manifest(&self) -> &PluginManifest {
        &NOTIFY
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.register::<dyn Mailer>(services::NOTIFICATION, self.0.clone())
    }
}

#[tokio::test]
async fn mail_goes_through_a_registered_notification_mailer() {
    let outbox = Arc::new(Outbox::default());
    let fallback = Arc::new(LoggingMailer::new());
    let auth = AuthPlugin::new(AuthConfig::default()).with_mailer(fallback.clone());
    let handle = auth.handle();
    // Registered after auth: the optional requirement still starts the provider first.
    let kernel = Kernel::builder()
        .plugin(DataPlugin::new(DataConfig {
            database_url: crate::support::database_url(),
            metadata_dirs: Vec::new(),
            include_base: true,
            max_connections: 2,
            auto_migrate: true,
            owned: Vec::new(),
        }))
        .plugin(auth)
        .plugin(Notify(outbox.clone()))
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert!(report.plugins.iter().all(|p| p.success), "{report:?}");
    let order = kernel.start_order();
    let pos = |id: &str| order.iter().position(|p| *p == id).unwrap();
    assert!(pos("com.example.notify") < pos(objectos_auth::PLUGIN_ID));

    let svc = handle.service().unwrap();
    svc.create_account("ops@example.com", PASSWORD, None, true, false)
        .await
        .unwrap();
    svc.forget_password("ops@example.com", &RequestMeta::default())
        .await
        .unwrap();
    let sent = outbox.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "ops@example.com");
    assert!(
        sent[0]
            .link
            .as_deref()
            .is_some_and(|l| l.starts_with("/reset-password?token="))
    );
    assert!(
        fallback.last_mail().is_none(),
        "the fallback mailer stays unused"
    );
    kernel.shutdown().await;
}

#[tokio::test]
async fn without_a_notification_plugin_auth_uses_its_own_mailer() {
    let h = H::new().await;
    assert!(
        h.kernel
            .registry()
            .get_named::<dyn Mailer>(services::NOTIFICATION)
            .is_err()
    );
    let svc = h.auth.service().unwrap();
    svc.create_account("ops@example.com", PASSWORD, None, true, false)
        .await
        .unwrap();
    svc.forget_password("ops@example.com", &RequestMeta::default())
        .await
        .unwrap();
    assert_eq!(h.mailer.last_mail().unwrap().to, "ops@example.com");
}
