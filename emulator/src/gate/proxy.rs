//! An established gate connection: client-to-server (parsed, AUTH and HELLO rewritten) and
//! server-to-client (raw bytes), until one of the ways a connection ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::GateState;
use super::pre_auth::{Admission, pre_auth_expiry};
use super::session::Session;
use crate::counters::inc;
use crate::resp::{Intercept, Item, RequestParser};

const READ_CHUNK: usize = 64 * 1024;
const LINGER: Duration = Duration::from_secs(30);

enum C2s {
    ClientClosed,
    Poisoned,
    Failed,
}

#[derive(Debug)]
pub(super) enum End {
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

/// Runs a connection until it ends. Except when it went half-open, the client side is closed
/// (TLS close_notify where there is TLS) and the upstream connection dropped.
pub(super) async fn proxy<R, W>(
    mut cr: R,
    mut cw: W,
    upstream: TcpStream,
    gate: &Arc<GateState>,
    conn_id: u64,
    admission: Admission,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut ur, mut uw) = upstream.into_split();
    let (deadline_tx, deadline_rx) = watch::channel(None::<Instant>);
    let kill = gate.faults.kill_token();
    let Admission {
        slot,
        pre_auth_deadline,
        half_open,
    } = admission;
    let authed = CancellationToken::new();
    let mut session = Session::new(conn_id, deadline_tx, slot, authed.clone());
    let activity = Activity::new();

    let end = {
        let c2s = client_to_server(&mut cr, &mut uw, gate, &mut session, &activity);
        let s2c = server_to_client(&mut ur, &mut cw, gate, &activity);
        let expiry = wait_expiry(deadline_rx);
        let idle = activity.idle(gate.settings.idle_timeout);
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
                _ = gate.shutdown.cancelled() => break End::Shutdown,
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
    gate: &GateState,
    session: &mut Session,
    activity: &Activity,
) -> C2s
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut parser = RequestParser::new(gate.settings.limits);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        gate.faults.wait_stall().await;
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
                        && let Some(delay) = gate.settings.auth_delay
                    {
                        tokio::time::sleep(delay).await;
                    }
                    out.extend_from_slice(&buf[fwd_start..pos]);
                    out.extend_from_slice(&session.handle(cmd, gate));
                    pos += n;
                    fwd_start = pos;
                }
                Item::Poison(p) => {
                    out.extend_from_slice(&buf[fwd_start..pos]);
                    fwd_start = pos;
                    inc(&gate.counters.protocol_errors);
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
            gate.faults.wait_stall().await;
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

async fn server_to_client<R, W>(ur: &mut R, cw: &mut W, gate: &GateState, activity: &Activity)
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
        gate.faults.wait_stall().await;
        if cw.write_all(&buf[..n]).await.is_err() || cw.flush().await.is_err() {
            return;
        }
    }
}
