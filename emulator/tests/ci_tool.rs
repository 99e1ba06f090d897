//! The `azure-redis-emulator` binary as a CI tool: fixed ports on a chosen bind address, extra
//! certificate names, the dotenv file, and the errors for bad flags and taken ports. Every test
//! runs the built binary as a child process on loopback and stops it before it ends.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_azure-redis-emulator");
/// 127.0.0.2 is a loopback address on Linux (all of 127/8 is), but not the one `localhost`
/// names: clients reach the emulator only if the binary really binds it and advertises it.
const BIND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const CERT_NAME: &str = "emulator.ci.test";
const CERT_IP: &str = "10.11.12.13";

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("test timed out");
}

/// A port free on `ip` now: bound to port 0, then released.
fn free_port(ip: Ipv4Addr) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BINARY);
    c.args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs the binary to its end (it is expected to refuse to start), returning its exit code
/// and stderr.
async fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{args:?} did not exit"))
    .expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends SIGTERM to `child` and waits for it to exit successfully.
async fn stop(mut child: Child) {
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stops in time")
        .expect("exit status");
    assert!(exit.success(), "{exit:?}");
}

/// `KEY=value` or `KEY='value'` lines of a dotenv file (comments and blank lines skipped).
fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {l}"));
            let v = match v.strip_prefix('\'') {
                Some(quoted) => quoted.strip_suffix('\'').expect("closing quote"),
                None => v,
            };
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Waits for `path` to exist, for at most `limit`.
async fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TLS client that trusts only the CA in `ca_file`.
fn tls_connector(ca_file: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("CA file") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` that asks for and checks the certificate name `name`.
async fn tls_to(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).expect("server name");
    connector.connect(name, tcp).await
}

/// Sends one command and reads one reply line.
async fn command_reply<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    parts: &[&str],
) -> String {
    let mut req = format!("*{}\r\n", parts.len());
    for p in parts {
        req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("reply in time")
            .expect("read");
        assert_eq!(n, 1, "connection closed after {reply:?}");
        reply.push(byte[0]);
    }
    String::from_utf8(reply)
        .expect("utf-8")
        .trim_end()
        .to_string()
}

fn oid_of(jwt: &str) -> String {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("claims");
    claims["oid"].as_str().expect("oid").to_string()
}

/// The whole CI path: fixed ports on 127.0.0.2, two extra certificate names, the env file.
/// From the file alone a client gets a token at its identity endpoint, reaches the gate by an
/// extra name while trusting the CA the file names, and AUTHs with that token.
#[tokio::test]
async fn fixed_ports_cert_hosts_and_env_file_serve_a_ci_client() {
    init();
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let env_file: PathBuf = dir.path().join("emulator.env");
        let (gate, plain, identity, token) = loop {
            let ports = (
                free_port(BIND),
                free_port(BIND),
                free_port(BIND),
                free_port(BIND),
            );
            let all = [ports.0, ports.1, ports.2, ports.3];
            if (1..4).all(|i| !all[..i].contains(&all[i])) {
                break ports;
            }
        };
        let (gate_s, plain_s, identity_s, token_s) = (
            gate.to_string(),
            plain.to_string(),
            identity.to_string(),
            token.to_string(),
        );
        let bind = BIND.to_string();
        let env_arg = env_file.display().to_string();
        let mut child = command(&[
            "--auth",
            "system-identity",
            "--bind",
            &bind,
            "--gate-port",
            &gate_s,
            "--plain-port",
            &plain_s,
            "--identity-port",
            &identity_s,
            "--token-endpoint-port",
            &token_s,
            "--cert-host",
            CERT_NAME,
            "--cert-host",
            CERT_IP,
            "--write-env",
            &env_arg,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts");

        // As a CI job does: wait for the file, then read it.
        wait_for_file(&env_file, Duration::from_secs(60)).await;
        let text = std::fs::read_to_string(&env_file).expect("read env file");
        assert!(
            text.starts_with("# azure-redis-emulator: environment for auth type system-identity\n"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&env_file)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        // Only the file itself: the temporary file it was written to was renamed onto it.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        let vars = parse_dotenv(&text);

        // The file holds exactly the variables printed as exports.
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = BTreeMap::new();
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|r| r.split_once('=')) {
                printed.insert(k.to_string(), v.trim_matches('\'').to_string());
            }
            if line.contains("Ctrl-C") {
                break;
            }
        }
        assert_eq!(vars, printed);
        let keys: Vec<&str> = vars.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "AZURE_REDIS_HOST",
                "AZURE_REDIS_PORT",
                "IDENTITY_ENDPOINT",
                "IDENTITY_HEADER",
                "SSL_CERT_FILE"
            ]
        );
        assert_eq!(vars["AZURE_REDIS_HOST"], "127.0.0.2");
        assert_eq!(vars["AZURE_REDIS_PORT"], gate_s);
        assert_eq!(
            vars["IDENTITY_ENDPOINT"],
            format!("http://127.0.0.2:{identity}/msi/token")
        );

        // The listeners are on the bind address and nowhere else.
        let on_bind = |port| SocketAddr::new(IpAddr::V4(BIND), port);
        let on_default = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        assert!(TcpStream::connect(on_bind(plain)).await.is_ok());
        for port in [gate, plain, identity, token] {
            assert!(
                TcpStream::connect(on_default(port)).await.is_err(),
                "port {port} answers on 127.0.0.1"
            );
        }

        // A token from the identity endpoint the file names.
        let http = reqwest::Client::new();
        let reply: serde_json::Value = http
            .get(format!(
                "{}?api-version=2019-08-01&resource=https%3A%2F%2Fredis.azure.com",
                vars["IDENTITY_ENDPOINT"]
            ))
            .header("x-identity-header", &vars["IDENTITY_HEADER"])
            .send()
            .await
            .expect("identity endpoint answers")
            .error_for_status()
            .expect("token issued")
            .json()
            .await
            .expect("JSON");
        let access_token = reply["access_token"].as_str().expect("access_token");
        let oid = oid_of(access_token);

        // The gate, reached by the extra DNS name (the address stands in for a resolver that
        // maps the name to it), trusting only the CA the file names; the token AUTHs.
        let connector = tls_connector(Path::new(&vars["SSL_CERT_FILE"]));
        let gate_addr = on_bind(gate);
        let mut conn = tls_to(&connector, gate_addr, CERT_NAME)
            .await
            .expect("gate certificate valid for the extra name");
        assert_eq!(
            command_reply(&mut conn, &["PING"]).await,
            "-NOAUTH Authentication required."
        );
        assert_eq!(
            command_reply(&mut conn, &["AUTH", &oid, access_token]).await,
            "+OK"
        );
        assert_eq!(command_reply(&mut conn, &["PING"]).await, "+PONG");
        // By the extra IP address and by the bind address (added on its own), too.
        for name in [CERT_IP, "127.0.0.2"] {
            assert!(tls_to(&connector, gate_addr, name).await.is_ok(), "{name}");
        }
        // A name that was not given is refused: the names above are in the certificate, not
        // accepted whatever they are.
        assert!(
            tls_to(&connector, gate_addr, "other.ci.test")
                .await
                .is_err()
        );
        // The token endpoint presents the same names.
        assert!(tls_to(&connector, on_bind(token), CERT_NAME).await.is_ok());
        assert!(
            tls_to(&connector, on_bind(token), "other.ci.test")
                .await
                .is_err()
        );

        stop(child).await;
        assert!(!env_file.exists(), "env file left behind after stop");
        assert!(TcpStream::connect(gate_addr).await.is_err());
    })
    .await;
}

/// Bad flag values and combinations stop the binary before it starts anything, with exit
/// code 2 and a message naming the flag.
#[tokio::test]
async fn bad_flag_values_exit_2_naming_the_flag() {
    bounded(async {
        let cases: &[(&[&str], &str)] = &[
            (&["--bind", "localhost"], "'--bind <ADDR>': 'localhost' is not an IP address"),
            (&["--bind", "127.0.0.300"], "--bind <ADDR>"),
            (&["--gate-port", "70000"], "--gate-port <PORT>"),
            (&["--plain-port", "x"], "--plain-port <PORT>"),
            (&["--identity-port", "-1"], "--identity-port"),
            (&["--token-endpoint-port", "65536"], "--token-endpoint-port <PORT>"),
            (&["--cert-host", "not a name"], "'--cert-host <NAME>'"),
            (&["--cert-host", "host:6380"], "'--cert-host <NAME>'"),
            (&["--cert-host", ""], "--cert-host <NAME>"),
            (&["--write-env", ""], "--write-env <FILE>"),
            (
                &["--write-env", "/nonexistent-dir-of-the-emulator-test/e.env"],
                "'--write-env <FILE>': directory '/nonexistent-dir-of-the-emulator-test' does not exist",
            ),
            (&["--write-env", "/"], "'--write-env <FILE>': '/' is a directory"),
            (
                &["--gate-port", "40001", "--identity-port", "40001"],
                "--gate-port and --identity-port both name port 40001",
            ),
            (
                &["--plain-port", "40002", "--token-endpoint-port", "40002"],
                "--plain-port and --token-endpoint-port both name port 40002",
            ),
            (&["--token-lifetime", "0"], "--token-lifetime"),
            (
                &["--auth", "access-key", "--access-key", "it's", "--write-env", "e.env"],
                "--access-key holds a quote",
            ),
        ];
        for (args, expected) in cases {
            let (code, stderr) = run_to_exit(args).await;
            assert_eq!(code, Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
    })
    .await;
}

/// A fixed port another process holds: the error names the flag, the port and the cause,
/// and nothing is left running.
#[tokio::test]
async fn fixed_port_in_use_is_named() {
    bounded(async {
        let held = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = held.local_addr().expect("addr").port().to_string();
        for flag in ["--gate-port", "--identity-port"] {
            let (code, stderr) = run_to_exit(&[flag, &port]).await;
            assert_eq!(code, Some(1), "{stderr}");
            let expected = format!("error: {flag} {port}: ");
            assert!(
                stderr.contains(&expected),
                "expected {expected:?} in {stderr}"
            );
            assert!(
                stderr.contains(&format!("port {port} is already in use on 127.0.0.1")),
                "{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
        drop(held);
    })
    .await;
}
