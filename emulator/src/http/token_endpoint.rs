//! The Microsoft Entra ID token endpoint (`POST /{tenant}/oauth2/v2.0/token`) for service
//! principals (client secret) and workload identities (federated assertion), with the discovery
//! documents azure_identity reads around it (OpenID configuration, keys, instance discovery).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::outage::outage;
use super::redis_audience;
use crate::counters::inc;
use crate::identity::{IdentityState, new_uuid, secret_eq};
use crate::jwt::{self, FEDERATED_AUDIENCE, Rejection};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Formats Unix seconds as `YYYY-MM-DD hh:mm:ssZ`, as Entra ID's error bodies write it.
pub(super) fn timestamp(secs: i64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|at| at.format(FORMAT).ok())
        .unwrap_or_else(|| "1970-01-01 00:00:00Z".to_owned())
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

pub(super) async fn entra_token(
    State(identity): State<Arc<IdentityState>>,
    Path(tenant): Path<String>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    inc(&identity.counters.token_endpoint_requests);
    if let Some(r) = outage(&identity, 1).await {
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
        let reg = identity.registry();
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
            if let Err(r) = validate_assertion(&identity, assertion, subject.as_deref()) {
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

    let lifetime = identity.token_lifetime();
    let (token, exp) = identity.mint(&oid, &tenant, Some(client_id), audience, lifetime);
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
    identity: &IdentityState,
    assertion: &str,
    expected_subject: Option<&str>,
) -> Result<(), Rejection> {
    let claims = identity.key.verify(assertion)?;
    jwt::check_times(&claims, jwt::now_unix())?;
    if claims.get("iss").and_then(Value::as_str) != Some(identity.federation_issuer()) {
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

pub(super) async fn openid_configuration(
    State(identity): State<Arc<IdentityState>>,
    Path(tenant): Path<String>,
) -> Response {
    let a = identity.authority();
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

pub(super) async fn federation_configuration(
    State(identity): State<Arc<IdentityState>>,
) -> Response {
    axum::Json(json!({
        "issuer": identity.federation_issuer(),
        "jwks_uri": format!("{}/federation/keys", identity.authority()),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

pub(super) async fn jwks(State(identity): State<Arc<IdentityState>>) -> Response {
    axum::Json(json!({ "keys": [identity.key.jwk()] })).into_response()
}

pub(super) async fn instance_discovery(State(identity): State<Arc<IdentityState>>) -> Response {
    let a = identity.authority();
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
