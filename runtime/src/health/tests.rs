//! The report rules, JSON shape and time formatting.
use std::time::UNIX_EPOCH;

use super::*;
use crate::token::TokenStatus;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn status(connected: bool, expires_at: Option<SystemTime>, failures: u32) -> ConnectionStatus {
    ConnectionStatus {
        connected,
        token: TokenStatus {
            expires_at,
            last_refresh: Some(at(1_700_000_000)),
            consecutive_failures: failures,
            last_error: (failures > 0).then(|| "managed identity could not get a token".into()),
            requests: 3,
        },
        reauths: 2,
        reauth_failures: 1,
        reconnects: 0,
        unresponsive_replaced: 0,
    }
}

#[test]
fn formats_rfc3339_in_utc() {
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(at(1_700_000_000)), "2023-11-14T22:13:20.000Z");
    assert_eq!(
        rfc3339(at(951_782_400) + Duration::from_millis(7)),
        "2000-02-29T00:00:00.007Z"
    );
    assert_eq!(rfc3339(at(4_102_444_799)), "2099-12-31T23:59:59.000Z");
    assert_eq!(
        rfc3339(UNIX_EPOCH - Duration::from_millis(1)),
        "1969-12-31T23:59:59.999Z"
    );
}

#[test]
fn healthy_while_connected_with_a_valid_token() {
    let now = at(1_700_000_100);
    let report = HealthReport::at(&status(true, Some(at(1_700_003_600)), 0), now);
    assert_eq!(report.status, HealthState::Ok);
    assert!(report.healthy);
    assert_eq!(report.http_status(), 200);
    assert!(report.reasons.is_empty());
    assert_eq!(report.token.expires_in_secs, Some(3500.0));
    assert_eq!(
        report.token.expires_at.as_deref(),
        Some("2023-11-14T23:13:20.000Z")
    );
    assert!(!report.token.expired);
}

#[test]
fn degraded_while_refreshes_fail_but_the_token_is_valid() {
    let now = at(1_700_000_100);
    let report = HealthReport::at(&status(true, Some(at(1_700_000_200)), 2), now);
    assert_eq!(report.status, HealthState::Degraded);
    assert_eq!(report.http_status(), 200);
    assert_eq!(report.reasons, ["token refresh failing (2 in a row)"]);
}

#[test]
fn unavailable_when_expired_or_disconnected() {
    let now = at(1_700_000_100);
    let expired = HealthReport::at(&status(true, Some(at(1_700_000_099)), 4), now);
    assert_eq!(expired.status, HealthState::Unavailable);
    assert_eq!(expired.http_status(), 503);
    assert!(expired.token.expired);
    assert_eq!(expired.token.expires_in_secs, Some(-1.0));
    assert_eq!(expired.reasons.len(), 2, "{:?}", expired.reasons);

    let down = HealthReport::at(&status(false, Some(at(1_700_003_600)), 0), now);
    assert_eq!(down.status, HealthState::Unavailable);
    assert_eq!(down.reasons, ["not connected to Redis"]);
}

#[test]
fn a_cluster_status_reports_rebuilds_as_reconnects() {
    let healthy = ClusterStatus {
        token: status(true, Some(SystemTime::now() + Duration::from_secs(600)), 0).token,
        reauths: 9,
        reauth_failures: 1,
        rebuilds: 2,
        unresponsive_replaced: 0,
        mapped_nodes: 3,
    };
    let report = HealthReport::from_cluster_status(&healthy);
    assert!(report.healthy);
    assert!(report.connected);
    assert_eq!(
        (report.reauths, report.reauth_failures, report.reconnects),
        (9, 1, 2)
    );
    let expired = ClusterStatus {
        token: status(true, Some(SystemTime::now() - Duration::from_secs(1)), 3).token,
        ..healthy
    };
    let report = HealthReport::from_cluster_status(&expired);
    assert_eq!(report.status, HealthState::Unavailable);
    assert!(report.token.expired);
}

#[test]
fn a_key_without_expiry_is_never_expired() {
    let report = HealthReport::at(&status(true, None, 0), at(1_700_000_100));
    assert!(report.healthy);
    assert_eq!(report.token.expires_at, None);
    assert_eq!(report.token.expires_in_secs, None);
}

#[test]
fn json_has_the_documented_fields() {
    let report = HealthReport::at(&status(true, Some(at(1_700_003_600)), 1), at(1_700_000_100));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["connected"], true);
    assert_eq!(json["ping_ms"], serde_json::Value::Null);
    assert_eq!(json["token"]["expires_at"], "2023-11-14T23:13:20.000Z");
    assert_eq!(json["token"]["last_refresh"], "2023-11-14T22:13:20.000Z");
    assert_eq!(json["token"]["consecutive_failures"], 1);
    assert_eq!(
        json["token"]["last_error"],
        "managed identity could not get a token"
    );
    assert_eq!(json["token"]["requests"], 3);
    assert_eq!(json["reauths"], 2);
    assert_eq!(json["reauth_failures"], 1);
    assert_eq!(json["reconnects"], 0);
}

#[test]
fn redis_errors_are_described_without_detail() {
    let error = redis::RedisError::from((
        redis::ErrorKind::AuthenticationFailed,
        "auth",
        "secret-detail".to_string(),
    ));
    let text = describe(&error);
    assert!(!text.contains("secret-detail"), "{text}");
    let io: redis::RedisError =
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
    assert_eq!(describe(&io), "connection dropped");
}
