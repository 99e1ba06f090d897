//! Section 2: latency percentiles through the emulator's gate, under steady load and while
//! tokens are refreshed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use azure_redis_connect::AzureRedis;
use azure_redis_connect::redis::{self, AsyncCommands};
use azure_redis_connect::token::RefreshPolicy;
use azure_redis_emulator::Emulator;

use crate::Error;
use crate::clients::gate_handle;
use crate::stats::percentile;

/// Measures 16 workers' SETs for ten times `seconds` (at least 5 s) with 1 h tokens, then with
/// 2 s tokens, and prints their percentiles.
pub(crate) async fn report(emu: &Emulator, seconds: f64) -> Result<(), Error> {
    println!("\n## 2. Latency through the gate (16 workers, SET), steady vs during refresh\n");
    let seconds = (seconds * 10.0).max(5.0);
    let steady = gate_handle(emu, RefreshPolicy::default()).await?;
    let (steady_samples, steady_errors) = latencies(&steady, 16, seconds).await?;
    drop(steady);
    emu.set_token_lifetime(Duration::from_secs(2));
    let refreshing = gate_handle(emu, RefreshPolicy::default()).await?;
    let (refresh_samples, refresh_errors) = latencies(&refreshing, 16, seconds).await?;
    let status = refreshing.status();
    drop(refreshing);
    emu.set_token_lifetime(Duration::from_secs(3600));
    println!("| load | commands | errors | p50 ms | p99 ms | p99.9 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, samples, errors) in [
        ("steady (1 h tokens)", &steady_samples, steady_errors),
        ("refreshing (2 s tokens)", &refresh_samples, refresh_errors),
    ] {
        println!(
            "| {name} | {} | {errors} | {:.3} | {:.3} | {:.3} |",
            samples.len(),
            percentile(samples, 0.50),
            percentile(samples, 0.99),
            percentile(samples, 0.999)
        );
    }
    println!(
        "\np99 during refresh / steady p99: {:.3} ({} re-AUTHs, {} reconnects during the refresh run)",
        percentile(&refresh_samples, 0.99) / percentile(&steady_samples, 0.99),
        status.reauths,
        status.reconnects
    );
    Ok(())
}

/// Records the latency of every command of `workers` workers for `seconds`: the latencies in
/// microseconds, sorted, and how many commands failed.
async fn latencies(
    redis: &AzureRedis,
    workers: usize,
    seconds: f64,
) -> Result<(Vec<u32>, u64), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (mut redis, stop) = (redis.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let key = format!("latency:{w}");
            let mut samples = Vec::new();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result: redis::RedisResult<()> = redis.set(&key, w).await;
                samples.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if result.is_err() {
                    errors += 1;
                }
            }
            (samples, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (samples, e) = task.await?;
        all.extend(samples);
        errors += e;
    }
    all.sort_unstable();
    Ok((all, errors))
}
