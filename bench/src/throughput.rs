//! Section 1: throughput cells, raw against ours over each transport, with redis-server's own
//! ceiling (`redis-benchmark`) and redis-rs's `entra-id` provider (the anchor) beside them.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use azure_redis_connect::redis::aio::ConnectionLike;
use azure_redis_connect::redis::{self, AsyncCommands};
use azure_redis_connect::token::AccessToken;

use crate::Error;
use crate::args::RunArgs;
use crate::clients::{RAW_PASSWORD, RAW_USER, minted_handle, raw_connection};
use crate::servers::{RedisServer, TlsFiles};
use crate::stats::median;

/// The command a cell issues.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get,
    Set,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Set => "SET",
        }
    }
}

/// One throughput cell.
struct Cell {
    transport: &'static str,
    op: Op,
    size: usize,
    inflight: usize,
    raw_median: f64,
    our_median: f64,
    ratio: f64,
    spread: (f64, f64),
    cpu: (f64, f64),
    ceiling: Option<f64>,
}

/// An anchor cell: `(op, bytes, in flight, raw, entra-id)`, from its own redis-server and its
/// own static-password baseline.
type AnchorCell = (String, usize, usize, f64, f64);

/// Measures every cell over plaintext (`server`) and TLS (`tls_server`, trusting `tls_files`),
/// our handle authenticated with `token`, and prints the table.
pub(crate) async fn report(
    args: &RunArgs,
    server: &RedisServer,
    tls_server: &RedisServer,
    tls_files: &TlsFiles,
    token: &AccessToken,
) -> Result<(), Error> {
    let mut pairs = Vec::new();
    for (transport, addr) in [("plain", server.addr), ("TLS", tls_server.addr)] {
        let ca_pem = (transport == "TLS").then_some(tls_files.ca_pem.as_str());
        let raw = raw_connection(addr, ca_pem).await?;
        pairs.push((
            transport,
            raw,
            minted_handle(addr, ca_pem, token.clone()).await?,
        ));
    }

    let mut cells = Vec::new();
    let mut worst: f64 = f64::INFINITY;
    for (transport, raw, ours) in &pairs {
        for op in [Op::Get, Op::Set] {
            for size in [64usize, 1024] {
                for inflight in [1usize, 16, 256] {
                    let (mut raw_runs, mut our_runs) = (Vec::new(), Vec::new());
                    let (mut raw_cpu, mut our_cpu) = (Vec::new(), Vec::new());
                    for run in 0..args.runs {
                        // Alternate the order so that drift does not favour one side.
                        let (r, o) = if run % 2 == 0 {
                            let r = throughput(raw, op, size, inflight, args.seconds).await?;
                            (r, throughput(ours, op, size, inflight, args.seconds).await?)
                        } else {
                            let o = throughput(ours, op, size, inflight, args.seconds).await?;
                            (throughput(raw, op, size, inflight, args.seconds).await?, o)
                        };
                        raw_runs.push(r.0);
                        raw_cpu.push(r.1);
                        our_runs.push(o.0);
                        our_cpu.push(o.1);
                    }
                    let ratios: Vec<f64> =
                        raw_runs.iter().zip(&our_runs).map(|(r, o)| o / r).collect();
                    let spread = (
                        ratios.iter().copied().fold(f64::INFINITY, f64::min),
                        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    );
                    let ratio = median(ratios);
                    let (raw_median, our_median) = (median(raw_runs), median(our_runs));
                    worst = worst.min(ratio);
                    let ceiling = match *transport {
                        "plain" => redis_benchmark(server.addr.port(), op, size, inflight).await,
                        _ => None,
                    };
                    eprintln!(
                        "    {transport} {} {size} B x{inflight}: raw {raw_median:.0}, ours {our_median:.0}",
                        op.name()
                    );
                    let cpu = (median(raw_cpu), median(our_cpu));
                    cells.push(Cell {
                        transport,
                        op,
                        size,
                        inflight,
                        raw_median,
                        our_median,
                        ratio,
                        spread,
                        cpu,
                        ceiling,
                    });
                }
            }
        }
    }
    let anchor = match &args.anchor {
        Some(path) => anchor_cells(path, args).await?,
        None => Vec::new(),
    };
    print_table(args.runs, &cells, &anchor);
    println!("\nworst ours / raw: {worst:.3}");
    Ok(())
}

fn print_table(runs: u64, cells: &[Cell], anchor: &[AnchorCell]) {
    println!("\n## 1. Throughput (commands/s), direct to redis-server on loopback\n");
    println!(
        "ours / raw is the median of the {runs} back-to-back ratios (range in brackets); the two throughput medians may come from different runs, so their quotient can differ from it.\n",
    );
    println!(
        "| transport | op | value | in flight | raw redis-rs | ours | ours / raw [range] | entra-id: raw | entra-id | entra-id / raw | redis-benchmark -c 1 -P N | client CPU µs/cmd raw / ours |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for cell in cells {
        let Cell {
            transport,
            op,
            size,
            inflight,
            raw_median,
            our_median,
            ratio,
            spread: (low, high),
            cpu: (raw_cpu, our_cpu),
            ceiling,
        } = cell;
        let other = anchor
            .iter()
            .find(|(o, s, i, _, _)| {
                *transport == "plain" && o == op.name() && s == size && i == inflight
            })
            .map(|(_, _, _, r, e)| format!("{r:.0} | {e:.0} | {:.3}", e / r))
            .unwrap_or_else(|| "n/a | n/a | n/a".into());
        let ceiling = ceiling
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "| {transport} | {} | {size} B | {inflight} | {raw_median:.0} | {our_median:.0} | {ratio:.3} [{low:.3}, {high:.3}] | {other} | {ceiling} | {raw_cpu:.2} / {our_cpu:.2} |",
            op.name(),
        );
    }
}

/// Runs `inflight` workers issuing `op` for `seconds`; returns commands per second and the
/// client's CPU time per command in microseconds (redis-server runs in its own process).
async fn throughput<C>(
    conn: &C,
    op: Op,
    size: usize,
    inflight: usize,
    seconds: f64,
) -> Result<(f64, f64), Error>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let value = Arc::new(vec![b'x'; size]);
    let mut workers = Vec::with_capacity(inflight);
    for w in 0..inflight {
        let (mut conn, stop, count, value) =
            (conn.clone(), stop.clone(), count.clone(), value.clone());
        workers.push(tokio::spawn(async move {
            let key = format!("bench:{size}:{w}");
            let () = conn.set(&key, value.as_slice()).await?;
            while !stop.load(Ordering::Relaxed) {
                match op {
                    Op::Get => {
                        let _: Vec<u8> = conn.get(&key).await?;
                    }
                    Op::Set => {
                        let () = conn.set(&key, value.as_slice()).await?;
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), redis::RedisError>(())
        }));
    }
    // Warm up, then count.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start_count = count.load(Ordering::Relaxed);
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let done = count.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await??;
    }
    Ok((done as f64 / elapsed, cpu * 1e6 / done.max(1) as f64))
}

/// CPU time (user + system) this process has used, in seconds (clock-tick resolution).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// `redis-benchmark` over one connection with `inflight` commands pipelined, as a multiplexed
/// connection keeps them: requests per second, if it is installed.
async fn redis_benchmark(port: u16, op: Op, size: usize, inflight: usize) -> Option<f64> {
    let requests = match inflight {
        1 => 20_000,
        16 => 300_000,
        _ => 1_000_000,
    };
    let out = tokio::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--user",
            RAW_USER,
            "-a",
            RAW_PASSWORD,
        ])
        .args([
            "-t",
            &op.name().to_ascii_lowercase(),
            "-d",
            &size.to_string(),
        ])
        .args(["-c", "1", "-P", &inflight.to_string()])
        .args(["-n", &requests.to_string(), "--csv"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "GET","123456.79",...
    text.lines()
        .find(|l| l.starts_with(&format!("\"{}\"", op.name())))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse().ok())
}

/// Runs the redis-rs `entra-id` comparison program's throughput cells, with as many runs of as
/// many seconds as ours.
async fn anchor_cells(path: &str, args: &RunArgs) -> Result<Vec<AnchorCell>, Error> {
    eprintln!("==> running {path} throughput");
    let out = tokio::process::Command::new(path)
        .args([
            "throughput",
            "--runs",
            &args.runs.to_string(),
            "--seconds",
            &args.seconds.to_string(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    if !out.status.success() {
        return Err(format!("{path} failed with {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut cells = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("CELL ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize, prefix: &str| -> Result<f64, Error> {
            Ok(f.get(i)
                .and_then(|v| v.strip_prefix(prefix))
                .ok_or("malformed CELL line")?
                .parse()?)
        };
        if let [_, op, size, inflight, ..] = f.as_slice() {
            cells.push((
                op.to_string(),
                size.parse()?,
                inflight.parse()?,
                number(4, "raw=")?,
                number(5, "entra=")?,
            ));
        }
    }
    Ok(cells)
}
