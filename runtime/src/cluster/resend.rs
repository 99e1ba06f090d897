//! Requests sent again: after a rebuild that maps their node, and while a failover completes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, RedisError, RedisResult, ServerErrorKind};

use super::Inner;
use super::mapping::is_unmapped;

/// First wait before a request held during a failover is sent again; doubles to
/// [`MAX_FAILOVER_RETRY_WAIT`].
const FIRST_FAILOVER_RETRY_WAIT: Duration = Duration::from_millis(50);
/// Longest wait between two sends of a request held during a failover.
const MAX_FAILOVER_RETRY_WAIT: Duration = Duration::from_secs(1);
/// Added to two connect timeouts for the longest a request waits for a rebuild (discovery,
/// then the node connections).
const REBUILD_SLACK: Duration = Duration::from_millis(500);

impl Inner {
    /// After a request failed with `error` on the connection of `epoch`, sends it again with
    /// `send` if it ran on no node: once on the rebuilt connection when its node was not mapped
    /// yet ([`Self::unreached`]), and, while redis-rs ends on a `MOVED` to a node it cannot
    /// reach (a failover under way), after growing waits until `failover_wait` is up. Kept off
    /// the path of requests that succeed.
    pub(super) async fn resend<T, F, Fut>(
        &self,
        mut epoch: u64,
        mut error: RedisError,
        mut send: F,
    ) -> RedisResult<T>
    where
        F: FnMut(ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut started = None;
        let mut wait = FIRST_FAILOVER_RETRY_WAIT;
        let mut rebuilt = false;
        loop {
            if !rebuilt && self.unreached(&error, epoch) {
                rebuilt = true;
                self.rebuilt_since(epoch, error).await?;
            } else {
                let started = *started.get_or_insert_with(tokio::time::Instant::now);
                // `MOVED`, not `ASK`: the node serves none of the slot, so nothing of the request
                // (all of a pipeline's commands are in one slot) ran there. During a migration,
                // part of a pipeline may have run before an `ASK`.
                if error.kind() != ErrorKind::Server(ServerErrorKind::Moved)
                    || started.elapsed() + wait > self.failover_wait
                {
                    return Err(error);
                }
                tracing::debug!(error = %error, retry_in_ms = wait.as_millis() as u64, "no reachable node serves the slot yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_FAILOVER_RETRY_WAIT);
            }
            let (current, conn) = self.current();
            epoch = current;
            error = match send(conn).await {
                Err(error) => error,
                result => return result,
            };
        }
    }

    /// Whether a request that failed with `error` on the connection of `epoch` was sent to no
    /// node, and a rebuilt connection may reach its node: the node's address was not mapped
    /// yet, or the connection was replaced meanwhile (by one that maps it) and redis-rs's last
    /// attempt ended in a redirect or without a connection to the node.
    fn unreached(&self, error: &RedisError, epoch: u64) -> bool {
        if is_unmapped(error) {
            return true;
        }
        let replaced = self.epoch.load(Ordering::Acquire) != epoch;
        replaced
            && (error.redirect_node().is_some()
                || error.kind() == ErrorKind::ClusterConnectionNotFound)
    }

    /// Waits until the connection of `epoch` has been replaced, for at most the time a rebuild
    /// takes (discovery, then the node connections); `error` otherwise.
    pub(super) async fn rebuilt_since(&self, epoch: u64, error: RedisError) -> RedisResult<()> {
        let rebuilt = async {
            loop {
                let notified = self.rebuilt.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.epoch.load(Ordering::Acquire) != epoch {
                    return;
                }
                notified.await;
            }
        };
        let limit = self.connector.connect_timeout * 2 + REBUILD_SLACK;
        tokio::time::timeout(limit, rebuilt)
            .await
            .map_err(|_| error)
    }
}

/// Whether `cmd` may be sent again after it failed on an unmapped node. A command that goes to
/// one node was executed nowhere. redis-rs splits some commands over the nodes of their keys'
/// slots, so part of one may have been executed: of those, all but a multi-key `DEL` or
/// `UNLINK` give the same result when sent again (`MGET`, `EXISTS`, `TOUCH`, `MSET` of the
/// same values, and the commands sent to every node), whereas those would count fewer keys.
pub(super) fn resendable(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter();
    let name = match args.next() {
        Some(redis::Arg::Simple(name)) => name,
        _ => return true,
    };
    let deletes = name.eq_ignore_ascii_case(b"DEL") || name.eq_ignore_ascii_case(b"UNLINK");
    !(deletes && args.count() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_key_deletes_are_not_sent_twice() {
        assert!(resendable(redis::cmd("GET").arg("k")));
        assert!(resendable(redis::cmd("DEL").arg("k")));
        assert!(resendable(redis::cmd("MGET").arg("a").arg("b")));
        assert!(resendable(
            redis::cmd("MSET").arg("a").arg(1).arg("b").arg(2)
        ));
        assert!(!resendable(redis::cmd("DEL").arg("a").arg("b")));
        assert!(!resendable(redis::cmd("unlink").arg("a").arg("b")));
    }
}
