//! Fault injection and counters.

mod common;

use std::time::{Duration, Instant};

use azure_redis_emulator::{ClusterEmulator, Emulator, IdentityEndpoint, IdentityFault};
use common::*;
use secrecy::ExposeSecret as _;

/// The managed identity endpoint's URL for a Redis token.
fn mi_url(emu: &Emulator) -> String {
    format!(
        "{}?api-version=2019-08-01&resource=https://redis.azure.com",
        emu.identity_endpoint()
    )
}

/// A plain HTTP client that ignores proxy settings.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn mi_request(emu: &Emulator, client_id: Option<&str>) -> reqwest::Response {
    let mut url = mi_url(emu);
    if let Some(c) = client_id {
        url.push_str(&format!("&client_id={c}"));
    }
    http_client()
        .get(url)
        .header("x-identity-header", emu.identity_header().expose_secret())
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn managed_identity_endpoint_protocol_and_outages() {
    bounded(async {
        let emu = emulator(Duration::from_secs(60)).await;
        let r = mi_request(&emu, None).await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["resource"], "https://redis.azure.com");
        let expires_on: i64 = body["expires_on"]
            .as_str()
            .expect("string")
            .parse()
            .expect("secs");
        let token = body["access_token"].as_str().expect("token");
        assert_eq!(oid_of(token), emu.system_identity());
        let now = unix_now() as i64;
        assert!(
            (now + 59..=now + 62).contains(&expires_on),
            "{expires_on} vs {now}"
        );

        // Unknown client id: 400, as Azure answers.
        assert_eq!(mi_request(&emu, Some("nobody")).await.status(), 400);
        let ua = emu.default_user_identity().clone();
        let r = mi_request(&emu, Some(&ua.client_id)).await;
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(
            oid_of(body["access_token"].as_str().expect("token")),
            ua.oid
        );

        // Missing secret header.
        let r = http_client()
            .get(mi_url(&emu))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401);

        let faults = emu.faults();
        // HTTP 500 for a window.
        faults.identity_outage(
            IdentityEndpoint::ManagedIdentity,
            IdentityFault::Http500,
            Some(Duration::from_millis(600)),
        );
        assert_eq!(mi_request(&emu, None).await.status(), 500);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(mi_request(&emu, None).await.status(), 200);

        // No answer until cleared.
        faults.identity_outage(IdentityEndpoint::All, IdentityFault::NoAnswer, None);
        let pending = {
            let url = mi_url(&emu);
            let header = emu.identity_header().expose_secret().to_string();
            tokio::spawn(async move {
                http_client()
                    .get(url)
                    .header("x-identity-header", header)
                    .send()
                    .await
                    .expect("request")
                    .status()
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!pending.is_finished(), "no answer during the outage");
        faults.clear_identity_outage(IdentityEndpoint::All);
        assert_eq!(pending.await.expect("join"), 504);

        // Slow answers.
        faults.identity_outage(
            IdentityEndpoint::ManagedIdentity,
            IdentityFault::Slow(Duration::from_millis(400)),
            None,
        );
        let started = Instant::now();
        assert_eq!(mi_request(&emu, None).await.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(400));
        faults.clear_all();

        let n = emu.counters();
        assert_eq!(n.managed_identity_requests, 8);
        assert_eq!(n.tokens_minted, 4);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn token_endpoint_outage() {
    bounded(async {
        let emu = emulator(Duration::from_secs(60)).await;
        let (sp, secret) = emu.default_service_principal();
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            emu.token_endpoint_authority(),
            sp.tenant_id
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", sp.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("scope", "https://redis.azure.com/.default"),
        ];
        let body = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.replace('/', "%2F")
                        .replace(':', "%3A")
                        .replace('~', "%7E")
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let client = https_client(&emu);
        let post = || {
            client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
        };
        let sent = unix_now();
        let r = post().await.expect("request");
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["token_type"], "Bearer");
        let expires_in = v["expires_in"].as_i64().expect("expires_in");
        assert!(expires_in >= 59, "{expires_in}");
        // A client's expiry (its clock plus `expires_in`) never passes the token's `exp`.
        let exp = claims_of(v["access_token"].as_str().expect("token"))["exp"]
            .as_i64()
            .expect("exp claim");
        assert!(
            sent + expires_in as f64 <= exp as f64,
            "sent at {sent}, expires_in {expires_in}, exp {exp}"
        );

        emu.faults().identity_outage(
            IdentityEndpoint::TokenEndpoint,
            IdentityFault::Http500,
            None,
        );
        assert_eq!(post().await.expect("request").status(), 500);
        // The managed identity endpoint is unaffected.
        assert_eq!(mi_request(&emu, None).await.status(), 200);
        emu.faults()
            .clear_identity_outage(IdentityEndpoint::TokenEndpoint);
        assert_eq!(post().await.expect("request").status(), 200);
        assert_eq!(emu.counters().token_endpoint_requests, 3);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn reject_drop_stall_and_restart() {
    bounded(async {
        let emu = emulator(Duration::from_secs(60)).await;
        let oid = emu.system_identity();
        let faults = emu.faults();

        // Reject the next two AUTHs, valid or not.
        faults.reject_next_auths(2);
        let mut c = RawConn::tls(&emu).await;
        assert_eq!(
            auth(&mut c, &emu, &oid, Duration::from_secs(60)).await,
            err(WRONGPASS)
        );
        assert_eq!(
            auth(&mut c, &emu, &oid, Duration::from_secs(60)).await,
            err(WRONGPASS)
        );
        auth_ok(&mut c, &emu, &oid).await;
        let n = emu.counters();
        assert_eq!((n.auth_accepted, n.auth_rejected), (1, 2));

        // Drop every connection.
        let mut d = authed_plain(&emu).await;
        assert_eq!(emu.counters().connections_open, 2);
        faults.drop_all_connections();
        assert_eq!(
            c.closed_within(Duration::from_secs(3)).await,
            Some(Vec::new())
        );
        assert_eq!(
            d.closed_within(Duration::from_secs(3)).await,
            Some(Vec::new())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(emu.counters().connections_open, 0);
        // New connections work.
        let mut c = authed_tls(&emu).await;
        assert_eq!(c.cmd_str(&["SET", "k", "v"]).await, ok());

        // Stall the gate.
        faults.stall_gate(Duration::from_millis(800));
        let started = Instant::now();
        assert_eq!(c.cmd_str(&["PING"]).await, pong());
        assert!(
            started.elapsed() >= Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );

        // Restart redis-server: the connection closes, data is gone, new connections work.
        faults.restart_redis().await.expect("restart");
        assert!(c.closed_within(Duration::from_secs(5)).await.is_some());
        let mut c = authed_tls(&emu).await;
        assert_eq!(c.cmd_str(&["GET", "k"]).await, Reply::Bulk(None));
        assert_eq!(c.cmd_str(&["PING"]).await, pong());

        let n = emu.counters();
        assert_eq!(n.connections_accepted, 4);
        assert_eq!(n.auth_accepted, 4);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn drop_kills_redis_server() {
    bounded(async {
        let emu = emulator(Duration::from_secs(60)).await;
        let addr = emu.redis_addr();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
        drop(emu);
        // The port is closed once the emulator is dropped.
        let mut closed = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(closed, "redis-server still listens after drop");
    })
    .await;
}

#[tokio::test]
async fn auth_delay_slows_every_auth() {
    bounded(async {
        let emu = start(Emulator::builder().auth_delay(Duration::from_millis(300))).await;
        let oid = emu.system_identity();
        let mut c = RawConn::tls(&emu).await;
        let started = Instant::now();
        auth_ok(&mut c, &emu, &oid).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        let started = Instant::now();
        assert_eq!(c.cmd_str(&["PING"]).await, pong());
        assert!(started.elapsed() < Duration::from_millis(300));
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    bounded(async {
        let emu = start(Emulator::builder().idle_timeout(Duration::from_millis(800))).await;
        let oid = emu.system_identity();
        let mut busy = RawConn::tls(&emu).await;
        let mut idle = RawConn::tls(&emu).await;
        auth_ok(&mut busy, &emu, &oid).await;
        auth_ok(&mut idle, &emu, &oid).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert_eq!(busy.cmd_str(&["PING"]).await, pong());
        }
        assert_eq!(
            idle.closed_within(Duration::from_secs(2)).await,
            Some(Vec::new())
        );
        assert_eq!(busy.cmd_str(&["PING"]).await, pong());
        assert_eq!(emu.counters().closed_idle, 1);
        emu.shutdown().await;
    })
    .await;
}

/// Polls `f` until it holds (up to 3 s).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..60 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not reached within 3 s: {what}");
}

/// Asserts that `c` gets no reply and no EOF within `within`.
async fn silent(c: &mut RawConn, within: Duration, what: &str) {
    let r = tokio::time::timeout(within, c.read_reply()).await;
    assert!(r.is_err(), "{what}: expected silence, got {r:?}");
}

#[tokio::test]
async fn half_open_existing_connections_go_silent_and_stay_open() {
    bounded(async {
        let emu = start(
            Emulator::builder()
                .token_lifetime(Duration::from_secs(60))
                .idle_timeout(Duration::from_millis(1500))
                .plain_listener(true),
        )
        .await;
        let faults = emu.faults();
        faults.set_pre_auth_timeout(Duration::from_millis(1500));
        let oid = emu.system_identity();
        // A TLS and a plain connection with tokens that expire in 2 s, and one that never
        // authenticates.
        let mut tls = RawConn::tls(&emu).await;
        let mut plain = RawConn::plain(emu.plain_addr().expect("plain")).await;
        let mut unauthenticated = RawConn::tls(&emu).await;
        for c in [&mut tls, &mut plain] {
            assert_eq!(auth(c, &emu, &oid, Duration::from_secs(2)).await, ok());
            assert_eq!(c.cmd_str(&["PING"]).await, pong());
        }
        let started = Instant::now();
        faults.half_open_existing();
        eventually("3 connections half-open", || {
            emu.counters().half_opened == 3
        })
        .await;

        // A connection made right after is served normally.
        let mut fresh = authed_tls(&emu).await;
        assert_eq!(fresh.cmd_str(&["PING"]).await, pong());
        drop(fresh);

        // The old ones: no reply, no FIN, past the token's expiry, the idle timeout and the
        // pre-auth timeout.
        tls.send_cmd(&[b"PING"]).await;
        plain.send_cmd(&[b"PING"]).await;
        unauthenticated.send_cmd(&[b"PING"]).await;
        silent(&mut tls, Duration::from_secs(2), "TLS").await;
        silent(&mut plain, Duration::from_millis(500), "plain").await;
        silent(
            &mut unauthenticated,
            Duration::from_millis(500),
            "unauthenticated",
        )
        .await;
        assert!(started.elapsed() > Duration::from_secs(3));
        tls.send_cmd(&[b"GET", b"k"]).await;
        silent(&mut tls, Duration::from_millis(300), "TLS, later").await;
        let n = emu.counters();
        assert_eq!(
            (n.closed_at_expiry, n.closed_idle, n.closed_unauthenticated),
            (0, 0, 0)
        );
        eventually("only the half-open connections open", || {
            emu.counters().connections_open == 3
        })
        .await;

        // They close when the client closes them.
        drop((tls, plain, unauthenticated));
        eventually("no connection open", || {
            emu.counters().connections_open == 0
        })
        .await;
        assert_eq!(emu.counters().half_opened, 3);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_on_one_cluster_node_only() {
    bounded(async {
        init();
        let cluster = ClusterEmulator::builder()
            .emulator(Emulator::builder().token_lifetime(Duration::from_secs(60)))
            .start()
            .await
            .expect("the cluster starts");
        let emu = cluster.identity();
        let oid = emu.system_identity();
        let gates = cluster.gate_addrs();
        let mut conns = Vec::new();
        for &addr in &gates[..2] {
            let mut c = RawConn::tls_at(emu, addr).await;
            auth_ok(&mut c, emu, &oid).await;
            conns.push(c);
        }
        cluster.node_faults(0).expect("node 0").half_open_existing();
        eventually("node 0's connection half-open", || {
            cluster.node_counters(0).expect("node 0").half_opened == 1
        })
        .await;
        conns[0].send_cmd(&[b"PING"]).await;
        silent(&mut conns[0], Duration::from_secs(2), "node 0").await;
        assert_eq!(conns[1].cmd_str(&["PING"]).await, pong());
        let mut fresh = RawConn::tls_at(emu, gates[0]).await;
        auth_ok(&mut fresh, emu, &oid).await;
        assert_eq!(fresh.cmd_str(&["PING"]).await, pong());
        assert_eq!(cluster.node_counters(1).expect("node 1").half_opened, 0);
        cluster.shutdown().await;
    })
    .await;
}
