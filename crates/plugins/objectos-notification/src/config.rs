//! The settings of the notification plugin: the `notifications:` section of `objectos.yml`
//! ([`crate::CONFIG_SECTION`]), checked by the server against [`NotificationSettings`] and
//! handed to the plugin at `init`.

use std::collections::BTreeMap;

use objectos_spec::settings::{PluginSettings, Secret, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The variable read for the SMTP password when `email.smtp.password` is not given.
pub const DEFAULT_PASSWORD_ENV: &str = "OBJECTOS_SMTP_PASSWORD";

/// How mail leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Stored and logged (recipient and subject only), never sent: the default, so a fresh
    /// server works without a mail server.
    #[default]
    Log,
    /// Sent to the SMTP server of `email.smtp`.
    Smtp,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on loopback or a test server only).
    None,
}

/// `notifications.email.smtp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// The port (default: 587 for `starttls`, 465 for `tls`, 25 for `none`).
    pub port: Option<u16>,
    pub security: Security,
    /// The user name for SMTP AUTH (none: no authentication).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The variable read for the password when `password` is not given.
    pub password_env: String,
    /// Seconds one SMTP conversation may take.
    pub timeout_seconds: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: None,
            security: Security::Starttls,
            username: None,
            password: None,
            password_env: DEFAULT_PASSWORD_ENV.to_owned(),
            timeout_seconds: 30,
        }
    }
}

impl SmtpSettings {
    /// The port to connect to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        })
    }

    /// The password: the setting, else the variable `passwordEnv` names.
    pub fn effective_password(&self) -> Option<Secret> {
        self.password.clone().or_else(|| {
            std::env::var(self.password_env.trim())
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        })
    }
}

/// Sender settings of one organization (`notifications.email.organizations.<id>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SenderSettings {
    pub from: Option<String>,
    pub reply_to: Option<String>,
}

/// `notifications.email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EmailSettings {
    pub transport: Transport,
    pub smtp: SmtpSettings,
    /// The sender (`ObjectOS <no-reply@example.com>`).
    pub from: String,
    pub reply_to: Option<String>,
    /// Per organization id: its own `from` and `replyTo`.
    pub organizations: BTreeMap<String, SenderSettings>,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            transport: Transport::Log,
            smtp: SmtpSettings::default(),
            from: "ObjectOS <no-reply@localhost>".to_owned(),
            reply_to: None,
            organizations: BTreeMap::new(),
        }
    }
}

/// `notifications.delivery`: how failed deliveries are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Attempts in all, the first included; then the message is `failed` (a dead letter).
    pub max_attempts: u32,
    /// Delay before the second attempt, in milliseconds; it doubles per attempt.
    pub backoff_ms: u64,
    /// Upper bound of one delay, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_ms: 10_000,
            max_backoff_ms: 3_600_000,
        }
    }
}

/// `notifications.webhook`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// The HMAC-SHA256 key of the `X-ObjectOS-Signature` header (webhooks are refused without
    /// one).
    pub secret: Option<Secret>,
    /// Seconds one delivery may take.
    pub timeout_seconds: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            secret: None,
            timeout_seconds: 10,
        }
    }
}

/// How an HTTP provider's body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/json`: the rendered `body` as is.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`: `body` must be a flat object (Twilio-like APIs).
    Form,
}

/// One SMS or push provider reached over HTTP (`notifications.sms`, `notifications.push`): a
/// request per message, its `url`, header values and the string leaves of `body` rendered
/// with handlebars from the message (`to`, `title`, `text`, `data`, `secret`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HttpProviderSettings {
    /// A name for logs and the delivery records (`twilio`, `fcm`).
    pub name: String,
    /// The endpoint (a template: `https://api.example.com/accounts/{{secret}}/messages`).
    pub url: String,
    /// `POST` (default) or `PUT`.
    pub method: String,
    /// Header values are templates too (`Authorization: "Bearer {{secret}}"`).
    pub headers: BTreeMap<String, String>,
    /// The credential exposed to the templates as `{{secret}}` (or `secretEnv`'s variable).
    pub secret: Option<Secret>,
    /// The variable read for the secret when `secret` is not given.
    pub secret_env: Option<String>,
    /// The body: any JSON value whose strings are templates.
    pub body: serde_json::Value,
    pub format: BodyFormat,
    /// The statuses meaning success (default: any 2xx).
    pub success_status: Vec<u16>,
    /// Seconds one request may take.
    pub timeout_seconds: u64,
}

impl Default for HttpProviderSettings {
    fn default() -> Self {
        Self {
            name: "http".to_owned(),
            url: String::new(),
            method: "POST".to_owned(),
            headers: BTreeMap::new(),
            secret: None,
            secret_env: None,
            body: serde_json::Value::Null,
            format: BodyFormat::Json,
            success_status: Vec::new(),
            timeout_seconds: 10,
        }
    }
}

impl HttpProviderSettings {
    /// The secret: the setting, else the variable `secretEnv` names.
    pub fn effective_secret(&self) -> Option<Secret> {
        self.secret.clone().or_else(|| {
            let var = self.secret_env.as_deref()?.trim();
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        })
    }

    fn problems(&self, at: &str, out: &mut Vec<SettingsProblem>) {
        if self.url.trim().is_empty() {
            out.push(SettingsProblem::at(
                &format!("{at}.url"),
                "the provider needs a `url`",
            ));
        } else if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            out.push(SettingsProblem::at(
                &format!("{at}.url"),
                format!("`{}` is not an http or https URL", self.url),
            ));
        }
        if !matches!(
            self.method.to_ascii_uppercase().as_str(),
            "POST" | "PUT" | "PATCH"
        ) {
            out.push(SettingsProblem::at(
                &format!("{at}.method"),
                format!("`{}`: expected POST, PUT or PATCH", self.method),
            ));
        }
        if self.format == BodyFormat::Form
            && !self
                .body
                .as_object()
                .is_some_and(|o| o.values().all(|v| !v.is_object() && !v.is_array()))
        {
            out.push(SettingsProblem::at(
                &format!("{at}.body"),
                "`format: form` needs a flat object body (field to value)",
            ));
        }
        if self.timeout_seconds == 0 {
            out.push(SettingsProblem::at(
                &format!("{at}.timeoutSeconds"),
                "0 is out of range; expected a number of seconds of at least 1",
            ));
        }
        if let Some(bad) = self
            .success_status
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            out.push(SettingsProblem::at(
                &format!("{at}.successStatus"),
                format!("{bad} is not an HTTP status"),
            ));
        }
        let mut templates: Vec<(String, &str)> = vec![(format!("{at}.url"), &self.url)];
        for (k, v) in &self.headers {
            templates.push((format!("{at}.headers.{k}"), v));
        }
        for (path, t) in templates {
            if let Err(e) = handlebars::Template::compile(t) {
                out.push(SettingsProblem::at(
                    &path,
                    format!("handlebars syntax error: {e}"),
                ));
            }
        }
        let mut leaves = Vec::new();
        crate::provider::string_leaves(&self.body, &format!("{at}.body"), &mut leaves);
        for (path, t) in leaves {
            if let Err(e) = handlebars::Template::compile(&t) {
                out.push(SettingsProblem::at(
                    &path,
                    format!("handlebars syntax error: {e}"),
                ));
            }
        }
    }
}

/// `notifications.unsubscribe`: the signed one-click links of non-essential mail.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UnsubscribeSettings {
    /// The server's public origin (`https://crm.example.com`); without it, mail carries no
    /// `List-Unsubscribe` header (a link must be absolute).
    pub base_url: Option<String>,
    /// The HMAC-SHA256 key of the links (16 characters at least); default: a random key kept
    /// in the database, so links survive restarts and work across nodes.
    pub secret: Option<Secret>,
}

/// The settings (camelCase keys).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NotificationSettings {
    pub email: EmailSettings,
    pub delivery: DeliverySettings,
    pub webhook: WebhookSettings,
    /// The SMS provider (none: SMS sends are refused).
    pub sms: Option<HttpProviderSettings>,
    /// The push provider (none: push sends are refused).
    pub push: Option<HttpProviderSettings>,
    pub unsubscribe: UnsubscribeSettings,
    /// The locale of templates when the request names none.
    pub default_locale: Option<String>,
}

fn address_problem(path: &str, value: &str) -> Option<SettingsProblem> {
    value.parse::<lettre::message::Mailbox>().err().map(|e| {
        SettingsProblem::at(
            path,
            format!("`{value}` is not an email address ({e}); expected `Name <user@example.com>` or `user@example.com`"),
        )
    })
}

impl PluginSettings for NotificationSettings {
    fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        let email = &self.email;
        out.extend(address_problem("email.from", &email.from));
        if let Some(r) = &email.reply_to {
            out.extend(address_problem("email.replyTo", r));
        }
        for (org, s) in &email.organizations {
            if let Some(f) = &s.from {
                out.extend(address_problem(
                    &format!("email.organizations.{org}.from"),
                    f,
                ));
            }
            if let Some(r) = &s.reply_to {
                out.extend(address_problem(
                    &format!("email.organizations.{org}.replyTo"),
                    r,
                ));
            }
        }
        if email.transport == Transport::Smtp && email.smtp.host.trim().is_empty() {
            out.push(SettingsProblem::at(
                "email.smtp.host",
                "`transport: smtp` needs the SMTP server's host name",
            ));
        }
        if email.smtp.timeout_seconds == 0 {
            out.push(SettingsProblem::at(
                "email.smtp.timeoutSeconds",
                "0 is out of range; expected a number of seconds of at least 1",
            ));
        }
        if self.delivery.max_attempts == 0 {
            out.push(SettingsProblem::at(
                "delivery.maxAttempts",
                "0 is out of range; expected at least 1",
            ));
        }
        if self.webhook.timeout_seconds == 0 {
            out.push(SettingsProblem::at(
                "webhook.timeoutSeconds",
                "0 is out of range; expected a number of seconds of at least 1",
            ));
        }
        if let Some(s) = &self.webhook.secret
            && s.expose().len() < 16
        {
            out.push(SettingsProblem::at(
                "webhook.secret",
                "the key is too short; expected at least 16 characters",
            ));
        }
        if let Some(s) = &self.unsubscribe.secret
            && s.expose().len() < 16
        {
            out.push(SettingsProblem::at(
                "unsubscribe.secret",
                "the key is too short; expected at least 16 characters",
            ));
        }
        if let Some(b) = &self.unsubscribe.base_url
            && !(b.starts_with("http://") || b.starts_with("https://"))
        {
            out.push(SettingsProblem::at(
                "unsubscribe.baseUrl",
                format!("`{b}` is not an http or https origin"),
            ));
        }
        if let Some(p) = &self.sms {
            p.problems("sms", &mut out);
        }
        if let Some(p) = &self.push {
            p.problems("push", &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::CONFIG_SECTION;
    use serde_json::json;

    #[test]
    fn the_section_fills_defaults_and_reports_every_problem() {
        let effective = (CONFIG_SECTION.check)(&serde_json::Value::Null).unwrap();
        assert_eq!(effective["email"]["transport"], "log");
        assert_eq!(effective["email"]["smtp"]["security"], "starttls");
        let problems = (CONFIG_SECTION.check)(&json!({
            "email": { "transport": "smtp", "from": "not an address" },
            "delivery": { "maxAttempts": 0 }
        }))
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let unknown =
            (CONFIG_SECTION.check)(&json!({ "email": { "smtp": { "hots": "x" } } })).unwrap_err();
        assert!(format!("{unknown:?}").contains("hots"), "{unknown:?}");
    }

    #[test]
    fn the_password_is_redacted() {
        let effective = (CONFIG_SECTION.check)(&json!({
            "email": { "smtp": { "host": "mail", "password": "hunter2" } }
        }))
        .unwrap();
        assert!(!effective.to_string().contains("hunter2"), "{effective}");
    }
}
