//! The gate: a TLS (and optionally plain) front of redis-server that checks AUTH like Azure.
//!
//! Only the client-to-server direction is parsed (see [`crate::resp`]); replies pass through as
//! raw bytes. `AUTH` and `HELLO ... AUTH` are validated here and rewritten to carry either the
//! server's internal password or a wrong one, so that redis-server itself produces every reply
//! (`+OK`, `-WRONGPASS ...`, `-NOAUTH ...`) in order, in pipelines and in RESP3 alike.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::faults::inc;
use crate::resp::{Command, Intercept, Item, RequestParser, encode_command, string2ll};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

const READ_CHUNK: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const LINGER: Duration = Duration::from_secs(30);

/// Accepts gate connections until the emulator shuts down; owns every connection task.
pub(crate) async fn run(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(handle(stream, tls.clone(), shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "gate accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

struct OpenGuard<'a>(&'a AtomicU64);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(stream: TcpStream, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let conn_id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    inc(&shared.counters.connections_accepted);
    inc(&shared.counters.connections_open);
    let _open = OpenGuard(&shared.counters.connections_open);
    let _ = stream.set_nodelay(true);

    let upstream = match tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", shared.redis_config.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => {
            tracing::warn!(
                conn = conn_id,
                "redis-server unreachable; closing client connection"
            );
            return;
        }
    };
    let _ = upstream.set_nodelay(true);

    match tls {
        Some(acceptor) => {
            let tls_stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(conn = conn_id, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(conn = conn_id, "TLS handshake timed out");
                        return;
                    }
                };
            let (r, w) = tokio::io::split(tls_stream);
            proxy(r, w, upstream, &shared, conn_id).await;
        }
        None => {
            let (r, w) = stream.into_split();
            proxy(r, w, upstream, &shared, conn_id).await;
        }
    }
}

enum C2s {
    ClientClosed,
    Poisoned,
    Failed,
}

#[derive(Debug)]
enum End {
    UpstreamClosed,
    Expired,
    Dropped,
    Shutdown,
    Failed,
    Linger,
    Idle,
}

/// When data last moved on a connection, for the idle timeout.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `timeout` (never when `None`).
    async fn idle(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if Instant::now() >= last + timeout {
                return;
            }
            tokio::time::sleep_until(last + timeout).await;
        }
    }
}

async fn proxy<R, W>(mut cr: R, mut cw: W, upstream: TcpStream, shared: &Arc<Shared>, conn_id: u64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut ur, mut uw) = upstream.into_split();
    let (deadline_tx, deadline_rx) = watch::channel(None::<Instant>);
    let kill = shared.faults.kill_token();
    let mut session = Session::new(conn_id, deadline_tx);
    let activity = Activity::new();

    let end = {
        let c2s = client_to_server(&mut cr, &mut uw, shared, &mut session, &activity);
        let s2c = server_to_client(&mut ur, &mut cw, shared, &activity);
        let expiry = wait_expiry(deadline_rx);
        let idle = activity.idle(shared.idle_timeout);
        tokio::pin!(c2s, s2c, expiry, idle);
        let mut c2s_done = false;
        loop {
            tokio::select! {
                r = &mut c2s, if !c2s_done => {
                    c2s_done = true;
                    match r {
                        C2s::ClientClosed | C2s::Poisoned => continue,
                        C2s::Failed => break End::Failed,
                    }
                }
                _ = &mut s2c => break End::UpstreamClosed,
                _ = &mut expiry => break End::Expired,
                _ = &mut idle => break End::Idle,
                _ = kill.cancelled() => break End::Dropped,
                _ = shared.shutdown.cancelled() => break End::Shutdown,
                _ = tokio::time::sleep(LINGER), if c2s_done => break End::Linger,
            }
        }
    };
    match end {
        End::Expired => {
            inc(&shared.counters.closed_at_expiry);
            tracing::info!(
                conn = conn_id,
                "token expired without re-AUTH; closing the connection"
            );
        }
        End::Dropped => tracing::debug!(conn = conn_id, "connection dropped by fault injection"),
        End::Idle => {
            inc(&shared.counters.closed_idle);
            tracing::info!(conn = conn_id, "idle timeout; closing the connection");
        }
        ref other => tracing::debug!(conn = conn_id, end = ?other, "connection closed"),
    }
    drop(uw);
    drop(ur);
    // Best effort: a TLS close_notify, then the socket closes. No Redis reply is sent.
    let _ = tokio::time::timeout(Duration::from_millis(500), cw.shutdown()).await;
}

async fn wait_expiry(mut rx: watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *rx.borrow_and_update();
        match deadline {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(d) => return,
                    changed = rx.changed() => if changed.is_err() { std::future::pending::<()>().await },
                }
            }
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

async fn client_to_server<R, W>(
    cr: &mut R,
    uw: &mut W,
    shared: &Shared,
    session: &mut Session,
    activity: &Activity,
) -> C2s
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut parser = RequestParser::new(shared.limits);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        shared.faults.wait_stall().await;
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match cr.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = uw.shutdown().await;
                return C2s::ClientClosed;
            }
            Ok(_) => activity.touch(),
            Err(_) => return C2s::Failed,
        }
        // Bytes [fwd_start, pos) pass through unchanged; `out` is only used once a command
        // is rewritten or poison is added.
        out.clear();
        let mut pos = 0;
        let mut fwd_start = 0;
        let mut poisoned = false;
        while let Some(item) = parser.next(&buf[pos..]) {
            match item {
                Item::Forward(n) => pos += n,
                Item::Command(cmd, n) => {
                    if matches!(cmd.kind, Intercept::Auth | Intercept::Hello)
                        && let Some(delay) = shared.auth_delay
                    {
                        tokio::time::sleep(delay).await;
                    }
                    out.extend_from_slice(&buf[fwd_start..pos]);
                    out.extend_from_slice(&session.handle(cmd, shared));
                    pos += n;
                    fwd_start = pos;
                }
                Item::Poison(p) => {
                    out.extend_from_slice(&buf[fwd_start..pos]);
                    fwd_start = pos;
                    inc(&shared.counters.protocol_errors);
                    tracing::info!(
                        conn = session.conn_id,
                        reason = p.reason,
                        "protocol error; closing the connection"
                    );
                    out.extend_from_slice(&p.bytes);
                    poisoned = true;
                    break;
                }
            }
        }
        let pending: &[u8] = if out.is_empty() {
            &buf[..pos]
        } else {
            out.extend_from_slice(&buf[fwd_start..pos]);
            &out
        };
        if !pending.is_empty() {
            shared.faults.wait_stall().await;
            if uw.write_all(pending).await.is_err() {
                return C2s::Failed;
            }
        }
        buf.advance(pos);
        if poisoned {
            return C2s::Poisoned;
        }
        if out.capacity() > 4 * READ_CHUNK {
            out = Vec::with_capacity(READ_CHUNK);
        }
    }
}

async fn server_to_client<R, W>(ur: &mut R, cw: &mut W, shared: &Shared, activity: &Activity)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match ur.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        activity.touch();
        shared.faults.wait_stall().await;
        if cw.write_all(&buf[..n]).await.is_err() || cw.flush().await.is_err() {
            return;
        }
    }
}

/// What the gate knows about one client connection.
struct Session {
    conn_id: u64,
    authenticated: bool,
    resp3: bool,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
    deadline: watch::Sender<Option<Instant>>,
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// redis-server's rule for client names: printable ASCII without spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

impl Session {
    fn new(conn_id: u64, deadline: watch::Sender<Option<Instant>>) -> Self {
        Self {
            conn_id,
            authenticated: false,
            resp3: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            deadline,
        }
    }

    /// RESP2 with subscriptions: redis-server refuses AUTH and HELLO in this state.
    fn pubsub_restricted(&self) -> bool {
        let subscribed = !(self.channels.is_empty()
            && self.patterns.is_empty()
            && self.shard_channels.is_empty());
        subscribed && !self.resp3
    }

    fn accept(&mut self, exp: Option<i64>) {
        self.authenticated = true;
        let deadline = exp.map(|exp| {
            let left = exp as f64 - crate::jwt::now_unix();
            Instant::now() + Duration::from_secs_f64(left.clamp(0.0, 1.0e9))
        });
        self.deadline.send_replace(deadline);
    }

    fn handle(&mut self, cmd: Command, shared: &Shared) -> Vec<u8> {
        let wrong = shared.wrong_password.as_bytes();
        let internal = shared.internal_password.expose_secret().as_bytes();
        let Command { kind, mut args } = cmd;
        match kind {
            Intercept::Auth => {
                if self.pubsub_restricted() {
                    let mut parts: Vec<&[u8]> = vec![b"AUTH"];
                    parts.extend(std::iter::repeat_n(wrong, args.len()));
                    return encode_command(parts);
                }
                match args.len() {
                    1 | 2 => {
                        let (user, pass) = if args.len() == 1 {
                            (None, &args[0])
                        } else {
                            (Some(&args[0][..]), &args[1])
                        };
                        let verdict = shared.check_auth(user, pass, self.conn_id);
                        let pw = match verdict {
                            Ok(exp) => {
                                self.accept(exp);
                                internal
                            }
                            Err(_) => wrong,
                        };
                        if args.len() == 1 {
                            encode_command([b"AUTH".as_slice(), pw])
                        } else {
                            encode_command([b"AUTH".as_slice(), b"default", pw])
                        }
                    }
                    n => {
                        let mut parts: Vec<&[u8]> = vec![b"AUTH"];
                        parts.extend(std::iter::repeat_n(b"x".as_slice(), n));
                        encode_command(parts)
                    }
                }
            }
            Intercept::Hello => self.hello(&mut args, shared, internal, wrong),
            Intercept::Reset => {
                if args.is_empty() {
                    self.authenticated = false;
                    self.resp3 = false;
                    self.channels.clear();
                    self.patterns.clear();
                    self.shard_channels.clear();
                    self.deadline.send_replace(None);
                }
                encode_parts(kind, &args)
            }
            Intercept::Subscribe | Intercept::PSubscribe | Intercept::SSubscribe => {
                if self.authenticated && !args.is_empty() {
                    let set = self.set_for(kind);
                    set.extend(args.iter().cloned());
                }
                encode_parts(kind, &args)
            }
            Intercept::Unsubscribe | Intercept::PUnsubscribe | Intercept::SUnsubscribe => {
                if self.authenticated {
                    let set = self.set_for(kind);
                    if args.is_empty() {
                        set.clear();
                    } else {
                        for a in &args {
                            set.remove(a);
                        }
                    }
                }
                encode_parts(kind, &args)
            }
        }
    }

    fn set_for(&mut self, kind: Intercept) -> &mut HashSet<Bytes> {
        match kind {
            Intercept::PSubscribe | Intercept::PUnsubscribe => &mut self.patterns,
            Intercept::SSubscribe | Intercept::SUnsubscribe => &mut self.shard_channels,
            _ => &mut self.channels,
        }
    }

    fn hello(
        &mut self,
        args: &mut [Bytes],
        shared: &Shared,
        internal: &[u8],
        wrong: &[u8],
    ) -> Vec<u8> {
        if args.is_empty() {
            return encode_parts(Intercept::Hello, args);
        }
        let version = string2ll(&args[0]);
        let version_ok = matches!(version, Some(2 | 3));
        // Parse the options as redis-server does; remember where the credentials are.
        let mut auth_at = None;
        let mut syntax_ok = true;
        let mut i = 1;
        while i < args.len() {
            let more = args.len() - 1 - i;
            if eq(&args[i], "AUTH") && more >= 2 {
                auth_at = Some(i + 1);
                i += 3;
            } else if eq(&args[i], "SETNAME") && more >= 1 {
                if !valid_client_name(&args[i + 1]) {
                    syntax_ok = false;
                    break;
                }
                i += 2;
            } else {
                syntax_ok = false;
                break;
            }
        }
        let restricted = self.pubsub_restricted();
        match auth_at {
            Some(at) if version_ok && syntax_ok && !restricted => {
                let verdict = shared.check_auth(Some(&args[at]), &args[at + 1], self.conn_id);
                args[at] = Bytes::from_static(b"default");
                match verdict {
                    Ok(exp) => {
                        self.accept(exp);
                        self.resp3 = version == Some(3);
                        args[at + 1] = Bytes::copy_from_slice(internal);
                    }
                    Err(_) => args[at + 1] = Bytes::copy_from_slice(wrong),
                }
            }
            Some(at) => {
                // redis-server refuses this HELLO before looking at the credentials.
                args[at] = Bytes::from_static(b"default");
                args[at + 1] = Bytes::copy_from_slice(wrong);
            }
            None => {
                if version_ok && syntax_ok && !restricted && self.authenticated {
                    self.resp3 = version == Some(3);
                }
            }
        }
        encode_parts(Intercept::Hello, args)
    }
}

fn encode_parts(kind: Intercept, args: &[Bytes]) -> Vec<u8> {
    encode_command(std::iter::once(kind.name()).chain(args.iter().map(|a| &a[..])))
}
