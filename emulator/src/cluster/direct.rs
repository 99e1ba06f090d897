//! Commands sent straight to a node's redis-server, bypassing its gate, and their replies.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{ClusterEmulator, cluster_error, no_node};
use crate::error::EmulatorError;
use crate::resp;

impl ClusterEmulator {
    /// Sends one command straight to node `i`'s redis-server (bypassing its gate).
    pub(super) async fn node_cmd(&self, i: usize, args: &[&str]) -> Result<Reply, EmulatorError> {
        let node = self.nodes.get(i).ok_or_else(|| no_node(i))?;
        direct_command(node.gate.redis_config.port, &self.password, args).await
    }
}

/// A reply from a direct connection.
#[derive(Debug)]
pub(super) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub(super) fn ok(self) -> Result<(), EmulatorError> {
        match self {
            Reply::Error(e) => Err(cluster_error(e)),
            _ => Ok(()),
        }
    }

    pub(super) fn text(self) -> Result<String, EmulatorError> {
        match self {
            Reply::Status(s) => Ok(s),
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Reply::Int(i) => Ok(i.to_string()),
            Reply::Error(e) => Err(cluster_error(e)),
            other => Err(cluster_error(format!("unexpected reply {other:?}"))),
        }
    }

    pub(super) fn strings(self) -> Result<Vec<String>, EmulatorError> {
        match self {
            Reply::Array(items) => items.into_iter().map(Reply::text).collect(),
            Reply::Error(e) => Err(cluster_error(e)),
            other => Err(cluster_error(format!("unexpected reply {other:?}"))),
        }
    }
}

/// Reads one reply from `buf[*pos..]`; `None` when incomplete.
fn parse_reply(buf: &[u8], pos: &mut usize) -> Option<Reply> {
    let line_end = buf.get(*pos..)?.windows(2).position(|w| w == b"\r\n")? + *pos;
    let kind = *buf.get(*pos)?;
    let line = String::from_utf8_lossy(&buf[*pos + 1..line_end]).into_owned();
    *pos = line_end + 2;
    match kind {
        b'+' => Some(Reply::Status(line)),
        b'-' => Some(Reply::Error(line)),
        b':' => Some(Reply::Int(line.parse().unwrap_or_default())),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(Reply::Bulk(None));
            }
            let len = usize::try_from(len).ok()?;
            let data = buf.get(*pos..*pos + len)?.to_vec();
            buf.get(*pos + len..*pos + len + 2)?;
            *pos += len + 2;
            Some(Reply::Bulk(Some(data)))
        }
        b'*' => {
            let len: i64 = line.parse().ok()?;
            let mut items = Vec::new();
            for _ in 0..len.max(0) {
                items.push(parse_reply(buf, pos)?);
            }
            Some(Reply::Array(items))
        }
        _ => Some(Reply::Error(format!("unknown reply type {kind}"))),
    }
}

/// Sends `AUTH` and one command to the redis-server on `port`; returns the command's reply.
async fn direct_command(
    port: u16,
    password: &SecretString,
    args: &[&str],
) -> Result<Reply, EmulatorError> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| EmulatorError::io("connecting to a cluster node", e))?;
        let mut out =
            resp::encode_command([b"AUTH".as_slice(), password.expose_secret().as_bytes()]);
        out.extend(resp::encode_command(args.iter().map(|a| a.as_bytes())));
        stream
            .write_all(&out)
            .await
            .map_err(|e| EmulatorError::io("writing to a cluster node", e))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| EmulatorError::io("reading from a cluster node", e))?;
            if n == 0 {
                return Err(cluster_error("a cluster node closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut pos = 0;
            if let Some(auth) = parse_reply(&buf, &mut pos) {
                auth.ok()?;
                if let Some(reply) = parse_reply(&buf, &mut pos) {
                    return Ok(reply);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| cluster_error("a cluster node did not answer within 10 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_and_incomplete_input_waits() {
        let input = b"*2\r\n$3\r\nabc\r\n:5\r\n+OK\r\n";
        let mut pos = 0;
        let Some(Reply::Array(items)) = parse_reply(input, &mut pos) else {
            panic!("an array");
        };
        assert_eq!(items.len(), 2);
        assert!(matches!(parse_reply(input, &mut pos), Some(Reply::Status(s)) if s == "OK"));
        for cut in 0..input.len() - 5 {
            let mut pos = 0;
            assert!(parse_reply(&input[..cut], &mut pos).is_none(), "cut {cut}");
        }
        let mut pos = 0;
        assert!(parse_reply(b"$-1\r\n", &mut pos).is_some());
        let mut pos = 0;
        assert!(parse_reply(b"$99999999999999999999\r\n", &mut pos).is_none());
    }
}
