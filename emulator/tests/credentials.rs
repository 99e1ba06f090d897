//! The real azure_identity `ClientSecretCredential` and `WorkloadIdentityCredential` obtain
//! tokens from the emulator that its gate accepts over TLS. Everything is passed through
//! options (custom cloud authority, transport trusting the emulator's CA), so no process
//! environment is touched.

mod common;

use std::time::Duration;

use azure_core::credentials::TokenCredential as _;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_redis_emulator::Emulator;
use common::*;
use secrecy::ExposeSecret as _;

const SCOPE: &str = "https://redis.azure.com/.default";

/// A `ClientSecretCredential` for `client_id` in `tenant_id` that reaches `emu`'s token
/// endpoint through options alone.
fn secret_credential(
    emu: &Emulator,
    tenant_id: &str,
    client_id: &str,
    secret: &str,
) -> std::sync::Arc<ClientSecretCredential> {
    ClientSecretCredential::new(
        tenant_id,
        client_id.to_string(),
        secret.to_string().into(),
        Some(ClientSecretCredentialOptions {
            client_options: azure_client_options(emu),
        }),
    )
    .expect("credential")
}

#[tokio::test]
async fn client_secret_credential_token_is_accepted_by_the_gate() {
    bounded(async {
        let emu = start(Emulator::builder().token_lifetime(Duration::from_secs(60))).await;
        let (sp, secret) = emu.default_service_principal();
        let cred = secret_credential(&emu, &sp.tenant_id, &sp.client_id, secret.expose_secret());
        let token = cred.get_token(&[SCOPE], None).await.expect("token");
        assert_eq!(oid_of(token.token.secret()), sp.oid);
        check_token_at_gate(&emu, token.token.secret()).await;

        // A wrong secret is refused like Entra ID does (401 invalid_client, AADSTS7000215).
        let bad = secret_credential(&emu, &sp.tenant_id, &sp.client_id, "not-the-secret");
        let e = bad
            .get_token(&[SCOPE], None)
            .await
            .expect_err("wrong secret");
        assert!(e.to_string().contains("AADSTS7000215"), "{e}");

        // An unknown client id: AADSTS700016.
        let unknown = secret_credential(
            &emu,
            &sp.tenant_id,
            "00000000-1111-2222-3333-444444444444",
            "x",
        );
        let e = unknown
            .get_token(&[SCOPE], None)
            .await
            .expect_err("unknown app");
        assert!(e.to_string().contains("AADSTS700016"), "{e}");

        // Another resource is not served.
        let e = cred
            .get_token(&["https://vault.azure.net/.default"], None)
            .await
            .expect_err("other resource");
        assert!(e.to_string().contains("AADSTS500011"), "{e}");

        let n = emu.counters();
        assert_eq!(n.token_endpoint_requests, 4);
        assert_eq!(n.auth_accepted, 1);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn workload_identity_credential_token_is_accepted_by_the_gate() {
    bounded(async {
        let emu = start(Emulator::builder().token_lifetime(Duration::from_secs(60))).await;
        let wi = emu.default_workload_identity().clone();
        let options = || WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: azure_client_options(&emu),
            },
            client_id: Some(wi.client_id.clone()),
            tenant_id: Some(wi.tenant_id.clone()),
            token_file_path: Some(wi.token_file.clone()),
        };
        let cred = WorkloadIdentityCredential::new(Some(options())).expect("credential");
        let token = cred.get_token(&[SCOPE], None).await.expect("token");
        assert_eq!(oid_of(token.token.secret()), wi.oid);
        check_token_at_gate(&emu, token.token.secret()).await;

        // An expired federated token is refused (AADSTS700024).
        emu.write_federated_token(&wi, Duration::ZERO)
            .expect("write token file");
        let cred = WorkloadIdentityCredential::new(Some(options())).expect("credential");
        let e = cred
            .get_token(&[SCOPE], None)
            .await
            .expect_err("expired assertion");
        assert!(e.to_string().contains("AADSTS700024"), "{e}");

        // Another workload's assertion does not match this app's federated credential.
        let other = emu
            .add_workload_identity(&wi.tenant_id, "other-app")
            .expect("other workload");
        let mut opts = options();
        opts.token_file_path = Some(other.token_file.clone());
        let cred = WorkloadIdentityCredential::new(Some(opts)).expect("credential");
        let e = cred
            .get_token(&[SCOPE], None)
            .await
            .expect_err("foreign assertion");
        assert!(e.to_string().contains("AADSTS70021"), "{e}");
        emu.shutdown().await;
    })
    .await;
}
