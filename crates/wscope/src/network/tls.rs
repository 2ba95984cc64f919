//! TLS for wss:// clients and servers: rustls with the platform's trust store plus the
//! Mozilla roots (or only `--ca`), optional client certificates, `--insecure`
//! for test certificates, and SSLKEYLOGFILE so Wireshark can decrypt a
//! session. ALPN offers http/1.1 only: a WebSocket upgrade needs HTTP/1.1.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How to trust the server and whether to present a certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trust only the CA certificates in this PEM file.
    pub ca: Option<PathBuf>,
    /// Accept any server certificate.
    pub insecure: bool,
    /// Client certificate chain (PEM) and its key.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Builds the client configuration for `options`.
pub fn client_config(options: &TlsOptions) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(options.ca.as_deref())?)
    };
    let mut config = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| anyhow!("cannot read a private key from {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("client certificate and key do not go together")?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("--cert and --key go together: give both or neither"),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

pub fn roots(ca: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in read_certs(ca)? {
            roots
                .add(cert)
                .with_context(|| format!("{} holds an unusable CA certificate", ca.display()))?;
        }
        return Ok(roots);
    }
    // The platform's store first (where a company CA would be installed),
    // then the Mozilla roots so a bare container still verifies public sites.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(roots)
}

/// Runs the TLS handshake over `tcp` for `host`.
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a valid TLS server name"),
        )
    })?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// A TLS failure in words a user can act on.
pub fn describe(err: &io::Error, host: &str) -> String {
    use rustls::CertificateError as Cert;
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            Cert::UnknownIssuer => format!(
                "the certificate of {host} is not signed by a CA this machine trusts (self-signed or private CA? use --ca FILE, or --insecure for a test server)"
            ),
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => format!(
                "the certificate is not valid for the name {host:?}: connect with the name it was issued for"
            ),
            Cert::Expired | Cert::ExpiredContext { .. } => {
                format!("the certificate of {host} has expired")
            }
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                format!("the certificate of {host} is not valid yet (check this machine's clock)")
            }
            Cert::Revoked => format!("the certificate of {host} has been revoked"),
            other => format!("the certificate of {host} was rejected: {other:?}"),
        },
        Some(other) => format!("TLS handshake with {host} failed: {other}"),
        None => format!("TLS handshake with {host} failed: {err}"),
    }
}

/// `--insecure`: accepts any certificate, but still checks that the server
/// holds the key for the one it sent (so the handshake is real TLS).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A server configuration from a PEM certificate chain and its key. ALPN
/// offers http/1.1 only: a WebSocket upgrade needs HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| anyhow!("cannot read a private key from {}: {err}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(config))
}

/// Where wscope keeps its own files: `$XDG_DATA_HOME/wscope`, or
/// `~/.local/share/wscope`.
pub fn data_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share"),
            None => bail!("neither XDG_DATA_HOME nor HOME is set: nowhere to keep wscope's files"),
        },
    };
    Ok(base.join("wscope"))
}

/// `--tls-self-signed`: a certificate for localhost, 127.0.0.1 and ::1 in
/// the data directory, made on first use and reused after, so a client
/// told to trust it once keeps trusting it. Returns (certificate, key).
pub fn self_signed() -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = data_dir()?.join("self-signed");
    let cert_path = dir.join("localhost.pem");
    let key_path = dir.join("localhost-key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let generated = rcgen::generate_simple_self_signed(names)
        .context("cannot generate a self-signed certificate")?;
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, generated.cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    Ok((cert_path, key_path))
}

/// Writes a file only its owner can read (a private key).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = crate::files::create_private(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}
