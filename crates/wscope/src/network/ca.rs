//! wscope's own certificate authority, for TLS interception in the forward
//! proxy: created on first use in the data directory (the key readable by
//! its owner only), and a leaf certificate per host it is asked for, signed
//! by it and kept in memory (the last [`LEAF_CACHE`] hosts).
//!
//! Creation holds a lock file in the CA's directory, so two first runs at
//! once make one CA: the second waits, then reads what the first wrote.
//! Both files are written whole to a temporary name and renamed into place;
//! the key is mode 0600 from its first byte, and a key others can read is
//! refused on load.
//!
//! `wscope ca` prints where the CA certificate is and how to trust it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const CA_NAME: &str = "wscope interception CA";

/// Hosts whose leaf certificate is kept; the least recently used goes
/// first. A leaf and its TLS configuration are a few KiB, so this bounds
/// the cache to a few MiB however many hosts a client visits.
pub const LEAF_CACHE: usize = 1024;

/// Where the CA lives.
pub struct CaPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn paths() -> anyhow::Result<CaPaths> {
    let dir = crate::network::tls::data_dir()?.join("ca");
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
    leaves: Mutex<LeafCache>,
}

/// The leaves made so far, bounded by count, least recently used out.
struct LeafCache {
    entries: HashMap<String, (Arc<ServerConfig>, u64)>,
    clock: u64,
    capacity: usize,
}

impl LeafCache {
    fn new(capacity: usize) -> LeafCache {
        LeafCache {
            entries: HashMap::new(),
            clock: 0,
            capacity,
        }
    }

    fn get(&mut self, host: &str) -> Option<Arc<ServerConfig>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(host).map(|(config, used)| {
            *used = clock;
            Arc::clone(config)
        })
    }

    fn insert(&mut self, host: String, config: Arc<ServerConfig>) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&host) {
            // A scan, only when full and only on a new host: cheaper than
            // the certificate just signed.
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(host, _)| host.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        self.entries.insert(host, (config, self.clock));
    }
}

/// Refuses a key file other users can read or change, naming the fix.
fn check_key_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the interception CA's private key {} has mode {mode:o}: other users of this machine can read it, \
             and whoever has it can impersonate any site to clients that trust this CA. \
             wscope will not use it. Fix: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Makes a new CA and writes it (under the caller's lock).
fn create(paths: &CaPaths) -> anyhow::Result<()> {
    let key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut params = ca_params();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params
        .self_signed(&key)
        .context("cannot make the CA certificate")?;
    // The key first: a certificate on disk always has its key beside it.
    crate::files::replace_atomically(&paths.key, key.serialize_pem().as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", paths.key.display()))?;
    crate::files::replace_atomically(&paths.cert, cert.pem().as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", paths.cert.display()))
}

impl Authority {
    pub fn load_or_create() -> anyhow::Result<(Authority, bool)> {
        let paths = paths()?;
        let dir = paths.cert.parent().expect("a file in a directory");
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let lock_path = dir.join(".lock");
        let lock = crate::files::lock_exclusive(&lock_path)
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        // Checked under the lock: whoever lost the race to create it sees
        // the winner's files here and reads them.
        let created = !(paths.cert.is_file() && paths.key.is_file());
        if created {
            create(&paths)?;
        }
        drop(lock);
        check_key_mode(&paths.key)?;
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
                leaves: Mutex::new(LeafCache::new(LEAF_CACHE)),
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
            return Ok(config);
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

#[derive(Debug, clap::Args)]
pub struct CaArgs {
    /// Print the CA certificate (PEM) only.
    #[arg(long)]
    pub pem: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["a.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Arc::new(
            ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], der)
                .unwrap(),
        )
    }

    #[test]
    fn the_leaf_cache_keeps_the_most_recently_used() {
        let mut cache = LeafCache::new(2);
        let config = config();
        cache.insert("a".into(), Arc::clone(&config));
        cache.insert("b".into(), Arc::clone(&config));
        assert!(cache.get("a").is_some());
        cache.insert("c".into(), Arc::clone(&config));
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.get("b").is_none(), "the least recently used went");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        for i in 0..100 {
            cache.insert(format!("h{i}"), Arc::clone(&config));
        }
        assert_eq!(cache.entries.len(), 2);
    }
}
