//! The child `redis-server`.
//!
//! It runs under a tiny `sh` supervisor that holds a pipe from this process: when the pipe
//! closes (this process exits or dies, or the handle is dropped) the supervisor kills
//! redis-server, so no server outlives the emulator.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use redis::IntoConnectionInfo as _;
use redis::aio::MultiplexedConnection;
use secrecy::{ExposeSecret, SecretString};

use crate::error::EmulatorError;
use crate::gate::GateState;

const SUPERVISOR: &str = r#"exec 3<&0
"$1" "$2" </dev/null >/dev/null 2>&1 3<&- &
pid=$!
echo "$pid"
read -r _ <&3
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0"#;

/// Commands renamed away so clients cannot read or change the server's configuration
/// (Azure Cache for Redis disables them too); they answer `ERR unknown command`.
const DISABLED_COMMANDS: &[&str] = &[
    "CONFIG",
    "ACL",
    "DEBUG",
    "SHUTDOWN",
    "MODULE",
    "REPLICAOF",
    "SLAVEOF",
    "FAILOVER",
];

/// Replication commands: renamed away too, unless the server takes part in replication
/// ([`RedisConfig::replication`]), where ACL rules keep them for the replication user alone.
const REPLICATION_COMMANDS: &[&str] = &["SYNC", "PSYNC"];

/// Everything needed to (re)start the server.
#[derive(Clone)]
pub(crate) struct RedisConfig {
    pub(crate) binary: PathBuf,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    pub(crate) password: SecretString,
    /// More `redis.conf` lines (cluster mode, announced addresses), appended as they are.
    pub(crate) extra: String,
    /// Whether the server replicates (cluster nodes): `SYNC`/`PSYNC` stay, but only the user
    /// `replicator` (same password, used by replicas through `masteruser`) may run them, so a
    /// client that sends them through a gate gets `-NOPERM`.
    pub(crate) replication: bool,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("binary", &self.binary)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A running redis-server.
#[derive(Debug)]
pub(crate) struct RedisServer {
    supervisor: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

/// Finds `name` (or a path) as an executable.
pub(crate) fn find_binary(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn write_config(cfg: &RedisConfig) -> Result<PathBuf, EmulatorError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = cfg.dir.join("redis.conf");
    let mut text = format!(
        "bind 127.0.0.1\nport {}\nprotected-mode yes\ndaemonize no\nsave \"\"\nappendonly no\n\
         dir \"{}\"\nlogfile \"{}\"\nrequirepass {}\n",
        cfg.port,
        cfg.dir.display(),
        cfg.dir.join("redis.log").display(),
        cfg.password.expose_secret()
    );
    for c in DISABLED_COMMANDS {
        text.push_str(&format!("rename-command {c} \"\"\n"));
    }
    if cfg.replication {
        let password = cfg.password.expose_secret();
        text.push_str(&format!(
            "user default on >{password} ~* &* +@all -sync -psync\n\
             user replicator on >{password} +ping +replconf +psync +sync\n\
             masteruser replicator\nmasterauth {password}\n"
        ));
    } else {
        for c in REPLICATION_COMMANDS {
            text.push_str(&format!("rename-command {c} \"\"\n"));
        }
    }
    text.push_str(&cfg.extra);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| EmulatorError::io("writing redis.conf", e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| EmulatorError::io("writing redis.conf", e))?;
    Ok(path)
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

impl RedisServer {
    /// Starts redis-server and waits until it answers.
    pub(crate) async fn start(cfg: &RedisConfig) -> Result<Self, EmulatorError> {
        let conf = write_config(cfg)?;
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(&cfg.binary)
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| EmulatorError::io("starting redis-server", e))?;
        let stdin = supervisor.stdin.take();
        let stdout = supervisor.stdout.take();
        let mut server = RedisServer {
            supervisor,
            stdin,
            pid: 0,
        };
        let pid = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout?);
            reader.read_line(&mut line).ok()?;
            line.trim().parse::<u32>().ok()
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| EmulatorError::RedisServer("supervisor did not report a pid".into()))?;
        server.pid = pid;

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if ping(cfg.port, &cfg.password).await {
                tracing::debug!(port = cfg.port, pid, "redis-server is up");
                return Ok(server);
            }
            if !process_alive(pid) {
                return Err(EmulatorError::RedisServer(format!(
                    "exited during start-up: {}",
                    log_tail(&cfg.dir)
                )));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(EmulatorError::RedisServer(format!(
                    "did not answer within 10 s: {}",
                    log_tail(&cfg.dir)
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server and waits (up to ~2 s) for it to be gone. Blocking.
    pub(crate) fn stop(&mut self) {
        // Closing the pipe makes the supervisor kill redis-server.
        drop(self.stdin.take());
        for _ in 0..100 {
            if matches!(self.supervisor.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.pid != 0 {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(self.pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection to the redis-server on `127.0.0.1:port`, authenticated with the internal
/// `password`, for admin commands. It sends only `AUTH` before the caller's commands (no
/// `CLIENT SETINFO`) and sets no timeouts of its own: each caller bounds its whole exchange.
pub(crate) async fn admin_connection(
    port: u16,
    password: &SecretString,
) -> redis::RedisResult<MultiplexedConnection> {
    let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), port)
        .into_connection_info()?
        .set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_password(password.expose_secret())
                .set_skip_set_lib_name(),
        );
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(None);
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// True when redis-server on `port` accepts the password and answers PING.
async fn ping(port: u16, password: &SecretString) -> bool {
    let attempt = async {
        let mut conn = admin_connection(port, password).await.ok()?;
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
        (pong == "PONG").then_some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(()))
    )
}

/// Restarts the emulator's redis-server on the same port.
pub(crate) async fn restart(gate: &GateState) -> Result<(), EmulatorError> {
    let _serial = gate.redis_restart.lock().await;
    stop_locked(gate).await?;
    start_locked(gate).await
}

/// Kills the emulator's redis-server (its gate's connections close; new ones are refused
/// until [`start`]).
pub(crate) async fn stop(gate: &GateState) -> Result<(), EmulatorError> {
    let _serial = gate.redis_restart.lock().await;
    stop_locked(gate).await
}

/// Starts the emulator's redis-server again on the same port after [`stop`].
pub(crate) async fn start(gate: &GateState) -> Result<(), EmulatorError> {
    let _serial = gate.redis_restart.lock().await;
    start_locked(gate).await
}

async fn stop_locked(gate: &GateState) -> Result<(), EmulatorError> {
    if gate.shutdown.is_cancelled() {
        return Err(EmulatorError::RedisServer(
            "the emulator has stopped".into(),
        ));
    }
    let old = gate.take_redis();
    if let Some(mut old) = old {
        tokio::task::spawn_blocking(move || old.stop())
            .await
            .map_err(|e| EmulatorError::RedisServer(e.to_string()))?;
    }
    Ok(())
}

async fn start_locked(gate: &GateState) -> Result<(), EmulatorError> {
    let mut last = None;
    for _ in 0..50 {
        match RedisServer::start(&gate.redis_config).await {
            Ok(mut server) => {
                if gate.shutdown.is_cancelled() {
                    tokio::task::spawn_blocking(move || server.stop())
                        .await
                        .map_err(|e| EmulatorError::RedisServer(e.to_string()))?;
                    return Err(EmulatorError::RedisServer(
                        "the emulator has stopped".into(),
                    ));
                }
                gate.put_redis(server);
                return Ok(());
            }
            // The port can take a moment to be free again.
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| EmulatorError::RedisServer("restart failed".into())))
}
