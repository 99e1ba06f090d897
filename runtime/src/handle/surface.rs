//! The public surface both handles share, written once: construction (`builder`,
//! `builder_from`, `connect`), `token_provider`, `Debug`, and the pub/sub methods.
//!
//! A macro rather than a generic handle type: each handle keeps its own name, status type and
//! `ConnectionLike` routing (one connection, or redis-rs's cluster routing), which users see in
//! docs and errors, while what they have in common is stated here alone.
//!
//! The handle type must have a field `inner` with fields `connector.endpoint`, `provider`,
//! `subscriptions` and `health`, a method `status()`, and a method
//! `pubsub_connection(&self) -> RedisResult<C>` (`C` a redis-rs connection that subscribes) giving the connection a subscription
//! goes to.

/// Implements the shared surface for `$handle`, built by `handle::Builder<$kind>`.
macro_rules! handle_surface {
    ($handle:ident, $kind:ty) => {
        impl ::std::fmt::Debug for $handle {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($handle))
                    .field("endpoint", &self.inner.connector.endpoint.to_string())
                    .field("status", &self.status())
                    .finish()
            }
        }

        impl $handle {
            /// A builder, for what the configuration cannot say.
            pub fn builder(
                endpoint: $crate::Endpoint,
                auth: $crate::Auth,
            ) -> $crate::handle::Builder<$kind> {
                $crate::handle::Builder::new(endpoint, auth)
            }

            /// A builder from a derived configuration.
            pub fn builder_from(
                config: &impl $crate::AzureRedisConfig,
            ) -> ::std::result::Result<$crate::handle::Builder<$kind>, $crate::ConfigError> {
                $crate::handle::Builder::from_config(config)
            }

            /// Connects with a derived configuration and the builder's defaults.
            pub async fn connect(
                config: &impl $crate::AzureRedisConfig,
            ) -> ::std::result::Result<$handle, $crate::conn::ConnectError> {
                Self::builder_from(config)?.connect().await
            }

            /// The token provider (for its events and status).
            pub fn token_provider(&self) -> &$crate::token::TokenProvider {
                &self.inner.provider
            }

            pub(crate) fn health_cache(&self) -> &$crate::health::HealthCache {
                &self.inner.health
            }

            /// Subscribes to a channel; its messages arrive at the builder's
            /// [`push_sender`]($crate::handle::Builder::push_sender) (RESP3). The subscription
            /// is restored on every new connection; messages published while no connection is
            /// subscribed are lost, as with any Redis pub/sub client.
            pub async fn subscribe(&self, channel: impl Into<String>) -> ::redis::RedisResult<()> {
                self.pubsub($crate::handle::Topic::Channel, channel.into(), true)
                    .await
            }

            /// Unsubscribes from a channel.
            pub async fn unsubscribe(
                &self,
                channel: impl Into<String>,
            ) -> ::redis::RedisResult<()> {
                self.pubsub($crate::handle::Topic::Channel, channel.into(), false)
                    .await
            }

            /// Subscribes to a pattern (`PSUBSCRIBE`); see [`subscribe`](Self::subscribe).
            pub async fn psubscribe(&self, pattern: impl Into<String>) -> ::redis::RedisResult<()> {
                self.pubsub($crate::handle::Topic::Pattern, pattern.into(), true)
                    .await
            }

            /// Unsubscribes from a pattern.
            pub async fn punsubscribe(
                &self,
                pattern: impl Into<String>,
            ) -> ::redis::RedisResult<()> {
                self.pubsub($crate::handle::Topic::Pattern, pattern.into(), false)
                    .await
            }

            async fn pubsub(
                &self,
                topic: $crate::handle::Topic,
                name: String,
                add: bool,
            ) -> ::redis::RedisResult<()> {
                let mut conn = self.pubsub_connection().await?;
                self.inner
                    .subscriptions
                    .apply(&mut conn, topic, name, add)
                    .await
            }
        }
    };
}

pub(crate) use handle_surface;
