//! The authorization service: effective permissions per principal (cached), the row filters of
//! sharing and RLS, field-level security, and the assignment store with its events. Membership
//! of an organization comes from the directory (the auth plugin's `Directory` contract) when
//! one is registered; this crate never reads another plugin's tables.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use objectos_data::store::Store;
use objectos_data::{
    ColumnDefault, ColumnType, DataEngine, DataError, MetadataSnapshot, OpContext, PluginSchema,
    Principal, TableDef, WriteTx,
};
use objectos_kernel::{Directory, PluginHandle};
use objectos_spec::event::authz::{self as authz_events, AssignmentChanged};
use objectos_spec::object::FieldType;
use objectos_spec::query::{Filter, FilterValue, Operator};
use objectos_spec::security::{
    AccessLevel, FieldPermission, ObjectPermission, Recipient, RecipientType, RlsOperation,
    SharingModel, SharingRule,
};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::error::PermissionsError;
use crate::model::SecurityModel;
use crate::rls::{UserValues, match_nothing};

// Assignment changes between nodes, through the `cache` service when one is installed.
mod cluster;
mod decisions;
pub use cluster::CLUSTER_NAMESPACE;

/// Settings of the authorization service.
#[derive(Debug, Clone)]
pub struct AuthzConfig {
    /// Org-wide default for objects that declare no `sharingModel`.
    pub default_sharing: SharingModel,
    /// The permission set anonymous callers get, when it exists.
    pub guest_set: String,
    /// Lets anonymous callers through unchecked. Only for deployments without an auth plugin,
    /// where every request is anonymous (the server sets it when no plugin provides `auth`).
    pub anonymous_unrestricted: bool,
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self {
            default_sharing: SharingModel::PublicReadWrite,
            guest_set: "guest".to_owned(),
            anonymous_unrestricted: false,
        }
    }
}

/// What a user may do, computed once per (user, roles, sets) and cached.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub user_id: Option<String>,
    /// The organization these permissions hold in (the request's active tenant).
    pub tenant: Option<String>,
    pub roles: BTreeSet<String>,
    pub permission_sets: BTreeSet<String>,
    pub objects: HashMap<String, ObjectPermission>,
    /// `object.field` -> access; fields not named are readable and editable.
    pub fields: HashMap<String, FieldPermission>,
    pub system_permissions: Vec<String>,
}

impl Effective {
    /// The object permission (all false when nothing grants the object).
    pub fn object(&self, object: &str) -> ObjectPermission {
        self.objects.get(object).copied().unwrap_or_default()
    }

    /// The access to one field.
    pub fn field(&self, object: &str, field: &str) -> FieldPermission {
        self.fields
            .get(&format!("{object}.{field}"))
            .copied()
            .unwrap_or(FieldPermission {
                readable: true,
                editable: true,
            })
    }

    fn values(&self, cx: &OpContext) -> UserValues {
        UserValues {
            id: self.user_id.clone(),
            tenant: cx.tenant.clone(),
            roles: self.roles.iter().cloned().collect(),
            permission_sets: self.permission_sets.iter().cloned().collect(),
        }
    }
}

/// Who is asking, as far as enforcement is concerned.
#[derive(Debug, Clone)]
pub enum Subject {
    /// System principals and admins: no checks.
    Bypass,
    User(Arc<Effective>),
}

/// Which kind of assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentKind {
    PermissionSet,
    Role,
}

impl AssignmentKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::PermissionSet => "permission_set",
            Self::Role => "role",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Assigned {
    sets: BTreeSet<String>,
    roles: BTreeSet<String>,
}

/// Assignments per (user id, organization id); `""` is "no organization" (contexts without a
/// tenant, such as deployments without an auth plugin).
type AssignmentMap = HashMap<(String, String), Assigned>;

const TABLE: &str = "_objectos_permission_assignment";

/// The key an organization is stored under.
fn org_key(tenant: Option<&str>) -> &str {
    tenant.unwrap_or("")
}

/// Who belongs to which organization, as far as assignments are concerned. The plugin uses
/// [`DirectoryMembership`] when a plugin registers the kernel's `Directory` contract (the auth
/// plugin, service `auth`), else [`StoredMembership`]; integrators can plug their own in with
/// [`Authz::set_membership`].
#[async_trait]
pub trait Membership: Send + Sync + std::fmt::Debug + 'static {
    /// Whether `user_id` is a member of organization `org`.
    async fn is_member(&self, org: &str, user_id: &str) -> Result<bool, PermissionsError>;

    /// How many of `user_ids` (distinct) are members of `org`, asked from inside a write
    /// transaction (`tx`): user fields of a record being written are checked with it. The
    /// default asks [`Membership::is_member`] for each.
    async fn members_among(
        &self,
        org: &str,
        user_ids: &[String],
        tx: WriteTx<'_>,
    ) -> Result<usize, PermissionsError> {
        let _ = tx;
        let mut n = 0;
        for id in user_ids {
            if self.is_member(org, id).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Membership as the directory (the auth plugin) knows it.
///
/// The directory reads through its own connection, not the write transaction: on an in-memory
/// SQLite database (one connection) a user-field check inside a write would wait for that
/// connection, so deployments with auth use a database file or PostgreSQL.
#[derive(Debug)]
pub struct DirectoryMembership {
    directory: Arc<dyn Directory>,
}

impl DirectoryMembership {
    pub fn new(directory: Arc<dyn Directory>) -> Self {
        Self { directory }
    }
}

fn directory_err(e: objectos_kernel::PluginError) -> PermissionsError {
    PermissionsError::Store(format!("directory: {e}"))
}

#[async_trait]
impl Membership for DirectoryMembership {
    async fn is_member(&self, org: &str, user_id: &str) -> Result<bool, PermissionsError> {
        Ok(self
            .directory
            .membership(org, user_id)
            .await
            .map_err(directory_err)?
            .is_some())
    }

    async fn members_among(
        &self,
        org: &str,
        user_ids: &[String],
        _tx: WriteTx<'_>,
    ) -> Result<usize, PermissionsError> {
        self.directory
            .members_among(org, user_ids)
            .await
            .map_err(directory_err)
    }
}

/// Membership without a directory (no auth plugin): when users are records (the base preset's
/// `user` object), the user's own organization (`organization_id`); otherwise everyone (nothing
/// says who belongs where).
#[derive(Debug)]
pub struct StoredMembership {
    engine: DataEngine,
}

impl StoredMembership {
    pub fn new(engine: DataEngine) -> Self {
        Self { engine }
    }
}

#[async_trait]
impl Membership for StoredMembership {
    async fn is_member(&self, org: &str, user_id: &str) -> Result<bool, PermissionsError> {
        if self.engine.metadata().object("user").is_none() {
            return Ok(true);
        }
        let sys = OpContext::system("permissions.membership").with_tenant(org);
        let n = self
            .engine
            .count(&sys, "user", Filter::eq("id", user_id.to_owned()))
            .await?;
        Ok(n > 0)
    }

    /// Through `tx`: on an in-memory SQLite database the write transaction holds the only
    /// connection, so a read through the pool would wait for itself.
    async fn members_among(
        &self,
        org: &str,
        user_ids: &[String],
        tx: WriteTx<'_>,
    ) -> Result<usize, PermissionsError> {
        if user_ids.is_empty() {
            return Ok(0);
        }
        if self.engine.metadata().object("user").is_none() {
            return Ok(user_ids.len());
        }
        let sys = OpContext::system("permissions.membership").with_tenant(org);
        let filter = Filter::condition(
            "id",
            Operator::In,
            FilterValue::Value(Value::Array(
                user_ids.iter().cloned().map(Value::String).collect(),
            )),
        );
        let n = self.engine.count_within(tx, &sys, "user", &filter).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// The shared authorization state; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Authz {
    pub config: AuthzConfig,
    model: RwLock<Arc<SecurityModel>>,
    engine: OnceLock<DataEngine>,
    membership: RwLock<Option<Arc<dyn Membership>>>,
    /// The users' directory (service `auth`), when a plugin provides one: an administrator's
    /// question about another user builds that user's principal through it.
    directory: RwLock<Option<Arc<dyn Directory>>>,
    assignments: RwLock<AssignmentMap>,
    cache: Mutex<decisions::Decisions>,
    /// Moves on every [`Authz::invalidate`]: a decision computed while it moved may rest on the
    /// old assignments or model, and is not cached.
    generation: AtomicU64,
    events: OnceLock<PluginHandle>,
    published: Mutex<Vec<(String, Value)>>,
    /// The other nodes, when a `cache` service is installed (see `authz/cluster.rs`).
    cluster: OnceLock<cluster::ClusterLink>,
}

fn data_err(e: PermissionsError) -> DataError {
    match e {
        PermissionsError::Data(d) => d,
        PermissionsError::UnknownUser(id) => DataError::RecordNotFound {
            object: "user".to_owned(),
            id,
        },
        other => DataError::Internal(other.to_string()),
    }
}

impl Authz {
    pub fn new(config: AuthzConfig) -> Self {
        Self {
            config,
            model: RwLock::new(Arc::new(SecurityModel::default())),
            engine: OnceLock::new(),
            membership: RwLock::new(None),
            directory: RwLock::new(None),
            assignments: RwLock::new(HashMap::new()),
            cache: Mutex::new(decisions::Decisions::default()),
            generation: AtomicU64::new(0),
            events: OnceLock::new(),
            published: Mutex::new(Vec::new()),
            cluster: OnceLock::new(),
        }
    }

    /// Attaches the engine and loads the stored assignments. The assignment table is the
    /// plugin's [`schema`], created by the data plugin before any other plugin starts.
    pub async fn attach(&self, engine: DataEngine) -> Result<(), PermissionsError> {
        let map = load_assignments(&engine, None).await?;
        *self.assignments.write() = map;
        {
            let mut m = self.membership.write();
            if m.is_none() {
                *m = Some(Arc::new(StoredMembership::new(engine.clone())));
            }
        }
        let _ = self.engine.set(engine);
        self.invalidate();
        Ok(())
    }

    /// Replaces how organization membership is decided (the default is [`StoredMembership`],
    /// installed by [`Authz::attach`] unless one was set before).
    pub fn set_membership(&self, membership: Arc<dyn Membership>) {
        *self.membership.write() = Some(membership);
    }

    /// Sets the users' directory (the plugin passes the registered `auth` service).
    pub fn set_directory(&self, directory: Arc<dyn Directory>) {
        *self.directory.write() = Some(directory);
    }

    /// The users' directory, when one was set.
    pub fn directory(&self) -> Option<Arc<dyn Directory>> {
        self.directory.read().clone()
    }

    /// Where `authz.*` events go.
    pub fn set_event_handle(&self, handle: PluginHandle) {
        let _ = self.events.set(handle);
    }

    /// Events published so far (name, payload), also kept when no kernel is attached.
    pub fn published_events(&self) -> Vec<(String, Value)> {
        self.published.lock().clone()
    }

    /// Replaces the security model and drops every cached decision.
    pub fn set_model(&self, model: SecurityModel) {
        *self.model.write() = Arc::new(model);
        self.invalidate();
    }

    /// Re-reads the security files under `dirs`, compiles them against the engine's current
    /// metadata and swaps the model (dropping every cached decision). On any error the old
    /// model stays in force.
    /// Recompiles the model from the engine's current metadata snapshot (the security kinds'
    /// items, swapped with the objects by `DataEngine::reload`); the old model stays on error.
    pub fn reload_from_snapshot(&self) -> Result<(), PermissionsError> {
        let snap = self.snapshot().ok_or_else(|| {
            PermissionsError::Store("the data engine is not started yet".to_owned())
        })?;
        let sources = crate::model::SecuritySources::from_snapshot(&snap)?;
        let model = SecurityModel::compile(sources, &snap)?;
        self.set_model(model);
        Ok(())
    }

    /// Re-reads the security files of `dirs` (for hosts that embed the plugin without the
    /// engine's metadata kinds); the old model stays on error.
    pub fn reload(&self, dirs: &[std::path::PathBuf]) -> Result<(), PermissionsError> {
        let snap = self.snapshot().ok_or_else(|| {
            PermissionsError::Store("the data engine is not started yet".to_owned())
        })?;
        let sources = crate::model::SecuritySources::load(dirs)?;
        let model = SecurityModel::compile(sources, &snap)?;
        self.set_model(model);
        Ok(())
    }

    pub fn model(&self) -> Arc<SecurityModel> {
        self.model.read().clone()
    }

    /// Drops every cached decision.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.lock().clear();
    }

    /// How many decisions are cached (tests prove invalidation).
    pub fn cached_entries(&self) -> usize {
        self.cache.lock().len()
    }

    pub fn engine(&self) -> Option<&DataEngine> {
        self.engine.get()
    }

    fn snapshot(&self) -> Option<Arc<MetadataSnapshot>> {
        self.engine.get().map(DataEngine::metadata)
    }

    // ------------------------------------------------------------- subjects

    /// The subject of an operation context.
    pub fn subject(&self, cx: &OpContext) -> Subject {
        match &cx.principal {
            Principal::System { .. } => Subject::Bypass,
            Principal::User { is_admin: true, .. } => Subject::Bypass,
            Principal::User {
                id,
                roles,
                permission_sets,
                ..
            } => Subject::User(self.effective(
                Some(id),
                cx.tenant.as_deref(),
                roles,
                permission_sets,
            )),
            Principal::Anonymous if self.config.anonymous_unrestricted => Subject::Bypass,
            Principal::Anonymous => Subject::User(self.effective(
                None,
                cx.tenant.as_deref(),
                &[],
                std::slice::from_ref(&self.config.guest_set),
            )),
        }
    }

    /// The effective permissions of a user acting in organization `tenant`: the sets and roles
    /// given (by the principal) plus those assigned to the user in that organization. Cached
    /// until metadata or assignments change.
    pub fn effective(
        &self,
        id: Option<&str>,
        tenant: Option<&str>,
        roles: &[String],
        sets: &[String],
    ) -> Arc<Effective> {
        let key = decisions::Lookup {
            id,
            tenant,
            roles,
            sets,
        };
        if let Some(hit) = self.cache.lock().get(&key) {
            return hit;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let model = self.model();
        let assigned = id
            .and_then(|u| {
                self.assignments
                    .read()
                    .get(&(u.to_owned(), org_key(tenant).to_owned()))
                    .cloned()
            })
            .unwrap_or_default();
        let roles: BTreeSet<String> = roles.iter().cloned().chain(assigned.roles).collect();
        let mut names: BTreeSet<String> = sets.iter().cloned().chain(assigned.sets).collect();
        // A permission set named like one of the user's roles is that role's grant.
        names.extend(
            roles
                .iter()
                .filter(|r| model.sets.contains_key(*r))
                .cloned(),
        );
        let mut eff = Effective {
            user_id: id.map(str::to_owned),
            tenant: tenant.map(str::to_owned),
            roles,
            ..Effective::default()
        };
        let mut field_sets: HashMap<String, FieldPermission> = HashMap::new();
        for name in &names {
            let Some(set) = model.sets.get(name) else {
                continue;
            };
            for (object, perm) in &set.objects {
                eff.objects.entry(object.clone()).or_default().union(perm);
            }
            for (key, perm) in &set.fields {
                field_sets
                    .entry(key.clone())
                    .and_modify(|p| {
                        p.readable |= perm.readable;
                        p.editable |= perm.editable;
                    })
                    .or_insert(*perm);
            }
            for sp in &set.system_permissions {
                if !eff.system_permissions.contains(sp) {
                    eff.system_permissions.push(sp.clone());
                }
            }
        }
        eff.fields = field_sets;
        eff.permission_sets = names;
        let eff = Arc::new(eff);
        let mut cache = self.cache.lock();
        // An invalidation since the start (here or from another node) may have changed what
        // this was computed from: use it once, do not keep it.
        if self.generation.load(Ordering::Acquire) == generation {
            cache.insert(&key, eff.clone());
        }
        eff
    }

    // ------------------------------------------------------------- filters

    /// Records of `object` the user may see.
    pub fn read_filter(&self, eff: &Effective, cx: &OpContext, object: &str) -> Filter {
        let user = eff.values(cx);
        let sharing = self.sharing_filter(eff, &user, object, AccessLevel::Read, 0);
        sharing.and(self.rls(eff, &user, object, &[RlsOperation::Select], false))
    }

    /// Records of `object` the user may update (`Edit`) or delete (`Full`).
    pub fn write_filter(
        &self,
        eff: &Effective,
        cx: &OpContext,
        object: &str,
        need: AccessLevel,
    ) -> Filter {
        let user = eff.values(cx);
        let op = if need == AccessLevel::Full {
            RlsOperation::Delete
        } else {
            RlsOperation::Update
        };
        let sharing = self.sharing_filter(eff, &user, object, need, 0);
        sharing.and(self.rls(eff, &user, object, &[op], false))
    }

    /// What a written record must satisfy (RLS `check` of insert or update policies).
    pub fn check_filter(
        &self,
        eff: &Effective,
        cx: &OpContext,
        object: &str,
        op: RlsOperation,
    ) -> Filter {
        self.rls(eff, &eff.values(cx), object, &[op], true)
    }

    fn rls(
        &self,
        eff: &Effective,
        user: &UserValues,
        object: &str,
        ops: &[RlsOperation],
        check: bool,
    ) -> Filter {
        let model = self.model();
        let mut out: Option<Filter> = None;
        for p in &model.policies {
            let op_ok = p.operation == RlsOperation::All || ops.contains(&p.operation);
            let role_ok = p.roles.is_empty()
                || p.roles
                    .iter()
                    .any(|r| eff.roles.contains(r) || eff.permission_sets.contains(r));
            if p.object != object || !op_ok || !role_ok || !eff.permission_sets.contains(&p.set) {
                continue;
            }
            let pred = if check {
                p.check.as_ref().or(if p.operation == RlsOperation::Update {
                    p.using.as_ref()
                } else {
                    None
                })
            } else {
                p.using.as_ref()
            };
            let Some(pred) = pred else { continue };
            let f = pred.bind(user);
            out = Some(match out {
                None => f,
                Some(prev) => prev.or(f),
            });
        }
        out.unwrap_or(Filter::True)
    }

    /// Users holding one of `roles` in organization `tenant` (role assignments are per
    /// organization, like every assignment).
    fn users_in_roles(&self, roles: &HashSet<String>, tenant: Option<&str>) -> Vec<Value> {
        let org = org_key(tenant);
        let mut ids: Vec<Value> = self
            .assignments
            .read()
            .iter()
            .filter(|((_, o), a)| o == org && a.roles.iter().any(|r| roles.contains(r)))
            .map(|((u, _), _)| Value::String(u.clone()))
            .collect();
        ids.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        ids
    }

    fn recipient_users(
        &self,
        model: &SecurityModel,
        r: &Recipient,
        tenant: Option<&str>,
    ) -> Vec<Value> {
        match r.kind {
            RecipientType::User => vec![Value::String(r.value.clone())],
            RecipientType::Role => self.users_in_roles(&HashSet::from([r.value.clone()]), tenant),
            RecipientType::RoleAndSubordinates => {
                let mut roles = model.subordinates(&r.value);
                roles.insert(r.value.clone());
                self.users_in_roles(&roles, tenant)
            }
            RecipientType::Group | RecipientType::Guest => Vec::new(),
        }
    }

    fn targets_user(&self, model: &SecurityModel, r: &Recipient, eff: &Effective) -> bool {
        match r.kind {
            RecipientType::User => eff.user_id.as_deref() == Some(r.value.as_str()),
            RecipientType::Role => eff.roles.contains(&r.value),
            RecipientType::RoleAndSubordinates => eff
                .roles
                .iter()
                .any(|mine| model.ancestors(mine).contains(&r.value)),
            RecipientType::Group => false,
            RecipientType::Guest => eff.user_id.is_none(),
        }
    }

    fn sharing_filter(
        &self,
        eff: &Effective,
        user: &UserValues,
        object: &str,
        need: AccessLevel,
        depth: usize,
    ) -> Filter {
        let perm = eff.object(object);
        if perm.modify_all_records || (need == AccessLevel::Read && perm.view_all_records) {
            return Filter::True;
        }
        let Some(snap) = self.snapshot() else {
            return match_nothing();
        };
        let owd = SecurityModel::sharing_model(&snap, object, self.config.default_sharing);
        match owd {
            SharingModel::PublicReadWrite if need != AccessLevel::Full => return Filter::True,
            SharingModel::PublicRead if need == AccessLevel::Read => return Filter::True,
            SharingModel::ControlledByParent => {
                let parent = snap.object(object).and_then(|o| {
                    o.fields.iter().find_map(|(name, f)| {
                        (f.kind == FieldType::MasterDetail)
                            .then(|| f.reference.clone().map(|r| (name.clone(), r)))
                            .flatten()
                    })
                });
                let Some((field, target)) = parent else {
                    return match_nothing();
                };
                if depth >= 2 {
                    return match_nothing();
                }
                let mut f = self.sharing_filter(eff, user, &target, need, depth + 1);
                if f.is_true() {
                    return f;
                }
                f.for_each_field_mut(&mut |name: &mut String| *name = format!("{field}.{name}"));
                return f;
            }
            _ => {}
        }
        let model = self.model();
        let mut ors: Vec<Filter> = Vec::new();
        let Some(me) = &eff.user_id else {
            return match_nothing();
        };
        ors.push(Filter::eq("owner_id", me.clone()));
        // The role hierarchy: managers reach records owned by users in roles below theirs.
        let mut below = HashSet::new();
        for role in &eff.roles {
            below.extend(model.subordinates(role));
        }
        let below_users = self.users_in_roles(&below, user.tenant.as_deref());
        if !below_users.is_empty() {
            ors.push(in_filter("owner_id", below_users));
        }
        let rank = |l: AccessLevel| match l {
            AccessLevel::Read => 0,
            AccessLevel::Edit => 1,
            AccessLevel::Full => 2,
        };
        for compiled in &model.rules {
            let common = compiled.rule.common();
            if common.object != object
                || rank(common.access_level) < rank(need)
                || !self.targets_user(&model, &common.shared_with, eff)
            {
                continue;
            }
            match (&compiled.rule, &compiled.condition) {
                (SharingRule::Criteria { .. }, Some(cond)) => ors.push(cond.bind(user)),
                (SharingRule::Owner { owned_by, .. }, _) => {
                    let users = self.recipient_users(&model, owned_by, user.tenant.as_deref());
                    if !users.is_empty() {
                        ors.push(in_filter("owner_id", users));
                    }
                }
                _ => {}
            }
        }
        let mut out: Option<Filter> = None;
        for f in ors {
            out = Some(match out {
                None => f,
                Some(prev) => prev.or(f),
            });
        }
        out.unwrap_or_else(match_nothing)
    }

    // ------------------------------------------------------------- assignments

    /// Refuses a user who is not a member of `org` (see [`Membership`]); such a user is
    /// answered like an unknown id ([`PermissionsError::UnknownUser`]).
    pub async fn require_member(&self, org: &str, user_id: &str) -> Result<(), PermissionsError> {
        let membership = self.membership.read().clone();
        let Some(membership) = membership else {
            return Ok(());
        };
        if membership.is_member(org, user_id).await? {
            Ok(())
        } else {
            Err(PermissionsError::UnknownUser(user_id.to_owned()))
        }
    }

    /// How many of `user_ids` are members of `org` (all of them without a membership source),
    /// asked through the write transaction `tx`.
    pub async fn members_among(
        &self,
        org: &str,
        user_ids: &[String],
        tx: WriteTx<'_>,
    ) -> Result<usize, PermissionsError> {
        let membership = self.membership.read().clone();
        match membership {
            Some(m) => m.members_among(org, user_ids, tx).await,
            None => Ok(user_ids.len()),
        }
    }

    /// Assigns a permission set or role to a user in the organization `by` acts in (its
    /// tenant; without one, the assignment holds for contexts without a tenant) and publishes the
    /// event; idempotent. `by` is the context of whoever asked (actor, organization and request
    /// id of the event). Within an organization the user must be a member of it.
    pub async fn assign(
        &self,
        user_id: &str,
        kind: AssignmentKind,
        name: &str,
        by: &OpContext,
    ) -> Result<bool, PermissionsError> {
        self.check_assignment(user_id, kind, name)?;
        if let Some(org) = &by.tenant {
            self.require_member(org, user_id).await?;
        }
        let org = org_key(by.tenant.as_deref()).to_owned();
        let engine = self.engine.get().ok_or_else(|| {
            PermissionsError::Store("the data engine is not started yet".to_owned())
        })?;
        // One statement: the writer queues it behind the engine's writes (on a SQLite file a
        // write through the read pool would race them for the file lock).
        let writer = engine.writer();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut sql = writer.sql();
        sql.push("INSERT INTO ")
            .ident(TABLE)
            .push(" (\"user_id\", \"org_id\", \"kind\", \"name\", \"created_at\") VALUES (")
            .bind_list([user_id, org.as_str(), kind.as_str(), name, now.as_str()])
            .push(") ON CONFLICT DO NOTHING");
        let changed = writer.execute(sql).await.map_err(store_err)? > 0;
        {
            let mut map = self.assignments.write();
            let entry = map.entry((user_id.to_owned(), org)).or_default();
            match kind {
                AssignmentKind::PermissionSet => entry.sets.insert(name.to_owned()),
                AssignmentKind::Role => entry.roles.insert(name.to_owned()),
            };
        }
        self.invalidate();
        self.publish_change(user_id, org_key(by.tenant.as_deref()))
            .await;
        if changed {
            let event = match kind {
                AssignmentKind::PermissionSet => authz_events::PERMISSION_GRANTED,
                AssignmentKind::Role => authz_events::ROLE_ASSIGNED,
            };
            self.publish(event, user_id, kind, name, by).await;
        }
        Ok(changed)
    }

    /// Removes an assignment in the organization `by` acts in; `Ok(false)` when there was none.
    /// `by` and the membership rule as for [`Authz::assign`].
    pub async fn unassign(
        &self,
        user_id: &str,
        kind: AssignmentKind,
        name: &str,
        by: &OpContext,
    ) -> Result<bool, PermissionsError> {
        if let Some(org) = &by.tenant {
            self.require_member(org, user_id).await?;
        }
        let org = org_key(by.tenant.as_deref()).to_owned();
        let engine = self.engine.get().ok_or_else(|| {
            PermissionsError::Store("the data engine is not started yet".to_owned())
        })?;
        let writer = engine.writer();
        let mut sql = writer.sql();
        sql.push("DELETE FROM ")
            .ident(TABLE)
            .push(" WHERE \"user_id\" = ")
            .bind(user_id)
            .push(" AND \"org_id\" = ")
            .bind(org.as_str())
            .push(" AND \"kind\" = ")
            .bind(kind.as_str())
            .push(" AND \"name\" = ")
            .bind(name);
        let removed = writer.execute(sql).await.map_err(store_err)?;
        if let Some(entry) = self.assignments.write().get_mut(&(user_id.to_owned(), org)) {
            match kind {
                AssignmentKind::PermissionSet => entry.sets.remove(name),
                AssignmentKind::Role => entry.roles.remove(name),
            };
        }
        self.invalidate();
        self.publish_change(user_id, org_key(by.tenant.as_deref()))
            .await;
        let changed = removed > 0;
        if changed {
            let event = match kind {
                AssignmentKind::PermissionSet => authz_events::PERMISSION_REVOKED,
                AssignmentKind::Role => authz_events::ROLE_REMOVED,
            };
            self.publish(event, user_id, kind, name, by).await;
        }
        Ok(changed)
    }

    /// Drops every assignment of `user_id` in organization `org` (the user left it), so they do
    /// not come back should the user rejoin; returns how many rows went. No events: the
    /// membership change is the auditable fact, published by whoever made it.
    pub async fn forget_member(&self, org: &str, user_id: &str) -> Result<u64, PermissionsError> {
        let engine = self.engine.get().ok_or_else(|| {
            PermissionsError::Store("the data engine is not started yet".to_owned())
        })?;
        let writer = engine.writer();
        let mut sql = writer.sql();
        sql.push("DELETE FROM ")
            .ident(TABLE)
            .push(" WHERE \"user_id\" = ")
            .bind(user_id)
            .push(" AND \"org_id\" = ")
            .bind(org);
        let removed = writer.execute(sql).await.map_err(store_err)?;
        self.assignments
            .write()
            .remove(&(user_id.to_owned(), org.to_owned()));
        self.invalidate();
        self.publish_change(user_id, org).await;
        Ok(removed)
    }

    /// The permission sets and roles stored for a user in organization `org` (`None`: the
    /// assignments for contexts without a tenant).
    /// Every user with an assignment in `org`, sorted by user id: (user id, sets, roles).
    pub fn assignments_in(&self, org: Option<&str>) -> Vec<(String, Vec<String>, Vec<String>)> {
        let key = org_key(org);
        let mut out: Vec<_> = self
            .assignments
            .read()
            .iter()
            .filter(|((_, o), a)| o == key && !(a.sets.is_empty() && a.roles.is_empty()))
            .map(|((user, _), a)| {
                (
                    user.clone(),
                    a.sets.iter().cloned().collect(),
                    a.roles.iter().cloned().collect(),
                )
            })
            .collect();
        out.sort();
        out
    }

    pub fn assignments_of(&self, user_id: &str, org: Option<&str>) -> (Vec<String>, Vec<String>) {
        let a = self
            .assignments
            .read()
            .get(&(user_id.to_owned(), org_key(org).to_owned()))
            .cloned()
            .unwrap_or_default();
        (a.sets.into_iter().collect(), a.roles.into_iter().collect())
    }

    fn check_assignment(
        &self,
        user_id: &str,
        kind: AssignmentKind,
        name: &str,
    ) -> Result<(), PermissionsError> {
        if user_id.trim().is_empty() || user_id.len() > 255 {
            return Err(PermissionsError::InvalidAssignment(
                "userId is empty or longer than 255 characters".to_owned(),
            ));
        }
        let model = self.model();
        let known = match kind {
            AssignmentKind::PermissionSet => model.sets.contains_key(name),
            AssignmentKind::Role => model.roles.contains_key(name),
        };
        if !known {
            let what = match kind {
                AssignmentKind::PermissionSet => "permission set",
                AssignmentKind::Role => "role",
            };
            return Err(PermissionsError::InvalidAssignment(format!(
                "{what} {} is not defined in the metadata",
                Value::String(name.to_owned())
            )));
        }
        Ok(())
    }

    async fn publish(
        &self,
        event: &str,
        user_id: &str,
        kind: AssignmentKind,
        name: &str,
        by: &OpContext,
    ) {
        let actor = by.principal.user_id();
        // `userId` is the user the assignment is about, as documented; the audit trail takes
        // its actor from `actorId`/`actorType` and files the event under `tenantId`, so an
        // organization's administrators find their permission changes in their own trail.
        let actor_type = match &by.principal {
            Principal::System { .. } => "system",
            Principal::User { .. } => "user",
            Principal::Anonymous => "anonymous",
        };
        let (permission_set, role) = match kind {
            AssignmentKind::PermissionSet => (Some(name.to_owned()), None),
            AssignmentKind::Role => (None, Some(name.to_owned())),
        };
        let payload = AssignmentChanged {
            user_id: user_id.to_owned(),
            permission_set,
            role,
            by: actor.map(str::to_owned),
            actor_id: actor.map(str::to_owned),
            actor_type: actor_type.to_owned(),
            target_id: user_id.to_owned(),
            tenant_id: by.tenant.clone(),
            organization_id: by.tenant.clone(),
            request_id: by.request_id.clone(),
        };
        // Strings only: encoding cannot fail.
        let payload = serde_json::to_value(&payload).unwrap_or_default();
        self.published
            .lock()
            .push((event.to_owned(), payload.clone()));
        if let Some(h) = self.events.get() {
            let mut ev = h.event(event, payload);
            ev.metadata.user_id = actor.map(str::to_owned);
            ev.metadata.tenant_id = by.tenant.clone();
            // An assignment made by a subscriber in reaction to an event keeps the chain.
            ev.metadata.request_id = by.request_id.clone();
            ev.metadata.correlation_id =
                by.correlation_id.clone().or_else(|| by.request_id.clone());
            ev.metadata.causation_id = by.causation_id.clone();
            if let Err(e) = h.publish(ev).await {
                tracing::warn!(event, error = %e, "Could not publish an authorization event.");
            }
        }
    }

    pub(crate) fn to_data_error(e: PermissionsError) -> DataError {
        data_err(e)
    }
}

/// The plugin's storage, contributed at `init` and created (or extended) by the data plugin's
/// migration plan: the assignment table, keyed by user, organization (`""` is "no
/// organization"), kind and name. Its shape is the one earlier releases created by hand, so
/// existing databases need no step.
///
/// It also declares the security metadata kinds (`*.permission.yml`, `*.role.yml`,
/// `*.sharing.yml`): the engine loads them with the objects, so a broken file stops the start
/// or a reload with its line and path, and `/api/v1/meta/role` and friends serve them.
pub fn schema() -> PluginSchema {
    let kinds = crate::model::metadata_kinds();
    kinds
        .into_iter()
        .fold(PluginSchema::new(), PluginSchema::kind)
        .table(
            TableDef::new(TABLE)
                .required("user_id", ColumnType::Varchar(255))
                .required("org_id", ColumnType::Varchar(255))
                .default(ColumnDefault::Text(String::new()))
                .required("kind", ColumnType::Varchar(32))
                .required("name", ColumnType::Varchar(255))
                .required("created_at", ColumnType::Varchar(40))
                .primary_key(&["user_id", "org_id", "kind", "name"]),
        )
}

/// A failure of the assignment table, reported as the store's (the message names the store
/// rather than passing for a failure of the data operation being authorized).
/// The stored assignments: all of them, or (`only`) those of one user in one organization.
async fn load_assignments(
    engine: &DataEngine,
    only: Option<(&str, &str)>,
) -> Result<AssignmentMap, PermissionsError> {
    let pool = engine.pool();
    // Columns qualified with the table: SQLite reads an unqualified quoted name that is no
    // column as a string literal, so a table of another shape (the plan's manual step,
    // not yet rebuilt) would load every row under the organization "org_id".
    let mut sql = pool.sql();
    sql.push("SELECT a.\"user_id\", a.\"org_id\", a.\"kind\", a.\"name\" FROM ")
        .ident(TABLE)
        .push(" a");
    if let Some((user, org)) = only {
        sql.push(" WHERE a.\"user_id\" = ")
            .bind(user)
            .push(" AND a.\"org_id\" = ")
            .bind(org);
    }
    let rows = pool.fetch_all(sql).await.map_err(store_err)?;
    let mut map = AssignmentMap::new();
    for r in rows {
        let user: String = r.get(0).map_err(store_err)?;
        let org: String = r.get(1).map_err(store_err)?;
        let kind: String = r.get(2).map_err(store_err)?;
        let name: String = r.get(3).map_err(store_err)?;
        let entry = map.entry((user, org)).or_default();
        if kind == AssignmentKind::Role.as_str() {
            entry.roles.insert(name);
        } else {
            entry.sets.insert(name);
        }
    }
    Ok(map)
}

fn store_err(e: DataError) -> PermissionsError {
    PermissionsError::Store(e.to_string())
}

fn in_filter(field: &str, values: Vec<Value>) -> Filter {
    Filter::condition(
        field,
        Operator::In,
        FilterValue::Value(Value::Array(values)),
    )
}
