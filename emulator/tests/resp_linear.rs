//! Intercepted commands that reach the gate in many small pieces are answered as if they had
//! arrived whole. (That the parser examines each byte a bounded number of times, however the
//! input is split, is shown by the unit tests in `src/resp/tests.rs`, which count the bytes
//! examined.)

mod common;

use std::time::Duration;

use azure_redis_emulator::Emulator;
use common::*;

/// Sends `bytes` in writes of `chunk` bytes, each flushed on its own.
async fn send_split(conn: &mut RawConn, bytes: &[u8], chunk: usize) {
    for piece in bytes.chunks(chunk) {
        conn.send(piece).await;
    }
}

#[tokio::test]
async fn subscribe_to_many_channels_sent_64_bytes_at_a_time() {
    bounded(async {
        let emu = start(Emulator::builder()).await;
        let oid = emu.system_identity();
        let mut c = RawConn::tls(&emu).await;
        assert_eq!(
            auth(&mut c, &emu, &oid, Duration::from_secs(600)).await,
            ok()
        );

        let channels: Vec<String> = (0..20_000).map(|i| format!("channel:{i:06}")).collect();
        let mut parts: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        parts.extend(channels.iter().map(|c| c.as_bytes()));
        send_split(&mut c, &encode(&parts), 64).await;

        for (i, channel) in channels.iter().enumerate() {
            let reply = c.read_reply().await.expect("subscribe confirmation");
            let expected = Reply::Array(Some(vec![
                Reply::Bulk(Some(b"subscribe".to_vec())),
                Reply::Bulk(Some(channel.as_bytes().to_vec())),
                Reply::Int(i as i64 + 1),
            ]));
            assert_eq!(reply, expected, "confirmation {i}");
        }
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn auth_with_a_token_of_a_megabyte_sent_64_bytes_at_a_time() {
    bounded(async {
        let emu = start(Emulator::builder()).await;
        // 1 MB in 64-byte writes, before the connection is authenticated: on a loaded machine
        // (a debug build, two cores) that can take longer than the gate's 10 s pre-auth
        // timeout, which is not what this test is about.
        emu.faults().set_pre_auth_timeout(Duration::from_secs(300));
        let oid = emu.system_identity();
        let mut c = RawConn::tls(&emu).await;

        // Just under the gate's limit on an intercepted command (1 MiB): refused as a bad token.
        let junk = vec![b'x'; 1_000_000];
        send_split(&mut c, &encode(&[b"AUTH", oid.as_bytes(), &junk]), 64).await;
        assert_eq!(c.read_reply().await, Some(err(WRONGPASS)));

        // A valid token split the same way is accepted, and the connection works.
        let token = emu.mint_token(&oid, Duration::from_secs(600));
        send_split(
            &mut c,
            &encode(&[b"AUTH", oid.as_bytes(), token.secret().as_bytes()]),
            64,
        )
        .await;
        assert_eq!(c.read_reply().await, Some(ok()));
        assert_eq!(c.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
        emu.shutdown().await;
    })
    .await;
}
