//! The real azure_identity `ManagedIdentityCredential` (system- and user-assigned) obtains
//! tokens from the emulator's managed identity endpoint that its gate accepts over TLS; and
//! `ClientSecretCredential` / `WorkloadIdentityCredential` do the same configured only through
//! the environment `Emulator::env_for` produces (`AZURE_AUTHORITY_HOST`, `SSL_CERT_FILE`, ...).
//!
//! The credential reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the process
//! environment, which tests must not change while other threads run. So each parent test starts
//! this same test binary again as a child process with the variables from
//! `Emulator::env_for`, running only the ignored `child_process_entry` test.

mod common;

use std::time::Duration;

use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_redis_emulator::{Emulator, ServiceConnectorAuth};
use common::*;

const SCOPE: &str = "https://redis.azure.com/.default";
const MODE: &str = "EMULATOR_TEST_CHILD_MODE";
const EXPECT_OID: &str = "EMULATOR_TEST_EXPECT_OID";
const GATE_PORT: &str = "EMULATOR_TEST_GATE_PORT";

/// Runs the child with the emulator's environment for `kind` and asserts that it passed.
async fn child_passes(emu: &Emulator, kind: ServiceConnectorAuth, mode: &str, expect_oid: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["child_process_entry", "--exact", "--ignored", "--nocapture"]);
    for var in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IMDS_ENDPOINT",
        "IDENTITY_SERVER_THUMBPRINT",
        "AZURE_REDIS_CLIENTID",
        "AZURE_AUTHORITY_HOST",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "SSL_CERT_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(emu.env_for(kind))
        .env(MODE, mode)
        .env(EXPECT_OID, expect_oid)
        .env(GATE_PORT, emu.tls_addr().port().to_string())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(50), cmd.output())
        .await
        .expect("child finished in time")
        .expect("child ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed:\n{text}"
    );
}

#[tokio::test]
async fn system_assigned_identity_token_is_accepted_by_the_gate() {
    bounded(async {
        let emu = start(Emulator::builder().token_lifetime(Duration::from_secs(60))).await;
        let oid = emu.system_identity();
        child_passes(&emu, ServiceConnectorAuth::SystemIdentity, "system", &oid).await;
        let n = emu.counters();
        assert_eq!(n.managed_identity_requests, 1);
        assert_eq!(n.auth_accepted, 1);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn user_assigned_identity_token_is_accepted_by_the_gate() {
    bounded(async {
        let emu = start(Emulator::builder().token_lifetime(Duration::from_secs(60))).await;
        let oid = emu.default_user_identity().oid.clone();
        child_passes(&emu, ServiceConnectorAuth::UserIdentity, "user", &oid).await;
        child_passes(&emu, ServiceConnectorAuth::UserIdentity, "unknown-user", "").await;
        let n = emu.counters();
        assert_eq!(n.managed_identity_requests, 2);
        assert_eq!(n.auth_accepted, 1);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn service_principal_and_workload_identity_from_env_alone() {
    bounded(async {
        let emu = start(Emulator::builder().token_lifetime(Duration::from_secs(60))).await;
        let oid = emu.default_service_principal().0.oid.clone();
        child_passes(&emu, ServiceConnectorAuth::ServicePrincipal, "sp-env", &oid).await;
        let oid = emu.default_workload_identity().oid.clone();
        child_passes(&emu, ServiceConnectorAuth::WorkloadIdentity, "wi-env", &oid).await;
        let n = emu.counters();
        assert_eq!(n.token_endpoint_requests, 2);
        assert_eq!(n.auth_accepted, 2);
        emu.shutdown().await;
    })
    .await;
}

/// Runs only in the child process started by the tests above.
#[tokio::test]
#[ignore = "entry point of the child process started by the managed identity tests"]
async fn child_process_entry() {
    init();
    let mode = std::env::var(MODE).expect("run by a parent test");
    let no_retry = || azure_core::http::ClientOptions {
        retry: azure_core::http::RetryOptions::none(),
        ..Default::default()
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set"));
    let cred: std::sync::Arc<dyn azure_core::credentials::TokenCredential> = match mode.as_str() {
        "sp-env" => azure_identity::ClientSecretCredential::new(
            &env("AZURE_REDIS_TENANTID"),
            env("AZURE_REDIS_CLIENTID"),
            env("AZURE_REDIS_CLIENTSECRET").into(),
            Some(azure_identity::ClientSecretCredentialOptions {
                client_options: no_retry(),
            }),
        )
        .expect("credential"),
        "wi-env" => azure_identity::WorkloadIdentityCredential::new(Some(
            azure_identity::WorkloadIdentityCredentialOptions {
                credential_options: azure_identity::ClientAssertionCredentialOptions {
                    client_options: no_retry(),
                },
                ..Default::default()
            },
        ))
        .expect("credential"),
        _ => managed_identity(&mode),
    };
    let result = cred.get_token(&[SCOPE], None).await;
    if mode == "unknown-user" {
        let e = result.expect_err("unknown client id is refused");
        assert!(e.to_string().contains("has not been assigned"), "{e}");
        return;
    }
    let token = result.expect("token");
    let secret = token.token.secret();
    assert_eq!(oid_of(secret), std::env::var(EXPECT_OID).expect("oid"));
    connect_with(secret).await;
}

fn managed_identity(mode: &str) -> std::sync::Arc<dyn azure_core::credentials::TokenCredential> {
    let user_assigned_id = match mode {
        "system" => None,
        "user" => Some(UserAssignedId::ClientId(
            std::env::var("AZURE_REDIS_CLIENTID").expect("client id"),
        )),
        "unknown-user" => Some(UserAssignedId::ClientId("no-such-client".into())),
        other => panic!("unknown mode {other}"),
    };
    ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id,
        client_options: azure_core::http::ClientOptions {
            retry: azure_core::http::RetryOptions::none(),
            ..Default::default()
        },
    }))
    .expect("credential")
}

/// Connects to the gate the way an app configured by Service Connector's variables would.
async fn connect_with(secret: &str) {
    let port: u16 = std::env::var(GATE_PORT)
        .expect("port")
        .parse()
        .expect("port");
    let ca = std::fs::read(std::env::var("SSL_CERT_FILE").expect("SSL_CERT_FILE")).expect("CA");
    assert_eq!(
        std::env::var("AZURE_REDIS_HOST").as_deref(),
        Ok("localhost")
    );
    assert_eq!(std::env::var("AZURE_REDIS_PORT"), Ok(port.to_string()));
    let client = redis_client_at(port, ca, &oid_of(secret), secret);
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("the gate accepts the token");
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
}
