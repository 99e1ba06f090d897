//! `anchor`: redis-rs's own Entra ID path, run against the local Azure emulator.
//!
//! The client side is exactly what a redis-rs user on App Service gets:
//! `redis::entra_id::EntraIdCredentialsProvider::new_with_credential` fed with azure_identity
//! 0.31's real `ManagedIdentityCredential` (App Service source: `IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`, both pointing at the emulator), started with redis-rs's default
//! `RetryConfig`, attached to a `MultiplexedConnection` (or a `ConnectionManager`) over TLS that
//! trusts the emulator's CA. The credential is wrapped only to count and time its `get_token`
//! calls; every call goes straight to `ManagedIdentityCredential`.
//!
//! Subcommands: `outage-past-expiry`, `outage-before-expiry`, `hot-loop`, `cold-start`.

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::RetryOptions;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions};
use azure_redis_emulator::{Counters, Emulator, IdentityEndpoint, IdentityFault};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::auth::StreamingCredentialsProvider;
use redis::auth_management::RetryConfig;
use redis::entra_id::{EntraIdCredentialsProvider, REDIS_SCOPE_DEFAULT};
use redis::{AsyncConnectionConfig, Client, TlsCertificates};
use secrecy::ExposeSecret;

type BoxError = Box<dyn Error + Send + Sync>;

/// redis-rs's `TOKEN_REFRESH_BUFFER_SECS` (entra_id.rs): it refreshes this long before expiry.
const REDIS_RS_LEAD_SECS: f64 = 240.0;

#[derive(Parser)]
#[command(
    name = "anchor",
    about = "redis-rs's Entra ID path (EntraIdCredentialsProvider + azure_identity 0.31 \
             ManagedIdentityCredential) against the local Azure emulator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Identity endpoint down (HTTP 500) from before the first refresh point until past
    /// expiry, then back; one connection issuing a command every 100 ms.
    OutagePastExpiry(OutageArgs),
    /// Identity endpoint down over the first refresh point, back before expiry.
    OutageBeforeExpiry(OutageArgs),
    /// Short tokens: token requests and AUTHs per second.
    HotLoop(HotLoopArgs),
    /// From nothing to the first PONG over TLS (credential, provider, first token, TLS, AUTH).
    ColdStart(ColdStartArgs),
    /// GET/SET throughput of a connection authenticated by the provider against one with a
    /// static ACL password, on a redis-server of its own (no gate): the same cells as the
    /// workspace benchmark, printed as `CELL <op> <bytes> <in flight> raw=<cmd/s> entra=<cmd/s>`.
    Throughput(ThroughputArgs),
}

#[derive(Args)]
struct ThroughputArgs {
    /// Token lifetime the emulator mints, in seconds (over 240 s, so that redis-rs does not
    /// refresh in a loop).
    #[arg(long, default_value_t = 3600)]
    token_lifetime: u64,
    /// Runs per cell (the median is printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

#[derive(Args, Clone, Copy)]
struct Common {
    /// azure_core's HTTP retry policy inside ManagedIdentityCredential: `default` is what
    /// redis-rs's own constructors use (8 retries on HTTP 500, sleeping 0.4 s doubling up to a
    /// 30 s cap, about 82 s per failing get_token call); `none` leaves retries to redis-rs's
    /// RetryConfig alone.
    #[arg(long, value_enum, default_value_t = CoreRetry::Default)]
    core_retry: CoreRetry,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CoreRetry {
    Default,
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Control {
    AccessKey,
    StaticToken,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConnKind {
    /// One `MultiplexedConnection` (no reconnect).
    Multiplexed,
    /// `ConnectionManager` (reconnects; each reconnect takes the provider's current token).
    Manager,
}

#[derive(Args)]
struct OutageArgs {
    /// Token lifetime the emulator mints, in seconds.
    #[arg(long, default_value_t = 300)]
    token_lifetime: u64,
    /// Which redis-rs connection type carries the commands.
    #[arg(long, value_enum, default_value_t = ConnKind::Multiplexed)]
    conn: ConnKind,
    #[command(flatten)]
    common: Common,
    /// Outage start, seconds after the provider started. Default: 10 s before the first
    /// refresh point (expiry - 240 s), or 2 s when tokens are shorter than 240 s + 12 s
    /// (redis-rs then refreshes continuously, so there is no later refresh point).
    #[arg(long)]
    outage_start: Option<f64>,
    /// outage-past-expiry: the endpoint comes back this many seconds after the expiry of the
    /// newest token obtained before the outage (default 30, 5 for tokens under 240 s).
    /// outage-before-expiry: it comes back this many seconds before that expiry (default: half
    /// the time from the refresh point to expiry).
    #[arg(long)]
    margin: Option<f64>,
    /// Seconds to keep going after the endpoint is back (past-expiry, default 60) or after the
    /// expiry (before-expiry, default 30).
    #[arg(long)]
    observe: Option<f64>,
    /// Milliseconds between commands.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
}

#[derive(Args)]
struct HotLoopArgs {
    /// Token lifetime the emulator mints, in seconds.
    #[arg(long, default_value_t = 6)]
    token_lifetime: u64,
    /// Measurement window in seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 10.0)]
    window: f64,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ColdStartArgs {
    /// Number of runs.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Token lifetime the emulator mints, in seconds.
    #[arg(long, default_value_t = 300)]
    token_lifetime: u64,
    /// Turn TCP_NODELAY on (redis-rs's default is off).
    #[arg(long)]
    tcp_nodelay: bool,
    /// Control runs without redis-rs's Entra ID path (same client, same TLS):
    /// `access-key` AUTHs with the emulator's static access key; `static-token` AUTHs as
    /// `<oid> <JWT>` with a token minted in-process (no provider, no HTTP).
    #[arg(long, value_enum)]
    control: Option<Control>,
    #[command(flatten)]
    common: Common,
}

impl Cli {
    fn token_lifetime(&self) -> u64 {
        match &self.cmd {
            Cmd::OutagePastExpiry(a) | Cmd::OutageBeforeExpiry(a) => a.token_lifetime,
            Cmd::HotLoop(a) => a.token_lifetime,
            Cmd::ColdStart(a) => a.token_lifetime,
            Cmd::Throughput(a) => a.token_lifetime,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clock and redis-rs log capture

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the program's clock started (reset when a scenario starts its provider).
fn now() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

fn at(rel: f64) -> Instant {
    *START.get_or_init(Instant::now) + Duration::from_secs_f64(rel.max(0.0))
}

/// Counts redis-rs's log messages (by level, target and text with digits masked) and prints
/// the first few warnings and errors of each kind with a timestamp.
struct Logger {
    counts: Mutex<BTreeMap<String, u64>>,
}

const LOG_PRINT_LIMIT: u64 = 4;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Debug && m.target().starts_with("redis")
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        let masked: String = msg
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(110)
            .collect();
        let key = format!("{:5} {}: {}", r.level(), r.target(), masked);
        let n = {
            let mut g = self.counts.lock().unwrap();
            let e = g.entry(key).or_default();
            *e += 1;
            *e
        };
        if r.level() <= log::Level::Warn && n <= LOG_PRINT_LIMIT {
            eprintln!(
                "[{:+8.1}s] redis-rs {} {}: {}{}",
                now(),
                r.level(),
                r.target(),
                one_line(&msg, 200),
                if n == LOG_PRINT_LIMIT {
                    " (further ones only counted)"
                } else {
                    ""
                }
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger {
    counts: Mutex::new(BTreeMap::new()),
};

fn log_count(contains: &str) -> u64 {
    LOGGER
        .counts
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains(contains))
        .map(|(_, v)| v)
        .sum()
}

fn print_log_summary() {
    let g = LOGGER.counts.lock().unwrap();
    if g.is_empty() {
        return;
    }
    println!("\nredis-rs log messages (count, digits masked):");
    for (k, v) in g.iter() {
        println!("  {v:>6}  {k}");
    }
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The credential: azure_identity 0.31's ManagedIdentityCredential, counted

#[derive(Default)]
struct CredStats {
    calls: AtomicU64,
    failed: AtomicU64,
    first_call: Mutex<Option<Duration>>,
    /// Print calls (outcome, duration) while this many lines remain.
    print_budget: AtomicU64,
    last_failed: AtomicBool,
}

#[derive(Debug)]
struct Counted {
    inner: Arc<ManagedIdentityCredential>,
    stats: StatsHandle,
}

#[derive(Clone)]
struct StatsHandle(Arc<CredStats>);

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredStats")
    }
}

#[async_trait::async_trait]
impl TokenCredential for Counted {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let started = Instant::now();
        let started_rel = now();
        let result = self.inner.get_token(scopes, options).await;
        let took = started.elapsed();
        let s = &self.stats.0;
        let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
        s.first_call.lock().unwrap().get_or_insert(took);
        if result.is_err() {
            s.failed.fetch_add(1, Ordering::SeqCst);
        }
        // Print every failure (up to a budget), the first few successes, slow calls, and the first
        // success after a failure.
        let after_failure = s.last_failed.swap(result.is_err(), Ordering::SeqCst);
        let print = (result.is_err() || after_failure || n <= 3 || took > Duration::from_secs(1))
            && s.print_budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                .is_ok();
        if print {
            match &result {
                Ok(t) => {
                    let left = t.expires_on - azure_core::time::OffsetDateTime::now_utc();
                    eprintln!(
                        "[{:+8.1}s] get_token #{n} (started {:+.1}s) ok after {:.2}s, expires in {:.0}s",
                        now(),
                        started_rel,
                        took.as_secs_f64(),
                        left.as_seconds_f64()
                    );
                }
                Err(e) => eprintln!(
                    "[{:+8.1}s] get_token #{n} (started {:+.1}s) FAILED after {:.1}s: {}",
                    now(),
                    started_rel,
                    took.as_secs_f64(),
                    one_line(&e.to_string(), 120)
                ),
            }
        }
        result
    }
}

/// azure_identity 0.31's ManagedIdentityCredential (reads IDENTITY_ENDPOINT / IDENTITY_HEADER
/// from the process environment), wrapped to count its calls.
fn credential(
    core_retry: CoreRetry,
    stats: &Arc<CredStats>,
) -> Result<Arc<dyn TokenCredential + Send + Sync>, BoxError> {
    let mut options = ManagedIdentityCredentialOptions::default();
    if core_retry == CoreRetry::None {
        options.client_options.retry = RetryOptions::none();
    }
    let inner = ManagedIdentityCredential::new(Some(options))?;
    Ok(Arc::new(Counted {
        inner,
        stats: StatsHandle(stats.clone()),
    }))
}

/// redis-rs's provider over that credential, started with redis-rs's default RetryConfig
/// (3 retries, 100 ms min delay, factor 2, 30 s max delay, jitter).
fn provider(
    core_retry: CoreRetry,
    stats: &Arc<CredStats>,
) -> Result<EntraIdCredentialsProvider, BoxError> {
    let mut p = EntraIdCredentialsProvider::new_with_credential(
        credential(core_retry, stats)?,
        vec![REDIS_SCOPE_DEFAULT.to_string()],
    )?;
    p.start(RetryConfig::default());
    Ok(p)
}

/// A TLS client for the emulator's gate that trusts only the emulator's CA. redis-rs leaves
/// TCP_NODELAY off by default; `nodelay` turns it on.
fn tls_client(emu: &Emulator, nodelay: bool) -> Result<Client, BoxError> {
    use redis::IntoConnectionInfo;
    let mut info =
        format!("rediss://localhost:{}", emu.tls_addr().port()).into_connection_info()?;
    if nodelay {
        info = info.set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    }
    Ok(Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls: None,
            root_cert: Some(emu.ca_pem().as_bytes().to_vec()),
        },
    )?)
}

/// Expiry (unix seconds) of the provider's current token, read from its JWT `exp`.
async fn current_expiry(p: &EntraIdCredentialsProvider) -> Option<u64> {
    let mut stream = p.subscribe();
    let auth = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .ok()??
        .ok()?;
    let payload = auth.password().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

/// A unix time as seconds on the program clock.
fn unix_to_rel(unix: u64) -> f64 {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    now() + (unix as f64 - now_unix)
}

// ---------------------------------------------------------------------------------------------
// Connections and the command loop

#[derive(Clone)]
enum Conn {
    Mux(MultiplexedConnection),
    Mgr(ConnectionManager),
}

impl Conn {
    async fn connect(
        kind: ConnKind,
        client: &Client,
        p: &EntraIdCredentialsProvider,
    ) -> redis::RedisResult<Conn> {
        match kind {
            ConnKind::Multiplexed => {
                let cfg = AsyncConnectionConfig::new().set_credentials_provider(p.clone());
                Ok(Conn::Mux(
                    client
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await?,
                ))
            }
            ConnKind::Manager => {
                let cfg = ConnectionManagerConfig::new().set_credentials_provider(p.clone());
                Ok(Conn::Mgr(
                    ConnectionManager::new_with_config(client.clone(), cfg).await?,
                ))
            }
        }
    }

    async fn incr(&mut self) -> redis::RedisResult<i64> {
        let mut c = redis::cmd("INCR");
        c.arg("anchor:n");
        match self {
            Conn::Mux(m) => c.query_async(m).await,
            Conn::Mgr(m) => c.query_async(m).await,
        }
    }
}

struct Sample {
    at: f64,
    err: Option<String>,
}

#[derive(Clone, Default)]
struct Samples(Arc<Mutex<Vec<Sample>>>);

impl Samples {
    fn counts(&self) -> (usize, usize) {
        let g = self.0.lock().unwrap();
        let failed = g.iter().filter(|s| s.err.is_some()).count();
        (g.len() - failed, failed)
    }
}

/// Issues INCR every `interval` until `stop`; each command gets at most 2 s.
fn spawn_command_loop(
    mut conn: Conn,
    interval: Duration,
    samples: Samples,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let t = now();
            let err = match tokio::time::timeout(Duration::from_secs(2), conn.incr()).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(one_line(&e.to_string(), 90)),
                Err(_) => Some("no reply within 2 s".to_string()),
            };
            samples.0.lock().unwrap().push(Sample { at: t, err });
        }
    })
}

/// Sleeps until `rel`, printing a progress line every `every` seconds.
struct Progress<'a> {
    emu: &'a Emulator,
    samples: Samples,
    stats: Arc<CredStats>,
    every: f64,
    next: f64,
}

impl Progress<'_> {
    fn line(&self) {
        let (ok, failed) = self.samples.counts();
        let c = self.emu.counters();
        eprintln!(
            "[{:+8.1}s] commands ok={ok} failed={failed} | mi_requests={} auth_ok={} auth_rejected={} \
             closed_at_expiry={} connections={} | get_token calls={} failed={}",
            now(),
            c.managed_identity_requests,
            c.auth_accepted,
            c.auth_rejected,
            c.closed_at_expiry,
            c.connections_accepted,
            self.stats.calls.load(Ordering::SeqCst),
            self.stats.failed.load(Ordering::SeqCst),
        );
    }

    async fn wait_until(&mut self, rel: f64) {
        loop {
            let t = now();
            if t >= rel {
                return;
            }
            if self.next <= rel {
                tokio::time::sleep_until(at(self.next).into()).await;
                self.line();
                self.next += self.every;
            } else {
                tokio::time::sleep_until(at(rel).into()).await;
            }
        }
    }
}

fn error_tally(samples: &[&Sample]) -> Vec<(String, usize)> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples {
        if let Some(e) = &s.err {
            *m.entry(e.clone()).or_default() += 1;
        }
    }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}

/// CPU time of this process (client and emulator together) from /proc/self/stat, in seconds.
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime/stime are fields 14/15 overall, i.e. 12/13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

fn print_machine() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "machine                 {} cores, load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load.join(" ")
    );
}

fn print_counters(c: &Counters) {
    println!(
        "gate counters: closed_at_expiry={} managed_identity_requests={} tokens_minted={} \
         auth_accepted={} auth_rejected={} connections_accepted={}",
        c.closed_at_expiry,
        c.managed_identity_requests,
        c.tokens_minted,
        c.auth_accepted,
        c.auth_rejected,
        c.connections_accepted
    );
}

fn core_retry_label(c: CoreRetry) -> &'static str {
    match c {
        CoreRetry::Default => {
            "default (8 retries, 0.4 s doubling, capped at 30 s: ~82 s per failing call)"
        }
        CoreRetry::None => "none",
    }
}

fn conn_label(c: ConnKind) -> &'static str {
    match c {
        ConnKind::Multiplexed => {
            "MultiplexedConnection (AsyncConnectionConfig::set_credentials_provider)"
        }
        ConnKind::Manager => {
            "ConnectionManager (ConnectionManagerConfig::set_credentials_provider)"
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn outage(emu: &Emulator, a: &OutageArgs, past_expiry: bool) -> Result<(), BoxError> {
    let name = if past_expiry {
        "outage-past-expiry"
    } else {
        "outage-before-expiry"
    };
    let lifetime = a.token_lifetime as f64;
    let stats = Arc::new(CredStats {
        print_budget: AtomicU64::new(40),
        ..Default::default()
    });

    // t = 0: the provider starts (its first get_token), then the connection is made.
    let _ = START.set(Instant::now());
    let p = provider(a.common.core_retry, &stats)?;
    let client = tls_client(emu, false)?;
    let conn = Conn::connect(a.conn, &client, &p).await?;
    let first_exp = unix_to_rel(
        current_expiry(&p)
            .await
            .ok_or("no token from the provider")?,
    );
    let first_refresh = (first_exp - REDIS_RS_LEAD_SECS).max(0.0);
    eprintln!(
        "[{:+8.1}s] connected; first token expires at {first_exp:+.1}s, redis-rs refresh point {first_refresh:+.1}s",
        now()
    );

    let samples = Samples::default();
    let stop = Arc::new(AtomicBool::new(false));
    let loop_task = spawn_command_loop(
        conn,
        Duration::from_millis(a.interval_ms),
        samples.clone(),
        stop.clone(),
    );

    let outage_start = a.outage_start.unwrap_or(if first_refresh > 12.0 {
        first_refresh - 10.0
    } else {
        2.0
    });
    let mut prog = Progress {
        emu,
        samples: samples.clone(),
        stats: stats.clone(),
        every: if lifetime >= 120.0 { 15.0 } else { 5.0 },
        next: 5.0,
    };
    prog.wait_until(outage_start).await;
    // The deadline that matters: the newest token obtained before the outage.
    let exp = unix_to_rel(
        current_expiry(&p)
            .await
            .ok_or("no token from the provider")?,
    );
    emu.faults()
        .identity_outage(IdentityEndpoint::All, IdentityFault::Http500, None);
    let outage_start = now();
    let refresh = (exp - REDIS_RS_LEAD_SECS).max(outage_start);
    let outage_end = if past_expiry {
        exp + a.margin.unwrap_or(if lifetime >= REDIS_RS_LEAD_SECS {
            30.0
        } else {
            5.0
        })
    } else {
        (exp - a.margin.unwrap_or((exp - refresh) / 2.0)).max(outage_start + 1.0)
    };
    let observe = a.observe.unwrap_or(if past_expiry { 60.0 } else { 30.0 });
    let run_end = if past_expiry {
        outage_end + observe
    } else {
        exp + observe
    };
    eprintln!(
        "[{:+8.1}s] identity endpoint DOWN (HTTP 500); token in hand expires at {exp:+.1}s; \
         endpoint back at {outage_end:+.1}s; run ends at {run_end:+.1}s",
        now()
    );

    prog.wait_until(outage_end).await;
    emu.faults().clear_identity_outage(IdentityEndpoint::All);
    let outage_end = now();
    eprintln!("[{:+8.1}s] identity endpoint BACK", now());

    prog.wait_until(run_end).await;
    prog.line();
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(3), loop_task).await;
    let counters = emu.counters();

    // Report.
    let all = samples.0.lock().unwrap();
    let count = |f: &dyn Fn(&Sample) -> bool| {
        let v: Vec<&Sample> = all.iter().filter(|s| f(s)).collect();
        let failed = v.iter().filter(|s| s.err.is_some()).count();
        (v.len(), failed)
    };
    let rows = [
        ("before the outage", count(&|s| s.at < outage_start)),
        (
            "outage, before expiry",
            count(&|s| s.at >= outage_start && s.at < exp.min(outage_end)),
        ),
        (
            if past_expiry {
                "outage, after expiry"
            } else {
                "endpoint back, before expiry"
            },
            if past_expiry {
                count(&|s| s.at >= exp && s.at < outage_end)
            } else {
                count(&|s| s.at >= outage_end && s.at < exp)
            },
        ),
        (
            if past_expiry {
                "endpoint back (after expiry)"
            } else {
                "after expiry"
            },
            if past_expiry {
                count(&|s| s.at >= outage_end)
            } else {
                count(&|s| s.at >= exp)
            },
        ),
    ];
    let before_exp = count(&|s| s.at < exp);
    let after_exp = count(&|s| s.at >= exp);

    println!("\n== {name} ==");
    println!(
        "token lifetime          {lifetime:.0} s (redis-rs refreshes {REDIS_RS_LEAD_SECS:.0} s before expiry)"
    );
    println!("connection              {}", conn_label(a.conn));
    println!(
        "credential              azure_identity 0.31 ManagedIdentityCredential (App Service), azure_core retry: {}",
        core_retry_label(a.common.core_retry)
    );
    println!("redis-rs RetryConfig    default (3 retries, 100 ms min, x2, 30 s max, jitter)");
    println!("commands                INCR every {} ms", a.interval_ms);
    print_machine();
    println!(
        "first token expiry      {first_exp:+.1} s, first refresh point {first_refresh:+.1} s"
    );
    println!(
        "outage (HTTP 500)       {outage_start:+.1} s .. {outage_end:+.1} s; token in hand at outage start expires {exp:+.1} s"
    );
    println!();
    println!("| window | commands | failed |");
    println!("|---|---:|---:|");
    for (label, (n, f)) in rows {
        println!("| {label} | {n} | {f} |");
    }
    println!(
        "| **before expiry (total)** | {} | {} |",
        before_exp.0, before_exp.1
    );
    println!(
        "| **after expiry (total)** | {} | {} |",
        after_exp.0, after_exp.1
    );
    println!();

    let first_fail = all.iter().find(|s| s.err.is_some()).map(|s| s.at);
    let last_before_back = all.iter().rev().find(|s| s.at < outage_end);
    let failing_at_back = last_before_back.is_some_and(|s| s.err.is_some());
    let first_ok_after_back = all
        .iter()
        .find(|s| s.at >= outage_end && s.err.is_none())
        .map(|s| s.at);
    let last_fail = all.iter().rev().find(|s| s.err.is_some()).map(|s| s.at);
    match first_fail {
        Some(t) => println!("first failed command    {t:+.1} s"),
        None => println!("first failed command    none"),
    }
    if let Some(t) = last_fail {
        println!("last failed command     {t:+.1} s");
    }
    if failing_at_back {
        match first_ok_after_back {
            Some(t) => println!("endpoint back -> first success: {:.1} s", t - outage_end),
            None => println!(
                "endpoint back -> first success: never within {:.0} s",
                run_end - outage_end
            ),
        }
    } else {
        println!(
            "endpoint back -> first success: n/a (commands were succeeding when the endpoint came back)"
        );
    }
    print_counters(&counters);
    println!(
        "redis-rs get_token calls: {} ({} failed); re-AUTHs reported by redis-rs: {}; \
         'Maximum token refresh attempts reached': {}",
        stats.calls.load(Ordering::SeqCst),
        stats.failed.load(Ordering::SeqCst),
        log_count("Re-authenticated async connection"),
        log_count("Maximum token refresh attempts reached")
    );
    let refs: Vec<&Sample> = all.iter().collect();
    let tally = error_tally(&refs);
    if !tally.is_empty() {
        println!("command errors:");
        for (e, n) in tally.iter().take(5) {
            println!("  {n:>5}  {e}");
        }
    }
    Ok(())
}

async fn hot_loop(emu: &Emulator, a: &HotLoopArgs) -> Result<(), BoxError> {
    let stats = Arc::new(CredStats {
        print_budget: AtomicU64::new(10),
        ..Default::default()
    });
    let _ = START.set(Instant::now());
    let p = provider(a.common.core_retry, &stats)?;
    let client = tls_client(emu, false)?;
    let conn = Conn::connect(ConnKind::Multiplexed, &client, &p).await?;
    let samples = Samples::default();
    let stop = Arc::new(AtomicBool::new(false));
    let loop_task = spawn_command_loop(
        conn,
        Duration::from_millis(100),
        samples.clone(),
        stop.clone(),
    );

    let warmup = now() + 2.0;
    tokio::time::sleep_until(at(warmup).into()).await;
    let c0 = emu.counters();
    let g0 = stats.calls.load(Ordering::SeqCst);
    let r0 = log_count("Re-authenticated async connection");
    let (ok0, failed0) = samples.counts();
    let cpu0 = process_cpu_secs();
    let t0 = now();
    let mut prog = Progress {
        emu,
        samples: samples.clone(),
        stats: stats.clone(),
        every: 2.0,
        next: t0 + 2.0,
    };
    prog.wait_until(t0 + a.window).await;
    let secs = now() - t0;
    let cpu1 = process_cpu_secs();
    let c1 = emu.counters();
    let g1 = stats.calls.load(Ordering::SeqCst);
    let r1 = log_count("Re-authenticated async connection");
    let (ok1, failed1) = samples.counts();
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(3), loop_task).await;

    let rate = |d: u64| d as f64 / secs;
    println!("\n== hot-loop ==");
    println!(
        "token lifetime          {} s (redis-rs refreshes {REDIS_RS_LEAD_SECS:.0} s before expiry{})",
        a.token_lifetime,
        if (a.token_lifetime as f64) <= REDIS_RS_LEAD_SECS {
            ", i.e. at once, every time"
        } else {
            ""
        }
    );
    println!(
        "credential              azure_identity 0.31 ManagedIdentityCredential (App Service), azure_core retry: {}",
        core_retry_label(a.common.core_retry)
    );
    println!("connection              one MultiplexedConnection, INCR every 100 ms");
    println!("window                  {secs:.1} s after a 2 s warm-up");
    print_machine();
    println!();
    println!("| measure | total | per second |");
    println!("|---|---:|---:|");
    let d_mi = c1.managed_identity_requests - c0.managed_identity_requests;
    let d_minted = c1.tokens_minted - c0.tokens_minted;
    let d_auth = (c1.auth_accepted + c1.auth_rejected) - (c0.auth_accepted + c0.auth_rejected);
    println!(
        "| token requests (managed identity endpoint) | {d_mi} | {:.1} |",
        rate(d_mi)
    );
    println!("| tokens minted | {d_minted} | {:.1} |", rate(d_minted));
    println!(
        "| get_token calls by redis-rs | {} | {:.1} |",
        g1 - g0,
        rate(g1 - g0)
    );
    println!(
        "| AUTHs seen by the gate | {d_auth} | {:.1} |",
        rate(d_auth)
    );
    println!(
        "| re-AUTHs reported by redis-rs | {} | {:.1} |",
        r1 - r0,
        rate(r1 - r0)
    );
    println!(
        "| commands ok | {} | {:.1} |",
        ok1 - ok0,
        rate((ok1 - ok0) as u64)
    );
    println!(
        "| commands failed | {} | {:.1} |",
        failed1 - failed0,
        rate((failed1 - failed0) as u64)
    );
    println!(
        "| process CPU (client and emulator share the process) | {:.1} s | {:.0} % of a core |",
        cpu1 - cpu0,
        (cpu1 - cpu0) / secs * 100.0
    );
    print_counters(&c1);
    Ok(())
}

async fn cold_start(emu: &Emulator, a: &ColdStartArgs) -> Result<(), BoxError> {
    let _ = START.set(Instant::now());
    let mut totals = Vec::new();
    let mut tokens = Vec::new();
    let mut builds = Vec::new();
    println!("\n== cold-start ==");
    println!(
        "each run: ManagedIdentityCredential::new + EntraIdCredentialsProvider::new_with_credential + start, Client::build_with_tls (emulator CA),"
    );
    println!(
        "          get_multiplexed_async_connection_with_config (waits for the first token, TLS, AUTH), PING"
    );
    match a.control {
        Some(Control::AccessKey) => {
            println!("CONTROL: no credential/provider; AUTH with the static access key")
        }
        Some(Control::StaticToken) => println!(
            "CONTROL: no credential/provider; AUTH <oid> <JWT minted in-process> as a static password"
        ),
        None => {}
    }
    println!(
        "credential azure_core retry: {}",
        core_retry_label(a.common.core_retry)
    );
    println!(
        "TCP_NODELAY: {}",
        if a.tcp_nodelay {
            "on"
        } else {
            "off (redis-rs default)"
        }
    );
    print_machine();
    println!();
    println!(
        "| run | to PONG (ms) | credential + provider built (ms) | first get_token (ms) | connection ready (ms) | PING (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for i in 0..a.runs {
        let stats = Arc::new(CredStats::default());
        let t0 = Instant::now();
        if let Some(control) = a.control {
            // Control: the same client, TLS and connection, with a static password.
            let client = tls_client(emu, a.tcp_nodelay)?;
            let mut info = client.get_connection_info().clone();
            let redis_info = match control {
                Control::AccessKey => info
                    .redis_settings()
                    .clone()
                    .set_password(emu.access_key().expose_secret()),
                Control::StaticToken => {
                    let oid = emu.system_identity();
                    let token = emu.mint_token(&oid, Duration::from_secs(a.token_lifetime));
                    info.redis_settings()
                        .clone()
                        .set_username(oid)
                        .set_password(token.secret())
                }
            };
            info = info.set_redis_settings(redis_info);
            let client = Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(emu.ca_pem().as_bytes().to_vec()),
                },
            )?;
            let mut con = client
                .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
                .await?;
            let connected = t0.elapsed();
            let pong: String = redis::cmd("PING").query_async(&mut con).await?;
            let total = t0.elapsed();
            if pong != "PONG" {
                return Err(format!("unexpected reply {pong:?}").into());
            }
            println!(
                "| {} | {:.2} | - | - | {:.2} | {:.2} |",
                i + 1,
                total.as_secs_f64() * 1e3,
                connected.as_secs_f64() * 1e3,
                (total - connected).as_secs_f64() * 1e3
            );
            totals.push(total.as_secs_f64() * 1e3);
            tokens.push(0.0);
            drop(con);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let p = provider(a.common.core_retry, &stats)?;
        let built = t0.elapsed();
        let client = tls_client(emu, a.tcp_nodelay)?;
        let cfg = AsyncConnectionConfig::new().set_credentials_provider(p.clone());
        let mut con = client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?;
        let connected = t0.elapsed();
        let pong: String = redis::cmd("PING").query_async(&mut con).await?;
        let total = t0.elapsed();
        if pong != "PONG" {
            return Err(format!("unexpected reply {pong:?}").into());
        }
        let tok = stats.first_call.lock().unwrap().unwrap_or_default();
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            i + 1,
            total.as_secs_f64() * 1e3,
            built.as_secs_f64() * 1e3,
            tok.as_secs_f64() * 1e3,
            connected.as_secs_f64() * 1e3,
            (total - connected).as_secs_f64() * 1e3
        );
        totals.push(total.as_secs_f64() * 1e3);
        tokens.push(tok.as_secs_f64() * 1e3);
        builds.push(built.as_secs_f64() * 1e3);
        drop(con);
        drop(cfg);
        drop(p);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = v.len();
        let med = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        (med, v[0], v[n - 1])
    };
    let (m, lo, hi) = stat(&mut totals);
    let (tm, tlo, thi) = stat(&mut tokens);
    println!();
    println!(
        "to PONG:          median {m:.2} ms (min {lo:.2}, max {hi:.2}) over {} runs",
        a.runs
    );
    if !builds.is_empty() {
        println!("first get_token:  median {tm:.2} ms (min {tlo:.2}, max {thi:.2})");
        let (bm, blo, bhi) = stat(&mut builds);
        println!(
            "credential + provider built: median {bm:.2} ms (min {blo:.2}, max {bhi:.2}) \
             (ManagedIdentityCredential::new builds azure_core's reqwest/native-tls client)"
        );
    }
    print_counters(&emu.counters());
    Ok(())
}

async fn run(cli: &Cli, emu: &Emulator) -> Result<(), BoxError> {
    match &cli.cmd {
        Cmd::OutagePastExpiry(a) => outage(emu, a, true).await,
        Cmd::OutageBeforeExpiry(a) => outage(emu, a, false).await,
        Cmd::HotLoop(a) => hot_loop(emu, a).await,
        Cmd::ColdStart(a) => cold_start(emu, a).await,
        Cmd::Throughput(a) => throughput(a).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::set_logger(&LOGGER).expect("logger");
    log::set_max_level(log::LevelFilter::Debug);
    // redis-rs's rustls and the emulator's share one process; pick ring explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The emulator runs on its own single-threaded runtime, so that when it has started no
    // other thread runs code yet and IDENTITY_ENDPOINT / IDENTITY_HEADER can be set for
    // ManagedIdentityCredential, which reads them from the process environment.
    let emu_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("emulator runtime");
    let emu = match emu_rt.block_on(
        Emulator::builder()
            .token_lifetime(Duration::from_secs(cli.token_lifetime()))
            .start(),
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: no other thread is running: the emulator's tasks live on the current-thread
    // runtime above, which is not being driven now (its blocking pool thread, if any, only
    // generated the RSA key and is idle), and the client runtime is not built yet.
    unsafe {
        std::env::set_var("IDENTITY_ENDPOINT", emu.identity_endpoint());
        std::env::set_var("IDENTITY_HEADER", emu.identity_header().expose_secret());
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = std::thread::Builder::new()
        .name("emulator".into())
        .spawn(move || {
            emu_rt.block_on(async {
                let _ = stop_rx.await;
            });
            emu_rt
        })
        .expect("emulator thread");

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let result = client_rt.block_on(run(&cli, &emu));
    drop(client_rt);

    let _ = stop_tx.send(());
    if let Ok(emu_rt) = driver.join() {
        emu_rt.block_on(emu.shutdown());
    }
    print_log_summary();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput

const RAW_USER: &str = "bench";
const RAW_PASSWORD: &str = "bench-static-password";

/// A redis-server on a free loopback port with the given ACL users, killed on drop.
struct OwnRedis {
    port: u16,
    _child: tokio::process::Child,
}

async fn own_redis(users: &[(&str, &str)]) -> Result<OwnRedis, BoxError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut cmd = tokio::process::Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    for (user, password) in users {
        cmd.args(["--user", user, "on", &format!(">{password}"), "~*", "&*", "+@all"]);
    }
    let child = cmd.spawn()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(OwnRedis { port, _child: child });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("redis-server did not start".into())
}

async fn cell<C>(conn: &C, get: bool, size: usize, inflight: usize, seconds: f64) -> Result<f64, BoxError>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    use redis::AsyncCommands;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..inflight {
        let (mut conn, stop, count) = (conn.clone(), stop.clone(), count.clone());
        let value = vec![b'x'; size];
        workers.push(tokio::spawn(async move {
            let key = format!("bench:{size}:{w}");
            let () = conn.set(&key, value.as_slice()).await?;
            while !stop.load(Ordering::Relaxed) {
                if get {
                    let _: Vec<u8> = conn.get(&key).await?;
                } else {
                    let () = conn.set(&key, value.as_slice()).await?;
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), redis::RedisError>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = count.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let done = count.load(Ordering::Relaxed) - start;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    Ok(done as f64 / elapsed)
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

async fn throughput(a: &ThroughputArgs) -> Result<(), BoxError> {
    let stats = Arc::new(CredStats::default());
    let cred = credential(CoreRetry::Default, &stats)?;
    // ManagedIdentityCredential caches its token, so the provider below gets this same one:
    // the ACL user's password.
    let token = cred.get_token(&[REDIS_SCOPE_DEFAULT], None).await?;
    let jwt = token.token.secret().to_owned();
    let payload = jwt.split('.').nth(1).ok_or("not a JWT")?;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?,
    )?;
    let oid = claims["oid"].as_str().ok_or("no oid")?.to_owned();
    let server = own_redis(&[(RAW_USER, RAW_PASSWORD), (oid.as_str(), jwt.as_str())]).await?;

    let raw = Client::open(format!("redis://{RAW_USER}:{RAW_PASSWORD}@127.0.0.1:{}/", server.port))?
        .get_multiplexed_async_connection()
        .await?;
    let mut p = EntraIdCredentialsProvider::new_with_credential(cred, vec![REDIS_SCOPE_DEFAULT.to_string()])?;
    p.start(RetryConfig::default());
    let cfg = AsyncConnectionConfig::new().set_credentials_provider(p.clone());
    let entra = Client::open(format!("redis://127.0.0.1:{}/", server.port))?
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?;

    for get in [true, false] {
        for size in [64usize, 1024] {
            for inflight in [1usize, 16, 256] {
                let (mut raws, mut entras) = (Vec::new(), Vec::new());
                for run in 0..a.runs {
                    if run % 2 == 0 {
                        raws.push(cell(&raw, get, size, inflight, a.seconds).await?);
                        entras.push(cell(&entra, get, size, inflight, a.seconds).await?);
                    } else {
                        entras.push(cell(&entra, get, size, inflight, a.seconds).await?);
                        raws.push(cell(&raw, get, size, inflight, a.seconds).await?);
                    }
                }
                println!(
                    "CELL {} {size} {inflight} raw={:.1} entra={:.1}",
                    if get { "GET" } else { "SET" },
                    median_of(raws),
                    median_of(entras)
                );
            }
        }
    }
    Ok(())
}
