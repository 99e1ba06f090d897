//! Node address mapping: where to connect for an address a cluster node announces.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::{Arc, Mutex, PoisonError};

use redis::io::AsyncDNSResolver;
use redis::{RedisError, RedisFuture};
use tokio::sync::Notify;

type MapFn = dyn Fn(&str, u16) -> Option<(String, u16)> + Send + Sync;

#[derive(Clone)]
enum Kind {
    None,
    PublicHost,
    Custom(Arc<MapFn>),
}

/// Where to connect for a node address the cluster announces (in `CLUSTER SLOTS` and `MOVED`).
///
/// Azure Managed Redis with the OSS cluster policy announces internal addresses that clients
/// cannot reach; they map back to the public host name, keeping the announced port, and the TLS
/// server name is the public host name ([`AddressMapping::public_host`], the default for Azure
/// hosts). Other clusters announce reachable addresses ([`AddressMapping::none`], the default
/// for other hosts).
///
/// ```
/// use azure_redis_connect::cluster::AddressMapping;
///
/// let azure = AddressMapping::public_host();
/// assert_eq!(
///     azure.map("shop.westeurope.redis.azure.net", "10.0.1.7", 8501),
///     Some(("shop.westeurope.redis.azure.net".to_string(), 8501))
/// );
/// // The public host itself needs no mapping.
/// assert_eq!(azure.map("shop.westeurope.redis.azure.net", "shop.westeurope.redis.azure.net", 10000), None);
///
/// let gateway = AddressMapping::custom(|host, port| {
///     host.starts_with("10.").then(|| ("gateway.example".to_string(), port + 1000))
/// });
/// assert_eq!(gateway.map("ignored", "10.0.0.1", 7000), Some(("gateway.example".to_string(), 8000)));
/// assert_eq!(gateway.map("ignored", "node.example", 7000), None);
/// ```
#[derive(Clone)]
pub struct AddressMapping {
    kind: Kind,
}

impl fmt::Debug for AddressMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            Kind::None => "none",
            Kind::PublicHost => "public_host",
            Kind::Custom(_) => "custom",
        };
        f.debug_tuple("AddressMapping").field(&name).finish()
    }
}

impl AddressMapping {
    /// Connects to announced addresses as they are.
    pub fn none() -> AddressMapping {
        AddressMapping { kind: Kind::None }
    }

    /// Connects to the public host name (the endpoint's TLS server name, else its host) on the
    /// announced port, whatever host a node announces: Azure Managed Redis (OSS cluster policy).
    pub fn public_host() -> AddressMapping {
        AddressMapping {
            kind: Kind::PublicHost,
        }
    }

    /// Maps with a function of the announced host and port; `None` keeps the address.
    pub fn custom(
        f: impl Fn(&str, u16) -> Option<(String, u16)> + Send + Sync + 'static,
    ) -> AddressMapping {
        AddressMapping {
            kind: Kind::Custom(Arc::new(f)),
        }
    }

    /// Where to connect for `host:port` announced by a cluster whose public host is
    /// `public_host`; `None` when the address is used as it is.
    pub fn map(&self, public_host: &str, host: &str, port: u16) -> Option<(String, u16)> {
        let mapped = match &self.kind {
            Kind::None => None,
            Kind::PublicHost => Some((public_host.to_string(), port)),
            Kind::Custom(f) => f(host, port),
        };
        mapped.filter(|(h, p)| !(h.eq_ignore_ascii_case(host) && *p == port))
    }

    pub(crate) fn is_none(&self) -> bool {
        matches!(self.kind, Kind::None)
    }
}

/// A node address as `host:port` (IPv6 in brackets).
pub(crate) fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The mapping of one handle, what it has mapped so far, and the addresses it met unmapped.
pub(crate) struct Mapper {
    pub(crate) public_host: String,
    pub(crate) mapping: AddressMapping,
    /// Announced address -> connect address, as handed to redis-rs's `node_address_map`.
    known: Mutex<HashMap<(String, u16), (String, u16)>>,
    /// Announced addresses a connection was asked for before they were mapped.
    missing: Mutex<BTreeSet<(String, u16)>>,
    /// Woken when `missing` grows.
    pub(crate) remap: Notify,
}

impl Mapper {
    pub(crate) fn new(public_host: String, mapping: AddressMapping) -> Mapper {
        Mapper {
            public_host,
            mapping,
            known: Mutex::new(HashMap::new()),
            missing: Mutex::new(BTreeSet::new()),
            remap: Notify::new(),
        }
    }

    /// Adds the announced addresses (and those met unmapped) to the map; returns the whole map
    /// in redis-rs's form.
    pub(crate) fn extend(
        &self,
        announced: impl IntoIterator<Item = (String, u16)>,
    ) -> HashMap<redis::cluster::NodeAddress, redis::cluster::NodeAddress> {
        let missing = std::mem::take(&mut *lock(&self.missing));
        let mut known = lock(&self.known);
        for (host, port) in announced.into_iter().chain(missing) {
            if let Some(to) = self.mapping.map(&self.public_host, &host, port) {
                known.insert((host, port), to);
            }
        }
        known
            .iter()
            .map(|((h, p), (th, tp))| {
                (
                    redis::cluster::NodeAddress::new(h.as_str(), *p),
                    redis::cluster::NodeAddress::new(th.as_str(), *tp),
                )
            })
            .collect()
    }

    /// Whether the announced address `host:port` is in the map.
    pub(crate) fn knows(&self, host: &str, port: u16) -> bool {
        lock(&self.known).contains_key(&(host.to_string(), port))
    }

    /// Remembers `host:port` for the next rebuild and wakes the handle, unless it is mapped
    /// already (a connection built before it was asks again; the rebuilt one has it).
    pub(crate) fn note_missing(&self, host: &str, port: u16) {
        if !self.knows(host, port) {
            lock(&self.missing).insert((host.to_string(), port));
            self.remap.notify_one();
        }
    }

    /// Whether `host:port`, as announced, needs mapping that the map does not have yet.
    pub(crate) fn needs_mapping(&self, host: &str, port: u16) -> bool {
        self.unmapped(host, port).is_some() && !self.knows(host, port)
    }

    /// Whether addresses were met unmapped since the map was last extended.
    pub(crate) fn has_missing(&self) -> bool {
        !lock(&self.missing).is_empty()
    }

    pub(crate) fn mapped_nodes(&self) -> usize {
        lock(&self.known).len()
    }

    /// Whether a connection to `host:port` was asked for although the mapping would send it
    /// elsewhere: the address was announced after the map was built.
    fn unmapped(&self, host: &str, port: u16) -> Option<(String, u16)> {
        let known = lock(&self.known);
        let is_target = known
            .values()
            .any(|(h, p)| h.eq_ignore_ascii_case(host) && *p == port);
        if is_target || host.eq_ignore_ascii_case(&self.public_host) {
            return None;
        }
        self.mapping.map(&self.public_host, host, port)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection to an announced address that was not in the map yet: nothing was sent to it.
#[derive(Debug)]
struct Unmapped(String);

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unmapped {}

/// Whether `error` is a connection to an address that was not in the map yet.
pub(crate) fn is_unmapped(error: &RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    // redis-rs keeps an I/O error as an `Arc` of it and hands that out as the source.
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<Shared>())
        .and_then(|shared| shared.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::get_ref)
        .is_some_and(|inner| inner.is::<Unmapped>())
}

/// Resolves node host names for redis-rs: refuses addresses the mapping would send elsewhere
/// (and asks the handle to remap), never queries DNS for `.invalid` names (RFC 6761), and names
/// the address in every error.
pub(crate) struct NodeResolver(pub(crate) Arc<Mapper>);

impl AsyncDNSResolver for NodeResolver {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        Box::pin(async move {
            if let Some((to_host, to_port)) = self.0.unmapped(host, port) {
                // A connection built before the address was mapped asks again: the rebuilt one
                // has it, and the handle sends the request there.
                self.0.note_missing(host, port);
                let message = format!(
                    "cluster node {} is not in the address map yet; remapping it to {}",
                    display_addr(host, port),
                    display_addr(&to_host, to_port)
                );
                tracing::info!(node = %display_addr(host, port), "unmapped cluster node address; remapping");
                // `Unsupported` is an error redis-rs does not retry: the request fails at once,
                // instead of retrying for minutes a connection that cannot reach the node, and
                // the handle sends it again on the rebuilt connection.
                let error = std::io::Error::new(std::io::ErrorKind::Unsupported, Unmapped(message));
                return Err(error.into());
            }
            let addrs = resolve(host, port).await?;
            Ok(Box::new(addrs.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

/// Resolves `host:port`; the error names the address.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, RedisError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "invalid" || name.ends_with(".invalid") {
        return Err(unresolvable(host, port, "`.invalid` names never resolve").into());
    }
    let owned = host.to_string();
    let lookup =
        tokio::task::spawn_blocking(move || (owned.as_str(), port).to_socket_addrs()).await;
    match lookup {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(unresolvable(host, port, "no addresses").into())
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(unresolvable(host, port, &e.to_string()).into()),
        Err(e) => Err(unresolvable(host, port, &e.to_string()).into()),
    }
}

fn unresolvable(host: &str, port: u16, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "cannot resolve cluster node {} ({why})",
            display_addr(host, port)
        ),
    )
}

/// The announced `(host, port)` of every node in a `CLUSTER SLOTS` reply (primaries and
/// replicas); an empty host means the node that answered.
pub(crate) fn announced_nodes(
    slots: &redis::Value,
    answered_by: (&str, u16),
) -> Vec<(String, u16)> {
    let mut out = HashSet::new();
    let redis::Value::Array(ranges) = slots else {
        return Vec::new();
    };
    for range in ranges {
        let redis::Value::Array(items) = range else {
            continue;
        };
        for node in items.iter().skip(2) {
            let redis::Value::Array(fields) = node else {
                continue;
            };
            let host = match fields.first() {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let port = match fields.get(1) {
                Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
                _ => None,
            };
            let Some(port) = port else { continue };
            let host = if host.is_empty() {
                answered_by.0.to_string()
            } else {
                host
            };
            if host != "?" {
                out.insert((host, port));
            }
        }
    }
    let mut out: Vec<_> = out.into_iter().collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_errors_are_told_from_other_io_errors() {
        let unmapped = std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            Unmapped("node-3.internal.invalid:10000".into()),
        );
        assert!(is_unmapped(&RedisError::from(unmapped)));
        let other = std::io::Error::new(std::io::ErrorKind::Unsupported, "other");
        assert!(!is_unmapped(&RedisError::from(other)));
        assert!(!is_unmapped(&RedisError::from((
            redis::ErrorKind::Client,
            "not io"
        ))));
    }

    #[test]
    fn a_mapped_address_is_not_missing_again() {
        let m = Mapper::new(
            "cache.redis.azure.net".into(),
            AddressMapping::public_host(),
        );
        assert!(!m.knows("node-1.internal", 10000));
        assert!(!m.has_missing());
        lock(&m.missing).insert(("node-1.internal".into(), 10000));
        assert!(m.has_missing());
        let map = m.extend([("node-0.internal".to_string(), 10000)]);
        assert_eq!(map.len(), 2);
        assert!(m.knows("node-1.internal", 10000));
        assert!(!m.has_missing());
    }

    #[test]
    fn public_host_mapping_keeps_the_port_and_skips_the_public_host() {
        let m = AddressMapping::public_host();
        assert_eq!(
            m.map("pub.example", "10.0.0.4", 8500),
            Some(("pub.example".into(), 8500))
        );
        assert_eq!(m.map("pub.example", "PUB.example", 8500), None);
        assert_eq!(
            AddressMapping::none().map("pub.example", "10.0.0.4", 1),
            None
        );
    }

    #[test]
    fn announced_nodes_reads_cluster_slots() {
        use redis::Value::{Array, BulkString, Int};
        let node = |h: &str, p: i64| Array(vec![BulkString(h.as_bytes().to_vec()), Int(p)]);
        let reply = Array(vec![
            Array(vec![
                Int(0),
                Int(5460),
                node("node-0.internal.invalid", 8500),
                node("10.0.0.9", 8503),
            ]),
            Array(vec![Int(5461), Int(16383), node("", 8501)]),
            Array(vec![Int(1), Int(2), node("?", 1)]),
            Int(7),
        ]);
        assert_eq!(
            announced_nodes(&reply, ("seed", 10000)),
            vec![
                ("10.0.0.9".to_string(), 8503),
                ("node-0.internal.invalid".to_string(), 8500),
                ("seed".to_string(), 8501),
            ]
        );
        assert!(announced_nodes(&Int(1), ("seed", 1)).is_empty());
    }

    #[test]
    fn unmapped_addresses_are_refused_and_remembered() {
        let mapper = Mapper::new("pub.example".into(), AddressMapping::public_host());
        let map = mapper.extend([("10.0.0.1".to_string(), 8500)]);
        assert_eq!(map.len(), 1);
        assert_eq!(mapper.unmapped("pub.example", 8500), None);
        assert_eq!(
            mapper.unmapped("10.0.0.2", 8501),
            Some(("pub.example".into(), 8501))
        );
        let none = Mapper::new("pub.example".into(), AddressMapping::none());
        assert_eq!(none.unmapped("10.0.0.2", 8501), None);
    }

    #[tokio::test]
    async fn invalid_names_fail_without_a_lookup_and_name_the_address() {
        let err = resolve("node-1.internal.invalid", 8501).await.unwrap_err();
        assert!(
            err.to_string().contains("node-1.internal.invalid:8501"),
            "{err}"
        );
        assert_eq!(resolve("127.0.0.1", 1).await.unwrap().len(), 1);
    }
}
