//! What the authenticated connection costs, measured side by side in one run on one machine.
//!
//! ```text
//! cargo run --release -p azure-redis-connect-bench -- [--runs N] [--seconds S] [--anchor PATH]
//! ```
//!
//! 1. Throughput of GET and SET (64 B and 1 KiB values, 1 / 16 / 256 commands in flight):
//!    raw `redis::aio::MultiplexedConnection` with a static ACL password, against our handle
//!    authenticated with an Entra ID token (the ACL user's password is the token, so no gate is
//!    in the path), redis-rs's own `entra-id` provider (`--anchor`), and `redis-benchmark` with
//!    as many commands pipelined on one connection, the server's ceiling.
//! 2. Latency percentiles under steady load and during token refreshes (2 s tokens, through
//!    the emulator's gate, real service principal credential).
//! 3. Cold start: from variables to the first PONG over TLS through the gate.
//! 4. Memory: resident memory with one handle and 100 concurrent users, and per extra handle.
//!
//! `bench count raw|ours N [DEPTH]` issues N SETs, for an instruction count under callgrind
//! (see BENCHMARKS.md).
//!
//! Each cell is the median of `--runs` runs; ours and raw alternate within a run, and the ratio
//! is the median of the ratios of the runs' back-to-back pairs.

mod args;
mod clients;
mod cold_start;
mod count;
mod latency;
mod memory;
mod servers;
mod stats;
mod throughput;

use std::time::{Duration, SystemTime};

use azure_redis_connect::SecretString;
use azure_redis_connect::token::AccessToken;
use clap::Parser;

use crate::args::{Args, Mode, RunArgs};
use crate::clients::{BASELINE, RAW_PASSWORD, RAW_USER};
use crate::servers::{RedisServer, TlsFiles};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args = Args::parse();
    match args.mode {
        Some(Mode::Count { client, n, depth }) => {
            // One thread: the client, its connection's driver and the handle's tasks interleave
            // the same way on every run, so that the count repeats.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(count::count(client, n, depth))
        }
        Some(Mode::ColdStartChild) => multi_thread()?.block_on(cold_start::child()),
        None => multi_thread()?.block_on(run(&args.run)),
    }
}

fn multi_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// The full run: the four sections in the order BENCHMARKS.md records them.
async fn run(args: &RunArgs) -> Result<(), Error> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("# azure-redis-connect benchmarks");
    println!(
        "machine: {cores} cores; {}; {}; {} runs of {} s per cell (median)",
        command_line("rustc", "--version"),
        command_line("redis-server", "--version"),
        args.runs,
        args.seconds
    );

    let (emu, emu_runtime) = servers::start_emulator()?;
    // A redis-server of the benchmark's own for each transport: raw uses a static ACL password;
    // ours the identity's oid as ACL user with a token as its password.
    let oid = emu.system_identity();
    let minted = emu.mint_token(&oid, Duration::from_secs(3600));
    let users = [(RAW_USER, RAW_PASSWORD), (oid.as_str(), minted.secret())];
    let server = RedisServer::start(&users).await?;
    let tls_files = TlsFiles::generate()?;
    let tls_server = RedisServer::start_with(&users, Some(&tls_files)).await?;
    println!("baseline: {BASELINE}");
    let token = AccessToken {
        token: SecretString::from(minted.secret()),
        expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(minted.expires_on as u64)),
    };

    throughput::report(args, &server, &tls_server, &tls_files, &token).await?;
    latency::report(&emu, args.seconds).await?;
    cold_start::report(&emu, args.anchor.as_deref()).await?;
    memory::report(&emu).await?;

    emu.shutdown().await;
    emu_runtime.shutdown_background();
    Ok(())
}

/// What `program arg` prints (trimmed), for the report's header.
fn command_line(program: &str, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| format!("{program}: not found"))
}
