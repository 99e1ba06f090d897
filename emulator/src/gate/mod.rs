//! The gate: a TLS (and optionally plain) front of redis-server that checks AUTH like Azure.
//!
//! Only the client-to-server direction is parsed (see [`crate::resp`]); replies pass through as
//! raw bytes. `AUTH` and `HELLO ... AUTH` are validated here and rewritten to carry either the
//! server's internal password or a wrong one, so that redis-server itself produces every reply
//! (`+OK`, `-WRONGPASS ...`, `-NOAUTH ...`) in order, in pipelines and in RESP3 alike.
//!
//! Like Azure, the gate closes connections that do not authenticate: after a pre-auth timeout,
//! and at once when too many unauthenticated connections are open (see [`PreAuth`]).

use std::collections::HashSet;
use std::fmt::Write as _;
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
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::faults::{Faults, inc};
use crate::resp::{Command, Intercept, Item, RequestParser, encode_command, string2ll};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

const READ_CHUNK: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const LINGER: Duration = Duration::from_secs(30);
/// At most this many bytes of a client-supplied string go into a log line.
const LOG_TEXT_MAX: usize = 64;

/// Client-supplied text made safe for a log line: control characters, non-ASCII bytes, quotes
/// and backslashes are escaped (`\n`, `\x1b`, `\xc3`, ...), so a client cannot forge log lines
/// or send terminal escapes; anything past [`LOG_TEXT_MAX`] bytes is cut and its length noted.
/// Never pass a secret (token, password, access key) here: those are never logged.
pub(crate) fn escape_client_text(bytes: &[u8]) -> String {
    let cut = bytes.len().min(LOG_TEXT_MAX);
    let mut s = bytes[..cut].escape_ascii().to_string();
    if bytes.len() > cut {
        let _ = write!(s, "...({} bytes)", bytes.len());
    }
    s
}

/// The gate's Azure-like limits on connections that have not authenticated yet, adjustable at
/// run time through [`Faults::set_pre_auth_timeout`] and [`Faults::set_max_unauthenticated`].
#[derive(Debug)]
pub(crate) struct PreAuth {
    pub(crate) timeout_ms: AtomicU64,
    pub(crate) max_open: AtomicU64,
    /// Connections open now that have not authenticated (nor gone half-open).
    open: AtomicU64,
}

impl Default for PreAuth {
    fn default() -> Self {
        Self {
            timeout_ms: AtomicU64::new(Faults::DEFAULT_PRE_AUTH_TIMEOUT.as_millis() as u64),
            max_open: AtomicU64::new(Faults::DEFAULT_MAX_UNAUTHENTICATED),
            open: AtomicU64::new(0),
        }
    }
}

impl PreAuth {
    /// When a connection accepted now must have authenticated (`None`: never).
    fn deadline(&self) -> Option<Instant> {
        Instant::now().checked_add(Duration::from_millis(
            self.timeout_ms.load(Ordering::SeqCst),
        ))
    }
}

/// One of the [`PreAuth`] slots for unauthenticated connections; given back on release or drop.
struct UnauthSlot(Option<Arc<Shared>>);

impl UnauthSlot {
    fn acquire(shared: &Arc<Shared>) -> Option<Self> {
        let p = &shared.faults.pre_auth;
        let max = p.max_open.load(Ordering::SeqCst);
        p.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Self(Some(shared.clone())))
    }

    fn release(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.faults.pre_auth.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for UnauthSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// What a connection got at accept: its pre-auth slot and deadline, and the half-open token in
/// force then.
struct Admission {
    slot: UnauthSlot,
    pre_auth_deadline: Option<Instant>,
    half_open: CancellationToken,
}

/// Accepts gate connections until the emulator shuts down; owns every connection task.
pub(crate) async fn run(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Taken right at accept, so that a fault called later applies to it.
                    let half_open = shared.faults.half_open_token();
                    let Some(slot) = UnauthSlot::acquire(&shared) else {
                        inc(&shared.counters.connections_accepted);
                        inc(&shared.counters.closed_unauthenticated);
                        tracing::debug!(
                            "too many unauthenticated connections; closing a new one"
                        );
                        drop(stream);
                        continue;
                    };
                    let admission = Admission {
                        slot,
                        pre_auth_deadline: shared.faults.pre_auth.deadline(),
                        half_open,
                    };
                    conns.spawn(handle(stream, tls.clone(), shared.clone(), admission));
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

/// Resolves at `deadline` (never when `None`).
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How a step before the proxy loop (upstream connect, TLS handshake) ended.
enum Setup<T> {
    Done(T),
    HalfOpen,
    Unauthenticated,
}

/// Runs `step` unless the connection goes half-open or runs out of pre-auth time first.
async fn setup<F: Future>(step: F, admission: &Admission) -> Setup<F::Output> {
    tokio::select! {
        biased;
        _ = admission.half_open.cancelled() => Setup::HalfOpen,
        _ = sleep_until_opt(admission.pre_auth_deadline) => Setup::Unauthenticated,
        v = step => Setup::Done(v),
    }
}

async fn handle(
    mut stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    admission: Admission,
) {
    let conn_id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    inc(&shared.counters.connections_accepted);
    inc(&shared.counters.connections_open);
    let _open = OpenGuard(&shared.counters.connections_open);
    let _ = stream.set_nodelay(true);

    let connect = tokio::time::timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect(("127.0.0.1", shared.redis_config.port)),
    );
    let end = match setup(connect, &admission).await {
        Setup::Done(Ok(Ok(upstream))) => {
            let _ = upstream.set_nodelay(true);
            match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(&mut stream));
                    match setup(handshake, &admission).await {
                        Setup::Done(Ok(Ok(tls_stream))) => {
                            let (r, w) = tokio::io::split(tls_stream);
                            proxy(r, w, upstream, &shared, conn_id, admission).await
                        }
                        Setup::Done(Ok(Err(e))) => {
                            tracing::debug!(conn = conn_id, error = %e, "TLS handshake failed");
                            return;
                        }
                        Setup::Done(Err(_)) => {
                            tracing::debug!(conn = conn_id, "TLS handshake timed out");
                            return;
                        }
                        Setup::HalfOpen => End::HalfOpen,
                        Setup::Unauthenticated => End::Unauthenticated,
                    }
                }
                None => {
                    let (r, w) = stream.split();
                    proxy(r, w, upstream, &shared, conn_id, admission).await
                }
            }
        }
        Setup::Done(_) => {
            tracing::warn!(
                conn = conn_id,
                "redis-server unreachable; closing client connection"
            );
            return;
        }
        Setup::HalfOpen => End::HalfOpen,
        Setup::Unauthenticated => End::Unauthenticated,
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
        End::Unauthenticated => {
            inc(&shared.counters.closed_unauthenticated);
            tracing::info!(
                conn = conn_id,
                "no successful AUTH within the pre-auth timeout; closing the connection"
            );
        }
        End::HalfOpen => {
            inc(&shared.counters.half_opened);
            tracing::debug!(conn = conn_id, "connection half-open by fault injection");
            black_hole(&mut stream, &shared).await;
            tracing::debug!(conn = conn_id, "half-open connection closed");
        }
        ref other => tracing::debug!(conn = conn_id, end = ?other, "connection closed"),
    }
}

/// A half-open connection: reads and discards whatever the client sends, writes nothing, and
/// returns once the client closes (or the socket fails) or the emulator shuts down. The raw
/// socket is read, not the TLS session, so not even a TLS alert goes out.
async fn black_hole(stream: &mut TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = shared.shutdown.cancelled() => return,
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
    Unauthenticated,
    HalfOpen,
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

/// Resolves at `deadline` unless `authed` fires first (then never).
async fn pre_auth_expiry(deadline: Option<Instant>, authed: CancellationToken) {
    tokio::select! {
        _ = sleep_until_opt(deadline) => {}
        _ = authed.cancelled() => std::future::pending().await,
    }
}

/// Runs a connection until it ends. Except when it went half-open, the client side is closed
/// (TLS close_notify where there is TLS) and the upstream connection dropped.
async fn proxy<R, W>(
    mut cr: R,
    mut cw: W,
    upstream: TcpStream,
    shared: &Arc<Shared>,
    conn_id: u64,
    admission: Admission,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut ur, mut uw) = upstream.into_split();
    let (deadline_tx, deadline_rx) = watch::channel(None::<Instant>);
    let kill = shared.faults.kill_token();
    let Admission {
        slot,
        pre_auth_deadline,
        half_open,
    } = admission;
    let authed = CancellationToken::new();
    let mut session = Session::new(conn_id, deadline_tx, slot, authed.clone());
    let activity = Activity::new();

    let end = {
        let c2s = client_to_server(&mut cr, &mut uw, shared, &mut session, &activity);
        let s2c = server_to_client(&mut ur, &mut cw, shared, &activity);
        let expiry = wait_expiry(deadline_rx);
        let idle = activity.idle(shared.idle_timeout);
        let pre_auth = pre_auth_expiry(pre_auth_deadline, authed);
        tokio::pin!(c2s, s2c, expiry, idle, pre_auth);
        let mut c2s_done = false;
        loop {
            tokio::select! {
                biased;
                _ = half_open.cancelled() => break End::HalfOpen,
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
                _ = &mut pre_auth => break End::Unauthenticated,
                _ = kill.cancelled() => break End::Dropped,
                _ = shared.shutdown.cancelled() => break End::Shutdown,
                _ = tokio::time::sleep(LINGER), if c2s_done => break End::Linger,
            }
        }
    };
    // Half-open or not, this connection no longer counts as unauthenticated.
    drop(session);
    drop(uw);
    drop(ur);
    if !matches!(end, End::HalfOpen) {
        // Best effort: a TLS close_notify, then the socket closes. No Redis reply is sent.
        let _ = tokio::time::timeout(Duration::from_millis(500), cw.shutdown()).await;
    }
    end
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
    /// Held until the first successful AUTH.
    unauth_slot: UnauthSlot,
    /// Fires at the first successful AUTH (stops the pre-auth timeout).
    authed: CancellationToken,
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// redis-server's rule for client names: printable ASCII without spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

impl Session {
    fn new(
        conn_id: u64,
        deadline: watch::Sender<Option<Instant>>,
        unauth_slot: UnauthSlot,
        authed: CancellationToken,
    ) -> Self {
        Self {
            conn_id,
            authenticated: false,
            resp3: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            deadline,
            unauth_slot,
            authed,
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
        self.unauth_slot.release();
        self.authed.cancel();
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

#[cfg(test)]
mod tests {
    use super::escape_client_text;

    #[test]
    fn client_text_is_escaped_and_cut() {
        assert_eq!(escape_client_text(b"default"), "default");
        assert_eq!(
            escape_client_text(b"a6f1c2d3-0000-4e5f-8a9b-123456789abc"),
            "a6f1c2d3-0000-4e5f-8a9b-123456789abc"
        );
        // No newline, carriage return or escape character reaches the log line.
        let forged = escape_client_text(b"x\r\n2025-01-01T00:00:00Z  INFO AUTH accepted\x1b[2J");
        assert_eq!(
            forged,
            "x\\r\\n2025-01-01T00:00:00Z  INFO AUTH accepted\\x1b[2J"
        );
        assert!(!forged.chars().any(|c| c.is_control()));
        assert_eq!(escape_client_text(b"\"q\" \\"), "\\\"q\\\" \\\\");
        assert_eq!(escape_client_text(b"\x00\xff\t"), "\\x00\\xff\\t");
        // Non-ASCII (even valid UTF-8, such as a right-to-left override) is escaped bytewise.
        assert_eq!(
            escape_client_text("\u{202e}é".as_bytes()),
            "\\xe2\\x80\\xae\\xc3\\xa9"
        );
        // Long input is cut after 64 bytes, with its length noted.
        let long = vec![b'a'; 100];
        assert_eq!(
            escape_client_text(&long),
            format!("{}...(100 bytes)", "a".repeat(64))
        );
        assert_eq!(escape_client_text(&[b'\n'; 64]), "\\n".repeat(64));
    }
}
