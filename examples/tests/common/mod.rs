//! Shared by the end-to-end tests: runs an example binary as a child process with the
//! emulator's variables, a tiny HTTP/1.1 client over loopback TCP, direct Redis access, and
//! the scenarios every service must pass.

#![allow(dead_code)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azure_redis_connect::redis::{self, AsyncCommands, IntoConnectionInfo};
use azure_redis_emulator::{Emulator, IdentityEndpoint, IdentityFault, ServiceConnectorAuth};
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

/// Token lifetime of the emulators in these tests.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3);

/// Runs `test` within the time limit of an end-to-end test (2 minutes).
pub async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test finishes within its time limit");
}

/// An emulator minting short tokens.
pub async fn emulator(lifetime: Duration) -> Emulator {
    Emulator::builder()
        .token_lifetime(lifetime)
        .start()
        .await
        .expect("the emulator starts (is redis-server installed?)")
}

/// An example service running as a child process; killed when dropped.
pub struct Service {
    child: Child,
    /// Where it listens.
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    readers: JoinSet<()>,
}

impl Service {
    /// Starts `bin` with only the emulator's variables for `kind`, `LISTEN_ADDR=127.0.0.1:0`
    /// and `extra`, and waits for its "listening on" line.
    pub async fn start(
        bin: &str,
        emu: &Emulator,
        kind: ServiceConnectorAuth,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(bin);
        command
            .env_clear()
            .envs(emu.env_for(kind))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the example starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut readers = JoinSet::new();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for pipe in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(stderr),
        ] {
            let logs = Arc::clone(&logs);
            readers.spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut service = Service {
            child,
            addr: String::new(),
            logs,
            readers,
        };
        let line = service
            .wait_for_log("listening on http://", Duration::from_secs(30))
            .await;
        let addr = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address after `listening on`");
        service.addr = addr.to_string();
        service
    }

    /// The lines logged so far (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// How many logged lines contain `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits for a line containing `needle`; panics with the logs after `timeout`.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the service exited ({status}) before logging {needle:?}:\n{}",
                    self.logs().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the logs after {timeout:?}:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the service stops within 20 s of SIGTERM")
            .expect("exit status");
        // The pipes close with the process; the readers finish.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.readers.join_next().await.is_some() {}
        })
        .await;
        let logs = self.logs();
        assert!(exit.success(), "{exit}:\n{}", logs.join("\n"));
        assert!(
            logs.iter().any(|l| l.contains("stopped")),
            "{}",
            logs.join("\n")
        );
        logs
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.readers.abort_all();
        let _ = self.child.start_kill();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP request on a new connection (no pooling, so that each request sees the service
/// as it is now), within 10 s.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client")
    });
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = client.request(method.clone(), format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{method} {path}: body: {e}"))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A connection to the emulator's redis-server itself (behind the gate), to check the data.
pub async fn direct_redis(emu: &Emulator) -> redis::aio::MultiplexedConnection {
    let addr = emu.redis_addr();
    let info = redis::ConnectionAddr::Tcp(addr.ip().to_string(), addr.port())
        .into_connection_info()
        .expect("address")
        .set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_password(emu.redis_password().expose_secret()),
        );
    redis::Client::open(info)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("direct connection to redis-server")
}

/// Asserts that nothing secret the service was given shows in `text`.
pub fn assert_no_secret(text: &str, emu: &Emulator, kind: ServiceConnectorAuth) {
    for (name, value) in emu.env_for(kind) {
        if name.contains("HEADER") || name.contains("SECRET") || name.contains("PASSWORD") {
            assert!(!text.contains(&value), "{name}'s value leaked:\n{text}");
        }
    }
    assert!(!text.contains(emu.redis_password().expose_secret()));
    // Access tokens are JWTs: base64url of `{"` starts every header.
    assert!(
        !text.contains("eyJ"),
        "something like a JWT leaked:\n{text}"
    );
}

/// Drives the service for `duration`, and longer if needed until it logged two token refreshes,
/// with four concurrent clients mixing counter and item requests, then checks every answer,
/// the data in Redis, `/health`, the logs and a clean shutdown.
pub async fn serves_through_token_refreshes(
    bin: &str,
    kind: ServiceConnectorAuth,
    duration: Duration,
) {
    let emu = emulator(TOKEN_LIFETIME).await;
    let service = Service::start(
        bin,
        &emu,
        kind,
        &[
            ("RATE_LIMIT", "1000000"),
            ("SOURCE_DELAY_MS", "20"),
            ("CACHE_TTL_SECS", "60"),
        ],
    )
    .await;
    let addr = service.addr.clone();

    let started = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for worker in 0..4u64 {
        let addr = addr.clone();
        let stop = Arc::clone(&stop);
        workers.spawn(async move {
            let (mut increments, mut other, mut failures) = (0u64, 0u64, Vec::new());
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let client = format!("worker-{worker}");
                let headers = [("x-client-id", client.as_str())];
                let (method, path) = match i % 3 {
                    0 => ("GET", format!("/items/{}", i % 7 + 1)),
                    1 => ("POST", "/counter/e2e".to_string()),
                    _ => ("GET", "/counter/e2e".to_string()),
                };
                match request(&addr, method, &path, &headers).await {
                    Ok(r) if r.status == 200 => {
                        if method == "POST" {
                            increments += 1;
                        } else {
                            other += 1;
                        }
                    }
                    Ok(r) => failures.push(format!(
                        "{:.1}s {method} {path}: {} {}",
                        started.elapsed().as_secs_f64(),
                        r.status,
                        r.body
                    )),
                    Err(e) => failures.push(format!(
                        "{:.1}s {method} {path}: {e}",
                        started.elapsed().as_secs_f64()
                    )),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (increments, other, failures)
        });
    }
    // At least `duration`, and on until two refreshes happened (a minute at most).
    while started.elapsed() < duration
        || (service.count_logs("token refreshed") < 2 && started.elapsed() < duration * 6)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut increments, mut other, mut failures) = (0, 0, Vec::new());
    while let Some(result) = workers.join_next().await {
        let (inc, oth, fail) = result.expect("worker");
        increments += inc;
        other += oth;
        failures.extend(fail);
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:#?}\n{}",
        failures.len(),
        increments + other + failures.len() as u64,
        service.logs().join("\n")
    );
    assert!(increments > 20, "only {increments} increments");
    eprintln!(
        "{} requests in {:.1}s, all answered 200 ({increments} increments)",
        increments + other,
        started.elapsed().as_secs_f64()
    );

    // The data, read from redis-server directly.
    let mut direct = direct_redis(&emu).await;
    let counter: i64 = direct.get("counter:e2e").await.expect("GET");
    assert_eq!(counter as u64, increments);
    let ttl: i64 = direct.ttl("item:1").await.expect("TTL");
    assert!((1..=60).contains(&ttl), "item:1 TTL {ttl}");
    let cached: String = direct.get("item:1").await.expect("cached item");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&cached).expect("JSON")["id"],
        1
    );

    // Health: 200 with the token's state; at least two refreshes and re-AUTHs happened.
    let health = request(&addr, "GET", "/health", &[]).await.expect("health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.header("cache-control"), Some("no-store"));
    let json = health.json();
    assert_eq!(json["status"], "ok", "{json}");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["connected"], true);
    assert!(json["ping_ms"].as_f64().is_some(), "{json}");
    let token = &json["token"];
    assert_eq!(token["expired"], false);
    assert_eq!(token["consecutive_failures"], 0);
    assert!(token["last_error"].is_null());
    assert!(token["expires_in_secs"].as_f64().is_some_and(|s| s > 0.0));
    assert!(
        token["expires_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(token["last_refresh"].as_str().is_some());
    assert!(token["requests"].as_u64().is_some_and(|n| n >= 3), "{json}");
    assert!(json["reauths"].as_u64().is_some_and(|n| n >= 2), "{json}");
    assert_eq!(json["reconnects"], 0, "{json}");
    assert_no_secret(&health.body, &emu, kind);

    let counters = emu.counters();
    assert_eq!(counters.closed_at_expiry, 0, "{counters:?}");
    assert!(service.count_logs("token refreshed") >= 2);
    assert!(service.count_logs("re-authenticated") >= 2);
    eprintln!(
        "token requests {}, re-AUTHs {}, gate closed at expiry {}",
        token["requests"], json["reauths"], counters.closed_at_expiry
    );

    let logs = service.stop().await;
    let logs = logs.join("\n");
    assert!(
        logs.contains("configuration read from: AZURE_REDIS_HOST"),
        "{logs}"
    );
    assert_no_secret(&logs, &emu, kind);
    emu.shutdown().await;
}

/// The API's answers beyond the happy path: cache hit after miss, not found, bad input, and the
/// rate limit with its headers.
pub async fn api_behaves(bin: &str) {
    let emu = emulator(Duration::from_secs(60)).await;
    let service = Service::start(
        bin,
        &emu,
        ServiceConnectorAuth::SystemIdentity,
        &[
            ("RATE_LIMIT", "5"),
            ("RATE_WINDOW_SECS", "3600"),
            ("SOURCE_DELAY_MS", "300"),
        ],
    )
    .await;
    let addr = service.addr.clone();
    let client = |id: &'static str| [("x-client-id", id)];

    let miss = request(&addr, "GET", "/items/42", &client("a"))
        .await
        .unwrap();
    assert_eq!(miss.status, 200, "{}", miss.body);
    assert_eq!(miss.header("x-cache"), Some("miss"));
    assert_eq!(miss.json()["cache"], "miss");
    let started = Instant::now();
    let hit = request(&addr, "GET", "/items/42", &client("a"))
        .await
        .unwrap();
    assert_eq!(hit.header("x-cache"), Some("hit"));
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "a hit skips the slow source"
    );
    assert_eq!(hit.json()["item"], miss.json()["item"]);

    let missing = request(&addr, "GET", "/items/99999999", &client("b"))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let bad_id = request(&addr, "GET", "/items/x", &client("b"))
        .await
        .unwrap();
    assert_eq!(bad_id.status, 400);
    let bad_name = request(&addr, "POST", "/counter/a%20b", &client("b"))
        .await
        .unwrap();
    assert_eq!(bad_name.status, 400);
    let absent = request(&addr, "GET", "/counter/never", &client("b"))
        .await
        .unwrap();
    assert_eq!(absent.json()["value"], 0);

    // Client "c": five requests pass, the sixth is refused; other clients are not affected.
    // The window is an hour; the requests must not straddle its end.
    let into_window = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 3600;
    if into_window > 3570 {
        tokio::time::sleep(Duration::from_secs(3601 - into_window)).await;
    }
    for n in 1..=5 {
        let r = request(&addr, "POST", "/counter/limited", &client("c"))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["value"], n);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((5 - n).to_string().as_str())
        );
    }
    let refused = request(&addr, "POST", "/counter/limited", &client("c"))
        .await
        .unwrap();
    assert_eq!(refused.status, 429, "{}", refused.body);
    let retry: u64 = refused
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));
    let other = request(&addr, "POST", "/counter/limited", &client("d"))
        .await
        .unwrap();
    assert_eq!(other.json()["value"], 6);
    // /health is not rate limited.
    for _ in 0..3 {
        let health = request(&addr, "GET", "/health", &client("c"))
            .await
            .unwrap();
        assert_eq!(health.status, 200);
    }
    let mut direct = direct_redis(&emu).await;
    let limited: i64 = direct.get("counter:limited").await.unwrap();
    assert_eq!(limited, 6);

    service.stop().await;
    emu.shutdown().await;
}

/// `/health` turns 503 when the identity endpoint stays down past the token's expiry, and 200
/// again once it is back.
pub async fn health_follows_token_expiry(bin: &str) {
    let emu = emulator(TOKEN_LIFETIME).await;
    let mut service = Service::start(bin, &emu, ServiceConnectorAuth::SystemIdentity, &[]).await;
    let addr = service.addr.clone();
    let health = request(&addr, "GET", "/health", &[]).await.unwrap();
    assert_eq!(health.status, 200, "{}", health.body);

    emu.faults()
        .identity_outage(IdentityEndpoint::All, IdentityFault::Http500, None);
    let json = wait_for_health(&addr, 503, Duration::from_secs(15)).await;
    assert_eq!(json["status"], "unavailable", "{json}");
    assert_eq!(json["healthy"], false);
    assert_eq!(json["token"]["expired"], true, "{json}");
    assert!(
        json["token"]["consecutive_failures"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert!(json["token"]["last_error"].as_str().is_some(), "{json}");
    assert!(
        json["reasons"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("expired")))),
        "{json}"
    );
    assert_no_secret(
        &json.to_string(),
        &emu,
        ServiceConnectorAuth::SystemIdentity,
    );
    service
        .wait_for_log("token refresh failed", Duration::from_secs(5))
        .await;

    emu.faults().clear_identity_outage(IdentityEndpoint::All);
    let json = wait_for_health(&addr, 200, Duration::from_secs(20)).await;
    assert_eq!(json["token"]["consecutive_failures"], 0, "{json}");
    let r = request(&addr, "POST", "/counter/after-outage", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    service.stop().await;
    emu.shutdown().await;
}

/// `/health` turns 503 while the server does not answer (`PING` times out), and 200 after.
pub async fn health_follows_an_unreachable_server(bin: &str) {
    let emu = emulator(Duration::from_secs(60)).await;
    let service = Service::start(bin, &emu, ServiceConnectorAuth::SystemIdentity, &[]).await;
    let addr = service.addr.clone();
    emu.faults().stall_gate(Duration::from_secs(4));
    let health = request(&addr, "GET", "/health", &[]).await.unwrap();
    assert_eq!(health.status, 503, "{}", health.body);
    let json = health.json();
    assert_eq!(json["status"], "unavailable");
    assert!(json["ping_ms"].is_null());
    assert!(
        json["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("PING")),
        "{json}"
    );
    wait_for_health(&addr, 200, Duration::from_secs(20)).await;
    service.stop().await;
    emu.shutdown().await;
}

/// Polls `/health` until it answers `status`; returns its JSON.
pub async fn wait_for_health(addr: &str, status: u16, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last = request(addr, "GET", "/health", &[]).await;
        if let Ok(r) = &last
            && r.status == status
        {
            return r.json();
        }
        assert!(
            Instant::now() < deadline,
            "/health did not answer {status} within {timeout:?}; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
