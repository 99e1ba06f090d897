//! The channels and patterns a handle is subscribed to, restored on every new connection.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use futures_util::future::BoxFuture;
use redis::RedisResult;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;

/// What a subscription is to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Topic {
    /// A channel (`SUBSCRIBE`).
    Channel,
    /// A pattern (`PSUBSCRIBE`).
    Pattern,
    /// A sharded channel (`SSUBSCRIBE`; cluster handles only).
    ShardChannel,
}

/// A connection that subscribes: redis-rs's multiplexed and cluster connections.
pub(crate) trait PubSub: Send {
    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE` `name`.
    fn add<'a>(&'a mut self, topic: Topic, name: &'a str) -> BoxFuture<'a, RedisResult<()>>;
    /// The matching unsubscribe.
    fn remove<'a>(&'a mut self, topic: Topic, name: &'a str) -> BoxFuture<'a, RedisResult<()>>;
}

impl PubSub for MultiplexedConnection {
    fn add<'a>(&'a mut self, topic: Topic, name: &'a str) -> BoxFuture<'a, RedisResult<()>> {
        Box::pin(async move {
            match topic {
                Topic::Channel => self.subscribe(name).await,
                Topic::Pattern => self.psubscribe(name).await,
                Topic::ShardChannel => Err(shard_unsupported()),
            }
        })
    }

    fn remove<'a>(&'a mut self, topic: Topic, name: &'a str) -> BoxFuture<'a, RedisResult<()>> {
        Box::pin(async move {
            match topic {
                Topic::Channel => self.unsubscribe(name).await,
                Topic::Pattern => self.punsubscribe(name).await,
                Topic::ShardChannel => Err(shard_unsupported()),
            }
        })
    }
}

fn shard_unsupported() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "sharded pub/sub needs a cluster handle",
    ))
}

impl PubSub for ClusterConnection {
    fn add<'a>(&'a mut self, topic: Topic, name: &'a str) -> BoxFuture<'a, RedisResult<()>> {
        Box::pin(async move {
            match topic {
                Topic::Channel => self.subscribe(name).await,
                Topic::Pattern => self.psubscribe(name).await,
                Topic::ShardChannel => self.ssubscribe(name).await,
            }
        })
    }

    fn remove<'a>(&'a mut self, topic: Topic, name: &'a str) -> BoxFuture<'a, RedisResult<()>> {
        Box::pin(async move {
            match topic {
                Topic::Channel => self.unsubscribe(name).await,
                Topic::Pattern => self.punsubscribe(name).await,
                Topic::ShardChannel => self.sunsubscribe(name).await,
            }
        })
    }
}

/// The subscriptions of a handle.
#[derive(Default)]
pub(crate) struct Subscriptions(Mutex<BTreeSet<(Topic, String)>>);

impl Subscriptions {
    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<(Topic, String)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes `conn` to `name` and remembers it, for every connection after this one.
    pub(crate) async fn add(
        &self,
        conn: &mut impl PubSub,
        topic: Topic,
        name: String,
    ) -> RedisResult<()> {
        conn.add(topic, &name).await?;
        self.set().insert((topic, name));
        Ok(())
    }

    /// Forgets `name`, then unsubscribes `conn` from it.
    pub(crate) async fn remove(
        &self,
        conn: &mut impl PubSub,
        topic: Topic,
        name: String,
    ) -> RedisResult<()> {
        self.set().remove(&(topic, name.clone()));
        conn.remove(topic, &name).await
    }

    /// [`add`](Self::add) when `add`, else [`remove`](Self::remove).
    pub(crate) async fn apply(
        &self,
        conn: &mut impl PubSub,
        topic: Topic,
        name: String,
        add: bool,
    ) -> RedisResult<()> {
        if add {
            self.add(conn, topic, name).await
        } else {
            self.remove(conn, topic, name).await
        }
    }

    /// Whether there are any.
    pub(crate) fn is_empty(&self) -> bool {
        self.set().is_empty()
    }

    /// Subscribes a new connection to everything the handle is subscribed to.
    pub(crate) async fn restore(&self, conn: &mut impl PubSub) -> RedisResult<()> {
        let all: Vec<_> = self.set().iter().cloned().collect();
        for (topic, name) in all {
            conn.add(topic, &name).await?;
        }
        Ok(())
    }
}
