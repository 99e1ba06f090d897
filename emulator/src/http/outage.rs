//! Injected identity endpoint outages ([`IdentityFault`]), applied at the start of a request
//! by both endpoints.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::faults::IdentityFault;
use crate::identity::IdentityState;

/// Applies an injected outage. `Some(response)` ends the request.
pub(super) async fn outage(identity: &IdentityState, slot: usize) -> Option<Response> {
    let o = identity.faults.outage(slot)?;
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
                let reg = identity.registry();
                (reg.system_oid.clone(), reg.tenant_id.clone())
            };
            let (token, exp) = identity.mint(
                &oid,
                &tenant,
                None,
                crate::REDIS_AUDIENCE,
                identity.token_lifetime(),
            );
            identity
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
                _ = identity.shutdown.cancelled() => Some(StatusCode::SERVICE_UNAVAILABLE.into_response()),
            }
        }
        IdentityFault::NoAnswer => {
            tokio::select! {
                _ = o.end() => {}
                _ = identity.shutdown.cancelled() => {}
            }
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
    }
}
