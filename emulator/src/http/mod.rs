//! The identity side: the managed identity endpoint (App Service protocol, plain HTTP) and the
//! Microsoft Entra ID token endpoint (HTTPS), both minting RS256 tokens for Redis.
//!
//! Text a client sent (paths, query and form values, header values) reaches a log line only
//! through [`escape_client_text`](crate::gate::escape_client_text), so that no client can forge
//! log lines or send terminal escapes; secrets (client secrets, assertions, the identity header)
//! are never logged.
//!
//! This file sets up the server and the routes; `managed_identity.rs` and `token_endpoint.rs`
//! are the two endpoints, `outage.rs` the injected faults they share, `timeouts.rs` the read
//! timeouts that bound slow clients.

mod managed_identity;
mod outage;
#[cfg(test)]
mod tests;
mod timeouts;
mod token_endpoint;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::identity::IdentityState;
use crate::jwt::{REDIS_APP_ID, REDIS_AUDIENCE};
use managed_identity::managed_identity_token;
use timeouts::{REQUEST_TIMEOUT_REPLY, SharedStream, read_body};
use token_endpoint::{
    entra_token, federation_configuration, instance_discovery, jwks, openid_configuration,
};

pub(crate) use managed_identity::MI_PATH;
pub(crate) use timeouts::{DEFAULT_READ_TIMEOUT, ReadTimeout};

/// Serves `router` on `listener` (TLS when `tls` is given) until shutdown; owns every
/// connection task.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    identity: Arc<IdentityState>,
) {
    let router = router.layer(middleware::from_fn_with_state(identity.clone(), read_body));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = identity.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let timeout = identity.faults.http_read_timeout.get();
                    let work = serve_connection(stream, tls.clone(), router.clone(), timeout);
                    let shutdown = identity.shutdown.clone();
                    conns.spawn(async move {
                        tokio::select! {
                            _ = work => {}
                            _ = shutdown.cancelled() => {}
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "identity endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// Serves one accepted connection; `timeout` bounds the TLS handshake and, through
/// [`serve_http`], each request head.
async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    router: Router,
    timeout: Duration,
) {
    let peer = stream.peer_addr().ok();
    match tls {
        Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => serve_http(s, router, timeout).await,
            Ok(Err(_)) => {}
            Err(_) => tracing::info!(
                ?peer,
                ?timeout,
                "identity endpoint: TLS handshake not completed in time; connection closed"
            ),
        },
        None => serve_http(stream, router, timeout).await,
    }
}

/// HTTP/1.1 on `stream` until the client closes it or a request head takes longer than
/// `timeout`; hyper then drops the connection without a reply, so a 408 is written here when
/// part of a request had arrived.
async fn serve_http<S>(stream: S, router: Router, timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = SharedStream::new(stream);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    let served = builder
        .serve_connection(TokioIo::new(io.clone()), TowerToHyperService::new(router))
        .await;
    if let Err(e) = served
        && e.is_timeout()
    {
        let started = io.request_started();
        tracing::info!(
            started,
            ?timeout,
            "identity endpoint: request head not received in time; connection closed"
        );
        let mut io = io;
        let _ = tokio::time::timeout(timeout, async {
            if started {
                io.write_all(REQUEST_TIMEOUT_REPLY).await?;
            }
            io.shutdown().await
        })
        .await;
    }
}

/// Router of the managed identity endpoint.
pub(crate) fn managed_identity_router(identity: Arc<IdentityState>) -> Router {
    Router::new()
        .route(MI_PATH, get(managed_identity_token))
        .with_state(identity)
}

/// Router of the Entra ID authority.
pub(crate) fn entra_router(identity: Arc<IdentityState>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/common/discovery/instance", get(instance_discovery))
        .route(
            "/federation/.well-known/openid-configuration",
            get(federation_configuration),
        )
        .route("/federation/keys", get(jwks))
        .with_state(identity)
}

/// Normalises a resource or scope to the audience of the token, if it names Redis.
fn redis_audience(resource: &str) -> Option<&'static str> {
    let r = resource.trim().trim_end_matches('/');
    if r.eq_ignore_ascii_case(REDIS_AUDIENCE) {
        Some(REDIS_AUDIENCE)
    } else if r.eq_ignore_ascii_case(REDIS_APP_ID) {
        Some(REDIS_APP_ID)
    } else {
        None
    }
}
