//! Helpers shared by the integration tests: starting an emulator and bounding a test here,
//! a raw RESP client for tests of the gate's protocol handling in `resp`, clients of the gate
//! (the `redis` crate) and of the identity endpoints in `clients`.

#![allow(dead_code, missing_docs)]

mod clients;
mod resp;

use std::time::Duration;

use azure_redis_emulator::{Emulator, EmulatorBuilder};

// Not every test binary uses both.
#[allow(unused_imports)]
pub use clients::*;
#[allow(unused_imports)]
pub use resp::*;

/// Every test is bounded by this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs ring as the process's rustls provider (clients that use the default need one).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Runs `test`, failing it once [`TEST_TIMEOUT`] has passed.
pub async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out");
}

/// Starts the emulator `builder` describes (after [`init`]).
pub async fn start(builder: EmulatorBuilder) -> Emulator {
    init();
    builder.start().await.expect("emulator starts")
}

/// An emulator with a plain listener besides TLS, minting tokens valid for `lifetime`.
pub async fn emulator(lifetime: Duration) -> Emulator {
    start(
        Emulator::builder()
            .token_lifetime(lifetime)
            .plain_listener(true),
    )
    .await
}

/// A TLS connection to `emu`'s gate, authenticated as the system identity with a token valid
/// for a minute.
pub async fn authed_tls(emu: &Emulator) -> RawConn {
    let mut conn = RawConn::tls(emu).await;
    auth_ok(&mut conn, emu, &emu.system_identity()).await;
    conn
}

/// The same over the gate's plain listener.
pub async fn authed_plain(emu: &Emulator) -> RawConn {
    let mut conn = RawConn::plain(emu.plain_addr().expect("plain listener")).await;
    auth_ok(&mut conn, emu, &emu.system_identity()).await;
    conn
}
