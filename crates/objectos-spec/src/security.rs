//! Security metadata: permission sets, object and field permissions, RLS policies, sharing rules, roles and policies.
//!
//! These are plain serde/JSON Schema types in the camelCase wire spelling (protocol.md section 5).
//! Each has a pure `validate()` that returns `(yaml path, message)` pairs relative to the item, so
//! the metadata audit can turn them into located diagnostics; nothing here enforces anything.

use std::collections::HashMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::{Filter, FilterValue, Operator};

/// One validation problem: the YAML path inside the item (empty for the item itself) and what is
/// wrong.
pub type Problem = (String, String);

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Whether `name` matches `^[a-z_][a-z0-9_]*$`, the rule for set, role, rule and policy names.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn name_problem(name: &str) -> String {
    format!(
        "name {} is invalid; expected lowercase letters, digits and _, starting with a letter or _",
        Value::String(name.to_owned())
    )
}

fn join(base: &str, key: &str) -> String {
    match (base.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}.{key}"),
    }
}

fn check_name(out: &mut Vec<Problem>, path: &str, name: &str) {
    if !is_valid_name(name) {
        out.push((path.to_owned(), name_problem(name)));
    }
}

/// Pushes every problem of a nested item, with its paths put under `prefix`.
fn nest(out: &mut Vec<Problem>, prefix: &str, inner: Vec<Problem>) {
    out.extend(inner.into_iter().map(|(p, m)| (join(prefix, &p), m)));
}

// ----- permission sets -----

/// A bundle of object, field, system and tab permissions plus RLS policies; a profile when
/// `isProfile` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSet {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_profile: bool,
    /// Object name → permissions on it.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub objects: IndexMap<String, ObjectPermission>,
    /// `"object.field"` → permission on that field.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, FieldPermission>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_permissions: Vec<String>,
    /// App or tab name → visibility.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tab_permissions: IndexMap<String, TabVisibility>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_level_security: Vec<RlsPolicy>,
}

/// CRUD and beyond on one object; everything defaults to false (deny).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectPermission {
    pub allow_create: bool,
    pub allow_read: bool,
    pub allow_edit: bool,
    pub allow_delete: bool,
    pub allow_transfer: bool,
    pub allow_restore: bool,
    pub allow_purge: bool,
    /// Read every record regardless of ownership and sharing.
    pub view_all_records: bool,
    /// Edit and delete every record regardless of ownership and sharing.
    pub modify_all_records: bool,
}

impl ObjectPermission {
    /// Grants everything `other` grants as well (permission sets add up).
    pub fn union(&mut self, other: &ObjectPermission) {
        self.allow_create |= other.allow_create;
        self.allow_read |= other.allow_read;
        self.allow_edit |= other.allow_edit;
        self.allow_delete |= other.allow_delete;
        self.allow_transfer |= other.allow_transfer;
        self.allow_restore |= other.allow_restore;
        self.allow_purge |= other.allow_purge;
        self.view_all_records |= other.view_all_records;
        self.modify_all_records |= other.modify_all_records;
    }

    fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let needs_read = [
            ("allowCreate", self.allow_create),
            ("allowEdit", self.allow_edit),
            ("allowDelete", self.allow_delete),
            ("viewAllRecords", self.view_all_records),
        ];
        for (key, granted) in needs_read {
            if granted && !self.allow_read {
                out.push((key.to_owned(), format!("{key} needs allowRead")));
            }
        }
        if self.modify_all_records && !(self.allow_edit && self.allow_delete) {
            out.push((
                "modifyAllRecords".to_owned(),
                "modifyAllRecords needs allowEdit and allowDelete".to_owned(),
            ));
        }
        out
    }
}

/// Access to one field; readable by default, not editable by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldPermission {
    #[serde(default = "yes")]
    pub readable: bool,
    #[serde(default)]
    pub editable: bool,
}

impl Default for FieldPermission {
    fn default() -> Self {
        Self {
            readable: true,
            editable: false,
        }
    }
}

/// Visibility of an app or tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TabVisibility {
    Visible,
    Hidden,
    DefaultOn,
    DefaultOff,
}

impl PermissionSet {
    /// An empty set with just a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            label: None,
            description: None,
            is_profile: false,
            objects: IndexMap::new(),
            fields: IndexMap::new(),
            system_permissions: Vec::new(),
            tab_permissions: IndexMap::new(),
            row_level_security: Vec::new(),
        }
    }

    /// Adds `other`'s grants to this set: object flags and field flags are ORed, system
    /// permissions and RLS policies are appended (policies with a name already present are
    /// skipped). Used to combine the per-object `*.permission.yml` sets of one profile.
    pub fn merge(&mut self, other: &PermissionSet) {
        for (object, perm) in &other.objects {
            self.objects.entry(object.clone()).or_default().union(perm);
        }
        for (field, perm) in &other.fields {
            self.fields
                .entry(field.clone())
                .and_modify(|p| {
                    p.readable |= perm.readable;
                    p.editable |= perm.editable;
                })
                .or_insert(*perm);
        }
        for sp in &other.system_permissions {
            if !self.system_permissions.contains(sp) {
                self.system_permissions.push(sp.clone());
            }
        }
        for (tab, vis) in &other.tab_permissions {
            self.tab_permissions.entry(tab.clone()).or_insert(*vis);
        }
        for policy in &other.row_level_security {
            if !self
                .row_level_security
                .iter()
                .any(|p| p.name == policy.name)
            {
                self.row_level_security.push(policy.clone());
            }
        }
        self.is_profile |= other.is_profile;
    }

    /// Structural problems, with YAML paths such as `objects.account.allowEdit`.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_name(&mut out, "name", &self.name);
        for (object, perm) in &self.objects {
            let path = format!("objects.{object}");
            if !is_valid_name(object) {
                out.push((path.clone(), format!("object {}", name_problem(object))));
            }
            nest(&mut out, &path, perm.validate());
        }
        for (key, perm) in &self.fields {
            let path = format!("fields.{key}");
            let well_formed = key
                .split_once('.')
                .is_some_and(|(o, f)| is_valid_name(o) && crate::query::is_valid_field_path(f));
            if !well_formed {
                out.push((
                    path.clone(),
                    format!(
                        "field permission key {} is invalid; expected \"object.field\" such as \
                         \"account.annual_revenue\"",
                        Value::String(key.clone())
                    ),
                ));
            }
            if perm.editable && !perm.readable {
                out.push((
                    join(&path, "editable"),
                    "a field cannot be editable without being readable".to_owned(),
                ));
            }
        }
        for (i, sp) in self.system_permissions.iter().enumerate() {
            if sp.trim().is_empty() {
                out.push((
                    format!("systemPermissions[{i}]"),
                    "system permission is empty".to_owned(),
                ));
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, policy) in self.row_level_security.iter().enumerate() {
            let path = format!("rowLevelSecurity[{i}]");
            if seen.contains(&policy.name.as_str()) {
                out.push((
                    join(&path, "name"),
                    format!("policy name {} is used twice in this set", policy.name),
                ));
            }
            seen.push(&policy.name);
            nest(&mut out, &path, policy.validate());
        }
        out
    }
}

// ----- row-level security -----

/// Which statements an RLS policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RlsOperation {
    Select,
    Insert,
    Update,
    Delete,
    All,
}

impl RlsOperation {
    /// Whether the policy restricts which existing rows are visible (`using`).
    pub const fn reads_rows(self) -> bool {
        !matches!(self, Self::Insert)
    }

    /// Whether the policy checks rows being written (`check`).
    pub const fn writes_rows(self) -> bool {
        matches!(self, Self::Insert | Self::Update | Self::All)
    }
}

/// A row-level security policy with SQL-like predicates such as `owner_id = current_user.id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RlsPolicy {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub object: String,
    pub operation: RlsOperation,
    /// Which existing rows the policy lets through (select, update, delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using: Option<String>,
    /// What new or changed rows must satisfy (insert, update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// Roles the policy applies to; empty means everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
}

impl RlsPolicy {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_name(&mut out, "name", &self.name);
        if !is_valid_name(&self.object) {
            out.push((
                "object".to_owned(),
                format!("object {}", name_problem(&self.object)),
            ));
        }
        let blank = |s: &Option<String>| s.as_deref().map(str::trim) == Some("");
        for (key, value) in [("using", &self.using), ("check", &self.check)] {
            if blank(value) {
                out.push((
                    key.to_owned(),
                    format!("{key} is empty; give a predicate or leave it out"),
                ));
            }
        }
        match (&self.using, &self.check) {
            (None, None) => out.push((
                String::new(),
                "a policy needs using (which rows are visible) or check (what written rows must \
                 satisfy)"
                    .to_owned(),
            )),
            (Some(_), _) if !self.operation.reads_rows() => out.push((
                "using".to_owned(),
                "using has no effect on insert policies; use check".to_owned(),
            )),
            (_, Some(_)) if !self.operation.writes_rows() => out.push((
                "check".to_owned(),
                format!(
                    "check has no effect on {} policies; use using",
                    serde_json::to_value(self.operation)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
            )),
            _ => {}
        }
        for (i, role) in self.roles.iter().enumerate() {
            check_name(&mut out, &format!("roles[{i}]"), role);
        }
        out
    }
}

/// What happens when no RLS policy matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RlsDefaultPolicy {
    #[default]
    Deny,
    Allow,
}

/// Global RLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RlsConfig {
    pub enabled: bool,
    pub default_policy: RlsDefaultPolicy,
    pub allow_superuser_bypass: bool,
    pub bypass_roles: Vec<String>,
    pub cache_ttl_seconds: u64,
}

impl Default for RlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            default_policy: RlsDefaultPolicy::Deny,
            allow_superuser_bypass: true,
            bypass_roles: Vec::new(),
            cache_ttl_seconds: 300,
        }
    }
}

impl RlsConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (i, role) in self.bypass_roles.iter().enumerate() {
            check_name(&mut out, &format!("bypassRoles[{i}]"), role);
        }
        out
    }
}

// ----- sharing -----

/// Organisation-wide default access to records one does not own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SharingModel {
    #[default]
    Private,
    /// Also accepted as `read` (the object-level spelling).
    #[serde(alias = "read")]
    PublicRead,
    /// Also accepted as `read_write`, and as `full`, whose nearest org-wide default this is.
    #[serde(alias = "read_write", alias = "full")]
    PublicReadWrite,
    ControlledByParent,
}

/// Access a sharing rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    Read,
    Edit,
    Full,
}

/// Who a sharing rule targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipientType {
    User,
    Group,
    Role,
    RoleAndSubordinates,
    Guest,
}

/// A user, group or role reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Recipient {
    #[serde(rename = "type")]
    pub kind: RecipientType,
    /// The user id, group or role name; may be empty for `guest`.
    #[serde(default)]
    pub value: String,
}

impl Recipient {
    fn validate(&self, path: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        match self.kind {
            RecipientType::Guest => {}
            RecipientType::User | RecipientType::Group if self.value.trim().is_empty() => {
                out.push((
                    join(path, "value"),
                    "value is empty; name who is meant".to_owned(),
                ));
            }
            RecipientType::User | RecipientType::Group => {}
            RecipientType::Role | RecipientType::RoleAndSubordinates => {
                check_name(&mut out, &join(path, "value"), &self.value);
            }
        }
        out
    }
}

/// Fields every sharing rule has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharingRuleCommon {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub object: String,
    pub access_level: AccessLevel,
    pub shared_with: Recipient,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
}

/// A sharing rule, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SharingRule {
    /// Shares records matching a condition.
    Criteria {
        #[serde(flatten)]
        common: SharingRuleCommon,
        /// A predicate in the RLS syntax, e.g. `stage = 'won'`.
        condition: String,
    },
    /// Shares records owned by someone.
    Owner {
        #[serde(flatten)]
        common: SharingRuleCommon,
        #[serde(rename = "ownedBy")]
        owned_by: Recipient,
    },
}

impl SharingRule {
    pub fn common(&self) -> &SharingRuleCommon {
        match self {
            Self::Criteria { common, .. } | Self::Owner { common, .. } => common,
        }
    }

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let common = self.common();
        check_name(&mut out, "name", &common.name);
        if !is_valid_name(&common.object) {
            out.push((
                "object".to_owned(),
                format!("object {}", name_problem(&common.object)),
            ));
        }
        out.extend(common.shared_with.validate("sharedWith"));
        match self {
            Self::Criteria { condition, .. } if condition.trim().is_empty() => {
                out.push(("condition".to_owned(), "condition is empty".to_owned()));
            }
            Self::Criteria { .. } => {}
            Self::Owner { owned_by, .. } => {
                if owned_by.kind == RecipientType::Guest {
                    out.push((
                        "ownedBy.type".to_owned(),
                        "guest users do not own records; expected user, group, role or \
                         role_and_subordinates"
                            .to_owned(),
                    ));
                }
                out.extend(owned_by.validate("ownedBy"));
            }
        }
        out
    }
}

// ----- roles and policies -----

/// A role in the role hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Role {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Role {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_name(&mut out, "name", &self.name);
        if let Some(parent) = &self.parent {
            check_name(&mut out, "parent", parent);
            if parent == &self.name {
                out.push((
                    "parent".to_owned(),
                    "a role cannot be its own parent".to_owned(),
                ));
            }
        }
        out
    }
}

/// Checks a set of roles as a whole: duplicate names, parents that do not exist, and cycles,
/// each cycle named once as `a -> b -> a`.
pub fn check_role_hierarchy(roles: &[Role]) -> Vec<String> {
    let mut out = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, role) in roles.iter().enumerate() {
        if index.insert(&role.name, i).is_some() {
            out.push(format!("role {} is defined more than once", role.name));
        }
    }
    for role in roles {
        if let Some(parent) = &role.parent
            && !index.contains_key(parent.as_str())
        {
            out.push(format!(
                "role {}: parent role {parent} does not exist",
                role.name
            ));
        }
    }
    // Walk up from every role; a role met again on the current walk closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnWalk,
        Done,
    }
    let mut state = vec![State::New; roles.len()];
    for start in 0..roles.len() {
        let mut walk: Vec<usize> = Vec::new();
        let mut current = Some(start);
        while let Some(i) = current {
            match state[i] {
                State::Done => break,
                State::OnWalk => {
                    if let Some(pos) = walk.iter().position(|&w| w == i) {
                        let mut names: Vec<&str> = walk[pos..]
                            .iter()
                            .map(|&w| roles[w].name.as_str())
                            .collect();
                        names.push(&roles[i].name);
                        out.push(format!(
                            "role hierarchy has a cycle: {}",
                            names.join(" -> ")
                        ));
                    }
                    break;
                }
                State::New => {
                    state[i] = State::OnWalk;
                    walk.push(i);
                    current = roles[i]
                        .parent
                        .as_deref()
                        .and_then(|p| index.get(p).copied());
                }
            }
        }
        for w in walk {
            state[w] = State::Done;
        }
    }
    out
}

/// Password rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
    /// How many previous passwords may not be reused.
    pub history_count: u32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: false,
            history_count: 3,
        }
    }
}

impl PasswordPolicy {
    /// Checks a candidate password; on failure returns every rule it breaks, as sentences that
    /// can be shown to the user. Reuse (`historyCount`) needs the stored hashes and is not
    /// checked here.
    pub fn check(&self, password: &str) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let length = password.chars().count();
        if length < self.min_length as usize {
            problems.push(format!(
                "Password must be at least {} characters long.",
                self.min_length
            ));
        }
        let rules = [
            (
                self.require_uppercase,
                password.chars().any(char::is_uppercase),
                "an uppercase letter",
            ),
            (
                self.require_lowercase,
                password.chars().any(char::is_lowercase),
                "a lowercase letter",
            ),
            (
                self.require_numbers,
                password.chars().any(|c| c.is_ascii_digit()),
                "a number",
            ),
            (
                self.require_symbols,
                password
                    .chars()
                    .any(|c| !c.is_alphanumeric() && !c.is_whitespace()),
                "a symbol",
            ),
        ];
        for (required, present, what) in rules {
            if required && !present {
                problems.push(format!("Password must contain {what}."));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.min_length == 0 || self.min_length > 256 {
            out.push((
                "minLength".to_owned(),
                format!(
                    "minLength {} is out of range; expected 1 to 256",
                    self.min_length
                ),
            ));
        }
        let classes = [
            self.require_uppercase,
            self.require_lowercase,
            self.require_numbers,
            self.require_symbols,
        ]
        .iter()
        .filter(|b| **b)
        .count() as u32;
        if self.min_length != 0 && self.min_length < classes {
            out.push((
                "minLength".to_owned(),
                format!(
                    "minLength {} is shorter than the {classes} required character kinds",
                    self.min_length
                ),
            ));
        }
        if self.history_count > 100 {
            out.push((
                "historyCount".to_owned(),
                format!(
                    "historyCount {} is out of range; expected 0 to 100",
                    self.history_count
                ),
            ));
        }
        out
    }
}

/// Session lifetime rules, in minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionPolicy {
    /// Minutes of inactivity after which a session ends.
    pub idle_timeout: u32,
    /// Minutes after sign-in after which a session ends regardless of activity.
    pub absolute_timeout: u32,
    pub force_mfa: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: 30,
            absolute_timeout: 480,
            force_mfa: false,
        }
    }
}

impl SessionPolicy {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (key, value) in [
            ("idleTimeout", self.idle_timeout),
            ("absoluteTimeout", self.absolute_timeout),
        ] {
            if value == 0 {
                out.push((key.to_owned(), format!("{key} must be at least 1 minute")));
            }
        }
        if self.idle_timeout > self.absolute_timeout {
            out.push((
                "idleTimeout".to_owned(),
                format!(
                    "idleTimeout {} is longer than absoluteTimeout {}, so it would never apply",
                    self.idle_timeout, self.absolute_timeout
                ),
            ));
        }
        out
    }
}

// ----- the ObjectOS `*.permission.yml` profile form -----

/// ObjectOS's per-object profile permissions (`*.permission.yml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOsPermission {
    pub name: String,
    pub object_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Profile name → what it may do on the object.
    #[serde(default)]
    pub profiles: IndexMap<String, ProfilePermission>,
    /// Field name → which profiles see and edit it.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub field_permissions: IndexMap<String, ObjectOsFieldPermission>,
}

/// One profile's rights on the object of an [`ObjectOsPermission`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ProfilePermission {
    pub allow_read: bool,
    pub allow_create: bool,
    pub allow_edit: bool,
    pub allow_delete: bool,
    /// A filter in object form restricting which records the profile sees, e.g.
    /// `{owner: '{{ userId }}'}`; it becomes an RLS `using` predicate.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub view_filters: IndexMap<String, Value>,
}

/// Which profiles see and edit one field; an empty `visibleTo` means every profile sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectOsFieldPermission {
    pub visible_to: Vec<String>,
    pub editable_by: Vec<String>,
}

impl ObjectOsFieldPermission {
    /// Field access for `profile`: readable when `visibleTo` is empty or names it; editable when
    /// readable and either `editableBy` names it, or `editableBy` is empty and the profile may
    /// edit the object.
    pub fn for_profile(&self, profile: &str, object_editable: bool) -> FieldPermission {
        let named = |list: &[String]| list.iter().any(|p| p == profile);
        let readable = self.visible_to.is_empty() || named(&self.visible_to);
        let editable = readable
            && if self.editable_by.is_empty() {
                object_editable
            } else {
                named(&self.editable_by)
            };
        FieldPermission { readable, editable }
    }
}

impl ObjectOsPermission {
    /// Converts to one profile permission set per profile (`isProfile = true`, named after the
    /// profile). `viewFilters` become a select RLS policy for that profile; a filter that cannot
    /// be turned into a predicate becomes `false` so a mistake denies rather than grants
    /// (`validate` reports it). Sets for the same profile from several files combine with
    /// [`PermissionSet::merge`].
    pub fn to_permission_sets(&self) -> Vec<PermissionSet> {
        self.profiles
            .iter()
            .map(|(profile, perm)| {
                let mut set = PermissionSet::new(profile.clone());
                set.is_profile = true;
                set.objects.insert(
                    self.object_name.clone(),
                    ObjectPermission {
                        allow_read: perm.allow_read,
                        allow_create: perm.allow_create,
                        allow_edit: perm.allow_edit,
                        allow_delete: perm.allow_delete,
                        ..ObjectPermission::default()
                    },
                );
                for (field, fp) in &self.field_permissions {
                    set.fields.insert(
                        format!("{}.{field}", self.object_name),
                        fp.for_profile(profile, perm.allow_edit),
                    );
                }
                if !perm.view_filters.is_empty() {
                    let using = view_filters_predicate(&perm.view_filters)
                        .unwrap_or_else(|_| "false".to_owned());
                    set.row_level_security.push(RlsPolicy {
                        name: format!("{}_{}_view_filters", self.object_name, profile),
                        label: None,
                        description: Some(format!(
                            "viewFilters of profile {profile} in permission {}",
                            self.name
                        )),
                        object: self.object_name.clone(),
                        operation: RlsOperation::Select,
                        using: Some(using),
                        check: None,
                        roles: vec![profile.clone()],
                        enabled: true,
                        priority: 0,
                    });
                }
                set
            })
            .collect()
    }

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_name(&mut out, "name", &self.name);
        if !is_valid_name(&self.object_name) {
            out.push((
                "objectName".to_owned(),
                format!("object {}", name_problem(&self.object_name)),
            ));
        }
        if self.profiles.is_empty() {
            out.push((
                "profiles".to_owned(),
                "no profiles are given, so nobody gets access".to_owned(),
            ));
        }
        for (profile, perm) in &self.profiles {
            let path = format!("profiles.{profile}");
            check_name(&mut out, &path, profile);
            let flags = ObjectPermission {
                allow_read: perm.allow_read,
                allow_create: perm.allow_create,
                allow_edit: perm.allow_edit,
                allow_delete: perm.allow_delete,
                ..ObjectPermission::default()
            };
            nest(&mut out, &path, flags.validate());
            if !perm.view_filters.is_empty()
                && let Err((sub, message)) = view_filters_predicate(&perm.view_filters)
            {
                out.push((join(&join(&path, "viewFilters"), &sub), message));
            }
        }
        for (field, fp) in &self.field_permissions {
            let path = format!("fieldPermissions.{field}");
            if !crate::query::is_valid_field_path(field) || field.contains('.') {
                out.push((path.clone(), format!("field {}", name_problem(field))));
            }
            for (key, list) in [
                ("visibleTo", &fp.visible_to),
                ("editableBy", &fp.editable_by),
            ] {
                for (i, profile) in list.iter().enumerate() {
                    if profile != "*" && !self.profiles.contains_key(profile) {
                        out.push((
                            format!("{path}.{key}[{i}]"),
                            format!("profile {profile} is not one of this file's profiles"),
                        ));
                    }
                }
            }
            for (i, profile) in fp.editable_by.iter().enumerate() {
                if !fp.visible_to.is_empty() && !fp.visible_to.contains(profile) {
                    out.push((
                        format!("{path}.editableBy[{i}]"),
                        format!("profile {profile} may edit the field but is not in visibleTo"),
                    ));
                }
            }
        }
        out
    }
}

/// Turns ObjectOS `viewFilters` (a filter in object form whose values may hold templates such as
/// `{{ userId }}`) into an RLS predicate such as `owner = current_user.id`. On failure returns
/// the path inside `viewFilters` and the message.
pub fn view_filters_predicate(filters: &IndexMap<String, Value>) -> Result<String, Problem> {
    let value = Value::Object(
        filters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let filter = Filter::parse_param(&value, "viewFilters").map_err(|e| {
        let sub = e.path().strip_prefix("viewFilters").unwrap_or_default();
        (
            sub.trim_start_matches('.').to_owned(),
            e.message().to_owned(),
        )
    })?;
    if filter.is_true() {
        return Err((String::new(), "viewFilters is empty".to_owned()));
    }
    Ok(predicate(&filter, true))
}

/// Renders a filter as an SQL-like predicate; `top` avoids parentheses around the outermost group.
fn predicate(filter: &Filter, top: bool) -> String {
    let group = |children: &[Filter], word: &str| {
        let inner: Vec<String> = children.iter().map(|c| predicate(c, false)).collect();
        let joined = inner.join(&format!(" {word} "));
        if top { joined } else { format!("({joined})") }
    };
    match filter {
        Filter::True => "true".to_owned(),
        Filter::And(children) => group(children, "AND"),
        Filter::Or(children) => group(children, "OR"),
        Filter::Not(child) => format!("NOT ({})", predicate(child, true)),
        Filter::Condition(c) => {
            let rhs = match &c.value {
                FilterValue::Field(other) => other.clone(),
                FilterValue::Value(v) => literal(v),
            };
            let list = || match &c.value {
                FilterValue::Value(Value::Array(items)) => {
                    items.iter().map(literal).collect::<Vec<_>>().join(", ")
                }
                _ => rhs.clone(),
            };
            let like = |prefix: &str, suffix: &str| match &c.value {
                FilterValue::Value(Value::String(s)) => {
                    literal(&Value::String(format!("{prefix}{s}{suffix}")))
                }
                FilterValue::Value(v) => literal(&Value::String(format!("{prefix}{v}{suffix}"))),
                FilterValue::Field(other) => other.clone(),
            };
            let f = &c.field;
            match c.op {
                Operator::Eq => format!("{f} = {rhs}"),
                Operator::Ne => format!("{f} <> {rhs}"),
                Operator::Gt => format!("{f} > {rhs}"),
                Operator::Gte => format!("{f} >= {rhs}"),
                Operator::Lt => format!("{f} < {rhs}"),
                Operator::Lte => format!("{f} <= {rhs}"),
                Operator::In => format!("{f} IN ({})", list()),
                Operator::Nin => format!("{f} NOT IN ({})", list()),
                Operator::Between => match &c.value {
                    FilterValue::Value(Value::Array(b)) if b.len() == 2 => {
                        format!("{f} BETWEEN {} AND {}", literal(&b[0]), literal(&b[1]))
                    }
                    _ => "false".to_owned(),
                },
                Operator::Contains => format!("{f} LIKE {}", like("%", "%")),
                Operator::NotContains => format!("{f} NOT LIKE {}", like("%", "%")),
                Operator::StartsWith => format!("{f} LIKE {}", like("", "%")),
                Operator::EndsWith => format!("{f} LIKE {}", like("%", "")),
                Operator::IsNull => format!("{f} IS NULL"),
                Operator::IsNotNull => format!("{f} IS NOT NULL"),
                Operator::Exists => match &c.value {
                    FilterValue::Value(Value::Bool(false)) => format!("{f} IS NULL"),
                    _ => format!("{f} IS NOT NULL"),
                },
            }
        }
    }
}

/// An SQL literal, or a `current_user` reference for a `{{ name }}` template.
fn literal(value: &Value) -> String {
    match value {
        Value::String(s) => match template_variable(s) {
            Some(var) => user_reference(var),
            None => format!("'{}'", s.replace('\'', "''")),
        },
        Value::Null => "NULL".to_owned(),
        other => other.to_string(),
    }
}

/// The variable of a whole-string template `{{ name }}`.
fn template_variable(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let valid = !inner.is_empty()
        && inner.split('.').all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    valid.then_some(inner)
}

/// Maps ObjectOS template variables to the RLS `current_user` context.
fn user_reference(var: &str) -> String {
    let var = var.strip_prefix("user.").unwrap_or(var);
    match var {
        "userId" | "user_id" | "id" => "current_user.id".to_owned(),
        "spaceId" | "tenantId" | "tenant_id" | "organizationId" => {
            "current_user.tenant_id".to_owned()
        }
        "roles" => "current_user.roles".to_owned(),
        other => format!("current_user.{other}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(list: Vec<Problem>) -> Vec<String> {
        list.into_iter()
            .map(|(p, m)| if p.is_empty() { m } else { format!("{p}: {m}") })
            .collect()
    }

    #[test]
    fn defaults() {
        let set: PermissionSet = serde_json::from_value(json!({"name": "sales"})).unwrap();
        assert!(!set.is_profile);
        assert!(set.objects.is_empty() && set.row_level_security.is_empty());
        assert_eq!(
            ObjectPermission::default(),
            serde_json::from_value(json!({})).unwrap()
        );
        let fp: FieldPermission = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            fp,
            FieldPermission {
                readable: true,
                editable: false
            }
        );
        assert_eq!(fp, FieldPermission::default());
        let rls: RlsConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(rls, RlsConfig::default());
        assert_eq!(
            serde_json::to_value(&rls).unwrap(),
            json!({"enabled": true, "defaultPolicy": "deny", "allowSuperuserBypass": true,
                   "bypassRoles": [], "cacheTtlSeconds": 300})
        );
        let pw: PasswordPolicy = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            serde_json::to_value(&pw).unwrap(),
            json!({"minLength": 8, "requireUppercase": true, "requireLowercase": true,
                   "requireNumbers": true, "requireSymbols": false, "historyCount": 3})
        );
        let session: SessionPolicy = serde_json::from_value(json!({"forceMfa": true})).unwrap();
        assert_eq!(
            (
                session.idle_timeout,
                session.absolute_timeout,
                session.force_mfa
            ),
            (30, 480, true)
        );
        assert_eq!(SharingModel::default(), SharingModel::Private);
        let policy: RlsPolicy = serde_json::from_value(json!({
            "name": "own", "object": "account", "operation": "select", "using": "owner_id = current_user.id"
        }))
        .unwrap();
        assert!(policy.enabled);
        assert_eq!(policy.priority, 0);
        assert!(policy.validate().is_empty());
    }

    #[test]
    fn permission_set_from_yaml_like_json() {
        let set: PermissionSet = serde_json::from_value(json!({
            "name": "sales_user",
            "label": "Sales User",
            "isProfile": true,
            "objects": {
                "opportunity": {"allowRead": true, "allowCreate": true, "allowEdit": true},
                "account": {"allowRead": true, "viewAllRecords": true}
            },
            "fields": {"opportunity.amount": {"editable": true}, "account.revenue": {"readable": false}},
            "systemPermissions": ["api_enabled"],
            "tabPermissions": {"crm": "visible", "admin": "hidden", "reports": "default_on"},
            "rowLevelSecurity": [{
                "name": "own_opps", "object": "opportunity", "operation": "all",
                "using": "owner_id = current_user.id", "check": "owner_id = current_user.id",
                "roles": ["sales_rep"], "priority": 10
            }]
        }))
        .unwrap();
        assert!(set.is_profile);
        assert!(set.objects["opportunity"].allow_edit);
        assert!(!set.objects["opportunity"].allow_delete);
        assert_eq!(
            set.fields["opportunity.amount"],
            FieldPermission {
                readable: true,
                editable: true
            }
        );
        assert_eq!(set.tab_permissions["reports"], TabVisibility::DefaultOn);
        assert_eq!(set.row_level_security[0].operation, RlsOperation::All);
        assert!(set.validate().is_empty(), "{:?}", set.validate());
        let back: PermissionSet =
            serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap();
        assert_eq!(back, set);
        assert!(serde_json::from_value::<PermissionSet>(json!({"label": "x"})).is_err());
    }

    #[test]
    fn validation_messages() {
        let set: PermissionSet = serde_json::from_value(json!({
            "name": "Sales-Team",
            "objects": {
                "Bad Object": {},
                "lead": {"allowEdit": true, "allowDelete": true, "modifyAllRecords": true},
                "task": {"allowRead": true, "modifyAllRecords": true}
            },
            "fields": {"amount": {}, "lead.x": {"readable": false, "editable": true}},
            "systemPermissions": [" "],
            "rowLevelSecurity": [
                {"name": "p", "object": "lead", "operation": "select"},
                {"name": "p", "object": "lead", "operation": "insert", "using": "a = 1"},
                {"name": "q", "object": "lead", "operation": "delete", "check": "", "roles": ["Boss"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            problems(set.validate()),
            [
                "name: name \"Sales-Team\" is invalid; expected lowercase letters, digits and _, starting with a letter or _",
                "objects.Bad Object: object name \"Bad Object\" is invalid; expected lowercase letters, digits and _, starting with a letter or _",
                "objects.lead.allowEdit: allowEdit needs allowRead",
                "objects.lead.allowDelete: allowDelete needs allowRead",
                "objects.task.modifyAllRecords: modifyAllRecords needs allowEdit and allowDelete",
                "fields.amount: field permission key \"amount\" is invalid; expected \"object.field\" such as \"account.annual_revenue\"",
                "fields.lead.x.editable: a field cannot be editable without being readable",
                "systemPermissions[0]: system permission is empty",
                "rowLevelSecurity[0]: a policy needs using (which rows are visible) or check (what written rows must satisfy)",
                "rowLevelSecurity[1].name: policy name p is used twice in this set",
                "rowLevelSecurity[1].using: using has no effect on insert policies; use check",
                "rowLevelSecurity[2].check: check is empty; give a predicate or leave it out",
                "rowLevelSecurity[2].check: check has no effect on delete policies; use using",
                "rowLevelSecurity[2].roles[0]: name \"Boss\" is invalid; expected lowercase letters, digits and _, starting with a letter or _",
            ]
        );
        let cfg = RlsConfig {
            bypass_roles: vec!["ok".into(), "Not OK".into()],
            ..RlsConfig::default()
        };
        assert_eq!(
            problems(cfg.validate()),
            [
                "bypassRoles[1]: name \"Not OK\" is invalid; expected lowercase letters, digits and _, starting with a letter or _"
            ]
        );
        let pw = PasswordPolicy {
            min_length: 2,
            history_count: 500,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            problems(pw.validate()),
            [
                "minLength: minLength 2 is shorter than the 3 required character kinds",
                "historyCount: historyCount 500 is out of range; expected 0 to 100",
            ]
        );
        let pw = PasswordPolicy {
            min_length: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            problems(pw.validate()),
            ["minLength: minLength 0 is out of range; expected 1 to 256"]
        );
        assert!(PasswordPolicy::default().validate().is_empty());
        let session = SessionPolicy {
            idle_timeout: 600,
            absolute_timeout: 0,
            force_mfa: false,
        };
        assert_eq!(
            problems(session.validate()),
            [
                "absoluteTimeout: absoluteTimeout must be at least 1 minute",
                "idleTimeout: idleTimeout 600 is longer than absoluteTimeout 0, so it would never apply",
            ]
        );
        assert!(SessionPolicy::default().validate().is_empty());
        let role = Role {
            name: "ceo".into(),
            label: None,
            parent: Some("ceo".into()),
            description: None,
        };
        assert_eq!(
            problems(role.validate()),
            ["parent: a role cannot be its own parent"]
        );
    }

    #[test]
    fn password_check() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("Secret123"), Ok(()));
        assert_eq!(
            policy.check("abc"),
            Err(vec![
                "Password must be at least 8 characters long.".to_owned(),
                "Password must contain an uppercase letter.".to_owned(),
                "Password must contain a number.".to_owned(),
            ])
        );
        let strict = PasswordPolicy {
            require_symbols: true,
            min_length: 4,
            ..PasswordPolicy::default()
        };
        assert_eq!(strict.check("Ab1!"), Ok(()));
        assert_eq!(
            strict.check("Ab12"),
            Err(vec!["Password must contain a symbol.".to_owned()])
        );
        // Length counts characters, not bytes.
        let short = PasswordPolicy {
            min_length: 4,
            require_uppercase: false,
            require_numbers: false,
            ..PasswordPolicy::default()
        };
        assert!(short.check("ééé").is_err());
        assert!(short.check("éééé").is_ok());
    }

    #[test]
    fn sharing() {
        for (text, model) in [
            ("private", SharingModel::Private),
            ("public_read", SharingModel::PublicRead),
            ("read", SharingModel::PublicRead),
            ("public_read_write", SharingModel::PublicReadWrite),
            ("read_write", SharingModel::PublicReadWrite),
            ("full", SharingModel::PublicReadWrite),
            ("controlled_by_parent", SharingModel::ControlledByParent),
        ] {
            assert_eq!(
                serde_json::from_value::<SharingModel>(json!(text)).unwrap(),
                model,
                "{text}"
            );
        }
        assert_eq!(
            serde_json::to_value(SharingModel::PublicRead).unwrap(),
            json!("public_read")
        );

        let criteria: SharingRule = serde_json::from_value(json!({
            "type": "criteria", "name": "won_deals", "object": "opportunity",
            "condition": "stage = 'won'", "accessLevel": "read",
            "sharedWith": {"type": "role_and_subordinates", "value": "sales_manager"}
        }))
        .unwrap();
        assert!(
            matches!(&criteria, SharingRule::Criteria { condition, .. } if condition == "stage = 'won'")
        );
        assert_eq!(
            criteria.common().shared_with.kind,
            RecipientType::RoleAndSubordinates
        );
        assert!(criteria.common().active);
        assert!(criteria.validate().is_empty());
        let back: SharingRule =
            serde_json::from_value(serde_json::to_value(&criteria).unwrap()).unwrap();
        assert_eq!(back, criteria);

        let owner: SharingRule = serde_json::from_value(json!({
            "type": "owner", "name": "Team Share", "object": "account", "accessLevel": "edit",
            "ownedBy": {"type": "guest"}, "sharedWith": {"type": "group", "value": ""}
        }))
        .unwrap();
        assert_eq!(
            problems(owner.validate()),
            [
                "name: name \"Team Share\" is invalid; expected lowercase letters, digits and _, starting with a letter or _",
                "sharedWith.value: value is empty; name who is meant",
                "ownedBy.type: guest users do not own records; expected user, group, role or role_and_subordinates",
            ]
        );
        let empty: SharingRule = serde_json::from_value(json!({
            "type": "criteria", "name": "x", "object": "a", "condition": " ", "accessLevel": "full",
            "sharedWith": {"type": "role", "value": "Sales"}
        }))
        .unwrap();
        assert_eq!(
            problems(empty.validate()),
            [
                "sharedWith.value: name \"Sales\" is invalid; expected lowercase letters, digits and _, starting with a letter or _",
                "condition: condition is empty",
            ]
        );
        assert!(serde_json::from_value::<SharingRule>(json!({"type": "territory"})).is_err());
    }

    #[test]
    fn objectos_profile_conversion() {
        let perm: ObjectOsPermission = serde_json::from_value(json!({
            "name": "account_permission",
            "objectName": "account",
            "profiles": {
                "admin": {"allowRead": true, "allowCreate": true, "allowEdit": true, "allowDelete": true},
                "user": {
                    "allowRead": true, "allowCreate": true, "allowEdit": true,
                    "viewFilters": {"owner": "{{ userId }}", "status": {"$ne": "archived"}}
                },
                "guest": {"allowRead": true, "viewFilters": {"$or": [{"public": true}, {"name": {"$startsWith": "O'"}}]}}
            },
            "fieldPermissions": {
                "revenue": {"visibleTo": ["admin", "user"], "editableBy": ["admin"]},
                "notes": {}
            }
        }))
        .unwrap();
        assert!(perm.validate().is_empty(), "{:?}", perm.validate());
        let sets = perm.to_permission_sets();
        assert_eq!(
            sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["admin", "user", "guest"]
        );
        assert!(sets.iter().all(|s| s.is_profile && s.validate().is_empty()));

        let admin = &sets[0];
        assert!(admin.objects["account"].allow_delete);
        assert!(admin.row_level_security.is_empty());
        assert_eq!(
            admin.fields["account.revenue"],
            FieldPermission {
                readable: true,
                editable: true
            }
        );
        assert_eq!(
            admin.fields["account.notes"],
            FieldPermission {
                readable: true,
                editable: true
            }
        );

        let user = &sets[1];
        assert!(!user.objects["account"].allow_delete);
        assert_eq!(
            user.fields["account.revenue"],
            FieldPermission {
                readable: true,
                editable: false
            }
        );
        let policy = &user.row_level_security[0];
        assert_eq!(policy.name, "account_user_view_filters");
        assert_eq!(policy.operation, RlsOperation::Select);
        assert_eq!(policy.roles, ["user"]);
        assert_eq!(
            policy.using.as_deref(),
            Some("owner = current_user.id AND status <> 'archived'")
        );
        assert!(policy.validate().is_empty());

        let guest = &sets[2];
        assert_eq!(
            guest.fields["account.revenue"],
            FieldPermission {
                readable: false,
                editable: false
            }
        );
        assert_eq!(
            guest.fields["account.notes"],
            FieldPermission {
                readable: true,
                editable: false
            }
        );
        assert_eq!(
            guest.row_level_security[0].using.as_deref(),
            Some("public = true OR name LIKE 'O''%'")
        );

        // Sets of the same profile from two files add up.
        let mut merged = sets[1].clone();
        let mut other = PermissionSet::new("user");
        other.objects.insert(
            "contact".into(),
            ObjectPermission {
                allow_read: true,
                ..Default::default()
            },
        );
        other.objects.insert(
            "account".into(),
            ObjectPermission {
                allow_delete: true,
                ..Default::default()
            },
        );
        merged.merge(&other);
        assert!(merged.objects["account"].allow_delete && merged.objects["account"].allow_edit);
        assert!(merged.objects["contact"].allow_read);
    }

    #[test]
    fn objectos_profile_validation_and_fail_closed() {
        let perm: ObjectOsPermission = serde_json::from_value(json!({
            "name": "lead_permission",
            "objectName": "lead",
            "profiles": {
                "user": {"allowEdit": true, "viewFilters": {"owner": {"$gtx": 1}}},
                "Admin": {"allowRead": true}
            },
            "fieldPermissions": {
                "revenue": {"visibleTo": ["user"], "editableBy": ["manager", "Admin"]},
                "a.b": {}
            }
        }))
        .unwrap();
        assert_eq!(
            problems(perm.validate()),
            [
                "profiles.user.allowEdit: allowEdit needs allowRead",
                "profiles.user.viewFilters.owner: operator $gtx is unknown; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $between, $contains, $notContains, $startsWith, $endsWith, $null, $exists, $field, $not",
                "profiles.Admin: name \"Admin\" is invalid; expected lowercase letters, digits and _, starting with a letter or _",
                "fieldPermissions.revenue.editableBy[0]: profile manager is not one of this file's profiles",
                "fieldPermissions.revenue.editableBy[0]: profile manager may edit the field but is not in visibleTo",
                "fieldPermissions.revenue.editableBy[1]: profile Admin may edit the field but is not in visibleTo",
                "fieldPermissions.a.b: field name \"a.b\" is invalid; expected lowercase letters, digits and _, starting with a letter or _",
            ]
        );
        // A broken view filter denies instead of granting.
        let sets = perm.to_permission_sets();
        assert_eq!(
            sets[0].row_level_security[0].using.as_deref(),
            Some("false")
        );
        let empty = ObjectOsPermission {
            name: "x".into(),
            object_name: "x".into(),
            label: None,
            description: None,
            profiles: IndexMap::new(),
            field_permissions: IndexMap::new(),
        };
        assert_eq!(
            problems(empty.validate()),
            ["profiles: no profiles are given, so nobody gets access"]
        );
    }

    #[test]
    fn predicates_for_every_operator() {
        let cases = [
            (json!({"a": 1, "b": "x"}), "a = 1 AND b = 'x'"),
            (
                json!({"a": {"$in": ["x", 2]}, "b": {"$nin": [1]}}),
                "a IN ('x', 2) AND b NOT IN (1)",
            ),
            (json!({"a": {"$between": [1, 5]}}), "a BETWEEN 1 AND 5"),
            (
                json!({"a": {"$gt": 1, "$gte": 2, "$lt": 3, "$lte": 4}}),
                "a > 1 AND a >= 2 AND a < 3 AND a <= 4",
            ),
            (
                json!({"a": {"$contains": "x", "$notContains": "y", "$startsWith": "s", "$endsWith": "e"}}),
                "a LIKE '%x%' AND a NOT LIKE '%y%' AND a LIKE 's%' AND a LIKE '%e'",
            ),
            (
                json!({"a": null, "b": {"$null": false}, "c": {"$exists": false}, "d": {"$exists": true}}),
                "a IS NULL AND b IS NOT NULL AND c IS NULL AND d IS NOT NULL",
            ),
            (json!({"a": {"$field": "b"}}), "a = b"),
            (json!({"$not": {"a": 1}}), "NOT (a = 1)"),
            (
                json!({"$or": [{"a": 1}, {"b": 2, "c": 3}]}),
                "a = 1 OR (b = 2 AND c = 3)",
            ),
            (
                json!({"tenant": "{{spaceId}}", "u": "{{ user.email }}", "t": "{{ not valid }}"}),
                "tenant = current_user.tenant_id AND u = current_user.email AND t = '{{ not valid }}'",
            ),
        ];
        for (input, expected) in cases {
            let map: IndexMap<String, Value> = serde_json::from_value(input.clone()).unwrap();
            assert_eq!(
                view_filters_predicate(&map).as_deref(),
                Ok(expected),
                "{input}"
            );
        }
        assert_eq!(
            view_filters_predicate(&IndexMap::new()),
            Err((String::new(), "viewFilters is empty".to_owned()))
        );
    }

    #[test]
    fn role_hierarchy() {
        let role = |name: &str, parent: Option<&str>| Role {
            name: name.into(),
            label: None,
            parent: parent.map(Into::into),
            description: None,
        };
        let ok = [
            role("ceo", None),
            role("vp", Some("ceo")),
            role("rep", Some("vp")),
        ];
        assert!(check_role_hierarchy(&ok).is_empty());
        let bad = [
            role("a", Some("b")),
            role("b", Some("c")),
            role("c", Some("a")),
            role("d", Some("a")),
            role("e", Some("e")),
            role("f", Some("ghost")),
            role("d", None),
        ];
        assert_eq!(
            check_role_hierarchy(&bad),
            [
                "role d is defined more than once",
                "role f: parent role ghost does not exist",
                "role hierarchy has a cycle: a -> b -> c -> a",
                "role hierarchy has a cycle: e -> e",
            ]
        );
        let parsed: Role =
            serde_json::from_value(json!({"name": "vp", "label": "VP", "parent": "ceo"})).unwrap();
        assert_eq!(parsed.parent.as_deref(), Some("ceo"));
        assert!(parsed.validate().is_empty());
        assert!(
            is_valid_name("_x1")
                && !is_valid_name("1x")
                && !is_valid_name("")
                && !is_valid_name("aB")
        );
    }

    #[test]
    fn json_schemas_export() {
        for schema in [
            schemars::schema_for!(PermissionSet),
            schemars::schema_for!(RlsConfig),
            schemars::schema_for!(SharingRule),
            schemars::schema_for!(ObjectOsPermission),
            schemars::schema_for!(PasswordPolicy),
            schemars::schema_for!(SessionPolicy),
            schemars::schema_for!(Role),
        ] {
            let value = serde_json::to_value(&schema).unwrap();
            assert!(value.is_object());
        }
        let value = serde_json::to_value(schemars::schema_for!(PermissionSet)).unwrap();
        assert_eq!(value["required"], json!(["name"]));
        assert!(value["properties"].get("rowLevelSecurity").is_some());
    }
}
