//! Secrets and tokens never reach the logs: every `tracing` event of a run through refreshes,
//! refused re-AUTHs, an identity outage, dropped connections and a refused connect is captured
//! at TRACE level and searched for the client secret, the access key and every token issued.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_redis_connect::redis::AsyncCommands;
use azure_redis_connect::token::RefreshPolicy;
use azure_redis_connect::{AzureRedis, AzureRedisConfig, ExposeSecret, SecretString, redis};
use azure_redis_emulator::{Emulator, IdentityEndpoint, IdentityFault, ServiceConnectorAuth};

const SECRET: &str = "SENTINEL-client-secret-41d7";
const KEY: &str = "SENTINEL-access-key-93b2";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(AzureRedisConfig, Debug)]
struct Cache {
    host: Option<String>,
    port: Option<u16>,
    client_id: Option<String>,
    tenant_id: Option<String>,
    client_secret: Option<SecretString>,
    connection_string: Option<SecretString>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_is_ever_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test binary");

    let tokens = tokio::time::timeout(Duration::from_secs(90), async {
        let emu = Emulator::builder()
            .token_lifetime(Duration::from_secs(2))
            .start()
            .await
            .expect("emulator");
        let sp = emu.add_service_principal(&emu.tenant_id(), "sentinel-client", SECRET);
        let mut vars = emu.env_for(ServiceConnectorAuth::ServicePrincipal);
        for (name, value) in &mut vars {
            match name.as_str() {
                "AZURE_REDIS_CLIENTID" => *value = sp.client_id.clone(),
                "AZURE_REDIS_CLIENTSECRET" => *value = SECRET.into(),
                _ => {}
            }
        }
        let cache = Cache::from_vars(vars).expect("config");
        let mut redis = AzureRedis::builder_from(&cache)
            .expect("config")
            .root_certificate_pem(emu.ca_pem())
            .authority_host(emu.token_endpoint_authority())
            .refresh_policy(RefreshPolicy {
                initial_backoff: Duration::from_millis(50),
                ..RefreshPolicy::default()
            })
            .connect()
            .await
            .expect("connects");

        // Keep every token the provider hands out.
        let mut watch = redis.token_provider().subscribe();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keeper = {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                loop {
                    let token = watch
                        .borrow_and_update()
                        .password
                        .expose_secret()
                        .to_owned();
                    seen.lock().unwrap().push(token);
                    if watch.changed().await.is_err() {
                        break;
                    }
                }
            })
        };

        let work = |n: u64| {
            let mut redis = redis.clone();
            async move {
                for i in 0..n {
                    let _: redis::RedisResult<()> = redis.set("logs:k", i).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        work(100).await;
        emu.faults().reject_next_auths(3);
        work(100).await;
        emu.faults().identity_outage(
            IdentityEndpoint::All,
            IdentityFault::Http500,
            Some(Duration::from_millis(2500)),
        );
        work(100).await;
        emu.faults().drop_all_connections();
        work(100).await;
        let _: () = redis.set("logs:done", 1).await.expect("still works");
        keeper.abort();

        // A connect refused for a wrong key, and a malformed connection string holding the key.
        emu.set_access_key("the-real-key");
        let wrong = format!(
            "localhost:{},password={KEY},ssl=True",
            emu.tls_addr().port()
        );
        let keyed =
            Cache::from_vars([("AZURE_REDIS_CONNECTIONSTRING", wrong.as_str())]).expect("config");
        let error = AzureRedis::builder_from(&keyed)
            .expect("config")
            .root_certificate_pem(emu.ca_pem())
            .connect()
            .await
            .expect_err("a wrong key is refused");
        tracing::error!(%error, "connect failed");
        let malformed = format!("localhost:0,password={KEY}");
        let error = Cache::from_vars([("AZURE_REDIS_CONNECTIONSTRING", malformed.as_str())])
            .and_then(|c| c.connection_config())
            .expect_err("port 0 is refused");
        tracing::error!(%error, "config failed");

        // The outage may outlast a token, so the gate may close the connection: re-AUTHs and
        // reconnects share the work between them.
        let status = redis.status();
        assert!(status.reauths + status.reconnects >= 2, "{status:?}");
        emu.shutdown().await;
        seen.lock().unwrap().clone()
    })
    .await
    .expect("test timed out");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).expect("UTF-8 logs");
    for expected in [
        "token refreshed",
        "re-AUTH failed",
        "token refresh failed",
        "reconnected",
    ] {
        assert!(
            logs.contains(expected),
            "no `{expected}` in the logs:\n{logs}"
        );
    }
    assert!(tokens.len() >= 3, "{} tokens seen", tokens.len());
    for secret in [SECRET, KEY]
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
    {
        assert!(!logs.contains(secret), "a secret or token was logged");
        // JWTs are long; a recognisable part of one is as bad as the whole.
        if secret.len() > 60 {
            assert!(
                !logs.contains(&secret[secret.len() - 40..]),
                "a token signature was logged"
            );
        }
    }
}
