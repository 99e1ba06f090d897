//! The emulator's own certificate authority and the TLS server configuration built from it.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::EmulatorError;

/// A per-run certificate authority plus one leaf certificate for `localhost`, `127.0.0.1` and
/// the extra names the emulator was given, presented by the gate and the token endpoint.
pub(crate) struct Pki {
    /// PEM of the CA certificate.
    pub(crate) ca_pem: String,
    /// TLS configuration presenting the leaf certificate (ALPN: none).
    pub(crate) server_config: Arc<ServerConfig>,
    /// TLS configuration for HTTP (ALPN `http/1.1`).
    pub(crate) http_server_config: Arc<ServerConfig>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn tls_err(e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Tls(e.to_string())
}

/// A fresh CA (ECDSA P-256) and a leaf certificate for `localhost`, `127.0.0.1` and any extra
/// names, signed by it.
struct Generated {
    ca_cert: rcgen::Certificate,
    leaf_cert: rcgen::Certificate,
    leaf_key: KeyPair,
}

impl Generated {
    /// `client_auth`: the leaf also serves as a client certificate (redis-server presents its
    /// certificate on the cluster bus links it opens, and checks the one it is shown).
    /// `extra_names`: host names and IP addresses the leaf is valid for besides `localhost`
    /// and `127.0.0.1`.
    fn new(
        ca_name: &str,
        client_auth: bool,
        extra_names: &[String],
    ) -> Result<Self, EmulatorError> {
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ca_name);
        dn.push(DnType::OrganizationName, "azure-redis-emulator");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().map_err(tls_err)?;
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        for name in extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        // rcgen makes an IP address SAN of every name that parses as one.
        let mut leaf_params = CertificateParams::new(names).map_err(tls_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        leaf_params.distinguished_name = dn;
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if client_auth {
            leaf_params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls_err)?;
        Ok(Self {
            ca_cert,
            leaf_cert,
            leaf_key,
        })
    }
}

/// PEM files for redis-server's own TLS (`tls-ca-cert-file`, `tls-cert-file`,
/// `tls-key-file`): the links between cluster nodes (bus and replication), which clients never
/// see. A CA of their own, apart from the one clients trust.
pub(crate) struct InternalTls {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl InternalTls {
    pub(crate) fn generate() -> Result<Self, EmulatorError> {
        let g = Generated::new("azure-redis-emulator internal CA", true, &[])?;
        Ok(Self {
            ca_pem: g.ca_cert.pem(),
            cert_pem: g.leaf_cert.pem(),
            key_pem: g.leaf_key.serialize_pem(),
        })
    }
}

impl Pki {
    /// Creates a fresh CA (ECDSA P-256) and a leaf certificate signed by it, valid for
    /// `localhost`, `127.0.0.1` and `extra_names` (host names or IP addresses).
    pub(crate) fn generate(extra_names: &[String]) -> Result<Self, EmulatorError> {
        let Generated {
            ca_cert,
            leaf_cert,
            leaf_key,
        } = Generated::new("azure-redis-emulator local CA", false, extra_names)?;

        let chain: Vec<CertificateDer<'static>> =
            vec![leaf_cert.der().clone(), ca_cert.der().clone()];
        let key_der = leaf_key.serialize_der();

        let make = |alpn: Vec<Vec<u8>>| -> Result<Arc<ServerConfig>, EmulatorError> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(tls_err)?
                .with_no_client_auth()
                .with_single_cert(
                    chain.clone(),
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.clone())),
                )
                .map_err(tls_err)?;
            cfg.alpn_protocols = alpn;
            Ok(Arc::new(cfg))
        };

        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_config: make(Vec::new())?,
            http_server_config: make(vec![b"http/1.1".to_vec()])?,
        })
    }
}
