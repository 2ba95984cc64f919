//! TLS for wss://: a handshake of its own (offering h2 and http/1.1 as a
//! browser does, which dial does not), reporting the version, the cipher
//! suite, the ALPN protocol and, on failure, rustls's verdict on the
//! chain in words (`tls::describe`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::Target;
use super::finding::{Finding, Verdict};
use super::network::ms;
use crate::cli::HandshakeArgs;

/// The `tls` finding.
pub async fn check(target: &Target, h: &HandshakeArgs, timeout: Duration) -> Finding {
    if !target.secure {
        return Finding::skipped("tls", "ws:// (no TLS)");
    }
    if target.proxied {
        return Finding::skipped("tls", "through --proxy: see the upgrade check");
    }
    let config = match crate::tls::client_config(&h.tls_options()) {
        Ok(config) => config,
        Err(err) => {
            return Finding::new("tls", Verdict::Problem, format!("{err:#}"))
                .advice("check --ca, --cert and --key");
        }
    };
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let tcp = match tokio::time::timeout(
        timeout,
        TcpStream::connect((
            target.host.trim_start_matches('[').trim_end_matches(']'),
            target.port,
        )),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        _ => return Finding::skipped("tls", "no TCP connection (see tcp)"),
    };
    let started = Instant::now();
    let handshake = tokio::time::timeout(timeout, crate::tls::connect(tcp, &target.host, config));
    match handshake.await {
        Ok(Ok(stream)) => {
            let (_, session) = stream.get_ref();
            let version = session
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("unknown version")
                .replace('_', ".")
                .replace("TLSv1.", "TLS 1.");
            let suite = session
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown suite");
            let alpn = session
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let verified = if h.insecure {
                " (certificate NOT verified: -k)"
            } else {
                ", certificate valid for the host"
            };
            let mut finding = Finding::ok(
                "tls",
                format!(
                    "{version}, {suite}, ALPN {} in {}{verified}",
                    alpn.as_deref().unwrap_or("none"),
                    ms(started.elapsed())
                ),
            );
            if alpn.as_deref() == Some("h2") {
                finding = finding.detail(
                    "the server offers HTTP/2: browsers open WebSockets over HTTP/1.1 unless the server also supports RFC 8441 (extended CONNECT); a proxy that speaks only h2 upstream needs it",
                );
            }
            if h.insecure {
                finding.verdict = Verdict::Info;
            }
            let leaf = session.peer_certificates().and_then(|chain| chain.first());
            if let Some(leaf) = leaf {
                for (verdict, words) in certificate(leaf.as_ref(), &target.host, h.insecure) {
                    finding.verdict = finding.verdict.max(verdict);
                    finding.detail.push(words);
                }
            }
            if finding.verdict >= Verdict::Warning {
                finding.advice = "renew the certificate before it expires (browsers refuse it from that moment), and serve one from a CA browsers trust that names this host".to_owned();
            }
            finding
        }
        Ok(Err(err)) => Finding::new(
            "tls",
            Verdict::Problem,
            crate::tls::describe(&err, &target.host),
        )
        .advice("browsers refuse this too: serve a certificate chain from a public CA that covers this host name, complete with intermediates (--ca to trust a private CA here, -k to look past it)"),
        Err(_) => Finding::new(
            "tls",
            Verdict::Problem,
            format!("no TLS handshake within {timeout:?}"),
        )
        .advice("is this port serving TLS? ws:// vs wss:// and the port may be mixed up"),
    }
}

/// What the server's own certificate says that the handshake did not
/// already refuse: it expires within 14 days; and with `-k`, where rustls
/// checked nothing, expired, self-signed or not naming the host.
fn certificate(der: &[u8], host: &str, insecure: bool) -> Vec<(Verdict, String)> {
    let mut notes = Vec::new();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return vec![(
            Verdict::Warning,
            "the certificate does not parse as X.509".to_owned(),
        )];
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let not_after = cert.validity().not_after.timestamp();
    let days = (not_after - now) / 86_400;
    if not_after < now {
        notes.push((
            Verdict::Problem,
            format!("the certificate expired {} days ago", -days),
        ));
    } else if not_after - now < 14 * 86_400 {
        notes.push((
            Verdict::Warning,
            format!(
                "the certificate expires in {days} days ({})",
                cert.validity().not_after
            ),
        ));
    }
    if insecure {
        if cert.subject() == cert.issuer() {
            notes.push((
                Verdict::Warning,
                "the certificate is self-signed: browsers refuse it".to_owned(),
            ));
        }
        let names = names(&cert);
        if !names.iter().any(|name| covers(name, host)) {
            notes.push((
                Verdict::Warning,
                format!(
                    "the certificate does not name {host} (it names {}): browsers refuse it",
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
    }
    notes
}

/// The DNS names and IP addresses a certificate is for.
fn names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(
                    std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
                ),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|octets| std::net::Ipv6Addr::from(octets).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether a certificate name covers `host` (a `*.` wildcard covers one label).
fn covers(name: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    match name.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(_, parent)| parent == rest),
        None => name == host,
    }
}
