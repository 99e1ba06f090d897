//! `azure-redis-emulator`: runs the emulator and prints the environment for one auth type.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use azure_redis_emulator::{
    Emulator, EmulatorBuilder, EmulatorError, Listener, ServiceConnectorAuth, shell_quote,
};
use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};

/// A local stand-in for Azure Cache for Redis with Microsoft Entra ID: identity endpoints that
/// mint signed tokens and a TLS gate in front of a real redis-server.
#[derive(Debug, Parser)]
#[command(name = "azure-redis-emulator", version)]
struct Args {
    /// Auth type whose environment is printed: system-identity, user-identity,
    /// service-principal, workload-identity, access-key, connection-string,
    /// connection-string-url.
    #[arg(long, default_value = "system-identity")]
    auth: ServiceConnectorAuth,

    /// Lifetime of minted access tokens, in seconds (at least 1).
    #[arg(long, default_value_t = 3600)]
    token_lifetime: u64,

    /// Also open a plain (non-TLS) gate listener.
    #[arg(long)]
    plain: bool,

    /// Access key to accept (default: a random one).
    #[arg(long, env = "EMULATOR_ACCESS_KEY", hide_env_values = true)]
    access_key: Option<String>,

    /// Refuse access-key AUTH (Entra-only cache).
    #[arg(long)]
    no_access_keys: bool,

    /// Also print the internal password of the child redis-server (for benchmarks that compare
    /// the gate with direct access).
    #[arg(long)]
    print_redis_password: bool,

    /// redis-server executable (name on PATH or path).
    #[arg(long, default_value = "redis-server")]
    redis_server: String,

    /// IP address the gate and the identity endpoints listen on (0.0.0.0 or :: for every
    /// interface). Clients are given localhost for 127.0.0.1 and 0.0.0.0, the address itself
    /// otherwise. The endpoints accept anyone who reaches them: bind beyond loopback only on a
    /// trusted network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1", value_parser = parse_bind)]
    bind: IpAddr,

    /// Port of the gate's TLS listener (AZURE_REDIS_PORT); 0: a free port.
    #[arg(
        long,
        value_name = "PORT",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    gate_port: u16,

    /// Port of the gate's plain listener (implies --plain); 0: a free port.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    plain_port: Option<u16>,

    /// Port of the managed identity endpoint (IDENTITY_ENDPOINT); 0: a free port.
    #[arg(
        long,
        value_name = "PORT",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    identity_port: u16,

    /// Port of the token endpoint (AZURE_AUTHORITY_HOST); 0: a free port.
    #[arg(
        long,
        value_name = "PORT",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    token_endpoint_port: u16,

    /// Extra host name or IP address in the TLS certificate of the gate and the token
    /// endpoint (always valid for localhost and 127.0.0.1). Repeatable.
    #[arg(long, value_name = "NAME", value_parser = parse_cert_host)]
    cert_host: Vec<String>,

    /// Also write the printed variables to FILE as a dotenv file (KEY=value lines, mode 0600,
    /// written atomically once the emulator is ready, removed when it stops).
    #[arg(long, value_name = "FILE", value_parser = parse_env_file)]
    write_env: Option<PathBuf>,
}

fn parse_bind(s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "'{s}' is not an IP address; give one such as 127.0.0.1, ::1 or 0.0.0.0 (host names \
             are not resolved; to reach the emulator by a name, bind an address and add the \
             name with --cert-host)"
        )
    })
}

fn parse_cert_host(s: &str) -> Result<String, String> {
    EmulatorBuilder::check_cert_host(s)
        .map(|()| s.to_string())
        .map_err(|_| {
            format!("'{s}' is neither a DNS name (no spaces, port or wildcard) nor an IP address")
        })
}

fn parse_env_file(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("the file name is empty".into());
    }
    let path = PathBuf::from(s);
    if path.is_dir() || s.ends_with('/') {
        return Err(format!("'{s}' is a directory; give a file name"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("directory '{}' does not exist", dir.display()));
    }
    Ok(path)
}

/// The flag that sets `listener`'s port.
fn port_flag(listener: Listener) -> &'static str {
    match listener {
        Listener::GateTls => "--gate-port",
        Listener::GatePlain => "--plain-port",
        Listener::ManagedIdentity => "--identity-port",
        Listener::TokenEndpoint => "--token-endpoint-port",
        _ => "--bind",
    }
}

/// Checks between flags that clap cannot express; on a problem prints clap's error and
/// exits with 2, as for a bad value.
fn check_flag_combinations(args: &Args) {
    let fail = |kind: ErrorKind, msg: String| -> ! { Args::command().error(kind, msg).exit() };
    if args.token_lifetime == 0 {
        fail(
            ErrorKind::ValueValidation,
            "invalid value '0' for '--token-lifetime <TOKEN_LIFETIME>': must be at least 1".into(),
        );
    }
    let ports = [
        ("--gate-port", args.gate_port),
        ("--plain-port", args.plain_port.unwrap_or(0)),
        ("--identity-port", args.identity_port),
        ("--token-endpoint-port", args.token_endpoint_port),
    ];
    for (i, (first, port)) in ports.iter().enumerate() {
        if *port == 0 {
            continue;
        }
        if let Some((second, _)) = ports[i + 1..].iter().find(|(_, p)| p == port) {
            fail(
                ErrorKind::ArgumentConflict,
                format!(
                    "{first} and {second} both name port {port}; give each listener its own \
                     port (or 0 for a free one)"
                ),
            );
        }
    }
    let uses_key = matches!(
        args.auth,
        ServiceConnectorAuth::AccessKey
            | ServiceConnectorAuth::ConnectionStringStackExchange
            | ServiceConnectorAuth::ConnectionStringUrl
    );
    if let (Some(key), Some(_), true) = (&args.access_key, &args.write_env, uses_key)
        && key.contains(['\'', '\n', '\r', '\0'])
    {
        fail(
            ErrorKind::ValueValidation,
            "--access-key holds a quote or a line break, which --write-env cannot write to a \
             dotenv file"
                .into(),
        );
    }
}

/// The error message for a failed start, naming the flag behind a listener that could not
/// bind its fixed port.
fn start_error(e: &EmulatorError) -> String {
    match e {
        EmulatorError::Bind { listener, addr, .. } if addr.port() != 0 => {
            format!("error: {} {}: {e}", port_flag(*listener), addr.port())
        }
        EmulatorError::Bind { addr, .. } => format!("error: --bind {}: {e}", addr.ip()),
        _ => format!("error: {e}"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let args = Args::parse();
    check_flag_combinations(&args);
    let mut builder = Emulator::builder()
        .token_lifetime(Duration::from_secs(args.token_lifetime))
        .plain_listener(args.plain)
        .access_keys_enabled(!args.no_access_keys)
        .redis_server(&args.redis_server)
        .bind_address(args.bind)
        .gate_port(args.gate_port)
        .identity_port(args.identity_port)
        .token_endpoint_port(args.token_endpoint_port);
    if let Some(port) = args.plain_port {
        builder = builder.plain_port(port);
    }
    for name in &args.cert_host {
        builder = builder.cert_host(name);
    }
    if let Some(path) = &args.write_env {
        builder = builder.env_file(path, args.auth);
    }
    if let Some(k) = args.access_key {
        builder = builder.access_key(k);
    }
    if !args.bind.is_loopback() {
        tracing::warn!(
            bind = %args.bind,
            "listening beyond loopback: anyone who reaches these ports gets tokens and the cache"
        );
    }

    // The handlers are in place before the emulator starts, since the env file is written at
    // the end of the start and the exports are printed after it: a stop sent as soon as
    // either is read must not find the default action, which kills the process with its
    // children left running.
    #[cfg(unix)]
    let stop = {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = signal(SignalKind::interrupt()).and_then(|interrupt| {
            signal(SignalKind::terminate()).map(|terminate| (interrupt, terminate))
        });
        async move {
            match signals {
                Ok((mut interrupt, mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    };
    #[cfg(not(unix))]
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut stop = std::pin::pin!(stop);

    // A stop during the start (RSA key generation can take seconds in a debug build) ends it:
    // dropping the half-started emulator kills what it started.
    let emu = tokio::select! {
        started = builder.start() => match started {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}", start_error(&e));
                return ExitCode::FAILURE;
            }
        },
        _ = &mut stop => {
            eprintln!("stopped while starting");
            return ExitCode::SUCCESS;
        }
    };

    println!(
        "# azure-redis-emulator: environment for auth type {}",
        args.auth
    );
    for (k, v) in emu.env_for(args.auth) {
        println!("export {k}={}", shell_quote(&v));
    }
    println!("# gate TLS: {}", emu.tls_addr());
    if let Some(p) = emu.plain_addr() {
        println!("# gate plain: {p}");
    }
    println!("# redis-server (behind the gate): {}", emu.redis_addr());
    if args.print_redis_password {
        use secrecy::ExposeSecret as _;
        println!(
            "# redis-server password: {}",
            emu.redis_password().expose_secret()
        );
    }
    println!("# system identity oid: {}", emu.system_identity());
    if let Some(path) = &args.write_env {
        println!("# env file: {}", path.display());
    }
    println!("# stop with Ctrl-C");

    stop.await;
    eprintln!("stopping");
    emu.shutdown().await;
    ExitCode::SUCCESS
}
