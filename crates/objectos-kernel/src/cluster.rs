//! Where this node sits in a deployment: its id and the shared services (Redis, RabbitMQ) that
//! plugins reach other nodes through.
//!
//! The host fills it from `objectos.yml`'s `cluster` section and the `OBJECTOS_*` variables
//! (`KernelBuilder::cluster`); every plugin reads it through `cx.cluster()`. The kernel only
//! carries it: which plugin uses which URL is the plugins' business, and a plugin that finds no
//! URL runs its embedded default.

use std::fmt;

use objectos_spec::settings::Secret;

/// This node's identity and the URLs of the services shared between nodes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Unique per running node; names the node in events, leases and logs.
    pub node_id: String,
    /// `redis://` or `rediss://`; cache invalidations and the cross-node event bus.
    pub redis_url: Option<Secret>,
    /// `amqp://` or `amqps://`; the distributed job queue.
    pub amqp_url: Option<Secret>,
}

impl ClusterSettings {
    /// A single node with a generated id and no shared services.
    pub fn single_node() -> Self {
        Self {
            node_id: default_node_id(),
            redis_url: None,
            amqp_url: None,
        }
    }

    /// True when any shared service is configured, i.e. this node expects peers.
    pub fn is_clustered(&self) -> bool {
        self.redis_url.is_some() || self.amqp_url.is_some()
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self::single_node()
    }
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords: only say whether each is set.
        f.debug_struct("ClusterSettings")
            .field("node_id", &self.node_id)
            .field("redis", &self.redis_url.is_some())
            .field("amqp", &self.amqp_url.is_some())
            .finish()
    }
}

/// `<host>-<pid>-<random>`: readable in logs, and unique even when two nodes share a host
/// (the random part also separates a restarted process that got the same pid).
pub fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "node".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

/// Replaces the password of a URL such as `postgres://user:secret@host/db` or
/// `redis://:secret@host:6379` with `***`, for logs, health reports and `--print-config`.
/// The user name stays (it says which account); a URL without a password is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}://{}:***@{}{}",
        &url[..scheme_end],
        &userinfo[..colon],
        &authority[at + 1..],
        &rest[authority_end..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact_url("postgres://u:p@h/db?x=@"),
            "postgres://u:***@h/db?x=@"
        );
    }

    #[test]
    fn debug_hides_urls() {
        let s = ClusterSettings {
            node_id: "n1".into(),
            redis_url: Some(Secret::new("redis://:pw@h")),
            amqp_url: None,
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(s.is_clustered());
        assert!(!ClusterSettings::single_node().is_clustered());
    }
}
