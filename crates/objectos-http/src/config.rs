//! Settings of the HTTP server: listen address, body limit, CORS origins, compression, the
//! trusted proxies whose forwarding headers name the client, the origins trusted to send
//! cookie-authenticated writes, and HSTS.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// HTTP server settings (from `objectos.yml` `listen` and `http.*`, env, flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `host:port`; port 0 picks a free port (the bound address is reported by the plugin).
    pub listen: String,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub body_limit: u64,
    /// Allowed CORS origins. Empty means permissive (any origin), which suits development.
    pub cors_origins: Vec<String>,
    /// Compress responses (gzip, brotli, zstd, deflate) when the client accepts it.
    pub compression: bool,
    /// Seconds to wait for in-flight requests at shutdown before closing connections.
    pub shutdown_grace_secs: u64,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` / `Forwarded` headers are
    /// believed. Empty (the default): the TCP peer is the client and those headers are ignored.
    pub trusted_proxies: Vec<IpCidr>,
    /// Origins (`https://console.example.com`, normalized by [`parse_origin`]) whose pages may
    /// send writes authenticated by the session cookie, besides the server's own origin and the
    /// CORS origins (`http.trustedOrigins`).
    pub trusted_origins: Vec<String>,
    /// `Strict-Transport-Security: max-age=<this>` on every response when above 0
    /// (`http.hstsMaxAge`); for a server reached through a TLS-terminating proxy. 0 (the
    /// default) sends none: over plain HTTP the header would be ignored at best.
    pub hsts_max_age: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
            cors_origins: Vec::new(),
            compression: true,
            // Below the kernel's default 10 s destroy timeout, so the forced close happens here
            // rather than the kernel abandoning the destroy.
            shutdown_grace_secs: 8,
            trusted_proxies: Vec::new(),
            trusted_origins: Vec::new(),
            hsts_max_age: 0,
        }
    }
}

/// Checks and normalizes an origin as browsers send it in `Origin`: `http` or `https`, a host,
/// an optional port, nothing else. The result is lowercase, without a trailing slash and without
/// the scheme's default port, so it compares equal to what a browser sends.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "`{text}` is not an origin ({why}); expected e.g. `https://console.example.com` or `http://localhost:5173`"
        )
    };
    let t = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = t.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains(['/', '?', '#', '@', ' ']) || authority == "*" {
        return Err(bad("only scheme, host and port are allowed"));
    }
    let authority = strip_default_port(scheme, authority);
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(bad("the port is not a number"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// `authority` without `:80` for http or `:443` for https (browsers never send those).
pub(crate) fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// An IP address range (`10.0.0.0/8`, `fd00::/8`) or a single address (`127.0.0.1`, `::1`).
/// Host bits below the prefix are cleared, so `10.1.2.3/8` is `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    network: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// Whether `ip` is in the range; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a
    /// dual-stack socket reports IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `bits` with everything below the first `prefix` bits cleared (a shift by the full width
/// would overflow, hence the zero prefix apart).
fn mask_v4(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for IpCidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!(
                "`{text}` is not an IP address or CIDR range; expected e.g. `10.0.0.1`, `10.0.0.0/8` or `fd00::/8`"
            )
        })?;
        // A v4-mapped address is the IPv4 address it maps, as the peers it is matched against.
        let ip = ip.to_canonical();
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                format!("`{text}` has prefix length `{p}`; expected a number from 0 to {max}")
            })?,
        };
        let network = match ip {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(u32::from(v4), prefix).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(u128::from(v6), prefix).into()),
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn origins_are_normalized_and_checked() {
        assert_eq!(
            parse_origin("HTTPS://Console.Example.com/").unwrap(),
            "https://console.example.com"
        );
        assert_eq!(
            parse_origin("https://a.example:443").unwrap(),
            "https://a.example"
        );
        assert_eq!(
            parse_origin("http://localhost:5173").unwrap(),
            "http://localhost:5173"
        );
        assert_eq!(parse_origin("http://[::1]:80").unwrap(), "http://[::1]");
        for bad in [
            "",
            "console.example.com",
            "ftp://a.example",
            "https://",
            "https://a.example/app",
            "https://a.example?x",
            "https://user@a.example",
            "https://a.example:x",
            "*",
            "https://*",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_ranges() {
        let net: IpCidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.9")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let host: IpCidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let any: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("203.0.113.9")));
        let v6: IpCidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(
            "::/0"
                .parse::<IpCidr>()
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "proxy.local",
            "10.0.0.0/x",
            "10.0.0.0/",
        ] {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad}");
        }
    }
}
