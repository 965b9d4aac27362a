//! Object metadata: ObjectSchema, Field, FieldType, validation rules, indexes.
//!
//! These are the spec's `data/{object,field,validation}` shapes (3.x/4.x keys, camelCase on the wire,
//! snake_case aliases accepted) plus the ObjectOS extras (`default`, `blackbox`, `type: object`,
//! object-level `hidden`). Load user files with [`load_object`], which validates the located tree first
//! and reports every problem with its YAML path and line.

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub(crate) mod check;
mod validate;

pub use validate::load_object;
pub(crate) use validate::{ObjectFacts, load_object_with_facts};

/// Fields every object has without declaring them. Drivers fill them; clients cannot set them.
pub const SYSTEM_FIELDS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "owner_id",
    "organization_id",
];

/// True for the names in [`SYSTEM_FIELDS`].
pub fn is_system_field(name: &str) -> bool {
    SYSTEM_FIELDS.contains(&name)
}

/// True when `name` is a valid object, field or rule name: `^[a-z_][a-z0-9_]*$`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// The spec's field types (44), the 17.x additions and the ObjectOS `object` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    // Text.
    Text,
    Textarea,
    Email,
    Url,
    Phone,
    Password,
    Markdown,
    Html,
    Richtext,
    // Numbers and dates.
    Number,
    Currency,
    Percent,
    Date,
    Datetime,
    Time,
    // Choices and flags.
    Boolean,
    Toggle,
    Select,
    Multiselect,
    Radio,
    Checkboxes,
    // References.
    Lookup,
    MasterDetail,
    Tree,
    // Media.
    Image,
    File,
    Avatar,
    Video,
    Audio,
    // Computed.
    Formula,
    Summary,
    Autonumber,
    // Other.
    Location,
    Address,
    Code,
    Json,
    Color,
    Rating,
    Slider,
    Signature,
    Qrcode,
    Progress,
    Tags,
    Vector,
    // 17.x additions.
    Secret,
    User,
    Composite,
    Repeater,
    Record,
    /// ObjectOS `type: object` (usually with `blackbox: true`): treated like `json`.
    Object,
}

/// How a field's value is stored by the data engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    DateTime,
    Time,
    /// Arrays, objects and structured values.
    Json,
    /// The id of a record of another (or the same) object.
    ReferenceId,
}

impl FieldType {
    /// Every field type, in the order the spec lists them, then the 17.x and ObjectOS extras.
    pub const ALL: &'static [FieldType] = &[
        Self::Text,
        Self::Textarea,
        Self::Email,
        Self::Url,
        Self::Phone,
        Self::Password,
        Self::Markdown,
        Self::Html,
        Self::Richtext,
        Self::Number,
        Self::Currency,
        Self::Percent,
        Self::Date,
        Self::Datetime,
        Self::Time,
        Self::Boolean,
        Self::Toggle,
        Self::Select,
        Self::Multiselect,
        Self::Radio,
        Self::Checkboxes,
        Self::Lookup,
        Self::MasterDetail,
        Self::Tree,
        Self::Image,
        Self::File,
        Self::Avatar,
        Self::Video,
        Self::Audio,
        Self::Formula,
        Self::Summary,
        Self::Autonumber,
        Self::Location,
        Self::Address,
        Self::Code,
        Self::Json,
        Self::Color,
        Self::Rating,
        Self::Slider,
        Self::Signature,
        Self::Qrcode,
        Self::Progress,
        Self::Tags,
        Self::Vector,
        Self::Secret,
        Self::User,
        Self::Composite,
        Self::Repeater,
        Self::Record,
        Self::Object,
    ];

    /// The spelling used in metadata files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Textarea => "textarea",
            Self::Email => "email",
            Self::Url => "url",
            Self::Phone => "phone",
            Self::Password => "password",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Richtext => "richtext",
            Self::Number => "number",
            Self::Currency => "currency",
            Self::Percent => "percent",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::Time => "time",
            Self::Boolean => "boolean",
            Self::Toggle => "toggle",
            Self::Select => "select",
            Self::Multiselect => "multiselect",
            Self::Radio => "radio",
            Self::Checkboxes => "checkboxes",
            Self::Lookup => "lookup",
            Self::MasterDetail => "master_detail",
            Self::Tree => "tree",
            Self::Image => "image",
            Self::File => "file",
            Self::Avatar => "avatar",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Formula => "formula",
            Self::Summary => "summary",
            Self::Autonumber => "autonumber",
            Self::Location => "location",
            Self::Address => "address",
            Self::Code => "code",
            Self::Json => "json",
            Self::Color => "color",
            Self::Rating => "rating",
            Self::Slider => "slider",
            Self::Signature => "signature",
            Self::Qrcode => "qrcode",
            Self::Progress => "progress",
            Self::Tags => "tags",
            Self::Vector => "vector",
            Self::Secret => "secret",
            Self::User => "user",
            Self::Composite => "composite",
            Self::Repeater => "repeater",
            Self::Record => "record",
            Self::Object => "object",
        }
    }

    /// The type spelled `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Formula, summary and autonumber: values the engine computes, never written by clients.
    pub const fn is_computed(self) -> bool {
        matches!(self, Self::Formula | Self::Summary | Self::Autonumber)
    }

    /// Types whose value is the id of another record: lookup, master_detail, tree and user.
    pub const fn is_reference(self) -> bool {
        matches!(
            self,
            Self::Lookup | Self::MasterDetail | Self::Tree | Self::User
        )
    }

    /// Reference types that must name their target object in `reference`.
    pub const fn requires_reference(self) -> bool {
        matches!(self, Self::Lookup | Self::MasterDetail)
    }

    /// Types that pick from `options`.
    pub const fn is_choice(self) -> bool {
        matches!(
            self,
            Self::Select | Self::Multiselect | Self::Radio | Self::Checkboxes
        )
    }

    /// Types holding several choices at once.
    pub const fn is_multi_choice(self) -> bool {
        matches!(self, Self::Multiselect | Self::Checkboxes)
    }

    /// Types holding text, for which `maxLength`/`minLength` apply.
    pub const fn is_text(self) -> bool {
        matches!(
            self,
            Self::Text
                | Self::Textarea
                | Self::Email
                | Self::Url
                | Self::Phone
                | Self::Password
                | Self::Markdown
                | Self::Html
                | Self::Richtext
                | Self::Code
                | Self::Secret
                | Self::Color
                | Self::Qrcode
                | Self::Signature
        )
    }

    /// Types holding a number, for which `min`/`max`/`precision`/`scale` apply.
    pub const fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Number
                | Self::Currency
                | Self::Percent
                | Self::Rating
                | Self::Slider
                | Self::Progress
        )
    }

    /// Uploaded media.
    pub const fn is_media(self) -> bool {
        matches!(
            self,
            Self::Image | Self::File | Self::Avatar | Self::Video | Self::Audio
        )
    }

    /// How a single value of this type is stored; `None` for virtual types computed on read
    /// (formula, summary). See [`Field::storage`] for the effect of `multiple` and `scale`.
    pub const fn storage(self) -> Option<Storage> {
        Some(match self {
            Self::Formula | Self::Summary => return None,
            Self::Number | Self::Currency | Self::Percent | Self::Slider | Self::Progress => {
                Storage::Decimal
            }
            Self::Rating => Storage::Integer,
            Self::Date => Storage::Date,
            Self::Datetime => Storage::DateTime,
            Self::Time => Storage::Time,
            Self::Boolean | Self::Toggle => Storage::Boolean,
            Self::Lookup | Self::MasterDetail | Self::Tree | Self::User => Storage::ReferenceId,
            Self::Multiselect
            | Self::Checkboxes
            | Self::Tags
            | Self::Location
            | Self::Address
            | Self::Json
            | Self::Vector
            | Self::Composite
            | Self::Repeater
            | Self::Record
            | Self::Object => Storage::Json,
            Self::Text
            | Self::Textarea
            | Self::Email
            | Self::Url
            | Self::Phone
            | Self::Password
            | Self::Markdown
            | Self::Html
            | Self::Richtext
            | Self::Select
            | Self::Radio
            | Self::Image
            | Self::File
            | Self::Avatar
            | Self::Video
            | Self::Audio
            | Self::Autonumber
            | Self::Code
            | Self::Color
            | Self::Signature
            | Self::Qrcode
            | Self::Secret => Storage::Text,
        })
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FieldType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unknown field type `{s}`"))
    }
}

/// What happens to records pointing at a deleted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeleteBehavior {
    #[default]
    SetNull,
    Cascade,
    Restrict,
}

/// Aggregate function of a summary (roll-up) field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SummaryFunction {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// `summaryOperations` of a summary field: aggregate `field` of the child `object`'s records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryOperations {
    /// The child object whose records are aggregated.
    pub object: String,
    /// The child field aggregated; not needed for `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub function: SummaryFunction,
    /// ObjectOS extension: which child records a reader's value covers, `visible` (the default:
    /// those the reader may see) or `all`.
    #[serde(default, skip_serializing_if = "SummaryScope::is_visible")]
    pub scope: SummaryScope,
}

/// Which child records a summary covers for the reader (`summaryOperations.scope`, an ObjectOS
/// extension to the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SummaryScope {
    /// The children the reader may see: the child object's permissions, sharing, row-level and
    /// field-level security apply as if the reader ran the aggregate on the child object. The
    /// default, so a roll-up never reveals a hidden child.
    #[default]
    Visible,
    /// Every child of the record in its organization, whoever reads it, like a Salesforce
    /// roll-up summary. An explicit opt-in: the total then includes children the reader cannot see.
    All,
}

impl SummaryScope {
    pub fn is_visible(&self) -> bool {
        *self == Self::Visible
    }
}

/// One choice of a select-like field. Files may also write a plain string, which is both label and value.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SelectOption {
    pub label: String,
    /// Stored value; lowercase.
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Preselected for new records.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

impl<'de> Deserialize<'de> for SelectOption {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Full {
            label: Option<String>,
            value: String,
            #[serde(default)]
            color: Option<String>,
            #[serde(default)]
            default: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Plain(String),
            Full(Full),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Plain(s) => SelectOption {
                label: s.clone(),
                value: s,
                color: None,
                default: false,
            },
            Repr::Full(f) => SelectOption {
                label: f.label.unwrap_or_else(|| f.value.clone()),
                value: f.value,
                color: f.color,
                default: f.default,
            },
        })
    }
}

/// `vectorConfig` of a vector field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VectorConfig {
    pub dimensions: u32,
    /// `cosine`, `euclidean` or `dot_product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_metric: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One field of an object (spec `data/field.zod.ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    /// API name; filled from the key of the `fields` map.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The field type (`type` in files).
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Display or input format hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub searchable: bool,
    /// Holds a list of values (ids for references, choices for select).
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiple: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    #[serde(default, alias = "read_only", skip_serializing_if = "is_false")]
    pub readonly: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub index: bool,
    #[serde(default, alias = "external_id", skip_serializing_if = "is_false")]
    pub external_id: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub sortable: bool,
    /// Value for new records (ObjectOS files write `default`).
    #[serde(
        default,
        alias = "default",
        alias = "default_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_value: Option<Value>,
    #[serde(default, alias = "max_length", skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, alias = "min_length", skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// Total digits of a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    /// Digits after the decimal point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<SelectOption>,
    /// Target object of a reference field.
    #[serde(
        default,
        alias = "reference_to",
        skip_serializing_if = "Option::is_none"
    )]
    pub reference: Option<String>,
    #[serde(
        default,
        alias = "reference_filters",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reference_filters: Vec<Value>,
    #[serde(
        default,
        alias = "delete_behavior",
        skip_serializing_if = "Option::is_none"
    )]
    pub delete_behavior: Option<DeleteBehavior>,
    /// Formula of a formula field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(
        default,
        alias = "summary_operations",
        skip_serializing_if = "Option::is_none"
    )]
    pub summary_operations: Option<SummaryOperations>,
    /// Pattern of an autonumber field, e.g. `CASE-{0000}`.
    #[serde(
        default,
        alias = "autonumber_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub autonumber_format: Option<String>,
    /// ObjectOS: an opaque JSON value that is stored as is.
    #[serde(default, skip_serializing_if = "is_false")]
    pub blackbox: bool,
    /// Field group (section) the field is shown in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(
        default,
        alias = "inline_help_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub inline_help_text: Option<String>,
    /// Formula that makes the field required when true.
    #[serde(
        default,
        alias = "conditional_required",
        skip_serializing_if = "Option::is_none"
    )]
    pub conditional_required: Option<String>,
    #[serde(default, alias = "audit_trail", skip_serializing_if = "is_false")]
    pub audit_trail: bool,
    /// Fields this one depends on (UI refresh, formula inputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    #[serde(
        default,
        alias = "currency_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency_config: Option<Value>,
    #[serde(
        default,
        alias = "vector_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub vector_config: Option<VectorConfig>,
    #[serde(
        default,
        alias = "file_attachment_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_attachment_config: Option<Value>,
    #[serde(
        default,
        alias = "encryption_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub encryption_config: Option<Value>,
    #[serde(
        default,
        alias = "masking_rule",
        skip_serializing_if = "Option::is_none"
    )]
    pub masking_rule: Option<Value>,
    /// Keys this version does not know; kept so they round-trip.
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

impl Field {
    /// A field of type `kind` named `name` with every other key at its default.
    pub fn new(name: impl Into<String>, kind: FieldType) -> Self {
        Self {
            name: name.into(),
            label: None,
            kind,
            description: None,
            format: None,
            required: false,
            searchable: false,
            multiple: false,
            unique: false,
            hidden: false,
            readonly: false,
            index: false,
            external_id: false,
            sortable: true,
            default_value: None,
            max_length: None,
            min_length: None,
            precision: None,
            scale: None,
            min: None,
            max: None,
            step: None,
            options: Vec::new(),
            reference: None,
            reference_filters: Vec::new(),
            delete_behavior: None,
            expression: None,
            summary_operations: None,
            autonumber_format: None,
            blackbox: false,
            group: None,
            inline_help_text: None,
            conditional_required: None,
            audit_trail: false,
            dependencies: Vec::new(),
            currency_config: None,
            vector_config: None,
            file_attachment_config: None,
            encryption_config: None,
            masking_rule: None,
            extra: IndexMap::new(),
        }
    }

    /// The label, or the name when there is none.
    pub fn display_label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// How the value is stored: `None` for virtual fields; `Json` for multi-valued fields; `Integer`
    /// for numbers with `scale: 0`.
    pub fn storage(&self) -> Option<Storage> {
        let base = self.kind.storage()?;
        if self.multiple && base != Storage::Json {
            return Some(Storage::Json);
        }
        if base == Storage::Decimal && self.scale == Some(0) {
            return Some(Storage::Integer);
        }
        Some(base)
    }

    /// Computed by the engine (formula, summary, autonumber).
    pub fn is_computed(&self) -> bool {
        self.kind.is_computed()
    }

    /// The object this field points at: `reference` for lookups, `object` itself for a tree
    /// without `reference`, `user` for user fields; `None` for non-reference fields.
    pub fn reference_target<'a>(&'a self, object: &'a str) -> Option<&'a str> {
        match self.kind {
            FieldType::Lookup | FieldType::MasterDetail => self.reference.as_deref(),
            FieldType::Tree => Some(self.reference.as_deref().unwrap_or(object)),
            FieldType::User => Some(self.reference.as_deref().unwrap_or("user")),
            _ => None,
        }
    }

    /// What deleting the referenced record does (`set_null` when unset).
    pub fn delete_behavior(&self) -> DeleteBehavior {
        self.delete_behavior.unwrap_or_default()
    }

    /// The stored values of `options`, in order.
    pub fn option_values(&self) -> impl Iterator<Item = &str> {
        self.options.iter().map(|o| o.value.as_str())
    }

    /// The option marked `default: true`, if any.
    pub fn default_option(&self) -> Option<&SelectOption> {
        self.options.iter().find(|o| o.default)
    }
}

/// `type` of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndexType {
    #[default]
    Btree,
    Hash,
    Gin,
    Gist,
    Fulltext,
}

/// A database index on one or more fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Index {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub fields: Vec<String>,
    #[serde(rename = "type", default)]
    pub kind: IndexType,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// Condition of a partial index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
}

/// When a validation rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleEvent {
    Insert,
    Update,
    Delete,
}

/// How a failing rule is reported: errors reject the write, warnings and infos are returned with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleSeverity {
    #[default]
    Error,
    Warning,
    Info,
}

fn default_rule_events() -> Vec<RuleEvent> {
    vec![RuleEvent::Insert, RuleEvent::Update]
}

fn default_priority() -> i64 {
    100
}

/// A validation rule (spec `data/validation.zod.ts`): shared keys plus the kind-specific ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRule {
    /// Rule name; required at the top level, optional inside `conditional`.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Text shown to the user when the rule fails.
    #[serde(default)]
    pub message: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "default_rule_events")]
    pub events: Vec<RuleEvent>,
    /// Lower runs first.
    #[serde(default = "default_priority")]
    pub priority: i64,
    #[serde(default)]
    pub severity: RuleSeverity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(flatten)]
    pub rule: RuleKind,
}

impl ValidationRule {
    /// True when the rule runs on `event`.
    pub fn runs_on(&self, event: RuleEvent) -> bool {
        self.active && self.events.contains(&event)
    }
}

/// The kind-specific part of a validation rule, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum RuleKind {
    /// Fails when `condition` is TRUE.
    Script { condition: String },
    /// The combination of `fields` is unique (within `scope` when given).
    Unique {
        fields: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        #[serde(default = "yes")]
        case_sensitive: bool,
    },
    /// `field` may only move along `transitions` (`from: [to, ...]`).
    StateMachine {
        field: String,
        transitions: IndexMap<String, Vec<String>>,
    },
    /// `field` matches `regex` or a named `format` (email, url, phone, json).
    Format {
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        regex: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
    },
    /// Fails when `condition` over several `fields` is TRUE.
    CrossField {
        condition: String,
        fields: Vec<String>,
    },
    /// `field` holds JSON matching `schema`.
    JsonSchema { field: String, schema: Value },
    /// `field` is checked by a remote validator.
    Async {
        field: String,
        #[serde(
            default,
            alias = "validator_url",
            skip_serializing_if = "Option::is_none"
        )]
        validator_url: Option<String>,
        #[serde(
            default,
            alias = "validator_function",
            skip_serializing_if = "Option::is_none"
        )]
        validator_function: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// Milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        debounce: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        headers: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<Value>,
    },
    /// A registered handler decides.
    Custom {
        handler: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<Value>,
    },
    /// Applies `then` when `when` is true, otherwise `otherwise`.
    Conditional {
        when: String,
        then: Box<ValidationRule>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        otherwise: Option<Box<ValidationRule>>,
    },
}

impl RuleKind {
    /// Every `type` value.
    pub const TYPES: &'static [&'static str] = &[
        "script",
        "unique",
        "state_machine",
        "format",
        "cross_field",
        "json_schema",
        "async",
        "custom",
        "conditional",
    ];

    /// The `type` spelling.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::Script { .. } => "script",
            Self::Unique { .. } => "unique",
            Self::StateMachine { .. } => "state_machine",
            Self::Format { .. } => "format",
            Self::CrossField { .. } => "cross_field",
            Self::JsonSchema { .. } => "json_schema",
            Self::Async { .. } => "async",
            Self::Custom { .. } => "custom",
            Self::Conditional { .. } => "conditional",
        }
    }
}

/// API operations an object exposes (`enable.apiMethods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiMethod {
    Get,
    List,
    Create,
    Update,
    Delete,
    Upsert,
    Bulk,
    Aggregate,
    History,
    Search,
    Restore,
    Purge,
    Import,
    Export,
}

impl ApiMethod {
    pub const NAMES: &'static [&'static str] = &[
        "get",
        "list",
        "create",
        "update",
        "delete",
        "upsert",
        "bulk",
        "aggregate",
        "history",
        "search",
        "restore",
        "purge",
        "import",
        "export",
    ];
}

/// Feature switches of an object (`enable`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCapabilities {
    #[serde(default, alias = "track_history")]
    pub track_history: bool,
    #[serde(default)]
    pub files: bool,
    #[serde(default)]
    pub feeds: bool,
    #[serde(default)]
    pub activities: bool,
    #[serde(default = "yes")]
    pub searchable: bool,
    #[serde(default = "yes", alias = "api_enabled")]
    pub api_enabled: bool,
    #[serde(default = "yes")]
    pub trash: bool,
    #[serde(default = "yes")]
    pub mru: bool,
    #[serde(default = "yes")]
    pub clone: bool,
    /// Operations exposed; all of them when absent.
    #[serde(
        default,
        alias = "api_methods",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_methods: Option<Vec<ApiMethod>>,
}

impl Default for ObjectCapabilities {
    fn default() -> Self {
        Self {
            track_history: false,
            files: false,
            feeds: false,
            activities: false,
            searchable: true,
            api_enabled: true,
            trash: true,
            mru: true,
            clone: true,
            api_methods: None,
        }
    }
}

impl ObjectCapabilities {
    /// True when the API exposes `method`.
    pub fn allows(&self, method: ApiMethod) -> bool {
        self.api_enabled
            && self
                .api_methods
                .as_ref()
                .is_none_or(|m| m.contains(&method))
    }
}

/// How tenants' records are separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenancyStrategy {
    #[default]
    Shared,
    Isolated,
    Hybrid,
}

fn default_tenant_field() -> String {
    "tenant_id".to_owned()
}

/// `tenancy` of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenancy {
    #[serde(default)]
    pub strategy: TenancyStrategy,
    #[serde(default = "default_tenant_field", alias = "tenant_field")]
    pub tenant_field: String,
}

/// `softDelete` of an object: deleted records keep a timestamp in `field` instead of vanishing.
/// Files may write `softDelete: true`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SoftDelete {
    pub enabled: bool,
    pub field: String,
}

impl<'de> Deserialize<'de> for SoftDelete {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Full {
            #[serde(default = "yes")]
            enabled: bool,
            #[serde(default)]
            field: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Flag(bool),
            Full(Full),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Flag(enabled) => SoftDelete {
                enabled,
                field: "deleted_at".to_owned(),
            },
            Repr::Full(f) => SoftDelete {
                enabled: f.enabled,
                field: f.field.unwrap_or_else(|| "deleted_at".to_owned()),
            },
        })
    }
}

/// How the record name is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordNameType {
    #[default]
    Text,
    Autonumber,
}

/// `recordName` of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordName {
    #[serde(rename = "type", default)]
    pub kind: RecordNameType,
    #[serde(
        default,
        alias = "display_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_format: Option<String>,
    #[serde(
        default,
        alias = "start_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_number: Option<u64>,
}

/// Org-wide default sharing of an object's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SharingModel {
    Private,
    Read,
    ReadWrite,
    Full,
    PublicRead,
    PublicReadWrite,
    ControlledByParent,
}

impl SharingModel {
    pub const NAMES: &'static [&'static str] = &[
        "private",
        "read",
        "read_write",
        "full",
        "public_read",
        "public_read_write",
        "controlled_by_parent",
    ];
}

fn deserialize_fields<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<IndexMap<String, Field>, D::Error> {
    let mut fields = IndexMap::<String, Field>::deserialize(deserializer)?;
    for (key, field) in &mut fields {
        if field.name.is_empty() {
            field.name.clone_from(key);
        }
    }
    Ok(fields)
}

/// An object definition (spec `data/object.zod.ts`, ObjectOS `*.object.yml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSchema {
    /// API name, `^[a-z_][a-z0-9_]*$`; immutable.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(
        default,
        alias = "plural_label",
        skip_serializing_if = "Option::is_none"
    )]
    pub plural_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default, alias = "is_system", skip_serializing_if = "is_false")]
    pub is_system: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub r#abstract: bool,
    /// Datasource name; `default` when absent (see [`ObjectSchema::datasource_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasource: Option<String>,
    /// Physical table (3.x); the object name when absent (see [`ObjectSchema::table_name`]).
    #[serde(default, alias = "table_name", skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// Fields in declaration order; each field's `name` equals its key.
    #[serde(default, deserialize_with = "deserialize_fields")]
    pub fields: IndexMap<String, Field>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<ValidationRule>,
    #[serde(
        default,
        alias = "state_machines",
        skip_serializing_if = "Option::is_none"
    )]
    pub state_machines: Option<Value>,
    #[serde(
        default,
        alias = "field_groups",
        skip_serializing_if = "Option::is_none"
    )]
    pub field_groups: Option<Value>,
    #[serde(
        default,
        alias = "display_name_field",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name_field: Option<String>,
    /// Record title template such as `{name} - {stage}`.
    #[serde(
        default,
        alias = "title_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub title_format: Option<String>,
    #[serde(
        default,
        alias = "record_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub record_name: Option<RecordName>,
    #[serde(
        default,
        alias = "compact_layout",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub compact_layout: Vec<String>,
    #[serde(
        default,
        alias = "record_types",
        skip_serializing_if = "Option::is_none"
    )]
    pub record_types: Option<Value>,
    #[serde(default, alias = "key_prefix", skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Value>,
    #[serde(
        default,
        alias = "sharing_model",
        skip_serializing_if = "Option::is_none"
    )]
    pub sharing_model: Option<SharingModel>,
    #[serde(default)]
    pub enable: ObjectCapabilities,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<Tenancy>,
    #[serde(
        default,
        alias = "soft_delete",
        skip_serializing_if = "Option::is_none"
    )]
    pub soft_delete: Option<SoftDelete>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc: Option<Value>,
    /// ObjectOS: not listed in navigation or metadata listings.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Value>,
    /// Keys this version does not know; kept so they round-trip.
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

impl ObjectSchema {
    /// An object named `name` with no fields and every other key at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            label: None,
            plural_label: None,
            description: None,
            icon: None,
            tags: Vec::new(),
            active: true,
            is_system: false,
            r#abstract: false,
            datasource: None,
            table_name: None,
            fields: IndexMap::new(),
            indexes: Vec::new(),
            validations: Vec::new(),
            state_machines: None,
            field_groups: None,
            display_name_field: None,
            title_format: None,
            record_name: None,
            compact_layout: Vec::new(),
            record_types: None,
            key_prefix: None,
            search: None,
            sharing_model: None,
            enable: ObjectCapabilities::default(),
            tenancy: None,
            soft_delete: None,
            versioning: None,
            partitioning: None,
            cdc: None,
            hidden: false,
            actions: None,
            extra: IndexMap::new(),
        }
    }

    /// Adds (or replaces) a field, keeping declaration order; the field's name is set to `name`.
    pub fn with_field(mut self, name: impl Into<String>, mut field: Field) -> Self {
        let name = name.into();
        field.name.clone_from(&name);
        self.fields.insert(name, field);
        self
    }

    /// The declared field `name` (system fields are not declared; see [`is_system_field`]).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.get(name)
    }

    /// True when `name` is a declared field or a system field.
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.contains_key(name) || is_system_field(name)
    }

    /// Declared fields in declaration order.
    pub fn iter_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.values()
    }

    /// Declared fields that have a column (everything but formula and summary).
    pub fn stored_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.values().filter(|f| f.storage().is_some())
    }

    /// Reference fields with their target object, in declaration order.
    pub fn references(&self) -> impl Iterator<Item = (&Field, &str)> {
        self.fields
            .values()
            .filter_map(|f| f.reference_target(&self.name).map(|t| (f, t)))
    }

    /// The physical table: `tableName`, else the object name.
    pub fn table_name(&self) -> &str {
        self.table_name.as_deref().unwrap_or(&self.name)
    }

    /// The datasource: `datasource`, else `default`.
    pub fn datasource_name(&self) -> &str {
        self.datasource.as_deref().unwrap_or("default")
    }

    /// The label, or the name when there is none.
    pub fn display_label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// The field used as a record's title: `displayNameField`, else a `name` field, else none.
    pub fn display_name_field(&self) -> Option<&str> {
        self.display_name_field
            .as_deref()
            .or_else(|| self.fields.contains_key("name").then_some("name"))
    }

    /// The soft-delete column when soft delete is on.
    pub fn soft_delete_field(&self) -> Option<&str> {
        self.soft_delete
            .as_ref()
            .filter(|s| s.enabled)
            .map(|s| s.field.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_spec_types_are_listed() {
        assert_eq!(FieldType::ALL.len(), 44 + 5 + 1);
        for t in FieldType::ALL {
            assert_eq!(FieldType::parse(t.as_str()), Some(*t));
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json, Value::String(t.as_str().to_owned()));
        }
    }

    #[test]
    fn storage_classification() {
        assert_eq!(FieldType::Formula.storage(), None);
        assert_eq!(FieldType::Lookup.storage(), Some(Storage::ReferenceId));
        let mut f = Field::new("tags", FieldType::Lookup);
        f.multiple = true;
        assert_eq!(f.storage(), Some(Storage::Json));
        let mut n = Field::new("qty", FieldType::Number);
        n.scale = Some(0);
        assert_eq!(n.storage(), Some(Storage::Integer));
        assert_eq!(FieldType::Object.storage(), Some(Storage::Json));
    }

    #[test]
    fn names() {
        assert!(is_valid_name("_id") && is_valid_name("a1_b"));
        assert!(!is_valid_name("") && !is_valid_name("1a") && !is_valid_name("aB"));
    }

    #[test]
    fn deserializes_objectos_spellings() {
        let v = serde_json::json!({
            "name": "t",
            "fields": {
                "s": { "type": "select", "options": ["a", {"label": "B", "value": "b"}], "default": "a" },
                "o": { "type": "object", "blackbox": true },
            },
            "soft_delete": true,
        });
        let o: ObjectSchema = serde_json::from_value(v).unwrap();
        let s = o.field("s").unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.option_values().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.default_value, Some(Value::String("a".into())));
        assert_eq!(o.soft_delete_field(), Some("deleted_at"));
        assert!(o.enable.allows(ApiMethod::Delete));
        assert_eq!(o.table_name(), "t");
    }
}
