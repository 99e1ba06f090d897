//! Helpers shared by the integration tests: a raw RESP client over TCP or TLS.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_redis_emulator::Emulator;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Every test is bounded by this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs ring as the process's rustls provider (clients that use the default need one).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A RESP value as read from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Push(Vec<Reply>),
    Null,
    Other(String),
}

impl Reply {
    pub fn bulk_str(&self) -> Option<String> {
        match self {
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Simple(s) => Some(s.clone()),
            _ => None,
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A raw client connection that keeps its own read buffer.
pub struct RawConn {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
}

/// The client-side TLS configuration trusting the emulator's CA.
pub fn tls_config(emu: &Emulator) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emu.ca_pem().as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl RawConn {
    pub async fn plain(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        Self {
            stream: Box::new(s),
            buf: Vec::new(),
        }
    }

    pub async fn tls(emu: &Emulator) -> Self {
        Self::tls_at(emu, emu.tls_addr()).await
    }

    /// A TLS connection to `addr` (a gate with a certificate from `emu`'s CA).
    pub async fn tls_at(emu: &Emulator, addr: SocketAddr) -> Self {
        let connector = tokio_rustls::TlsConnector::from(tls_config(emu));
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, s).await.expect("TLS handshake");
        Self {
            stream: Box::new(tls),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    pub async fn send_cmd(&mut self, parts: &[&[u8]]) {
        self.send(&encode(parts)).await;
    }

    pub async fn cmd(&mut self, parts: &[&[u8]]) -> Reply {
        self.send_cmd(parts).await;
        self.read_reply().await.expect("reply")
    }

    pub async fn cmd_str(&mut self, parts: &[&str]) -> Reply {
        let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        self.cmd(&parts).await
    }

    /// Reads more bytes; `false` on EOF or error.
    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one reply; `None` when the connection closed first.
    pub async fn read_reply(&mut self) -> Option<Reply> {
        loop {
            if let Some((reply, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(reply);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Waits until the server closes the connection; returns the bytes received meanwhile,
    /// or `None` if it is still open after `within`.
    pub async fn closed_within(&mut self, within: Duration) -> Option<Vec<u8>> {
        let r = tokio::time::timeout(within, async { while self.fill().await {} }).await;
        r.ok().map(|_| std::mem::take(&mut self.buf))
    }
}

pub fn encode(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let pos = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..pos], pos + 2))
}

fn parse_n(buf: &[u8], n: usize) -> Option<(Vec<Reply>, usize)> {
    let mut items = Vec::with_capacity(n);
    let mut used = 0;
    for _ in 0..n {
        let (r, u) = parse(&buf[used..])?;
        items.push(r);
        used += u;
    }
    Some((items, used))
}

/// Parses one RESP2/RESP3 reply from the start of `buf`.
pub fn parse(buf: &[u8]) -> Option<(Reply, usize)> {
    let (&kind, _) = buf.split_first()?;
    let (l, hl) = line(&buf[1..])?;
    let text = String::from_utf8_lossy(l).into_owned();
    let hl = hl + 1;
    let num = || text.parse::<i64>().ok();
    match kind {
        b'+' => Some((Reply::Simple(text), hl)),
        b'-' => Some((Reply::Error(text), hl)),
        b':' => Some((Reply::Int(num()?), hl)),
        b'_' => Some((Reply::Null, hl)),
        b',' | b'#' | b'(' => Some((Reply::Other(text), hl)),
        b'$' | b'=' | b'!' => {
            let n = num()?;
            if n < 0 {
                return Some((Reply::Bulk(None), hl));
            }
            let n = n as usize;
            if buf.len() < hl + n + 2 {
                return None;
            }
            Some((Reply::Bulk(Some(buf[hl..hl + n].to_vec())), hl + n + 2))
        }
        b'*' | b'~' | b'>' => {
            let n = num()?;
            if n < 0 {
                return Some((Reply::Array(None), hl));
            }
            let (items, used) = parse_n(&buf[hl..], n as usize)?;
            let r = match kind {
                b'*' => Reply::Array(Some(items)),
                b'~' => Reply::Set(items),
                _ => Reply::Push(items),
            };
            Some((r, hl + used))
        }
        b'%' | b'|' => {
            let n = num()?;
            let (items, used) = parse_n(&buf[hl..], 2 * n as usize)?;
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            if kind == b'|' {
                // An attribute precedes the real reply.
                let (r, u) = parse(&buf[hl + used..])?;
                return Some((r, hl + used + u));
            }
            Some((Reply::Map(pairs), hl + used))
        }
        _ => Some((Reply::Other(text), hl)),
    }
}

pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NOAUTH: &str = "NOAUTH Authentication required.";

pub fn ok() -> Reply {
    Reply::Simple("OK".into())
}

pub fn err(s: &str) -> Reply {
    Reply::Error(s.into())
}

/// AUTH <oid> <token> with a freshly minted token.
pub async fn auth(conn: &mut RawConn, emu: &Emulator, oid: &str, lifetime: Duration) -> Reply {
    let t = emu.mint_token(oid, lifetime);
    conn.cmd(&[b"AUTH", oid.as_bytes(), t.secret().as_bytes()])
        .await
}

/// A `redis` crate client for the gate over TLS, authenticating as `user` with `password`.
pub fn redis_client(emu: &Emulator, user: &str, password: &str) -> redis::Client {
    use redis::IntoConnectionInfo as _;
    let info = format!("rediss://localhost:{}/0", emu.tls_addr().port())
        .as_str()
        .into_connection_info()
        .expect("connection info")
        .set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_username(user)
                .set_password(password),
        );
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(emu.ca_pem().as_bytes().to_vec()),
        },
    )
    .expect("redis client")
}

/// The claims of a JWT (payload parsed as JSON, never by substring).
pub fn claims_of(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The `oid` claim of a JWT.
pub fn oid_of(jwt: &str) -> String {
    claims_of(jwt)["oid"]
        .as_str()
        .expect("oid claim")
        .to_string()
}

/// The current time in Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// An HTTP client (reqwest, as azure_core uses) that trusts only the emulator's CA.
pub fn https_client(emu: &Emulator) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA")])
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// azure_core client options that reach the emulator's token endpoint without any environment
/// variable: a custom cloud whose authority is the emulator, a transport trusting its CA, and
/// no retries.
pub fn azure_client_options(emu: &Emulator) -> azure_core::http::ClientOptions {
    let mut cloud = azure_core::cloud::CustomConfiguration::default();
    cloud.authority_host = emu.token_endpoint_authority();
    azure_core::http::ClientOptions {
        cloud: Some(Arc::new(cloud.into())),
        transport: Some(azure_core::http::Transport::new(Arc::new(https_client(
            emu,
        )))),
        retry: azure_core::http::RetryOptions::none(),
        ..Default::default()
    }
}

/// Connects to the gate over TLS with `token` and checks a round trip.
pub async fn check_token_at_gate(emu: &Emulator, token: &str) {
    let oid = oid_of(token);
    let client = redis_client(emu, &oid, token);
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("the gate accepts the token");
    let () = redis::cmd("SET")
        .arg("cred-check")
        .arg(&oid)
        .query_async(&mut con)
        .await
        .expect("SET");
    let back: String = redis::cmd("GET")
        .arg("cred-check")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(back, oid);
}
