//! The identity side: the managed identity endpoint (App Service protocol, plain HTTP) and the
//! Microsoft Entra ID token endpoint (HTTPS), both minting RS256 tokens for Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::faults::{IdentityFault, inc};
use crate::identity::{MiSelector, new_uuid, secret_eq};
use crate::jwt::{self, FEDERATED_AUDIENCE, REDIS_APP_ID, REDIS_AUDIENCE, Rejection};

/// Path of the managed identity endpoint.
pub(crate) const MI_PATH: &str = "/msi/token";
/// App Service managed identity API version spoken by azure_identity.
const MI_API_VERSION: &str = "2019-08-01";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Serves `router` on `listener` (TLS when `tls` is given) until shutdown; owns every
/// connection task.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shared: Arc<Shared>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let router = router.clone();
                    let tls = tls.clone();
                    let shutdown = shared.shutdown.clone();
                    conns.spawn(async move {
                        let service = TowerToHyperService::new(router);
                        let builder = hyper::server::conn::http1::Builder::new();
                        let work = async {
                            match tls {
                                Some(acceptor) => {
                                    let Ok(Ok(s)) = tokio::time::timeout(
                                        Duration::from_secs(10),
                                        acceptor.accept(stream),
                                    )
                                    .await
                                    else {
                                        return;
                                    };
                                    let _ = builder.serve_connection(TokioIo::new(s), service).await;
                                }
                                None => {
                                    let _ = builder
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                }
                            }
                        };
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
        tracing::info!(
            ?selector,
            "managed identity request for an unknown identity"
        );
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
    #[test]
    fn timestamp_formats_civil_dates() {
        assert_eq!(super::timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::timestamp(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(super::timestamp(1_700_000_000), "2023-11-14 22:13:20Z");
    }
}
