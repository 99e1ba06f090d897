//! Admin commands sent straight to a node's redis-server, bypassing its gate, through the
//! `redis` crate (one connection per command, authenticated with the internal password).

use std::time::Duration;

use redis::{FromRedisValue, RedisError};
use secrecy::SecretString;

use super::{ClusterEmulator, cluster_error, no_node};
use crate::error::EmulatorError;
use crate::redis_server::admin_connection;

/// How long one command may take, connecting and authenticating included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

impl ClusterEmulator {
    /// Sends one command straight to node `i`'s redis-server (bypassing its gate) and returns
    /// its reply as a `T` (`()` to only check that it is not an error); an error reply is an
    /// error in redis-server's words.
    pub(super) async fn node_cmd<T: FromRedisValue>(
        &self,
        i: usize,
        args: &[impl AsRef<[u8]>],
    ) -> Result<T, EmulatorError> {
        let node = self.nodes.get(i).ok_or_else(|| no_node(i))?;
        direct_command(node.gate.redis_config.port, &self.password, args).await
    }
}

/// Sends `AUTH` and one command to the redis-server on `port`; returns the command's reply.
async fn direct_command<T: FromRedisValue>(
    port: u16,
    password: &SecretString,
    args: &[impl AsRef<[u8]>],
) -> Result<T, EmulatorError> {
    let exchange = async {
        let mut conn = admin_connection(port, password).await.map_err(node_error)?;
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(arg.as_ref());
        }
        cmd.query_async(&mut conn).await.map_err(node_error)
    };
    tokio::time::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .map_err(|_| cluster_error("a cluster node did not answer within 10 s"))?
}

/// An error reply keeps redis-server's own words (`ERR Unknown node ...`), as the node sent
/// them; anything else says that talking to the node failed.
fn node_error(e: RedisError) -> EmulatorError {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => cluster_error(format!("{code} {detail}")),
        (Some(code), None) => cluster_error(code),
        _ if e.is_io_error() => {
            EmulatorError::io("talking to a cluster node", std::io::Error::other(e))
        }
        _ => cluster_error(format!("a cluster node: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error `reply` (one RESP error line) makes.
    fn error_reply(reply: &[u8]) -> RedisError {
        let value = redis::parse_redis_value(reply).expect("a RESP value");
        value.extract_error().expect_err("an error reply")
    }

    #[test]
    fn error_replies_keep_redis_servers_words() {
        for line in [
            "ERR Unknown node 0123abcd",
            "MOVED 12182 127.0.0.1:7001",
            "WRONGPASS invalid username-password pair or user is disabled.",
            "CLUSTERDOWN",
        ] {
            let e = node_error(error_reply(format!("-{line}\r\n").as_bytes()));
            assert_eq!(e.to_string(), format!("redis-server: {line}"));
        }
    }
}
