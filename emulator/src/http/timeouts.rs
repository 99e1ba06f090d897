//! Read timeouts of the identity endpoints: [`ReadTimeout`], the stream that lets a 408 be
//! written after hyper gave up on a request head, and the middleware that reads a body within
//! the timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::identity::IdentityState;

/// Default of [`Faults::set_http_read_timeout`](crate::Faults::set_http_read_timeout).
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest read timeout honoured; longer ones are cut to this (hyper adds the timeout to the
/// current instant, which must not overflow).
const READ_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);
/// Sent when a request head or body did not arrive within the read timeout.
pub(super) const REQUEST_TIMEOUT_REPLY: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// How long the identity endpoints wait for each part of a request: the TLS handshake (token
/// endpoint), the request head (request line and headers; on a kept-alive connection the wait
/// for the next request counts too), and the request body, each on its own. A client that is
/// slower (or sends nothing) is disconnected, with a 408 reply if part of a request arrived.
/// Set through [`Faults::set_http_read_timeout`](crate::Faults::set_http_read_timeout).
#[derive(Debug)]
pub(crate) struct ReadTimeout {
    ms: AtomicU64,
}

impl Default for ReadTimeout {
    fn default() -> Self {
        Self {
            ms: AtomicU64::new(DEFAULT_READ_TIMEOUT.as_millis() as u64),
        }
    }
}

impl ReadTimeout {
    pub(crate) fn get(&self) -> Duration {
        Duration::from_millis(self.ms.load(Ordering::SeqCst))
    }

    /// Sets the timeout, cut to a day.
    pub(crate) fn set(&self, timeout: Duration) {
        let ms = timeout.min(READ_TIMEOUT_MAX).as_millis() as u64;
        self.ms.store(ms, Ordering::SeqCst);
    }
}

/// A connection's stream shared by hyper and the task serving the connection, which can then
/// still write to it after hyper gave up; it also tells whether a request has begun to arrive
/// since the last reply.
pub(super) struct SharedStream<S>(Arc<SharedStreamInner<S>>);

struct SharedStreamInner<S> {
    stream: Mutex<S>,
    /// Bytes arrived since the last bytes were written.
    unanswered: AtomicBool,
}

impl<S> Clone for SharedStream<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> SharedStream<S> {
    pub(super) fn new(stream: S) -> Self {
        Self(Arc::new(SharedStreamInner {
            stream: Mutex::new(stream),
            unanswered: AtomicBool::new(false),
        }))
    }

    fn stream(&self) -> MutexGuard<'_, S> {
        self.0.stream.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether bytes of a request arrived that no reply followed.
    pub(super) fn request_started(&self) -> bool {
        self.0.unanswered.load(Ordering::SeqCst)
    }

    fn wrote(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.0.unanswered.store(false, Ordering::SeqCst);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SharedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.stream()).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.0.unanswered.store(true, Ordering::SeqCst);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SharedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut *self.stream()).poll_write(cx, buf);
        self.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut *self.stream()).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream()).poll_shutdown(cx)
    }
}

/// Reads the whole request body, within the read timeout, before the handler runs: a client
/// that stops sending its body gets 408 and the connection is closed. Bodies keep axum's
/// default limit (2 MB; a token request is a few kilobytes).
pub(super) async fn read_body(
    State(identity): State<Arc<IdentityState>>,
    request: Request,
    next: Next,
) -> Response {
    let timeout = identity.faults.http_read_timeout.get();
    let (parts, body) = request.into_parts();
    let whole = Request::from_parts(parts.clone(), body);
    match tokio::time::timeout(timeout, Bytes::from_request(whole, &())).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(rejection)) => closing(rejection.into_response()),
        Err(_) => {
            tracing::info!(
                ?timeout,
                "identity endpoint: request body not received in time; connection closed"
            );
            closing(StatusCode::REQUEST_TIMEOUT.into_response())
        }
    }
}

/// `response`, after which the connection is closed (the rest of the request is not read).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
