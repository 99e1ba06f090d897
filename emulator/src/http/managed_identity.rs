//! The managed identity endpoint, as App Service speaks it (`IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`): tokens for the system-assigned and the user-assigned identities.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::outage::outage;
use super::redis_audience;
use crate::counters::inc;
use crate::gate::escape_client_text;
use crate::identity::{IdentityState, MiSelector, new_uuid, secret_eq};

/// Path of the managed identity endpoint.
pub(crate) const MI_PATH: &str = "/msi/token";
/// App Service managed identity API version spoken by azure_identity.
const MI_API_VERSION: &str = "2019-08-01";

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
pub(super) fn loggable_selector(selector: Option<MiSelector<'_>>) -> String {
    let (param, value) = match selector {
        None => return "system-assigned".to_string(),
        Some(MiSelector::Client(c)) => ("client_id", c),
        Some(MiSelector::Object(o)) => ("object_id", o),
        Some(MiSelector::Resource(r)) => ("mi_res_id", r),
    };
    format!("{param}={}", escape_client_text(value.as_bytes()))
}

pub(super) fn log_unknown_identity(selector: Option<MiSelector<'_>>) {
    tracing::info!(
        identity = %loggable_selector(selector),
        "managed identity request for an unknown identity"
    );
}

pub(super) async fn managed_identity_token(
    State(identity): State<Arc<IdentityState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    inc(&identity.counters.managed_identity_requests);
    if let Some(r) = outage(&identity, 0).await {
        return r;
    }
    let header_ok = headers
        .get("x-identity-header")
        .is_some_and(|v| secret_eq(&identity.identity_header, v.as_bytes()));
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
        let reg = identity.registry();
        (reg.managed_identity(selector), reg.tenant_id.clone())
    };
    let Some((oid, client_id)) = found else {
        log_unknown_identity(selector);
        return mi_error(
            StatusCode::BAD_REQUEST,
            "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
        );
    };
    let lifetime = identity.token_lifetime();
    let (token, exp) = identity.mint(&oid, &tenant, client_id.as_deref(), audience, lifetime);
    let body = json!({
        "access_token": token,
        "expires_on": exp.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id.unwrap_or_else(|| oid.clone()),
    });
    axum::Json(body).into_response()
}
