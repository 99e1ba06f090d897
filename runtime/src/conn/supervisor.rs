//! The single-node handle's supervisor: re-AUTH on every new token, pushes forwarded, keepalive,
//! and a new connection when the one in use is closed or stops answering.
//!
//! The task holds a `Weak` to the handle's state and waits only on things of its own (the token
//! channel, the push channel, the channel of broken connections, the keepalive ticks), so the
//! last handle's drop ends it ([`crate::task`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::PushKind;
use tokio::sync::mpsc;

use super::{Broken, InUse, Inner, Pushes};
use crate::handle::{self, Attempt, TokenWatch};
use crate::task::{TaskOwner, spawn_owned};
use crate::telemetry::{self, HandleKind, RedisOperation, Unanswered};
use crate::token::Credentials;
use tracing::Instrument as _;

/// Starts the supervisor of `inner`, whose first connection delivers `pushes`.
pub(super) fn start(
    inner: &Arc<Inner>,
    pushes: Pushes,
    broken: mpsc::UnboundedReceiver<Broken>,
    keepalive: Option<Duration>,
) -> TaskOwner {
    let supervisor = Supervisor {
        inner: Arc::downgrade(inner),
        tokens: TokenWatch::new(&inner.provider),
        pushes,
        broken,
        keepalive: handle::keepalive_ticks(keepalive),
        next_id: 2,
    };
    spawn_owned(supervisor.run())
}

struct Supervisor {
    inner: Weak<Inner>,
    tokens: TokenWatch,
    pushes: Pushes,
    broken: mpsc::UnboundedReceiver<Broken>,
    keepalive: Option<tokio::time::Interval>,
    next_id: u64,
}

/// What the supervisor waited for.
enum Event {
    Token,
    Push(redis::PushInfo),
    Closed,
    Broken(Broken),
    Tick,
}

impl Supervisor {
    async fn run(mut self) {
        loop {
            let Some(inner) = self.inner.upgrade() else {
                return;
            };
            let live = inner.live.borrow().clone();
            drop(inner);
            let Some(mut live) = live else {
                if !self.reconnect().await {
                    return;
                }
                continue;
            };
            let Some((inner, event)) = self.next_event().await else {
                return;
            };
            match event {
                Event::Token => {
                    let credentials = self.tokens.latest();
                    if credentials.generation <= live.auth_generation {
                        continue;
                    }
                    if inner.reauth(&mut live, &credentials).await {
                        inner.live.send_modify(|l| {
                            if let Some(l) = l.as_mut()
                                && l.id == live.id
                            {
                                l.auth_generation = credentials.generation;
                            }
                        });
                    } else {
                        // Replaced by a connection authenticated with the current token.
                        inner.retire(live.id);
                    }
                }
                Event::Push(push) => {
                    if let Some(user) = &inner.user_push {
                        let _ = user.send(push);
                    }
                }
                Event::Closed => {
                    tracing::info!(connection = live.id, "connection closed by the server");
                    inner.retire(live.id);
                }
                Event::Broken(broken) if broken.id == live.id => {
                    if broken.unresponsive {
                        inner.replace_unresponsive(live.id, Unanswered::Command);
                    } else {
                        tracing::info!(connection = live.id, "connection broken");
                        inner.retire(live.id);
                    }
                }
                // A report about a connection already replaced.
                Event::Broken(_) => {}
                Event::Tick => inner.ping(&mut live).await,
            }
        }
    }

    /// The next event, with the state to act on it; `None` once the handle is gone.
    async fn next_event(&mut self) -> Option<(Arc<Inner>, Event)> {
        let pushes = &mut self.pushes;
        let push = async {
            match pushes.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            changed = self.tokens.changed() => changed.then_some(Event::Token)?,
            push = push => match push {
                Some(push) if push.kind != PushKind::Disconnection => Event::Push(push),
                _ => Event::Closed,
            },
            broken = self.broken.recv() => Event::Broken(broken?),
            () = handle::next_tick(&mut self.keepalive) => Event::Tick,
        };
        Some((self.inner.upgrade()?, event))
    }

    /// Opens a new connection with the current credentials, retrying with
    /// [`RECONNECT_BACKOFF`](handle::RECONNECT_BACKOFF) until it succeeds, and puts it in use.
    /// While the current token has expired, waits for the next one instead of connecting with
    /// it. Returns `false` once the handle is gone.
    async fn reconnect(&mut self) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        let mut failures = 0u32;
        loop {
            let Some(credentials) = self.tokens.unexpired("connection").await else {
                return false;
            };
            let Some(inner) = self.inner.upgrade() else {
                return false;
            };
            let span = telemetry::redis_span(RedisOperation::Reconnect, &inner.connector.endpoint);
            let opened = inner
                .open_resubscribed(&credentials)
                .instrument(span.clone())
                .await;
            if let Err(error) = &opened {
                telemetry::record_redis_error(&span, error);
            }
            match opened {
                Ok((conn, pushes)) => {
                    inner.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    telemetry::count_reconnect(HandleKind::Single, &inner.connector.endpoint);
                    tracing::info!(
                        connection = id,
                        generation = credentials.generation,
                        "reconnected"
                    );
                    self.pushes = pushes;
                    inner.live.send_replace(Some(InUse {
                        conn,
                        id,
                        auth_generation: credentials.generation,
                    }));
                    return true;
                }
                Err(error) => {
                    drop(inner);
                    failures += 1;
                    if !self.tokens.back_off(failures, "connection", &error).await {
                        return false;
                    }
                }
            }
        }
    }
}

impl Inner {
    /// Takes connection `id` out of use, so that the supervisor replaces it.
    fn retire(&self, id: u64) {
        self.live.send_if_modified(|live| {
            let current = live.as_ref().is_some_and(|l| l.id == id);
            if current {
                *live = None;
            }
            current
        });
    }

    /// Retires connection `id`, which stopped answering.
    fn replace_unresponsive(&self, id: u64, what: Unanswered) {
        self.counters
            .unresponsive_replaced
            .fetch_add(1, Ordering::Relaxed);
        telemetry::count_unresponsive_replaced(HandleKind::Single, &self.connector.endpoint, what);
        let why = match what {
            Unanswered::Command => "a command got no reply in time",
            Unanswered::Keepalive => "the keepalive PING got no reply in time",
        };
        tracing::warn!(
            connection = id,
            why,
            "the connection stopped answering; replacing it"
        );
        self.retire(id);
    }

    async fn reauth(&self, live: &mut InUse, credentials: &Credentials) -> bool {
        let span = telemetry::redis_span(RedisOperation::Reauth, &self.connector.endpoint);
        let accepted = self
            .reauth_attempts(live, credentials)
            .instrument(span.clone())
            .await;
        if !accepted {
            telemetry::record_failure(&span, "reauth_refused");
        }
        accepted
    }

    async fn reauth_attempts(&self, live: &mut InUse, credentials: &Credentials) -> bool {
        let counters = &self.counters;
        let endpoint = &self.connector.endpoint;
        let id = live.id;
        let conn = &mut live.conn;
        handle::retry_auth(|attempt| {
            let mut conn = conn.clone();
            async move {
                let cmd = handle::auth_cmd(credentials);
                match tokio::time::timeout(self.auth_timeout, cmd.exec_async(&mut conn)).await {
                    Ok(Ok(())) => {
                        counters.reauths.fetch_add(1, Ordering::Relaxed);
                        telemetry::count_reauth(HandleKind::Single, endpoint);
                        tracing::info!(
                            connection = id,
                            generation = credentials.generation,
                            "re-authenticated"
                        );
                        Attempt::Accepted
                    }
                    Ok(Err(error)) => {
                        counters.reauth_failures.fetch_add(1, Ordering::Relaxed);
                        let error_type = telemetry::redis_error_type(&error);
                        telemetry::count_reauth_failure(HandleKind::Single, endpoint, error_type);
                        tracing::warn!(connection = id, attempt, error = %error, "re-AUTH failed");
                        if error.is_connection_dropped() || error.is_unrecoverable_error() {
                            Attempt::Dropped
                        } else {
                            Attempt::Failed
                        }
                    }
                    Err(_) => {
                        counters.reauth_failures.fetch_add(1, Ordering::Relaxed);
                        telemetry::count_reauth_failure(HandleKind::Single, endpoint, "timeout");
                        tracing::warn!(connection = id, attempt, "re-AUTH timed out");
                        Attempt::Failed
                    }
                }
            }
        })
        .await
    }

    /// Keeps an idle connection open, and finds a dropped or unresponsive one: a `PING` that
    /// finds the connection closed, or gets no reply within the response timeout, has it
    /// replaced. Without a response timeout (blocking commands on the shared connection) an
    /// unanswered `PING` may only wait behind one, and is logged.
    async fn ping(&self, live: &mut InUse) {
        let ping = redis::cmd("PING");
        let Some(limit) = self.connector.response_timeout else {
            let sent = tokio::time::timeout(self.auth_timeout, ping.exec_async(&mut live.conn));
            match sent.await {
                Ok(Err(error))
                    if error.is_connection_dropped() || error.is_unrecoverable_error() =>
                {
                    self.retire(live.id)
                }
                Ok(_) => {}
                Err(_) => tracing::debug!(connection = live.id, "keepalive PING unanswered yet"),
            }
            return;
        };
        match tokio::time::timeout(limit, ping.exec_async(&mut live.conn)).await {
            Ok(Ok(())) => tracing::trace!(connection = live.id, "keepalive PING"),
            Ok(Err(error)) if error.is_timeout() => {
                self.replace_unresponsive(live.id, Unanswered::Keepalive);
            }
            Ok(Err(error)) if error.is_connection_dropped() || error.is_unrecoverable_error() => {
                tracing::info!(connection = live.id, error = %error, "keepalive PING found the connection dropped");
                self.retire(live.id);
            }
            Ok(Err(error)) => {
                tracing::warn!(connection = live.id, error = %error, "keepalive PING failed")
            }
            Err(_) => self.replace_unresponsive(live.id, Unanswered::Keepalive),
        }
    }

    /// Opens a connection and restores the handle's subscriptions on it.
    async fn open_resubscribed(
        &self,
        credentials: &Credentials,
    ) -> redis::RedisResult<(redis::aio::MultiplexedConnection, Pushes)> {
        let (mut conn, pushes) = self.connector.open(credentials).await?;
        self.subscriptions.restore(&mut conn).await?;
        Ok((conn, pushes))
    }
}
