//! The identity side: the managed identity endpoint (App Service protocol, plain HTTP) and the
//! Microsoft Entra ID token endpoint (HTTPS), both minting RS256 tokens for Redis.
//!
//! Text a client sent (paths, query and form values, header values) reaches a log line only
//! through [`escape_client_text`], so that no client can forge log lines or send terminal
//! escapes; secrets (client secrets, assertions, the identity header) are never logged.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest as _, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::faults::{IdentityFault, inc};
use crate::gate::escape_client_text;
use crate::identity::{MiSelector, new_uuid, secret_eq};
use crate::jwt::{self, FEDERATED_AUDIENCE, REDIS_APP_ID, REDIS_AUDIENCE, Rejection};

/// Path of the managed identity endpoint.
pub(crate) const MI_PATH: &str = "/msi/token";
/// App Service managed identity API version spoken by azure_identity.
const MI_API_VERSION: &str = "2019-08-01";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Default of [`Faults::set_http_read_timeout`](crate::Faults::set_http_read_timeout).
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest read timeout honoured; longer ones are cut to this (hyper adds the timeout to the
/// current instant, which must not overflow).
const READ_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);
/// Sent when a request head or body did not arrive within the read timeout.
const REQUEST_TIMEOUT_REPLY: &[u8] =
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

/// Serves `router` on `listener` (TLS when `tls` is given) until shutdown; owns every
/// connection task.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shared: Arc<Shared>,
) {
    let router = router.layer(middleware::from_fn_with_state(shared.clone(), read_body));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let timeout = shared.faults.http_read_timeout.get();
                    let work = serve_connection(stream, tls.clone(), router.clone(), timeout);
                    let shutdown = shared.shutdown.clone();
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

/// A connection's stream shared by hyper and the task serving the connection, which can then
/// still write to it after hyper gave up; it also tells whether a request has begun to arrive
/// since the last reply.
struct SharedStream<S>(Arc<SharedStreamInner<S>>);

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
    fn new(stream: S) -> Self {
        Self(Arc::new(SharedStreamInner {
            stream: Mutex::new(stream),
            unanswered: AtomicBool::new(false),
        }))
    }

    fn stream(&self) -> MutexGuard<'_, S> {
        self.0.stream.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether bytes of a request arrived that no reply followed.
    fn request_started(&self) -> bool {
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
async fn read_body(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let timeout = shared.faults.http_read_timeout.get();
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

/// Router of the managed identity endpoint.
pub(crate) fn managed_identity_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(MI_PATH, get(managed_identity_token))
        .with_state(shared)
}

/// Router of the Entra ID authority.
pub(crate) fn entra_router(shared: Arc<Shared>) -> Router {
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
        .with_state(shared)
}

/// Applies an injected outage. `Some(response)` ends the request.
async fn outage(shared: &Shared, slot: usize) -> Option<Response> {
    let o = shared.faults.outage(slot)?;
    match o.fault {
        IdentityFault::Http500 => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({
                    "error": "temporarily_unavailable",
                    "error_description": "The service is temporarily unavailable (injected fault).",
                })),
            )
                .into_response(),
        ),
        IdentityFault::Http500EchoingToken => {
            let (oid, tenant) = {
                let reg = shared.registry();
                (reg.system_oid.clone(), reg.tenant_id.clone())
            };
            let (token, exp) = shared.mint(
                &oid,
                &tenant,
                None,
                crate::REDIS_AUDIENCE,
                shared.token_lifetime(),
            );
            shared
                .faults
                .echoed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(token.clone());
            Some(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({
                        "error": "server_error",
                        "error_description": format!("upstream failed; cached answer: {token}"),
                        "access_token": token,
                        "expires_on": exp.to_string(),
                        "token_type": "Bearer",
                    })),
                )
                    .into_response(),
            )
        }
        IdentityFault::Slow(delay) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => None,
                _ = shared.shutdown.cancelled() => Some(StatusCode::SERVICE_UNAVAILABLE.into_response()),
            }
        }
        IdentityFault::NoAnswer => {
            tokio::select! {
                _ = o.end() => {}
                _ = shared.shutdown.cancelled() => {}
            }
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
    }
}

fn mi_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "statusCode": status.as_u16(),
            "message": message,
            "correlationId": new_uuid(),
        })),
    )
        .into_response()
}

/// How a managed identity request named its identity, fit for a log line: the parameter and
/// its value, escaped.
fn loggable_selector(selector: Option<MiSelector<'_>>) -> String {
    let (param, value) = match selector {
        None => return "system-assigned".to_string(),
        Some(MiSelector::Client(c)) => ("client_id", c),
        Some(MiSelector::Object(o)) => ("object_id", o),
        Some(MiSelector::Resource(r)) => ("mi_res_id", r),
    };
    format!("{param}={}", escape_client_text(value.as_bytes()))
}

fn log_unknown_identity(selector: Option<MiSelector<'_>>) {
    tracing::info!(
        identity = %loggable_selector(selector),
        "managed identity request for an unknown identity"
    );
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

async fn managed_identity_token(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    inc(&shared.counters.managed_identity_requests);
    if let Some(r) = outage(&shared, 0).await {
        return r;
    }
    let header_ok = headers
        .get("x-identity-header")
        .is_some_and(|v| secret_eq(&shared.identity_header, v.as_bytes()));
    if !header_ok {
        tracing::info!("managed identity request without a valid x-identity-header");
        return mi_error(
            StatusCode::UNAUTHORIZED,
            "The request is missing the x-identity-header header or it does not match IDENTITY_HEADER.",
        );
    }
    match q.get("api-version") {
        Some(v) if v == MI_API_VERSION || v == "2017-09-01" => {}
        _ => {
            return mi_error(
                StatusCode::BAD_REQUEST,
                "Missing or unsupported api-version (expected 2019-08-01).",
            );
        }
    }
    let Some(resource) = q.get("resource") else {
        return mi_error(StatusCode::BAD_REQUEST, "Missing resource parameter.");
    };
    let Some(audience) = redis_audience(resource) else {
        return mi_error(
            StatusCode::BAD_REQUEST,
            "The emulator only issues tokens for https://redis.azure.com.",
        );
    };
    let selector = if let Some(c) = q.get("client_id").or_else(|| q.get("clientid")) {
        Some(MiSelector::Client(c))
    } else if let Some(o) = q.get("object_id").or_else(|| q.get("principal_id")) {
        Some(MiSelector::Object(o))
    } else {
        q.get("mi_res_id")
            .or_else(|| q.get("msi_res_id"))
            .map(|r| MiSelector::Resource(r))
    };
    let (found, tenant) = {
        let reg = shared.registry();
        (reg.managed_identity(selector), reg.tenant_id.clone())
    };
    let Some((oid, client_id)) = found else {
        log_unknown_identity(selector);
        return mi_error(
            StatusCode::BAD_REQUEST,
            "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
        );
    };
    let lifetime = shared.token_lifetime();
    let (token, exp) = shared.mint(&oid, &tenant, client_id.as_deref(), audience, lifetime);
    let body = json!({
        "access_token": token,
        "expires_on": exp.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id.unwrap_or_else(|| oid.clone()),
    });
    axum::Json(body).into_response()
}

/// Formats Unix seconds as `YYYY-MM-DD hh:mm:ssZ`.
fn timestamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let ts = timestamp(jwt::now_unix() as i64);
    let trace = new_uuid();
    let correlation = new_uuid();
    tracing::info!(
        status = status.as_u16(),
        error,
        code,
        "token endpoint refused a request"
    );
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}"
            ),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
        })),
    )
        .into_response()
}

async fn entra_token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    inc(&shared.counters.token_endpoint_requests);
    if let Some(r) = outage(&shared, 1).await {
        return r;
    }
    let Ok(Form(f)) = form else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    match f.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70_003,
                "The app requested an unsupported grant type.",
            );
        }
        None => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
    }
    let Some(client_id) = f.get("client_id").filter(|c| !c.is_empty()) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = f.get("scope") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let audience = match scopes.as_slice() {
        [one] => match one.strip_suffix("/.default") {
            Some(resource) => match redis_audience(resource) {
                Some(a) => a,
                None => {
                    return aad_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_resource",
                        500_011,
                        &format!(
                            "The resource principal named {resource} was not found in the tenant named {tenant}."
                        ),
                    );
                }
            },
            None => {
                return aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1_002_012,
                    &format!(
                        "The provided value for scope {one} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                );
            }
        },
        _ => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70_011,
                "The provided request must include a single 'scope' input parameter ending in /.default.",
            );
        }
    };

    let (oid, secret_ok, subject) = {
        let reg = shared.registry();
        if !reg.tenant_known(&tenant) {
            drop(reg);
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                90_002,
                &format!("Tenant '{tenant}' not found."),
            );
        }
        let Some(app) = reg.app(&tenant, client_id) else {
            drop(reg);
            return aad_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700_016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            );
        };
        let secret_ok = match (f.get("client_secret"), &app.secret) {
            (Some(presented), Some(stored)) => Some(secret_eq(stored, presented.as_bytes())),
            (Some(_), None) => Some(false),
            (None, _) => None,
        };
        (app.oid.clone(), secret_ok, app.federated_subject.clone())
    };

    match secret_ok {
        Some(true) => {}
        Some(false) => {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            );
        }
        None => {
            let Some(assertion) = f.get("client_assertion") else {
                return aad_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7_000_216,
                    "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
                );
            };
            if f.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
                return aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    700_023,
                    "Invalid client assertion type.",
                );
            }
            if let Err(r) = validate_assertion(&shared, assertion, subject.as_deref()) {
                return match r {
                    Rejection::Expired | Rejection::NotYetValid => aad_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_client",
                        700_024,
                        "Client assertion is not within its valid time range.",
                    ),
                    Rejection::Signature | Rejection::Malformed | Rejection::Algorithm => {
                        aad_error(
                            StatusCode::UNAUTHORIZED,
                            "invalid_client",
                            700_211,
                            "No matching federated identity record found for presented assertion issuer or signature.",
                        )
                    }
                    _ => aad_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        70_021,
                        "No matching federated identity record found for presented assertion.",
                    ),
                };
            }
        }
    }

    let lifetime = shared.token_lifetime();
    let (token, exp) = shared.mint(&oid, &tenant, Some(client_id), audience, lifetime);
    // Whole seconds left, rounded down: a client computes its expiry as the time it receives
    // the reply plus `expires_in`, which must never be later than `exp`, where the gate closes.
    let expires_in = ((exp as f64 - jwt::now_unix()).floor() as i64).max(0);
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    }))
    .into_response()
}

fn validate_assertion(
    shared: &Shared,
    assertion: &str,
    expected_subject: Option<&str>,
) -> Result<(), Rejection> {
    let claims = shared.key.verify(assertion)?;
    jwt::check_times(&claims, jwt::now_unix())?;
    if claims.get("iss").and_then(Value::as_str) != Some(shared.federation_issuer()) {
        return Err(Rejection::Issuer);
    }
    if !jwt::audience_matches(&claims, &[FEDERATED_AUDIENCE]) {
        return Err(Rejection::Audience);
    }
    match (expected_subject, claims.get("sub").and_then(Value::as_str)) {
        (Some(e), Some(s)) if e == s => Ok(()),
        _ => Err(Rejection::Subject),
    }
}

async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Response {
    let a = shared.authority();
    axum::Json(json!({
        "issuer": format!("{a}/{tenant}/v2.0"),
        "token_endpoint": format!("{a}/{tenant}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{a}/{tenant}/oauth2/v2.0/authorize"),
        "jwks_uri": format!("{a}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": "EU",
    }))
    .into_response()
}

async fn federation_configuration(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({
        "issuer": shared.federation_issuer(),
        "jwks_uri": format!("{}/federation/keys", shared.authority()),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({ "keys": [shared.key.jwk()] })).into_response()
}

async fn instance_discovery(State(shared): State<Arc<Shared>>) -> Response {
    let a = shared.authority();
    let host = a.trim_start_matches("https://").to_string();
    axum::Json(json!({
        "tenant_discovery_endpoint": format!("{a}/common/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host],
        }],
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log destination that keeps what is written to it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The log lines `f` writes, as the emulator's subscriber formats them.
    fn logged(f: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = captured.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8(bytes).expect("UTF-8 log")
    }

    #[test]
    fn client_text_in_log_lines_is_escaped() {
        let forged = "x\r\n2025-01-01T00:00:00Z  INFO managed identity token issued\x1b[2J";
        for selector in [
            MiSelector::Client(forged),
            MiSelector::Object(forged),
            MiSelector::Resource(forged),
        ] {
            let log = logged(|| log_unknown_identity(Some(selector)));
            assert!(log.contains("unknown identity"), "{log}");
            assert!(
                log.contains(
                    r"=x\r\n2025-01-01T00:00:00Z  INFO managed identity token issued\x1b[2J"
                ),
                "{log}"
            );
            // One line, and no control character but its end.
            assert_eq!(log.lines().count(), 1, "{log}");
            assert!(
                !log.trim_end_matches('\n').chars().any(char::is_control),
                "{log:?}"
            );
        }
        let long = "a".repeat(1000);
        let shown = loggable_selector(Some(MiSelector::Client(&long)));
        assert!(shown.len() < 100, "{shown}");
    }

    #[test]
    fn timestamp_formats_civil_dates() {
        assert_eq!(super::timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::timestamp(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(super::timestamp(1_700_000_000), "2023-11-14 22:13:20Z");
    }
}
