//! The kernel context (spec `kernel/context`): identity and mode of a running instance.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the runtime behaves: development is verbose and forgiving, production strict, test deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeMode {
    #[default]
    Development,
    Production,
    Test,
    Provisioning,
    Preview,
}

impl RuntimeMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
            Self::Test => "test",
            Self::Provisioning => "provisioning",
            Self::Preview => "preview",
        }
    }
}

impl std::str::FromStr for RuntimeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" | "dev" => Ok(Self::Development),
            "production" | "prod" => Ok(Self::Production),
            "test" => Ok(Self::Test),
            "provisioning" => Ok(Self::Provisioning),
            "preview" => Ok(Self::Preview),
            other => Err(format!(
                "unknown mode `{other}`; expected development, production, test, provisioning or preview"
            )),
        }
    }
}

/// Identity of a running kernel (spec `KernelContext`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KernelContext {
    pub instance_id: String,
    pub mode: RuntimeMode,
    pub version: String,
    pub cwd: String,
    /// RFC 3339 start time.
    pub start_time: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub features: indexmap::IndexMap<String, bool>,
}
