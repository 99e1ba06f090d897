//! The servers the benchmark runs against: redis-servers of its own (plaintext or TLS) and the
//! emulator (the Azure side).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use azure_redis_emulator::Emulator;

use crate::Error;

/// Starts the emulator (the Azure side: token signing, the gate's signature checks) on threads
/// of its own, so that its work never stalls the client's runtime, as on Azure. The runtime
/// returned runs it.
pub(crate) fn start_emulator() -> Result<(Emulator, tokio::runtime::Runtime), Error> {
    std::thread::spawn(|| -> Result<_, Error> {
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
    .map_err(|_| "the emulator thread panicked")?
}

/// A redis-server on a free loopback port, killed on drop.
pub(crate) struct RedisServer {
    pub(crate) addr: SocketAddr,
    _child: tokio::process::Child,
}

impl RedisServer {
    /// A plaintext redis-server with `users` as `(ACL user, password)`.
    pub(crate) async fn start(users: &[(&str, &str)]) -> Result<RedisServer, Error> {
        Self::start_with(users, None).await
    }

    /// With `tls`, the server accepts TLS only (no client certificates), as Azure does.
    pub(crate) async fn start_with(
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
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
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

/// A certificate authority and a certificate for `localhost` signed by it, written where
/// redis-server reads them, for the TLS cells.
pub(crate) struct TlsFiles {
    pub(crate) ca_pem: String,
    dir: tempfile::TempDir,
}

impl TlsFiles {
    /// A new CA and `localhost` certificate in a temporary directory, removed on drop.
    pub(crate) fn generate() -> Result<TlsFiles, Error> {
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
