//! Where the cache is: host, port, TLS and database, with Azure's defaults.

use std::fmt;
use std::net::Ipv6Addr;

/// Which Azure service a host name belongs to, judged by its DNS suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Service {
    /// Azure Cache for Redis (`*.redis.cache.windows.net` and the sovereign clouds' suffixes):
    /// TLS on port 6380.
    CacheForRedis,
    /// Azure Managed Redis (`*.redis.azure.net`, and `*.redisenterprise.cache.azure.net` of the
    /// older Azure Cache for Redis Enterprise tiers it grew from): TLS on port 10000.
    ManagedRedis,
    /// Any other host (a local emulator, a self-hosted server).
    Other,
}

const CACHE_FOR_REDIS_SUFFIXES: &[&str] = &[
    ".redis.cache.windows.net",
    ".redis.cache.chinacloudapi.cn",
    ".redis.cache.usgovcloudapi.net",
    ".redis.cache.cloudapi.de",
];
const MANAGED_REDIS_SUFFIXES: &[&str] = &[
    ".redis.azure.net",
    ".redis.azure.cn",
    // Azure Cache for Redis Enterprise / Enterprise Flash: the same Redis Enterprise runtime,
    // TLS on 10000, the same cluster policies.
    ".redisenterprise.cache.azure.net",
];

impl Service {
    /// The service a host name belongs to.
    ///
    /// ```
    /// use azure_redis_connect::config::Service;
    /// assert_eq!(Service::of_host("shop.redis.cache.windows.net"), Service::CacheForRedis);
    /// assert_eq!(Service::of_host("shop.westeurope.redis.azure.net"), Service::ManagedRedis);
    /// assert_eq!(
    ///     Service::of_host("shop.westeurope.redisenterprise.cache.azure.net"),
    ///     Service::ManagedRedis
    /// );
    /// assert_eq!(Service::of_host("localhost"), Service::Other);
    /// ```
    pub fn of_host(host: &str) -> Service {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if CACHE_FOR_REDIS_SUFFIXES.iter().any(|s| host.ends_with(s)) {
            Service::CacheForRedis
        } else if MANAGED_REDIS_SUFFIXES.iter().any(|s| host.ends_with(s)) {
            Service::ManagedRedis
        } else {
            Service::Other
        }
    }

    /// The TLS port the service listens on, if it is an Azure service.
    pub const fn default_tls_port(self) -> Option<u16> {
        match self {
            Service::CacheForRedis => Some(6380),
            Service::ManagedRedis => Some(10000),
            Service::Other => None,
        }
    }
}

/// The port used for a non-Azure host when none is given: 6380 with TLS, as Azure Cache for Redis.
pub const DEFAULT_TLS_PORT: u16 = 6380;
/// The port used for a non-Azure host without TLS when none is given.
pub const DEFAULT_PLAIN_PORT: u16 = 6379;

/// Where to connect: host, port, whether to use TLS, and which database to select.
///
/// ```
/// use azure_redis_connect::Endpoint;
/// let amr = Endpoint::new("shop.westeurope.redis.azure.net");
/// assert_eq!((amr.port, amr.tls), (10000, true));
/// let acr = Endpoint::new("shop.redis.cache.windows.net");
/// assert_eq!((acr.port, acr.tls), (6380, true));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address, without brackets for IPv6.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the connection uses TLS.
    pub tls: bool,
    /// Database index to `SELECT` (0 unless given).
    pub database: i64,
    /// Name to verify the server certificate against, when it differs from `host`
    /// (StackExchange's `sslHost`).
    pub tls_server_name: Option<String>,
}

impl Endpoint {
    /// An endpoint for `host` with Azure's defaults: TLS, on the port of the service the host
    /// belongs to (6380 for Azure Cache for Redis and unknown hosts, 10000 for Azure Managed
    /// Redis), database 0.
    pub fn new(host: impl Into<String>) -> Endpoint {
        let host = host.into();
        let port = Service::of_host(&host)
            .default_tls_port()
            .unwrap_or(DEFAULT_TLS_PORT);
        Endpoint {
            host,
            port,
            tls: true,
            database: 0,
            tls_server_name: None,
        }
    }

    /// The Azure service this endpoint belongs to.
    pub fn service(&self) -> Service {
        Service::of_host(&self.host)
    }

    /// The port for `host` when none is given, with TLS on or off.
    pub(crate) fn default_port(host: &str, tls: bool) -> u16 {
        match Service::of_host(host).default_tls_port() {
            Some(port) if tls => port,
            _ if tls => DEFAULT_TLS_PORT,
            _ => DEFAULT_PLAIN_PORT,
        }
    }
}

impl fmt::Display for Endpoint {
    /// `rediss://host:port/db` (`redis://` without TLS); never carries credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        if self.host.contains(':') {
            write!(
                f,
                "{scheme}://[{}]:{}/{}",
                self.host, self.port, self.database
            )
        } else {
            write!(
                f,
                "{scheme}://{}:{}/{}",
                self.host, self.port, self.database
            )
        }
    }
}

/// Why a host (with optional port) could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Nothing but whitespace.
    #[error("the host name is empty")]
    Empty,
    /// `[` without its closing `]`.
    #[error("an IPv6 address opened with `[` is not closed with `]`")]
    UnclosedBracket,
    /// A port that is not a number from 1 to 65535.
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
    /// Characters that cannot appear in a host name.
    #[error("the host name contains a character that cannot appear in a host name")]
    BadCharacter,
    /// Written like an IPv6 address (in `[...]`, or with more than one `:`) but not one, such
    /// as `host:6380:6380` or `redis:host:6380`.
    #[error(
        "the host is written like an IPv6 address (in `[...]` or with more than one `:`) but is \
         not one: an IPv6 address with a port is written `[addr]:port`, a single port `host:port`, \
         and a URL starts with `redis://` or `rediss://`"
    )]
    NotIpv6,
}

/// Whether `host` is an IPv6 address, optionally with a `%zone`.
fn is_ipv6(host: &str) -> bool {
    let addr = host.split_once('%').map_or(host, |(addr, _zone)| addr);
    addr.parse::<Ipv6Addr>().is_ok()
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`, trimming whitespace.
///
/// Only an IPv6 address may hold more than one `:` or stand in brackets: `host:6380:6380` and
/// `redis:host:6380` (a URL without `//`) are refused rather than taken as odd host names.
pub(crate) fn split_host_port(input: &str) -> Result<(String, Option<u16>), HostError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(HostError::Empty);
    }
    let (host, port) = if let Some(rest) = input.strip_prefix('[') {
        let close = rest.find(']').ok_or(HostError::UnclosedBracket)?;
        let host = &rest[..close];
        if !host.is_empty() && !is_ipv6(host) {
            return Err(HostError::NotIpv6);
        }
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(HostError::BadCharacter),
        };
        (host, port)
    } else if input.matches(':').count() > 1 {
        // A bare IPv6 address: no port can be told apart from it.
        if !is_ipv6(input) {
            return Err(HostError::NotIpv6);
        }
        (input, None)
    } else {
        match input.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (input, None),
        }
    };
    if host.is_empty() {
        return Err(HostError::Empty);
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%');
    if !host.chars().all(allowed) {
        return Err(HostError::BadCharacter);
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(HostError::BadPort),
            Ok(port) => Some(port),
        },
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_and_port() {
        let ok = |s: &str| split_host_port(s).unwrap();
        assert_eq!(ok("localhost"), ("localhost".into(), None));
        assert_eq!(
            ok(" shop.redis.cache.windows.net:6380 "),
            ("shop.redis.cache.windows.net".into(), Some(6380))
        );
        assert_eq!(ok("[::1]:7000"), ("::1".into(), Some(7000)));
        assert_eq!(ok("[::1]"), ("::1".into(), None));
        assert_eq!(ok("::1"), ("::1".into(), None));
        assert_eq!(split_host_port(""), Err(HostError::Empty));
        assert_eq!(split_host_port(":6380"), Err(HostError::Empty));
        assert_eq!(split_host_port("[::1"), Err(HostError::UnclosedBracket));
        assert_eq!(split_host_port("h:0"), Err(HostError::BadPort));
        assert_eq!(split_host_port("h:70000"), Err(HostError::BadPort));
        assert_eq!(split_host_port("h:"), Err(HostError::BadPort));
        assert_eq!(split_host_port("a b"), Err(HostError::BadCharacter));
        assert_eq!(split_host_port("u@h"), Err(HostError::BadCharacter));
    }

    #[test]
    fn only_an_ipv6_address_holds_several_colons_or_brackets() {
        let ok = |s: &str| split_host_port(s).unwrap();
        assert_eq!(ok("fe80::1%eth0"), ("fe80::1%eth0".into(), None));
        assert_eq!(
            ok("[2001:db8::7]:10000"),
            ("2001:db8::7".into(), Some(10000))
        );
        for odd in [
            "host:6380:6380",
            "redis:host:1",
            "rediss:shop.redis.cache.windows.net:6380",
            "a:b:c",
            "[host]:6380",
            "[host:6380]",
            ":::",
        ] {
            assert_eq!(split_host_port(odd), Err(HostError::NotIpv6), "{odd}");
        }
    }

    #[test]
    fn azure_defaults_follow_the_host_suffix() {
        assert_eq!(Endpoint::new("x.redis.cache.chinacloudapi.cn").port, 6380);
        assert_eq!(Endpoint::new("X.EASTUS.REDIS.AZURE.NET").port, 10000);
        assert_eq!(Endpoint::new("localhost").port, 6380);
        assert_eq!(Endpoint::default_port("localhost", false), 6379);
        assert_eq!(Endpoint::default_port("a.redis.azure.net", true), 10000);
        // The Enterprise tiers' older suffix is Azure Managed Redis too.
        let enterprise = "shop.westeurope.redisenterprise.cache.azure.net";
        assert_eq!(Service::of_host(enterprise), Service::ManagedRedis);
        assert_eq!(Endpoint::new(enterprise).port, 10000);
        assert_eq!(Endpoint::default_port(enterprise, true), 10000);
        // Not a suffix match: a name that merely contains it.
        assert_eq!(
            Service::of_host("redisenterprise.cache.azure.net.example.com"),
            Service::Other
        );
        assert_eq!(Endpoint::new("::1").to_string(), "rediss://[::1]:6380/0");
    }
}
