//! `azure-redis-emulator`: runs the emulator and prints the environment for one auth type.

use std::process::ExitCode;
use std::time::Duration;

use azure_redis_emulator::{Emulator, ServiceConnectorAuth, shell_quote};
use clap::Parser;

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
    if args.token_lifetime == 0 {
        eprintln!("--token-lifetime must be at least 1");
        return ExitCode::from(2);
    }
    let mut builder = Emulator::builder()
        .token_lifetime(Duration::from_secs(args.token_lifetime))
        .plain_listener(args.plain)
        .access_keys_enabled(!args.no_access_keys)
        .redis_server(&args.redis_server);
    if let Some(k) = args.access_key {
        builder = builder.access_key(k);
    }
    let emu = match builder.start().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    // The handlers are in place before the exports are printed: a stop sent as soon as they
    // are read must not find the default action, which kills the process with its children
    // left running.
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
    println!("# stop with Ctrl-C");

    stop.await;
    eprintln!("stopping");
    emu.shutdown().await;
    ExitCode::SUCCESS
}
