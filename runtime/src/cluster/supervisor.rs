//! The cluster handle's supervisor: re-AUTH of every node on each new token, keepalive and
//! topology watch, and a rebuilt cluster connection when a node keeps refusing the token, an
//! unmapped address shows up, or the connection stops answering.
//!
//! Like the single-node supervisor it holds only a `Weak` to the handle's state while it waits
//! ([`crate::task`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisError, RedisResult, Value};
use tokio::sync::mpsc;

use super::Inner;
use super::mapping::{self, Mapper, display_addr};
use crate::handle::{self, Attempt, TokenWatch};
use crate::task::{TaskOwner, spawn_owned};
use crate::telemetry::{self, HandleKind, RedisOperation, Unanswered};
use crate::token::Credentials;
use tracing::Instrument as _;

/// How long a burst of unmapped addresses (one per node) may gather before one rebuild maps
/// them all.
const REMAP_GATHER: Duration = Duration::from_millis(100);

/// Starts the supervisor of `inner`.
pub(super) fn start(
    inner: &Arc<Inner>,
    unresponsive: mpsc::UnboundedReceiver<u64>,
    keepalive: Option<Duration>,
) -> TaskOwner {
    let supervisor = Supervisor {
        inner: Arc::downgrade(inner),
        mapper: Arc::clone(&inner.connector.mapper),
        tokens: TokenWatch::new(&inner.provider),
        unresponsive,
        keepalive: handle::keepalive_ticks(keepalive),
    };
    spawn_owned(supervisor.run())
}

struct Supervisor {
    inner: Weak<Inner>,
    mapper: Arc<Mapper>,
    tokens: TokenWatch,
    /// Epochs of connections on which a request got no reply in time.
    unresponsive: mpsc::UnboundedReceiver<u64>,
    keepalive: Option<tokio::time::Interval>,
}

enum Event {
    Token,
    Remap,
    Unresponsive(u64),
    Tick,
}

impl Supervisor {
    async fn run(mut self) {
        let mut rebuild_wanted = false;
        let mut failures = 0u32;
        loop {
            if rebuild_wanted {
                match self.rebuild().await {
                    Some(Ok(())) => {
                        rebuild_wanted = false;
                        failures = 0;
                    }
                    Some(Err(error)) => {
                        failures += 1;
                        if !self
                            .tokens
                            .back_off(failures, "cluster connection", &error)
                            .await
                        {
                            return;
                        }
                        continue;
                    }
                    None => return,
                }
            }
            let Some((inner, event)) = self.next_event().await else {
                return;
            };
            match event {
                Event::Token => {
                    let credentials = self.tokens.latest();
                    if !inner.reauth_all(&credentials).await {
                        tracing::warn!(
                            "a node keeps refusing the new token; rebuilding the cluster connection"
                        );
                        rebuild_wanted = true;
                    }
                }
                Event::Remap => {
                    drop(inner);
                    tokio::time::sleep(REMAP_GATHER).await;
                    // A wake-up for addresses the last rebuild mapped already wants nothing.
                    rebuild_wanted = self.mapper.has_missing();
                }
                Event::Unresponsive(epoch) => {
                    if epoch == inner.epoch.load(Ordering::Acquire) {
                        inner.note_unresponsive(Unanswered::Command);
                        rebuild_wanted = true;
                    }
                }
                Event::Tick => {
                    if inner.ping_all().await {
                        inner.watch_topology().await;
                    } else {
                        inner.note_unresponsive(Unanswered::Keepalive);
                        rebuild_wanted = true;
                    }
                }
            }
        }
    }

    /// The next event, with the state to act on it; `None` once the handle is gone.
    async fn next_event(&mut self) -> Option<(Arc<Inner>, Event)> {
        let event = tokio::select! {
            changed = self.tokens.changed() => changed.then_some(Event::Token)?,
            () = self.mapper.remap.notified() => Event::Remap,
            epoch = self.unresponsive.recv() => Event::Unresponsive(epoch?),
            () = handle::next_tick(&mut self.keepalive) => Event::Tick,
        };
        Some((self.inner.upgrade()?, event))
    }

    /// Rebuilds the cluster connection with the current token, first waiting for a new token
    /// while the current one has expired. `None` once the handle is gone.
    async fn rebuild(&mut self) -> Option<RedisResult<()>> {
        self.tokens.unexpired("cluster connection").await?;
        let inner = self.inner.upgrade()?;
        let span = telemetry::redis_span(RedisOperation::Reconnect, &inner.connector.endpoint);
        let rebuilt = inner.rebuild().instrument(span.clone()).await;
        if let Err(error) = &rebuilt {
            telemetry::record_redis_error(&span, error);
        }
        Some(rebuilt)
    }
}

impl Inner {
    /// Counts and logs a connection replaced because it stopped answering.
    fn note_unresponsive(&self, what: Unanswered) {
        self.counters
            .unresponsive_replaced
            .fetch_add(1, Ordering::Relaxed);
        telemetry::count_unresponsive_replaced(HandleKind::Cluster, &self.connector.endpoint, what);
        let why = match what {
            Unanswered::Command => "a request got no reply in time",
            Unanswered::Keepalive => "the keepalive PING got no reply in time",
        };
        tracing::warn!(
            why,
            "the cluster connection stopped answering; rebuilding it"
        );
    }

    /// Keeps idle node connections open (redis-rs repairs a node connection that a `PING`
    /// finds dropped). Returns `false` when the `PING` got no reply within the response timeout
    /// from some node: a node whose peer vanished, which redis-rs would keep using.
    async fn ping_all(&self) -> bool {
        let (_, mut conn) = self.current();
        let all_nodes = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
        let ping = conn.route_command(redis::cmd("PING"), all_nodes);
        let limit = self.connector.response_timeout.unwrap_or(self.auth_timeout);
        match tokio::time::timeout(limit, ping).await {
            Ok(Ok(_)) => {
                tracing::trace!("keepalive PING");
                true
            }
            Ok(Err(error)) if error.is_timeout() && self.connector.response_timeout.is_some() => {
                false
            }
            Ok(Err(error)) => {
                tracing::debug!(error = %error, "keepalive PING failed");
                true
            }
            Err(_) if self.connector.response_timeout.is_some() => false,
            Err(_) => {
                tracing::debug!("keepalive PING unanswered yet");
                true
            }
        }
    }

    /// Asks a node for `CLUSTER SLOTS` and has every announced address that needs mapping
    /// mapped by a rebuild, before a request is redirected there: primaries and replicas added
    /// since the connection was built.
    async fn watch_topology(&self) {
        let (_, mut conn) = self.current();
        let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let slots = conn.route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), random);
        let Ok(Ok(slots)) = tokio::time::timeout(self.auth_timeout, slots).await else {
            return;
        };
        let mapper = &self.connector.mapper;
        let seed = (mapper.public_host.as_str(), self.connector.endpoint.port);
        for (host, port) in mapping::announced_nodes(&slots, seed) {
            if mapper.needs_mapping(&host, port) {
                tracing::info!(node = %display_addr(&host, port), "new cluster node announced");
                mapper.note_missing(&host, port);
            }
        }
    }

    /// Re-AUTHs every node connection with `credentials`, retrying the round while a node
    /// refuses or does not answer. Returns whether every node accepted.
    ///
    /// Retries go to all nodes again (AUTH is idempotent): redis-rs answers a refused AUTH
    /// routed to a single node by replacing that node's connection, whereas a multi-node route
    /// hands each node's reply back as it is.
    async fn reauth_all(&self, credentials: &Credentials) -> bool {
        let span = telemetry::redis_span(RedisOperation::Reauth, &self.connector.endpoint);
        let accepted = self
            .reauth_rounds(credentials)
            .instrument(span.clone())
            .await;
        if !accepted {
            telemetry::record_failure(&span, "reauth_refused");
        }
        accepted
    }

    async fn reauth_rounds(&self, credentials: &Credentials) -> bool {
        let (_, conn) = self.current();
        let all_nodes = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
        let accepted = handle::retry_auth(|attempt| {
            let mut conn = conn.clone();
            let all_nodes = all_nodes.clone();
            async move {
                let sent = tokio::time::timeout(
                    self.auth_timeout,
                    conn.route_command(handle::auth_cmd(credentials), all_nodes),
                )
                .await;
                self.count_reauth(attempt, sent)
            }
        })
        .await;
        if accepted {
            tracing::debug!(
                generation = credentials.generation,
                "nodes re-authenticated"
            );
        }
        accepted
    }

    /// Counts the replies of one re-AUTH round, node by node.
    fn count_reauth(
        &self,
        attempt: u32,
        sent: Result<RedisResult<Value>, tokio::time::error::Elapsed>,
    ) -> Attempt {
        let c = &self.counters;
        let endpoint = &self.connector.endpoint;
        let accepted = || {
            c.reauths.fetch_add(1, Ordering::Relaxed);
            telemetry::count_reauth(HandleKind::Cluster, endpoint);
        };
        let failed = |error_type| {
            c.reauth_failures.fetch_add(1, Ordering::Relaxed);
            telemetry::count_reauth_failure(HandleKind::Cluster, endpoint, error_type);
        };
        match sent {
            Ok(Ok(Value::Map(replies))) => {
                let mut refused = false;
                for (node, reply) in replies {
                    if let Value::ServerError(error) = reply {
                        let node = match node {
                            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                            other => format!("{other:?}"),
                        };
                        let error = RedisError::from(error);
                        failed(telemetry::redis_error_type(&error));
                        tracing::warn!(%node, attempt, error = %error, "re-AUTH refused");
                        refused = true;
                    } else {
                        accepted();
                    }
                }
                if refused {
                    Attempt::Failed
                } else {
                    Attempt::Accepted
                }
            }
            Ok(Ok(_)) => {
                accepted();
                Attempt::Accepted
            }
            Ok(Err(error)) => {
                failed(telemetry::redis_error_type(&error));
                tracing::warn!(attempt, error = %error, "re-AUTH failed");
                Attempt::Failed
            }
            Err(_) => {
                failed("timeout");
                tracing::warn!(attempt, "re-AUTH timed out");
                Attempt::Failed
            }
        }
    }

    /// Rebuilds the cluster connection with the current token and every announced address
    /// mapped, and restores the subscriptions on it.
    async fn rebuild(&self) -> RedisResult<()> {
        let credentials = self.provider.current();
        let announced = match self.connector.discover(&credentials).await {
            Ok(announced) => announced,
            Err(error) => {
                tracing::warn!(error = %error, "cluster discovery failed; rebuilding with the addresses known");
                Vec::new()
            }
        };
        let mut conn = self.connector.open(&announced, &self.provider).await?;
        let subscribed = !self.subscriptions.is_empty();
        self.subscriptions.restore(&mut conn).await?;
        let mut old = self.replace(conn);
        if subscribed {
            // Messages the server sent on the old connection before the new one's subscriptions
            // took effect may not have been read yet. A PING to every node is answered after
            // them, so once it is, they have reached the push sender and the old connection
            // can close.
            let all_nodes = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
            let drained = old.route_command(redis::cmd("PING"), all_nodes);
            if tokio::time::timeout(self.auth_timeout, drained)
                .await
                .is_err()
            {
                tracing::debug!("the replaced connection did not answer PING in time");
            }
        }
        drop(old);
        tracing::info!(
            mapped_nodes = self.connector.mapper.mapped_nodes(),
            "cluster connection rebuilt"
        );
        Ok(())
    }
}
