//! How a cluster connection is made: the seed (the public endpoint), discovery of the announced
//! node addresses, and redis-rs's cluster client with every address mapped.

use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClientBuilder, NodeAddress};
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionInfo, ErrorKind, PushInfo, RedisError, RedisResult, Value};
use tokio::sync::mpsc;

use super::mapping::{self, Mapper, NodeResolver, display_addr};
use crate::config::Endpoint;
use crate::conn::ConnectError;
use crate::handle;
use crate::token::{Credentials, RedisCredentials, TokenProvider};

/// First wait between redis-rs's retries of a request (after a redirection or a connection
/// error), in milliseconds; they double to [`MAX_RETRY_WAIT_MS`].
const MIN_RETRY_WAIT_MS: u64 = 50;
/// Longest wait between redis-rs's retries of a request, in milliseconds: a request that
/// cannot reach its node fails within seconds (redis-rs's own waits grow to minutes).
const MAX_RETRY_WAIT_MS: u64 = 1000;

/// Opens cluster connections: what one is built from.
pub(super) struct Connector {
    pub(super) endpoint: Endpoint,
    pub(super) mapper: Arc<Mapper>,
    pub(super) root_ca_pem: Option<Vec<u8>>,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Option<Duration>,
    pub(super) resp3: bool,
    pub(super) retries: Option<u32>,
    pub(super) push_sender: Option<mpsc::UnboundedSender<PushInfo>>,
}

impl Connector {
    /// The public endpoint, as redis-rs connects to it (the TLS server name is its host), with
    /// `credentials` if given.
    fn seed(&self, credentials: Option<&Credentials>) -> RedisResult<ConnectionInfo> {
        handle::connection_info(
            &self.mapper.public_host,
            self.endpoint.port,
            self.endpoint.tls,
            0,
            self.resp3,
            credentials,
        )
    }

    /// Asks the public endpoint for the node addresses the cluster announces (`CLUSTER SLOTS`,
    /// allowed to every Azure data access policy) over one connection of its own.
    pub(super) async fn discover(
        &self,
        credentials: &Credentials,
    ) -> RedisResult<Vec<(String, u16)>> {
        let client = handle::client(self.seed(Some(credentials))?, self.root_ca_pem.as_deref())?;
        let (config, _) =
            handle::connection_config(self.connect_timeout, Some(self.connect_timeout), false);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        let announced =
            mapping::announced_nodes(&slots, (&self.mapper.public_host, self.endpoint.port));
        if announced.is_empty() {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "CLUSTER SLOTS names no nodes",
            )));
        }
        tracing::debug!(nodes = announced.len(), "cluster nodes discovered");
        Ok(announced)
    }

    /// Fails with the first announced address that, mapped, does not resolve: before any
    /// connection to a node is attempted.
    pub(super) async fn check_resolvable(
        &self,
        announced: &[(String, u16)],
    ) -> Result<(), ConnectError> {
        for (host, port) in announced {
            let (to_host, to_port) = self
                .mapper
                .mapping
                .map(&self.mapper.public_host, host, *port)
                .unwrap_or_else(|| (host.clone(), *port));
            if let Err(error) = mapping::resolve(&to_host, to_port).await {
                let hint = if self.mapper.mapping.is_none() {
                    "; Azure Managed Redis announces internal node addresses: map them to the public host with `AddressMapping::public_host()`"
                } else {
                    ""
                };
                return Err(ConnectError::Redis {
                    endpoint: display_addr(host, *port),
                    source: RedisError::from((
                        ErrorKind::Io,
                        "the cluster announces a node address that cannot be reached",
                        format!("{error}{hint}"),
                    )),
                });
            }
        }
        Ok(())
    }

    /// Builds the handle's cluster client with every announced address mapped and connects
    /// it. The handle re-AUTHs every node itself on each refresh (see the module root):
    /// redis-rs takes the current token for each new node connection, and only a new one
    /// that arrives while such a connection is being set up.
    pub(super) async fn open(
        &self,
        announced: &[(String, u16)],
        provider: &TokenProvider,
    ) -> RedisResult<ClusterConnection> {
        let credentials = RedisCredentials::first_only(provider.clone(), self.connect_timeout);
        self.open_with(announced, credentials, true).await
    }

    /// A cluster connection of its own for one task: redis-rs re-AUTHs each of its node
    /// connections with every new token; no response timeout (the dedicated connection times
    /// its commands itself) and no pushes.
    pub(super) async fn open_dedicated(
        &self,
        announced: &[(String, u16)],
        provider: &TokenProvider,
    ) -> RedisResult<ClusterConnection> {
        let credentials = provider
            .redis_credentials()
            .first_wait(self.connect_timeout);
        self.open_with(announced, credentials, false).await
    }

    /// Builds a cluster client with every announced address mapped and `credentials`, and
    /// connects it; with the response timeout and push sender of the handle if `shared`.
    async fn open_with(
        &self,
        announced: &[(String, u16)],
        credentials: RedisCredentials,
        shared: bool,
    ) -> RedisResult<ClusterConnection> {
        let map: std::collections::HashMap<NodeAddress, NodeAddress> =
            self.mapper.extend(announced.iter().cloned());
        let mut builder = ClusterClientBuilder::new(vec![self.seed(None)?])
            // A request redirected to a node the map does not have yet is soon sent again on
            // the rebuilt connection.
            .min_retry_wait(MIN_RETRY_WAIT_MS)
            .max_retry_wait(MAX_RETRY_WAIT_MS)
            .retry_wait_formula(MIN_RETRY_WAIT_MS, 2)
            .connection_timeout(self.connect_timeout)
            .use_protocol(handle::protocol(self.resp3))
            .node_address_map(map)
            .async_dns_resolver(NodeResolver(Arc::clone(&self.mapper)))
            .set_credentials_provider(credentials);
        // redis-rs bounds a whole request, retries included, by its response timeout.
        if let Some(timeout) = self.response_timeout.filter(|_| shared) {
            builder = builder.response_timeout(timeout);
        }
        if let Some(retries) = self.retries {
            builder = builder.retries(retries);
        }
        if let Some(sender) = self.push_sender.as_ref().filter(|_| shared) {
            builder = builder.push_sender(sender.clone());
        }
        if self.endpoint.tls
            && let Some(roots) = handle::tls_roots(self.root_ca_pem.as_deref())
        {
            builder = builder.certs(roots);
        }
        builder.build()?.get_async_connection().await
    }
}
