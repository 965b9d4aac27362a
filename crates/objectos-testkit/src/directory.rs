//! [`TestDirectory`]: the `auth` directory (the kernel's `Directory` contract) for tests of
//! plugins that ask it who a user is, without running the auth plugin.
//!
//! Every user exists and is active; the users named platform administrators (by default
//! `root`, whom [`crate::Who::admin`] signs in as) are the deployment's platform
//! administrators, as the auth plugin answers for its first account. Memberships are the ones
//! the test adds. [`crate::TestKernelBuilder::directory`] registers one under `auth`.

use std::sync::Mutex;

use async_trait::async_trait;
use objectos_kernel::PluginError;
use objectos_kernel::contracts::{Caller, Directory, DirectoryUser, Membership, Organization};

/// The platform administrator of [`TestDirectory::default`]: the user [`crate::Who::admin`]
/// signs in as.
pub const PLATFORM_ADMIN: &str = "root";

/// A directory in which every user exists; see the module.
#[derive(Debug)]
pub struct TestDirectory {
    platform_admins: Vec<String>,
    memberships: Mutex<Vec<Membership>>,
}

impl Default for TestDirectory {
    fn default() -> Self {
        Self::with_platform_admins(&[PLATFORM_ADMIN])
    }
}

impl TestDirectory {
    /// A directory whose platform administrators are `ids` (none: nobody is one).
    pub fn with_platform_admins(ids: &[&str]) -> Self {
        Self {
            platform_admins: ids.iter().map(|s| (*s).to_owned()).collect(),
            memberships: Mutex::new(Vec::new()),
        }
    }

    /// Makes `user` a member of `org` with `role` (`owner`, `admin` or `member`).
    pub fn add_member(&self, org: &str, user: &str, role: &str) {
        self.memberships.lock().unwrap().push(Membership {
            organization_id: org.to_owned(),
            user_id: user.to_owned(),
            role: role.to_owned(),
        });
    }
}

#[async_trait]
impl Directory for TestDirectory {
    async fn user(&self, id: &str) -> Result<Option<DirectoryUser>, PluginError> {
        Ok(Some(DirectoryUser {
            id: id.to_owned(),
            email: format!("{id}@example.com"),
            name: None,
            active: true,
            platform_admin: self.platform_admins.iter().any(|a| a == id),
        }))
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>, PluginError> {
        let known = self
            .memberships
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.organization_id == id);
        Ok(known.then(|| Organization {
            id: id.to_owned(),
            name: None,
            slug: None,
        }))
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, PluginError> {
        Ok(self
            .memberships
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn membership(
        &self,
        org: &str,
        user_id: &str,
    ) -> Result<Option<Membership>, PluginError> {
        Ok(self
            .memberships(user_id)
            .await?
            .into_iter()
            .find(|m| m.organization_id == org))
    }

    /// No principals: a plugin that acts as a user needs the auth plugin's answer.
    async fn principal_for(
        &self,
        _user_id: &str,
        _org: Option<&str>,
    ) -> Result<Option<Caller>, PluginError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn root_is_the_platform_administrator_and_members_are_listed() {
        let d = TestDirectory::default();
        assert!(d.user("root").await.unwrap().unwrap().platform_admin);
        assert!(!d.user("alice").await.unwrap().unwrap().platform_admin);
        assert_eq!(d.organization("org-a").await.unwrap(), None);
        d.add_member("org-a", "alice", "admin");
        assert_eq!(
            d.membership("org-a", "alice").await.unwrap().unwrap().role,
            "admin"
        );
        assert_eq!(d.membership("org-b", "alice").await.unwrap(), None);
        assert!(d.organization("org-a").await.unwrap().is_some());
        let nobody = TestDirectory::with_platform_admins(&[]);
        assert!(!nobody.user("root").await.unwrap().unwrap().platform_admin);
    }
}
