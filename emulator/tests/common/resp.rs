//! A raw RESP client over TCP or TLS, and the replies it reads, for tests of the gate itself.
//!
//! Here a raw socket is the point: these tests send what no client library would (malformed
//! or truncated requests, a command split into 64-byte writes, pipelines written in one go,
//! commands before AUTH) and look at exactly what comes back: each reply's RESP2/RESP3 type,
//! the bytes received before the gate closed the connection ([`RawConn::closed_within`]), or
//! that nothing came at all. Its reply reader is deliberately lenient and knows nothing of
//! redis-server. Anything else, admin commands included, goes through the `redis` crate
//! (`clients.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_redis_emulator::Emulator;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

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

/// A raw client connection to a gate that keeps its own read buffer: every byte written is the
/// test's, every byte read is the gate's.
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

/// AUTH <oid> <token> with a freshly minted token valid for a minute; asserts `+OK`.
pub async fn auth_ok(conn: &mut RawConn, emu: &Emulator, oid: &str) {
    assert_eq!(auth(conn, emu, oid, Duration::from_secs(60)).await, ok());
}

/// `HELLO 3 AUTH <oid> <token>`.
pub async fn hello3_auth(conn: &mut RawConn, oid: &str, token: &str) -> Reply {
    conn.cmd(&[b"HELLO", b"3", b"AUTH", oid.as_bytes(), token.as_bytes()])
        .await
}

pub fn pong() -> Reply {
    Reply::Simple("PONG".into())
}
