//! Section 4: resident memory with one handle and 100 concurrent users, and per extra handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use azure_redis_connect::redis::{self, AsyncCommands};
use azure_redis_connect::token::RefreshPolicy;
use azure_redis_emulator::Emulator;

use crate::Error;
use crate::clients::gate_handle;

/// Measures and prints the process's resident set before and with handles through the gate.
pub(crate) async fn report(emu: &Emulator) -> Result<(), Error> {
    println!("\n## 4. Memory (resident set)\n");
    let before = rss_kib();
    let one = gate_handle(emu, RefreshPolicy::default()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let users: Vec<_> = (0..100)
        .map(|u| {
            let (mut redis, stop) = (one.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _: redis::RedisResult<Option<String>> =
                        redis.get(format!("user:{u}")).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_users = rss_kib();
    stop.store(true, Ordering::Relaxed);
    for user in users {
        user.await?;
    }
    let mut extra = Vec::new();
    let base = rss_kib();
    for _ in 0..100 {
        extra.push(gate_handle(emu, RefreshPolicy::default()).await?);
    }
    let with_extra = rss_kib();
    println!(
        "process before the handle: {before} KiB; one handle with 100 concurrent users: {with_users} KiB (+{} KiB)",
        with_users.saturating_sub(before)
    );
    println!(
        "100 more handles (each its own connection, supervisor and token provider): +{} KiB, {:.1} KiB each",
        with_extra.saturating_sub(base),
        with_extra.saturating_sub(base) as f64 / 100.0
    );
    drop(extra);
    drop(one);
    Ok(())
}

/// This process's resident set (`VmRSS`) in KiB; 0 when /proc cannot tell.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
