//! The `azure-redis-emulator` binary prints the environment and stops cleanly on SIGINT.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};

#[tokio::test]
async fn prints_exports_and_stops_on_sigint() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_azure-redis-emulator"))
            .args([
                "--auth",
                "connection-string-url",
                "--access-key",
                "k+/y=",
                "--plain",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut exports = Vec::new();
        let mut redis_addr = None;
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(rest) = line.strip_prefix("export ") {
                exports.push(rest.to_string());
            }
            if let Some(addr) = line.strip_prefix("# redis-server (behind the gate): ") {
                redis_addr = Some(addr.to_string());
            }
            if line.contains("Ctrl-C") {
                break;
            }
        }
        assert_eq!(exports.len(), 2, "{exports:?}");
        assert!(
            exports[0].starts_with("AZURE_REDIS_CONNECTIONSTRING=rediss://:k+/y=@localhost:"),
            "{exports:?}"
        );
        assert!(exports[1].starts_with("SSL_CERT_FILE="));
        let redis_addr = redis_addr.expect("redis address printed");
        assert!(tokio::net::TcpStream::connect(&redis_addr).await.is_ok());

        let pid = child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("stops in time")
            .expect("exit status");
        assert!(exit.success(), "{exit:?}");
        // Its redis-server is gone too.
        assert!(tokio::net::TcpStream::connect(&redis_addr).await.is_err());
    })
    .await
    .expect("test timed out");
}
