//! Section 3: cold start, from Service Connector's variables to the first PONG over TLS through
//! the gate, measured in a child process of the benchmark's own.

use std::process::Stdio;
use std::time::Instant;

use azure_redis_connect::{AzureRedisConfig, redis};
use azure_redis_emulator::{Emulator, ServiceConnectorAuth};

use crate::Error;
use crate::stats::median;

/// The subcommand the child runs as ([`child`]).
pub(crate) const CHILD_COMMAND: &str = "cold-start-child";

/// Runs the child with the emulator's variables and, with `anchor`, the redis-rs `entra-id`
/// comparison program's cold start, and prints both.
pub(crate) async fn report(emu: &Emulator, anchor: Option<&str>) -> Result<(), Error> {
    println!("\n## 3. Cold start: variables to the first PONG over TLS through the gate\n");
    // A managed identity reads IDENTITY_ENDPOINT from the process environment, so this runs in
    // a child process started with Service Connector's variables, as an application would.
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg(CHILD_COMMAND)
        .envs(emu.env_for(ServiceConnectorAuth::SystemIdentity))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let ours_cold: f64 = String::from_utf8_lossy(&child.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!(
                "the cold-start child failed: {}",
                String::from_utf8_lossy(&child.stderr)
            )
        })?;
    println!(
        "ours (system-assigned managed identity): median of 10: {ours_cold:.1} ms (from_env, first token, TLS, AUTH, PING)"
    );
    if let Some(path) = anchor {
        let out = tokio::process::Command::new(path)
            .arg("cold-start")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let theirs = text
            .lines()
            .find(|l| l.starts_with("to PONG:"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok());
        match theirs {
            Some(theirs) => println!(
                "redis-rs entra-id (ManagedIdentityCredential, same emulator protocol): median of 10: {theirs:.1} ms; ours / theirs: {:.2}",
                ours_cold / theirs
            ),
            None => println!(
                "redis-rs entra-id: cold start not measured ({path} cold-start printed no median)"
            ),
        }
    }
    Ok(())
}

/// In a child process with Service Connector's variables: ten times from the environment to the
/// first PONG; prints the median in milliseconds.
pub(crate) async fn child() -> Result<(), Error> {
    let mut cold = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let mut redis = SystemIdentityCache::from_env()?.connect().await?;
        let pong: String = redis::cmd("PING").query_async(&mut redis).await?;
        cold.push(started.elapsed().as_secs_f64() * 1000.0);
        if pong != "PONG" {
            return Err(format!("PING answered {pong}").into());
        }
    }
    println!("{}", median(cold));
    Ok(())
}

/// Service Connector's variables for a system-assigned managed identity.
#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "system_identity")]
struct SystemIdentityCache {
    host: String,
    port: Option<u16>,
}
