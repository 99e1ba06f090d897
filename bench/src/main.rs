//! What the authenticated connection costs, measured side by side in one run on one machine.
//!
//! ```text
//! cargo run --release -p azure-redis-connect-bench -- [--runs N] [--seconds S]
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
//! `bench count raw|ours N` issues N sequential SETs, for an instruction count under callgrind
//! (see BENCHMARKS.md).
//!
//! Each cell is the median of `--runs` runs; ours and raw alternate within a run, and the ratio
//! is the median of the ratios of the runs' back-to-back pairs.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use azure_redis_connect::redis::aio::{ConnectionLike, MultiplexedConnection};
use azure_redis_connect::redis::{self, AsyncCommands};
use azure_redis_connect::token::{AccessToken, RefreshPolicy, TokenError, TokenSource};
use azure_redis_connect::{Auth, AzureRedis, AzureRedisConfig, Endpoint, SecretString};
use azure_redis_emulator::{Emulator, ServiceConnectorAuth};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How the raw redis-rs baseline is configured: as the handle configures its own connection
/// by default (RESP3 with a push sender, the handle's connect and response timeouts,
/// plaintext to the same redis-server), so that a ratio measures the handle alone.
const BASELINE: &str = "raw redis-rs MultiplexedConnection configured as the handle's: RESP3 with a push sender, connect timeout = handle::DEFAULT_CONNECT_TIMEOUT (10 s), response timeout = handle::DEFAULT_RESPONSE_TIMEOUT (5 s), the same transport (plaintext, or TLS to localhost trusting the same CA through redis-rs's rustls), the same redis-server";

/// Opens the raw baseline connection ([`BASELINE`]) as `user:password` to `addr`.
async fn raw_connection(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
) -> Result<MultiplexedConnection, Error> {
    raw_connection_with(addr, user, password, None).await
}

/// [`raw_connection`], over TLS to `localhost` trusting `tls_ca_pem` when given, as the handle
/// is configured (`root_certificate_pem`).
async fn raw_connection_with(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    tls_ca_pem: Option<&str>,
) -> Result<MultiplexedConnection, Error> {
    let client = match tls_ca_pem {
        None => redis::Client::open(format!("redis://{user}:{password}@{addr}/?protocol=resp3"))?,
        Some(ca_pem) => redis::Client::build_with_tls(
            format!(
                "rediss://{user}:{password}@localhost:{}/?protocol=resp3",
                addr.port()
            ),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca_pem.as_bytes().to_vec()),
            },
        )?,
    };
    // Drained as the handle's supervisor drains its own; the task ends with the connection.
    let (pushes, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while received.recv().await.is_some() {} });
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(azure_redis_connect::handle::DEFAULT_CONNECT_TIMEOUT))
        .set_response_timeout(Some(azure_redis_connect::handle::DEFAULT_RESPONSE_TIMEOUT))
        .set_push_sender(pushes);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
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

const RAW_USER: &str = "bench";
const RAW_PASSWORD: &str = "bench-static-password";

struct Args {
    runs: usize,
    seconds: f64,
    /// The redis-rs `entra-id` comparison program (anchors/redis-rs-entra), built on its own.
    anchor: Option<String>,
}

fn args() -> Result<Args, Error> {
    let mut args = Args {
        runs: 7,
        seconds: 1.0,
        anchor: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => args.runs = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--anchor" => args.anchor = Some(value()?),
            "--help" | "-h" => {
                println!(
                    "usage: bench [--runs N (7)] [--seconds S per run (1.0)] [--anchor PATH to the redis-rs entra-id program]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

/// A token minted by the emulator, handed out as is (it outlives the benchmark).
struct Minted(AccessToken);

impl TokenSource for Minted {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    port: Option<u16>,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
}

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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
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

/// Runs the redis-rs `entra-id` comparison program's throughput cells (its own redis-server,
/// its own static-password baseline): `(op, bytes, in flight, raw, entra-id)`.
async fn anchor_cells(
    path: &str,
    args: &Args,
) -> Result<Vec<(String, usize, usize, f64, f64)>, Error> {
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

/// Records the latency of every command of `workers` workers for `seconds`.
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

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// A redis-server on a free loopback port, killed on drop.
struct RedisServer {
    addr: std::net::SocketAddr,
    _child: tokio::process::Child,
}

/// A certificate authority and a certificate for `localhost` signed by it, written where
/// redis-server reads them, for the TLS cells.
struct TlsFiles {
    ca_pem: String,
    dir: tempfile::TempDir,
}

impl TlsFiles {
    fn generate() -> Result<TlsFiles, Error> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate()?;
        let cert =
            CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &issuer)?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem())?;
        std::fs::write(dir.path().join("cert.pem"), cert.pem())?;
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem())?;
        Ok(TlsFiles {
            ca_pem: ca_cert.pem(),
            dir,
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl RedisServer {
    async fn start(users: &[(&str, &str)]) -> Result<RedisServer, Error> {
        Self::start_with(users, None).await
    }

    /// With `tls`, the server accepts TLS only (no client certificates), as Azure does.
    async fn start_with(
        users: &[(&str, &str)],
        tls: Option<&TlsFiles>,
    ) -> Result<RedisServer, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = tokio::process::Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true);
        match tls {
            None => {
                cmd.args(["--port", &port.to_string()]);
            }
            Some(files) => {
                cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cert-file", &files.path("cert.pem")])
                    .args(["--tls-key-file", &files.path("key.pem")])
                    .args(["--tls-ca-cert-file", &files.path("ca.pem")])
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        for (user, password) in users {
            cmd.args([
                "--user",
                user,
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
            ]);
        }
        let child = cmd.spawn()?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(RedisServer {
                    addr,
                    _child: child,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("redis-server did not start".into())
    }
}

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

fn command_line(program: &str, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| format!("{program}: not found"))
}

async fn gate_handle(emu: &Emulator, policy: RefreshPolicy) -> Result<AzureRedis, Error> {
    let cache = Cache::from_vars(emu.env_for(ServiceConnectorAuth::ServicePrincipal))?;
    Ok(AzureRedis::builder_from(&cache)?
        .root_certificate_pem(emu.ca_pem())
        .authority_host(emu.token_endpoint_authority())
        .refresh_policy(policy)
        .connect()
        .await?)
}

const COLD_START_CHILD: &str = "cold-start-child";
const COUNT: &str = "count";

/// For an instruction count under `valgrind --tool=callgrind` (repeatable whatever else the
/// machine does): `bench count raw|ours N [DEPTH]` issues N SETs through one client, DEPTH of
/// them in flight at a time (1 by default), against a redis-server of its own, with no emulator
/// in the process, on a single-threaded runtime. Running it with two values of N and taking the
/// difference gives the instructions of one command, setup excluded.
async fn count(client: &str, n: u64, depth: usize) -> Result<(), Error> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    // A token shaped like Entra ID's (the server only compares it as the ACL password).
    let token = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(r#"{"oid":"00000000-0000-0000-0000-0000000000aa","aud":"https://redis.azure.com"}"#),
        b64("signature")
    );
    let server = RedisServer::start(&[
        (RAW_USER, RAW_PASSWORD),
        ("00000000-0000-0000-0000-0000000000aa", token.as_str()),
    ])
    .await?;
    match client {
        "raw" => {
            let conn = raw_connection(server.addr, RAW_USER, RAW_PASSWORD).await?;
            concurrent_sets(conn, n, depth).await
        }
        "ours" => {
            let mut endpoint = Endpoint::new("127.0.0.1");
            endpoint.port = server.addr.port();
            endpoint.tls = false;
            let expires_at = Some(SystemTime::now() + Duration::from_secs(3600));
            let source = Minted(AccessToken {
                token: SecretString::from(token),
                expires_at,
            });
            let handle = AzureRedis::builder(endpoint, Auth::SystemIdentity)
                .allow_plaintext()
                .token_source(source)
                .connect()
                .await?;
            concurrent_sets(handle, n, depth).await
        }
        other => Err(format!("count: expected raw or ours, not {other}").into()),
    }
}

/// `n` SETs from `depth` workers polled together, each sending one SET after another on a
/// clone of `conn` made before the first (so that a clone, whose cost differs between the
/// clients, is setup and drops out of the difference).
async fn concurrent_sets(
    conn: impl ConnectionLike + Clone,
    n: u64,
    depth: usize,
) -> Result<(), Error> {
    let depth = depth.max(1) as u64;
    let workers = (0..depth).map(|w| {
        let mut conn = conn.clone();
        async move {
            let mut i = w;
            while i < n {
                redis::cmd("SET")
                    .arg("count:k")
                    .arg(i)
                    .query_async::<()>(&mut conn)
                    .await?;
                i += depth;
            }
            Ok::<(), redis::RedisError>(())
        }
    });
    for result in futures_util::future::join_all(workers).await {
        result?;
    }
    Ok(())
}

/// In a child process with Service Connector's variables: ten times from the environment to the
/// first PONG; prints the median in milliseconds.
async fn cold_start_child() -> Result<(), Error> {
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

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "system_identity")]
struct SystemIdentityCache {
    host: String,
    port: Option<u16>,
}

fn main() -> Result<(), Error> {
    if std::env::args().nth(1).as_deref() == Some(COUNT) {
        let client = std::env::args().nth(2).unwrap_or_default();
        let n = std::env::args()
            .nth(3)
            .unwrap_or_default()
            .parse()
            .map_err(|_| "count: N")?;
        let depth = match std::env::args().nth(4) {
            Some(depth) => depth.parse().map_err(|_| "count: DEPTH")?,
            None => 1,
        };
        // One thread: the client, its connection's driver and the handle's tasks interleave
        // the same way on every run, so that the count repeats.
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(count(&client, n, depth));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Error> {
    if std::env::args().nth(1).as_deref() == Some(COLD_START_CHILD) {
        return cold_start_child().await;
    }
    let args = args()?;
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

    // The emulator (the Azure side: token signing, the gate's signature checks) runs on threads
    // of its own, so that its work never stalls the client's runtime, as on Azure.
    let (emu, emu_runtime) = std::thread::spawn(|| -> Result<_, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("emulator")
            .enable_all()
            .build()?;
        let emu = runtime.block_on(
            Emulator::builder()
                .token_lifetime(Duration::from_secs(3600))
                .start(),
        )?;
        Ok((emu, runtime))
    })
    .join()
    .map_err(|_| "the emulator thread panicked")??;
    // A redis-server of the benchmark's own for each transport: raw uses a static ACL password;
    // ours the identity's oid as ACL user with a token as its password.
    let oid = emu.system_identity();
    let minted = emu.mint_token(&oid, Duration::from_secs(3600));
    let users = [(RAW_USER, RAW_PASSWORD), (oid.as_str(), minted.secret())];
    let server = RedisServer::start(&users).await?;
    let direct = server.addr;
    let tls_files = TlsFiles::generate()?;
    let tls_server = RedisServer::start_with(&users, Some(&tls_files)).await?;
    println!("baseline: {BASELINE}");
    let token = AccessToken {
        token: SecretString::from(minted.secret()),
        expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(minted.expires_on as u64)),
    };
    let mut pairs = Vec::new();
    for (transport, addr) in [("plain", direct), ("TLS", tls_server.addr)] {
        let tls = transport == "TLS";
        let ca_pem = tls.then_some(tls_files.ca_pem.as_str());
        let raw = raw_connection_with(addr, RAW_USER, RAW_PASSWORD, ca_pem).await?;
        let mut endpoint = Endpoint::new(if tls { "localhost" } else { "127.0.0.1" });
        endpoint.port = addr.port();
        endpoint.tls = tls;
        let mut builder = AzureRedis::builder(endpoint, Auth::SystemIdentity)
            .allow_plaintext()
            .token_source(Minted(token.clone()));
        if let Some(ca_pem) = ca_pem {
            builder = builder.root_certificate_pem(ca_pem.as_bytes());
        }
        pairs.push((transport, raw, builder.connect().await?));
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
                        "plain" => redis_benchmark(direct.port(), op, size, inflight).await,
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
        Some(path) => anchor_cells(path, &args).await?,
        None => Vec::new(),
    };
    println!("\n## 1. Throughput (commands/s), direct to redis-server on loopback\n");
    println!(
        "ours / raw is the median of the {} back-to-back ratios (range in brackets); the two throughput medians may come from different runs, so their quotient can differ from it.\n",
        args.runs
    );
    println!(
        "| transport | op | value | in flight | raw redis-rs | ours | ours / raw [range] | entra-id: raw | entra-id | entra-id / raw | redis-benchmark -c 1 -P N | client CPU µs/cmd raw / ours |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for cell in &cells {
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
    println!("\nworst ours / raw: {worst:.3}");
    drop(pairs);

    println!("\n## 2. Latency through the gate (16 workers, SET), steady vs during refresh\n");
    let seconds = (args.seconds * 10.0).max(5.0);
    let steady = gate_handle(&emu, RefreshPolicy::default()).await?;
    let (steady_samples, steady_errors) = latencies(&steady, 16, seconds).await?;
    drop(steady);
    emu.set_token_lifetime(Duration::from_secs(2));
    let refreshing = gate_handle(&emu, RefreshPolicy::default()).await?;
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

    println!("\n## 3. Cold start: variables to the first PONG over TLS through the gate\n");
    // A managed identity reads IDENTITY_ENDPOINT from the process environment, so this runs in
    // a child process started with Service Connector's variables, as an application would.
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg(COLD_START_CHILD)
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
    if let Some(path) = &args.anchor {
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

    println!("\n## 4. Memory (resident set)\n");
    let before = rss_kib();
    let one = gate_handle(&emu, RefreshPolicy::default()).await?;
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
        extra.push(gate_handle(&emu, RefreshPolicy::default()).await?);
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
    emu.shutdown().await;
    emu_runtime.shutdown_background();
    Ok(())
}
