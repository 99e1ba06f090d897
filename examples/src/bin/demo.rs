//! The main job on one machine, with no Azure account: starts the emulator (identity endpoints
//! and a TLS gate in front of a real redis-server that closes connections whose token expired),
//! configures a cache from the variables Service Connector would inject for a service
//! principal, and keeps writing through one connection while 2-second tokens are refreshed and
//! the connection re-authenticates. Exits 0 when every command succeeded and the gate closed
//! nothing.
//!
//! ```text
//! cargo run -p azure-redis-connect-examples --bin demo
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use azure_redis_connect::redis::AsyncCommands;
use azure_redis_connect::token::{RefreshPolicy, TokenEvent};
use azure_redis_connect::{AzureRedis, AzureRedisConfig, SecretString};
use azure_redis_emulator::{AuthKind, Emulator};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    port: Option<u16>,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let lifetime = Duration::from_secs(2);
    println!("==> starting the emulator (tokens live {lifetime:?})");
    let emu = Emulator::builder().token_lifetime(lifetime).start().await?;
    println!(
        "    gate (TLS) on {}, redis-server on {}",
        emu.tls_addr(),
        emu.redis_addr()
    );

    let vars = emu.env_for(AuthKind::ServicePrincipal);
    let cache = Cache::from_vars(vars)?;
    println!("==> configuration read from Service Connector's variables:");
    for variable in Cache::variables() {
        println!("    {variable}");
    }
    println!(
        "    auth: {}, endpoint: {}",
        cache.auth()?,
        cache.endpoint()?
    );

    let mut redis = AzureRedis::builder_from(&cache)?
        .root_certificate_pem(emu.ca_pem())
        .authority_host(emu.token_endpoint_authority())
        .refresh_policy(RefreshPolicy {
            initial_backoff: Duration::from_millis(50),
            ..RefreshPolicy::default()
        })
        .connect()
        .await?;
    let mut events = redis.token_provider().events();
    println!("==> connected; writing for 10 s while tokens refresh");

    let started = Instant::now();
    let (mut ok, mut failed) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(10) {
        match redis.incr::<_, _, i64>("demo:counter", 1).await {
            Ok(_) => ok += 1,
            Err(error) => {
                failed += 1;
                eprintln!("    command failed: {error}");
            }
        }
        while let Ok(event) = events.try_recv() {
            if let TokenEvent::Refreshed { generation, .. } = event {
                let status = redis.status();
                println!(
                    "    {:>5.1}s token #{generation} refreshed; re-AUTHs so far: {}, commands ok: {ok}",
                    started.elapsed().as_secs_f64(),
                    status.reauths
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = redis.status();
    let counters = emu.counters();
    let counter: i64 = redis.get("demo:counter").await?;
    println!("==> done: {ok} commands ok, {failed} failed; counter = {counter}");
    println!(
        "    re-AUTHs: {}, reconnects: {}, connections the gate closed at expiry: {}",
        status.reauths, status.reconnects, counters.closed_at_expiry
    );
    drop(redis);
    emu.shutdown().await;
    if failed > 0 || counters.closed_at_expiry > 0 || counter as u64 != ok || status.reauths < 3 {
        return Err("the connection did not stay authenticated".into());
    }
    Ok(())
}
