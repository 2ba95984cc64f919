//! wscope's own certificate authority, for TLS interception in the forward
//! proxy: created on first use in the data directory (the key readable by
//! its owner only), and a leaf certificate per host it is asked for, signed
//! by it and kept in memory.
//!
//! `wscope ca` prints where the CA certificate is and how to trust it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cli::CaArgs;

const CA_NAME: &str = "wscope interception CA";

/// Where the CA lives.
pub struct CaPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn paths() -> anyhow::Result<CaPaths> {
    let dir = crate::tls::data_dir()?.join("ca");
    Ok(CaPaths {
        cert: dir.join("wscope-ca.pem"),
        key: dir.join("wscope-ca-key.pem"),
    })
}

/// Whether a CA has been made already.
pub fn exists() -> bool {
    paths().is_ok_and(|p| p.cert.is_file() && p.key.is_file())
}

/// The CA's subject: the issuer of every leaf must match it exactly.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "wscope");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The interception CA: loads it, or makes it on first use.
pub struct Authority {
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// One key for every leaf: a fresh key per host buys nothing here.
    leaf_key: KeyPair,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl Authority {
    pub fn load_or_create() -> anyhow::Result<(Authority, bool)> {
        let paths = paths()?;
        let created = !(paths.cert.is_file() && paths.key.is_file());
        if created {
            let dir = paths.cert.parent().expect("a file in a directory");
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let key = KeyPair::generate().context("cannot generate the CA key")?;
            let mut params = ca_params();
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(3650);
            let cert = params
                .self_signed(&key)
                .context("cannot make the CA certificate")?;
            crate::tls::write_private(&paths.key, key.serialize_pem().as_bytes())?;
            std::fs::write(&paths.cert, cert.pem())
                .with_context(|| format!("cannot write {}", paths.cert.display()))?;
        }
        let key_pem = std::fs::read_to_string(&paths.key)
            .with_context(|| format!("cannot read {}", paths.key.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| anyhow!("{} is not a usable key: {e}", paths.key.display()))?;
        let ca_der = rustls_pki_types::pem::PemObject::from_pem_file(&paths.cert)
            .map_err(|e| anyhow!("cannot read {}: {e}", paths.cert.display()))?;
        Ok((
            Authority {
                ca_der,
                issuer: Issuer::new(ca_params(), key),
                leaf_key: KeyPair::generate().context("cannot generate a key")?,
                leaves: Mutex::new(HashMap::new()),
            },
            created,
        ))
    }

    /// A TLS server configuration presenting a certificate for `host`
    /// (made once per host). ALPN offers http/1.1 only, so browsers upgrade
    /// over HTTP/1.1.
    pub fn config_for(&self, host: &str) -> anyhow::Result<Arc<ServerConfig>> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = leaves.get(&host) {
            return Ok(config.clone());
        }
        let mut params = CertificateParams::new(vec![host.clone()])
            .map_err(|e| anyhow!("cannot make a certificate for {host:?}: {e}"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, host.as_str());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| anyhow!("cannot sign a certificate for {host:?}: {e}"))?;
        let chain = vec![leaf.der().clone(), self.ca_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.key_log = Arc::new(rustls::KeyLogFile::new());
        let config = Arc::new(config);
        leaves.insert(host, config.clone());
        Ok(config)
    }
}

/// `wscope ca`: make the CA if needed, say where it is and how to trust it.
pub fn run(args: CaArgs) -> anyhow::Result<i32> {
    let (_, created) = Authority::load_or_create()?;
    let paths = paths()?;
    if args.pem {
        print!(
            "{}",
            std::fs::read_to_string(&paths.cert)
                .with_context(|| format!("cannot read {}", paths.cert.display()))?
        );
        return Ok(0);
    }
    if created {
        println!("created wscope's interception CA");
    }
    println!("certificate: {}", paths.cert.display());
    println!(
        "private key: {} (readable by you only)",
        paths.key.display()
    );
    println!();
    println!("`wscope proxy --forward` intercepts TLS with it. To trust it:");
    println!(
        "  curl, Python, Node:  --cacert / SSL_CERT_FILE / NODE_EXTRA_CA_CERTS={}",
        paths.cert.display()
    );
    println!(
        "  Chrome/Chromium:     certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n wscope -i {}",
        paths.cert.display()
    );
    println!(
        "  Debian/Ubuntu:       sudo cp {} /usr/local/share/ca-certificates/wscope.crt && sudo update-ca-certificates",
        paths.cert.display()
    );
    println!("Anyone with the key can impersonate any site to this machine: keep it private.");
    Ok(0)
}
