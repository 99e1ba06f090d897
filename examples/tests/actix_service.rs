//! End-to-end tests of the `actix_service` example: the binary runs as a child process with the
//! emulator's variables for a managed identity and is driven over loopback HTTP.

mod common;

use std::time::Duration;

use azure_redis_emulator::ServiceConnectorAuth;

const BIN: &str = env!("CARGO_BIN_EXE_actix_service");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_through_token_refreshes_with_a_system_assigned_identity() {
    common::bounded(common::serves_through_token_refreshes(
        BIN,
        ServiceConnectorAuth::SystemIdentity,
        Duration::from_secs(9),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_through_token_refreshes_with_a_user_assigned_identity() {
    common::bounded(common::serves_through_token_refreshes(
        BIN,
        ServiceConnectorAuth::UserIdentity,
        Duration::from_secs(6),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_cache_and_rate_limit_answer_as_documented() {
    common::bounded(common::api_behaves(BIN)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_redis_does_not_answer_and_200_after() {
    common::bounded(common::health_follows_an_unreachable_server(BIN)).await;
}
