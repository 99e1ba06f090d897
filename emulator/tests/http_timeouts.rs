//! The identity endpoints disconnect clients that are too slow to send a request: a stalled
//! TLS handshake, a request head that never ends (slowloris), a body that never arrives; and
//! they keep serving everyone else.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use azure_redis_emulator::{Emulator, Faults};
use common::*;
use rustls::pki_types::ServerName;
use secrecy::ExposeSecret as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The read timeout the tests set.
const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a test waits for the emulator to close a connection: far above [`READ_TIMEOUT`]
/// (no scheduling delay comes near it) and below [`Faults::DEFAULT_HTTP_READ_TIMEOUT`], so that
/// a connection closed within it was closed because of the timeout the test set. It only
/// bounds the wait; no test measures how long anything took.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);
const _: () = assert!(CLOSE_WITHIN.as_secs() < Faults::DEFAULT_HTTP_READ_TIMEOUT.as_secs());

/// An emulator whose identity endpoints wait [`READ_TIMEOUT`] for each part of a request.
async fn impatient_emulator() -> Emulator {
    let emu = start(Emulator::builder()).await;
    emu.faults().set_http_read_timeout(READ_TIMEOUT);
    emu
}

/// The managed identity endpoint's address (plain HTTP).
fn mi_addr(emu: &Emulator) -> SocketAddr {
    let url = emu.identity_endpoint();
    let rest = url.strip_prefix("http://").expect("http URL");
    rest[..rest.find('/').expect("path")]
        .parse()
        .expect("socket address")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// A TLS connection to the token endpoint, handshake done.
async fn connect_tls(emu: &Emulator) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(tls_config(emu));
    let name = ServerName::try_from("localhost").expect("name");
    connector
        .connect(name, connect(emu.token_endpoint_addr()).await)
        .await
        .expect("TLS handshake")
}

/// Reads until the peer closes the connection (EOF, or an error such as a reset); returns what
/// arrived. Panics if the connection is still open after [`CLOSE_WITHIN`].
async fn read_until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(CLOSE_WITHIN, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open; received {:?}",
        String::from_utf8_lossy(&received)
    );
    received
}

fn status_line(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.lines().next().unwrap_or_default().to_string()
}

/// Sends `bytes` and checks that the emulator closes the connection with a 408 reply.
async fn expect_408<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
    let reply = read_until_closed(stream).await;
    assert_eq!(status_line(&reply), "HTTP/1.1 408 Request Timeout");
}

/// A token from the managed identity endpoint and one from the token endpoint, as ordinary
/// clients ask for them.
async fn normal_requests_succeed(emu: &Emulator) {
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://redis.azure.com",
        emu.identity_endpoint()
    );
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(url)
        .header("x-identity-header", emu.identity_header().expose_secret())
        .send()
        .await
        .expect("managed identity request");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["access_token"].is_string(), "{body}");

    let (sp, secret) = emu.default_service_principal();
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        emu.token_endpoint_authority(),
        sp.tenant_id
    );
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fredis.azure.com%2F.default",
        sp.client_id,
        secret.expose_secret()
    );
    let r = https_client(emu)
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["access_token"].is_string(), "{body}");
}

#[tokio::test]
async fn partial_request_head_gets_408_and_the_connection_closes() {
    bounded(async {
        let emu = impatient_emulator().await;
        // No blank line: the head never ends.
        let head = b"GET /msi/token?api-version=2019-08-01&resource=https://redis.azure.com HTTP/1.1\r\nhost: localhost\r\nx-identity-header: ";
        expect_408(&mut connect(mi_addr(&emu)).await, head).await;
        // Over TLS too.
        expect_408(
            &mut connect_tls(&emu).await,
            b"POST /tenant/oauth2/v2.0/token HTTP/1.1\r\nhost: localhost\r\n",
        )
        .await;
        normal_requests_succeed(&emu).await;
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn request_head_sent_a_byte_at_a_time_gets_408_before_it_ends() {
    bounded(async {
        let emu = impatient_emulator().await;
        // A head of 2 kB at one byte every 10 ms would take 20 s: each byte arrives well within
        // the timeout, the whole head does not.
        let mut head = b"GET /msi/token?api-version=2019-08-01 HTTP/1.1\r\nx-padding: ".to_vec();
        head.resize(2000, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let (mut reader, mut writer) = connect(mi_addr(&emu)).await.into_split();
        let trickle = tokio::spawn(async move {
            for b in head {
                if writer.write_all(&[b]).await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            true
        });
        let reply = read_until_closed(&mut reader).await;
        assert_eq!(status_line(&reply), "HTTP/1.1 408 Request Timeout");
        trickle.abort();
        if let Ok(sent_all) = trickle.await {
            assert!(
                !sent_all,
                "the whole head went out before the connection closed"
            );
        }
        normal_requests_succeed(&emu).await;
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn body_that_never_arrives_gets_408_and_the_connection_closes() {
    bounded(async {
        let emu = impatient_emulator().await;
        let tenant = emu.tenant_id();
        let request = format!(
            "POST /{tenant}/oauth2/v2.0/token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type=client"
        );
        expect_408(&mut connect_tls(&emu).await, request.as_bytes()).await;
        normal_requests_succeed(&emu).await;
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn connection_that_sends_nothing_is_closed_without_a_reply() {
    bounded(async {
        let emu = impatient_emulator().await;
        let mut idle = connect(mi_addr(&emu)).await;
        assert_eq!(read_until_closed(&mut idle).await, b"");
        // A kept-alive connection with no next request is closed the same way, after its
        // first reply.
        let mut kept = connect(mi_addr(&emu)).await;
        kept.write_all(b"GET /msi/token HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .expect("write");
        let reply = read_until_closed(&mut kept).await;
        assert_eq!(status_line(&reply), "HTTP/1.1 401 Unauthorized");
        assert_eq!(
            String::from_utf8_lossy(&reply).matches("HTTP/1.1").count(),
            1
        );
        normal_requests_succeed(&emu).await;
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn stalled_tls_handshake_is_dropped() {
    bounded(async {
        let emu = impatient_emulator().await;
        // Nothing at all, then half a ClientHello.
        let mut silent = connect(emu.token_endpoint_addr()).await;
        assert_eq!(read_until_closed(&mut silent).await, b"");

        let mut full = Vec::new();
        let name = ServerName::try_from("localhost").expect("name");
        let mut client = rustls::ClientConnection::new(tls_config(&emu), name).expect("client");
        client.write_tls(&mut full).expect("ClientHello");
        let mut stalled = connect(emu.token_endpoint_addr()).await;
        stalled
            .write_all(&full[..full.len() / 2])
            .await
            .expect("write");
        assert_eq!(read_until_closed(&mut stalled).await, b"");

        normal_requests_succeed(&emu).await;
        emu.shutdown().await;
    })
    .await;
}
