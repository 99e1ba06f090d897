//! The gate against the emulator's own redis-server: AUTH checks, expiry, pass-through,
//! malformed input.

mod common;

use std::time::{Duration, Instant};

use azure_redis_emulator::{Emulator, TokenFlaw};
use common::*;
use secrecy::ExposeSecret as _;

#[tokio::test]
async fn noauth_before_auth_and_wrongpass_for_bad_tokens() {
    bounded(async {
        let emu = emulator(Duration::from_secs(2)).await;
        let oid = emu.system_identity();
        let mut c = RawConn::tls(&emu).await;
        assert_eq!(c.cmd_str(&["PING"]).await, err(NOAUTH));
        assert_eq!(c.cmd_str(&["GET", "k"]).await, err(NOAUTH));

        for flaw in [
            TokenFlaw::BadSignature,
            TokenFlaw::Expired,
            TokenFlaw::WrongAudience,
            TokenFlaw::NoOid,
            TokenFlaw::NotYetValid,
            TokenFlaw::Unsigned,
        ] {
            let t = emu.mint_flawed_token(&oid, flaw);
            let r = c
                .cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
                .await;
            assert_eq!(r, err(WRONGPASS), "{flaw:?}");
        }
        // The client id instead of the object id as username.
        let ua = emu.add_user_identity("my-client-id");
        let t = emu.mint_token(&ua.oid, Duration::from_secs(60));
        let r = c
            .cmd(&[b"AUTH", ua.client_id.as_bytes(), t.secret().as_bytes()])
            .await;
        assert_eq!(r, err(WRONGPASS));
        // A token of another identity.
        let r = c
            .cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
            .await;
        assert_eq!(r, err(WRONGPASS));
        // A token as a single-argument AUTH, and garbage.
        assert_eq!(
            c.cmd(&[b"AUTH", t.secret().as_bytes()]).await,
            err(WRONGPASS)
        );
        assert_eq!(
            c.cmd(&[b"AUTH", oid.as_bytes(), b"\xff\x00garbage"]).await,
            err(WRONGPASS)
        );
        assert_eq!(c.cmd_str(&["PING"]).await, err(NOAUTH));

        auth_ok(&mut c, &emu, &oid).await;
        assert_eq!(c.cmd_str(&["PING"]).await, pong());
        // A failed re-AUTH leaves the connection authenticated (as redis-server does).
        let t = emu.mint_flawed_token(&oid, TokenFlaw::Expired);
        let r = c
            .cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
            .await;
        assert_eq!(r, err(WRONGPASS));
        assert_eq!(c.cmd_str(&["PING"]).await, pong());

        let n = emu.counters();
        assert_eq!(n.auth_accepted, 1);
        assert_eq!(n.auth_rejected, 11);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn hello3_auth_switches_to_resp3() {
    bounded(async {
        let emu = emulator(Duration::from_secs(2)).await;
        let oid = emu.system_identity();
        let mut c = RawConn::tls(&emu).await;
        let bad = emu.mint_flawed_token(&oid, TokenFlaw::WrongAudience);
        let r = hello3_auth(&mut c, &oid, bad.secret()).await;
        assert_eq!(r, err(WRONGPASS));

        let t = emu.mint_token(&oid, Duration::from_secs(60));
        let r = c
            .cmd(&[
                b"HELLO",
                b"3",
                b"AUTH",
                oid.as_bytes(),
                t.secret().as_bytes(),
                b"SETNAME",
                b"resp3-client",
            ])
            .await;
        let Reply::Map(pairs) = r else {
            panic!("HELLO 3 should answer a map, got {r:?}")
        };
        let proto = pairs
            .iter()
            .find(|(k, _)| k.bulk_str().as_deref() == Some("proto"))
            .map(|(_, v)| v.clone());
        assert_eq!(proto, Some(Reply::Int(3)));
        assert_eq!(
            c.cmd_str(&["CLIENT", "GETNAME"]).await,
            Reply::Bulk(Some(b"resp3-client".to_vec()))
        );
        // RESP3 types pass through.
        assert_eq!(c.cmd_str(&["HSET", "h", "f", "v"]).await, Reply::Int(1));
        let r = c.cmd_str(&["HGETALL", "h"]).await;
        assert_eq!(
            r,
            Reply::Map(vec![(
                Reply::Bulk(Some(b"f".to_vec())),
                Reply::Bulk(Some(b"v".to_vec()))
            )])
        );
        assert_eq!(c.cmd_str(&["GET", "missing"]).await, Reply::Null);
        // Inline HELLO with AUTH works too.
        let line = format!("HELLO 2 AUTH {oid} {}\r\n", t.secret());
        c.send(line.as_bytes()).await;
        assert!(matches!(c.read_reply().await, Some(Reply::Array(Some(_)))));
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn expired_token_closes_connection_without_reply() {
    bounded(async {
        let emu = emulator(Duration::from_secs(2)).await;
        let oid = emu.system_identity();
        let mut c = RawConn::tls(&emu).await;
        let t = emu.mint_token(&oid, Duration::from_secs(1));
        assert_eq!(
            c.cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
                .await,
            ok()
        );
        assert_eq!(c.cmd_str(&["PING"]).await, pong());
        let started = Instant::now();
        let received = c
            .closed_within(Duration::from_secs(5))
            .await
            .expect("the gate closes the connection at expiry");
        assert!(received.is_empty(), "no reply on close: {received:?}");
        assert!(started.elapsed() <= Duration::from_millis(3500));
        assert_eq!(emu.counters().closed_at_expiry, 1);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn reauth_in_time_keeps_connection_open_through_several_expiries() {
    bounded(async {
        let emu = emulator(Duration::from_secs(2)).await;
        let oid = emu.system_identity();
        let mut c = RawConn::tls(&emu).await;
        let mut t = emu.mint_token(&oid, Duration::from_secs(2));
        assert_eq!(
            c.cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
                .await,
            ok()
        );
        let mut expiries = vec![t.expires_on];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(7) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            t = emu.mint_token(&oid, Duration::from_secs(2));
            expiries.push(t.expires_on);
            assert_eq!(
                c.cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
                    .await,
                ok()
            );
            assert_eq!(c.cmd_str(&["PING"]).await, pong());
        }
        let now = unix_now() as i64;
        let passed = expiries.iter().filter(|&&exp| exp < now).count();
        assert!(passed >= 3, "only {passed} token expiries passed");
        // Seven seconds of 2-second tokens: well past several expiries of the first token.
        assert_eq!(emu.counters().closed_at_expiry, 0);
        assert_eq!(c.cmd_str(&["PING"]).await, pong());
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn resp2_pubsub_cannot_reauth_but_resp3_can() {
    bounded(async {
        let emu = emulator(Duration::from_secs(2)).await;
        let oid = emu.system_identity();

        // RESP2: AUTH is refused in subscribed mode, so the deadline does not move.
        let mut c = RawConn::tls(&emu).await;
        assert_eq!(auth(&mut c, &emu, &oid, Duration::from_secs(2)).await, ok());
        let r = c.cmd_str(&["SUBSCRIBE", "ch"]).await;
        assert!(matches!(r, Reply::Array(Some(_))), "{r:?}");
        let r = auth(&mut c, &emu, &oid, Duration::from_secs(30)).await;
        assert!(
            matches!(&r, Reply::Error(e) if e.contains("Can't execute 'auth'")),
            "{r:?}"
        );
        assert!(c.closed_within(Duration::from_secs(5)).await.is_some());

        // RESP3: re-AUTH in subscribed mode works and moves the deadline.
        let mut c = RawConn::tls(&emu).await;
        let t = emu.mint_token(&oid, Duration::from_secs(2));
        let r = hello3_auth(&mut c, &oid, t.secret()).await;
        assert!(matches!(r, Reply::Map(_)));
        let r = c.cmd_str(&["SUBSCRIBE", "ch"]).await;
        assert!(matches!(r, Reply::Push(_)), "{r:?}");
        assert_eq!(
            auth(&mut c, &emu, &oid, Duration::from_secs(30)).await,
            ok()
        );
        assert!(c.closed_within(Duration::from_secs(3)).await.is_none());

        // A published message reaches the subscriber.
        let mut p = RawConn::plain(emu.plain_addr().expect("plain")).await;
        assert_eq!(
            auth(&mut p, &emu, &oid, Duration::from_secs(30)).await,
            ok()
        );
        assert_eq!(p.cmd_str(&["PUBLISH", "ch", "hello"]).await, Reply::Int(1));
        let msg = c.read_reply().await.expect("message");
        assert_eq!(
            msg,
            Reply::Push(vec![
                Reply::Bulk(Some(b"message".to_vec())),
                Reply::Bulk(Some(b"ch".to_vec())),
                Reply::Bulk(Some(b"hello".to_vec())),
            ])
        );
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn pipeline_multi_pubsub_and_large_values_pass_through() {
    bounded(async {
        let emu = emulator(Duration::from_secs(2)).await;
        let oid = emu.system_identity();
        let t = emu.mint_token(&oid, Duration::from_secs(300));
        let client = redis_client(&emu, &oid, t.secret());
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect over TLS");

        // Pipeline.
        let (a, b, n): (String, String, i64) = redis::pipe()
            .set("a", "1")
            .ignore()
            .set("b", "2")
            .ignore()
            .get("a")
            .get("b")
            .incr("n", 5)
            .query_async(&mut con)
            .await
            .expect("pipeline");
        assert_eq!((a.as_str(), b.as_str(), n), ("1", "2", 5));

        // MULTI/EXEC.
        let (x, y): (i64, i64) = redis::pipe()
            .atomic()
            .incr("counter", 1)
            .incr("counter", 2)
            .query_async(&mut con)
            .await
            .expect("transaction");
        assert_eq!((x, y), (1, 3));

        // A large value (8 MiB) round-trips intact.
        let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let () = redis::cmd("SET")
            .arg("big")
            .arg(&big)
            .query_async(&mut con)
            .await
            .expect("SET big");
        let back: Vec<u8> = redis::cmd("GET")
            .arg("big")
            .query_async(&mut con)
            .await
            .expect("GET big");
        assert!(back == big, "large value corrupted");

        // Blocking command: BLPOP unblocked by another connection.
        let mut other = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let waiter = tokio::spawn(async move {
            let r: (String, String) = redis::cmd("BLPOP")
                .arg("queue")
                .arg(5)
                .query_async(&mut other)
                .await
                .expect("BLPOP");
            r
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _: i64 = redis::cmd("RPUSH")
            .arg("queue")
            .arg("job")
            .query_async(&mut con)
            .await
            .expect("RPUSH");
        assert_eq!(
            waiter.await.expect("join"),
            ("queue".to_string(), "job".to_string())
        );

        // Raw pipelining of many commands in one write, mixed inline and multibulk.
        let mut c = RawConn::plain(emu.plain_addr().expect("plain")).await;
        let mut batch = encode(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()]);
        for i in 0..100 {
            batch.extend_from_slice(&encode(&[
                b"SET",
                format!("k{i}").as_bytes(),
                format!("v{i}").as_bytes(),
            ]));
            batch.extend_from_slice(format!("GET k{i}\r\n").as_bytes());
        }
        c.send(&batch).await;
        assert_eq!(c.read_reply().await, Some(ok()));
        for i in 0..100 {
            assert_eq!(c.read_reply().await, Some(ok()));
            assert_eq!(
                c.read_reply().await,
                Some(Reply::Bulk(Some(format!("v{i}").into_bytes())))
            );
        }

        // RESP2 pub/sub through the redis crate.
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
        pubsub.subscribe("news").await.expect("subscribe");
        let _: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("flash")
            .query_async(&mut con)
            .await
            .expect("publish");
        use futures_util::StreamExt as _;
        let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
            .await
            .expect("message in time")
            .expect("message");
        assert_eq!(msg.get_payload::<String>().expect("payload"), "flash");
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_input_closes_only_that_connection() {
    bounded(async {
        let emu = start(Emulator::builder().plain_listener(true).max_bulk_len(4096)).await;
        let mut good = authed_tls(&emu).await;

        let cases: [(&[u8], &str); 4] = [
            (b"*1\r\n?\r\n", "ERR Protocol error: expected '$', got '?'"),
            (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
            (
                b"*2\r\n$3\r\nGET\r\n$-7\r\n",
                "ERR Protocol error: invalid bulk length",
            ),
            // Over the configured limit of 4096 bytes.
            (
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n",
                "ERR Protocol error: invalid bulk length",
            ),
        ];
        for (input, expected) in cases {
            let mut bad = authed_plain(&emu).await;
            // A valid command pipelined before the bad input is answered first.
            let mut bytes = encode(&[b"PING"]);
            bytes.extend_from_slice(input);
            bad.send(&bytes).await;
            assert_eq!(bad.read_reply().await, Some(pong()));
            assert_eq!(
                bad.read_reply().await,
                Some(err(expected)),
                "{}",
                String::from_utf8_lossy(input)
            );
            assert!(bad.closed_within(Duration::from_secs(5)).await.is_some());
            assert_eq!(good.cmd_str(&["PING"]).await, pong());
        }
        // Unauthenticated garbage too.
        let mut bad = RawConn::tls(&emu).await;
        bad.send(b"*1\r\n$abc\r\n").await;
        assert_eq!(
            bad.read_reply().await,
            Some(err("ERR Protocol error: invalid bulk length"))
        );
        assert!(bad.closed_within(Duration::from_secs(5)).await.is_some());

        assert_eq!(emu.counters().protocol_errors, 5);
        assert_eq!(good.cmd_str(&["PING"]).await, pong());
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn access_key_mode_and_env() {
    bounded(async {
        init();
        let key = "ab+/cd==";
        let emu = Emulator::builder()
            .access_key(key)
            .plain_listener(true)
            .start()
            .await
            .expect("emulator");
        let mut c = RawConn::plain(emu.plain_addr().expect("plain")).await;
        assert_eq!(c.cmd_str(&["AUTH", "nope"]).await, err(WRONGPASS));
        assert_eq!(c.cmd_str(&["AUTH", key]).await, ok());
        assert_eq!(c.cmd_str(&["AUTH", "default", key]).await, ok());
        // Access-key connections have no deadline.
        assert!(c.closed_within(Duration::from_millis(300)).await.is_none());

        emu.set_access_keys_enabled(false);
        let mut c = RawConn::plain(emu.plain_addr().expect("plain")).await;
        assert_eq!(c.cmd_str(&["AUTH", key]).await, err(WRONGPASS));
        emu.set_access_key("new+key/==");
        assert_eq!(c.cmd_str(&["AUTH", "new+key/=="]).await, ok());

        let port = emu.tls_addr().port().to_string();
        let env = emu.env_for(azure_redis_emulator::ServiceConnectorAuth::ConnectionStringUrl);
        assert_eq!(env[0].0, "AZURE_REDIS_CONNECTIONSTRING");
        assert_eq!(env[0].1, format!("rediss://:new+key/==@localhost:{port}/0"));
        let env =
            emu.env_for(azure_redis_emulator::ServiceConnectorAuth::ConnectionStringStackExchange);
        assert_eq!(
            env[0].1,
            format!("localhost:{port},password=new+key/==,ssl=True,defaultDatabase=0")
        );
        let env = emu.env_for(azure_redis_emulator::ServiceConnectorAuth::AccessKey);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "AZURE_REDIS_HOST",
                "AZURE_REDIS_PORT",
                "AZURE_REDIS_DATABASE",
                "AZURE_REDIS_PASSWORD",
                "AZURE_REDIS_SSL",
                "SSL_CERT_FILE"
            ]
        );
        assert_eq!(emu.access_key().expose_secret(), "new+key/==");
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn connections_that_do_not_authenticate_in_time_are_closed() {
    bounded(async {
        let emu = emulator(Duration::from_secs(60)).await;
        assert_eq!(emu.counters().closed_unauthenticated, 0);
        emu.faults()
            .set_pre_auth_timeout(Duration::from_millis(800));
        let oid = emu.system_identity();
        let started = Instant::now();
        let mut silent = RawConn::tls(&emu).await;
        let mut failed = RawConn::plain(emu.plain_addr().expect("plain")).await;
        let mut good = RawConn::tls(&emu).await;
        assert_eq!(failed.cmd_str(&["PING"]).await, err(NOAUTH));
        let t = emu.mint_flawed_token(&oid, TokenFlaw::Expired);
        assert_eq!(
            failed
                .cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
                .await,
            err(WRONGPASS)
        );
        auth_ok(&mut good, &emu, &oid).await;
        // Closed without a reply once the timeout passes.
        assert_eq!(
            silent.closed_within(Duration::from_secs(3)).await,
            Some(Vec::new())
        );
        assert!(started.elapsed() >= Duration::from_millis(750));
        assert_eq!(
            failed.closed_within(Duration::from_secs(3)).await,
            Some(Vec::new())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(good.cmd_str(&["PING"]).await, pong());
        assert_eq!(emu.counters().closed_unauthenticated, 2);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn too_many_unauthenticated_connections_are_refused() {
    bounded(async {
        let emu = emulator(Duration::from_secs(60)).await;
        emu.faults().set_max_unauthenticated(2);
        let oid = emu.system_identity();
        let plain = emu.plain_addr().expect("plain");
        let mut a = RawConn::tls(&emu).await;
        let mut b = RawConn::plain(plain).await;
        assert_eq!(b.cmd_str(&["PING"]).await, err(NOAUTH));
        // A third unauthenticated connection is closed at once.
        let mut over = RawConn::plain(plain).await;
        assert_eq!(
            over.closed_within(Duration::from_secs(2)).await,
            Some(Vec::new())
        );
        assert_eq!(emu.counters().closed_unauthenticated, 1);
        // Once one authenticates, there is room for another; authenticated ones do not count.
        auth_ok(&mut a, &emu, &oid).await;
        let mut c = authed_tls(&emu).await;
        let mut d = RawConn::plain(plain).await;
        assert_eq!(d.cmd_str(&["PING"]).await, err(NOAUTH));
        // Closing one gives its slot back too.
        drop(b);
        let mut e = None;
        for _ in 0..40 {
            let mut conn = RawConn::plain(plain).await;
            conn.send_cmd(&[b"PING"]).await;
            if conn.read_reply().await == Some(err(NOAUTH)) {
                e = Some(conn);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(e.is_some(), "the closed connection's slot came back");
        for conn in [&mut a, &mut c] {
            assert_eq!(conn.cmd_str(&["PING"]).await, pong());
        }
        assert_eq!(d.cmd_str(&["PING"]).await, err(NOAUTH));
        emu.shutdown().await;
    })
    .await;
}
