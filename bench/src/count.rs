//! `bench count`: SETs for an instruction count under `valgrind --tool=callgrind`, repeatable
//! whatever else the machine does.

use std::time::{Duration, SystemTime};

use azure_redis_connect::SecretString;
use azure_redis_connect::redis::{self, aio::ConnectionLike};
use azure_redis_connect::token::AccessToken;

use crate::Error;
use crate::args::Client;
use crate::clients::{RAW_PASSWORD, RAW_USER, minted_handle, raw_connection};
use crate::servers::RedisServer;

/// The ACL user of [`count`]'s token (the `oid` it carries).
const OID: &str = "00000000-0000-0000-0000-0000000000aa";

/// Issues `n` SETs through `client`, `depth` of them in flight at a time, against a
/// redis-server of its own, with no emulator in the process (the caller runs it on a
/// single-threaded runtime). Running it with two values of `n` and taking the difference gives
/// the instructions of one command, setup excluded.
pub(crate) async fn count(client: Client, n: u64, depth: usize) -> Result<(), Error> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    // A token shaped like Entra ID's (the server only compares it as the ACL password).
    let token = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"oid":"{OID}","aud":"https://redis.azure.com"}}"#
        )),
        b64("signature")
    );
    let server = RedisServer::start(&[(RAW_USER, RAW_PASSWORD), (OID, token.as_str())]).await?;
    match client {
        Client::Raw => {
            let conn = raw_connection(server.addr, None).await?;
            concurrent_sets(conn, n, depth).await
        }
        Client::Ours => {
            let token = AccessToken {
                token: SecretString::from(token),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
            };
            let handle = minted_handle(server.addr, None, token).await?;
            concurrent_sets(handle, n, depth).await
        }
    }
}

/// `n` SETs from `depth` workers polled together, each sending one SET after another on a
/// clone of `conn` made before the first (so that a clone, whose cost differs between the
/// clients, is setup and drops out of the difference).
async fn concurrent_sets(
    conn: impl ConnectionLike + Clone,
    n: u64,
    depth: usize,
) -> Result<(), Error> {
    let depth = depth.max(1) as u64;
    let workers = (0..depth).map(|w| {
        let mut conn = conn.clone();
        async move {
            let mut i = w;
            while i < n {
                redis::cmd("SET")
                    .arg("count:k")
                    .arg(i)
                    .query_async::<()>(&mut conn)
                    .await?;
                i += depth;
            }
            Ok::<(), redis::RedisError>(())
        }
    });
    for result in futures_util::future::join_all(workers).await {
        result?;
    }
    Ok(())
}
