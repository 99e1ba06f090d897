//! The gate: a TLS (and optionally plain) front of redis-server that checks AUTH like Azure.
//!
//! Only the client-to-server direction is parsed (see [`crate::resp`]); replies pass through as
//! raw bytes. `AUTH` and `HELLO ... AUTH` are validated here and rewritten to carry either the
//! server's internal password or a wrong one, so that redis-server itself produces every reply
//! (`+OK`, `-WRONGPASS ...`, `-NOAUTH ...`) in order, in pipelines and in RESP3 alike.
//!
//! Like Azure, the gate closes connections that do not authenticate: after a pre-auth timeout,
//! and at once when too many unauthenticated connections are open (see [`PreAuth`]).
//!
//! `run` accepts connections and `handle` takes one from accept to close; `pre_auth` holds the
//! limits on unauthenticated connections, `proxy` the two directions of an established
//! connection, `session` what the gate knows of one client (AUTH, HELLO, subscriptions), `state`
//! the state of one gate and its AUTH check, and `client_text` makes what clients send safe for log lines.

mod client_text;
mod pre_auth;
mod proxy;
mod session;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::counters::inc;

pub(crate) use client_text::escape_client_text;
pub(crate) use pre_auth::PreAuth;
use pre_auth::{Admission, UnauthSlot, sleep_until_opt};
use proxy::{End, proxy};
pub(crate) use state::{GateSettings, GateState};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts gate connections until the emulator shuts down; owns every connection task.
pub(crate) async fn run(listener: TcpListener, tls: Option<TlsAcceptor>, gate: Arc<GateState>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = gate.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Taken right at accept, so that a fault called later applies to it.
                    let half_open = gate.faults.half_open_token();
                    let Some(slot) = UnauthSlot::acquire(&gate) else {
                        inc(&gate.counters.connections_accepted);
                        inc(&gate.counters.closed_unauthenticated);
                        tracing::debug!(
                            "too many unauthenticated connections; closing a new one"
                        );
                        drop(stream);
                        continue;
                    };
                    let admission = Admission {
                        slot,
                        pre_auth_deadline: gate.faults.pre_auth.deadline(),
                        half_open,
                    };
                    conns.spawn(handle(stream, tls.clone(), gate.clone(), admission));
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
    gate: Arc<GateState>,
    admission: Admission,
) {
    let conn_id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    inc(&gate.counters.connections_accepted);
    inc(&gate.counters.connections_open);
    let _open = OpenGuard(&gate.counters.connections_open);
    let _ = stream.set_nodelay(true);

    let connect = tokio::time::timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect(("127.0.0.1", gate.redis_config.port)),
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
                            proxy(r, w, upstream, &gate, conn_id, admission).await
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
                    proxy(r, w, upstream, &gate, conn_id, admission).await
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
            inc(&gate.counters.closed_at_expiry);
            tracing::info!(
                conn = conn_id,
                "token expired without re-AUTH; closing the connection"
            );
        }
        End::Dropped => tracing::debug!(conn = conn_id, "connection dropped by fault injection"),
        End::Idle => {
            inc(&gate.counters.closed_idle);
            tracing::info!(conn = conn_id, "idle timeout; closing the connection");
        }
        End::Unauthenticated => {
            inc(&gate.counters.closed_unauthenticated);
            tracing::info!(
                conn = conn_id,
                "no successful AUTH within the pre-auth timeout; closing the connection"
            );
        }
        End::HalfOpen => {
            inc(&gate.counters.half_opened);
            tracing::debug!(conn = conn_id, "connection half-open by fault injection");
            black_hole(&mut stream, &gate).await;
            tracing::debug!(conn = conn_id, "half-open connection closed");
        }
        ref other => tracing::debug!(conn = conn_id, end = ?other, "connection closed"),
    }
}

/// A half-open connection: reads and discards whatever the client sends, writes nothing, and
/// returns once the client closes (or the socket fails) or the emulator shuts down. The raw
/// socket is read, not the TLS session, so not even a TLS alert goes out.
async fn black_hole(stream: &mut TcpStream, gate: &GateState) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = gate.shutdown.cancelled() => return,
        }
    }
}
