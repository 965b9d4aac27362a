//! The directory contract (`objectos_kernel::Directory`, service `auth`) over this plugin's
//! tables: accounts, organizations, memberships and the principal a user acts as.
//!
//! Other plugins (permissions checking membership, flows acting as a user) read who exists and
//! who belongs where through it instead of this plugin's private tables.

use objectos_kernel::contracts::{Caller, Principal};
use objectos_kernel::{
    Directory, DirectoryUser, Membership, Organization, PluginError, async_trait,
};
use serde_json::Value as Json;

use crate::error::AuthError;
use crate::http::ServiceCell;
use crate::service::{AuthService, manages};
use crate::store::{get_s, s};

/// The `auth` service as other plugins see it; answers once the plugin has started.
#[derive(Debug, Clone)]
pub struct AuthDirectory {
    cell: ServiceCell,
}

impl AuthDirectory {
    pub(crate) fn new(cell: ServiceCell) -> Self {
        Self { cell }
    }

    fn service(&self) -> Result<&AuthService, PluginError> {
        self.cell
            .get()
            .ok_or_else(|| PluginError::msg("the auth service has not started"))
    }
}

/// Internal errors keep their text (no secrets: these queries carry ids only).
fn failed(e: AuthError) -> PluginError {
    PluginError::other(e)
}

/// Longest id accepted; longer ones cannot exist, so they are answered without a query.
const MAX_ID: usize = 64;

fn plausible(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID
}

fn text(record: &serde_json::Map<String, Json>, key: &str) -> Option<String> {
    record.get(key).and_then(Json::as_str).map(str::to_owned)
}

#[async_trait]
impl Directory for AuthDirectory {
    async fn user(&self, id: &str) -> Result<Option<DirectoryUser>, PluginError> {
        if !plausible(id) {
            return Ok(None);
        }
        let svc = self.service()?;
        let Some(cred) = svc.credential_by("user_id", id).await.map_err(failed)? else {
            return Ok(None);
        };
        let records = svc
            .records_by_id("user", std::slice::from_ref(&cred.user_id))
            .await
            .map_err(failed)?;
        let record = records.get(&cred.user_id);
        let status = record
            .and_then(|r| r.get("status"))
            .and_then(Json::as_str)
            .unwrap_or("active");
        // Both halves of a platform administrator (see `is_platform_admin`): the account's
        // flag alone may have been handed out by an organization's admin under an earlier
        // version, and reaches no further than that organization.
        let platform_admin =
            cred.is_admin && svc.manages_home_org(&cred.user_id).await.map_err(failed)?;
        Ok(Some(DirectoryUser {
            name: record.and_then(|r| text(r, "name")),
            active: !matches!(status, "locked" | "deactivated"),
            platform_admin,
            email: cred.email,
            id: cred.user_id,
        }))
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>, PluginError> {
        if !plausible(id) {
            return Ok(None);
        }
        let svc = self.service()?;
        let ids = [id.to_owned()];
        let records = svc
            .records_by_id("organization", &ids)
            .await
            .map_err(failed)?;
        Ok(records.get(id).map(|r| Organization {
            id: id.to_owned(),
            name: text(r, "name"),
            slug: text(r, "slug"),
        }))
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, PluginError> {
        if !plausible(user_id) {
            return Ok(Vec::new());
        }
        let rows = self
            .service()?
            .db()
            .all(
                r#"SELECT "org_id", "role" FROM "_objectos_auth_member" WHERE "user_id" = ? ORDER BY "created_at", "org_id""#,
                vec![s(user_id)],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    organization_id: get_s(r, 0).map_err(failed)?,
                    user_id: user_id.to_owned(),
                    role: get_s(r, 1).map_err(failed)?,
                })
            })
            .collect()
    }

    async fn membership(
        &self,
        org: &str,
        user_id: &str,
    ) -> Result<Option<Membership>, PluginError> {
        if !plausible(org) || !plausible(user_id) {
            return Ok(None);
        }
        let role = self
            .service()?
            .member_role(org, user_id)
            .await
            .map_err(failed)?;
        Ok(role.map(|role| Membership {
            organization_id: org.to_owned(),
            user_id: user_id.to_owned(),
            role,
        }))
    }

    async fn members_among(&self, org: &str, user_ids: &[String]) -> Result<usize, PluginError> {
        let ids: Vec<&String> = user_ids.iter().filter(|u| plausible(u)).collect();
        if ids.is_empty() || !plausible(org) {
            return Ok(0);
        }
        let mut values = vec![s(org)];
        values.extend(ids.iter().map(|u| s(u.as_str())));
        let list = vec!["?"; ids.len()].join(", ");
        let row = self
            .service()?
            .db()
            .one(
                &format!(
                    r#"SELECT COUNT(DISTINCT "user_id") FROM "_objectos_auth_member" WHERE "org_id" = ? AND "user_id" IN ({list})"#
                ),
                values,
            )
            .await
            .map_err(failed)?;
        let n = row.and_then(|r| r.get::<i64>(0).ok()).unwrap_or(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn principal_for(
        &self,
        user_id: &str,
        org: Option<&str>,
    ) -> Result<Option<Caller>, PluginError> {
        let Some(user) = self.user(user_id).await? else {
            return Ok(None);
        };
        if !user.active {
            return Ok(None);
        }
        let svc = self.service()?;
        let found = match org {
            Some(org) => self
                .membership(org, user_id)
                .await?
                .map(|m| (m.organization_id, m.role)),
            None => svc.first_membership(user_id).await.map_err(failed)?,
        };
        // As a session: the role in the organization decides administration, and a user acts
        // only inside an organization they belong to.
        Ok(found.map(|(org, role)| {
            Caller::new(
                Principal::User {
                    id: user.id,
                    roles: Vec::new(),
                    permission_sets: Vec::new(),
                    is_admin: manages(&role),
                },
                Some(org),
            )
        }))
    }
}
