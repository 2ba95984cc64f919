//! TLS for wss://: a handshake of its own (offering h2 and http/1.1 as a
//! browser does, which dial does not), reporting the version, the cipher
//! suite, the ALPN protocol and, on failure, rustls's verdict on the
//! chain in words (`tls::describe`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

use super::Target;
use super::finding::{Finding, Verdict};
use super::network::ms;
use crate::sources::dial::HandshakeArgs;

/// The `tls` finding.
pub async fn check(target: &Target, h: &HandshakeArgs, timeout: Duration) -> Finding {
    if !target.secure {
        return Finding::skipped("tls", "ws:// (no TLS)");
    }
    if target.proxied {
        return Finding::skipped("tls", "through --proxy: see the upgrade check");
    }
    let config = match crate::network::tls::client_config(&h.tls_options()) {
        Ok(config) => config,
        Err(err) => {
            return Finding::new("tls", Verdict::Problem, format!("{err:#}"))
                .advice("check --ca, --cert and --key");
        }
    };
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let Some(tcp) = tcp_to(target, h, timeout).await else {
        return Finding::skipped("tls", "no TCP connection (see tcp)");
    };
    let started = Instant::now();
    let handshake = tokio::time::timeout(
        timeout,
        crate::network::tls::connect(tcp, &target.host, config),
    );
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
            let mut chain_advice = None;
            if h.insecure {
                finding.verdict = Verdict::Info;
                // Nothing was verified: say what a verifying client meets.
                if let Some(chain) = session.peer_certificates()
                    && let Some((summary, advice)) = chain_gap(chain, &anchors(h), h.ca.is_some())
                {
                    finding.verdict = Verdict::Warning;
                    finding.detail.push(summary);
                    chain_advice = Some(advice);
                }
            }
            let leaf = session.peer_certificates().and_then(|chain| chain.first());
            if let Some(leaf) = leaf {
                for (verdict, words) in certificate(leaf.as_ref(), &target.host, h.insecure) {
                    finding.verdict = finding.verdict.max(verdict);
                    finding.detail.push(words);
                }
            }
            if let Some(advice) = chain_advice {
                finding.advice = advice;
            } else if finding.verdict >= Verdict::Warning {
                finding.advice = "renew the certificate before it expires (browsers refuse it from that moment), and serve one from a CA browsers trust that names this host".to_owned();
            }
            finding
        }
        Ok(Err(err)) => {
            let mut finding = Finding::new(
                "tls",
                Verdict::Problem,
                crate::network::tls::describe(&err, &target.host),
            )
            .advice("browsers refuse this too: serve a certificate chain from a public CA that covers this host name, complete with intermediates (--ca to trust a private CA here, -k to look past it)");
            if unknown_issuer(&err)
                && let Some(chain) = chain_as_sent(target, h, timeout).await
            {
                if let Some((summary, advice)) = chain_gap(&chain, &anchors(h), h.ca.is_some()) {
                    finding.summary = summary;
                    finding.advice = advice;
                }
                finding.detail.extend(describe_chain(&chain));
            }
            finding
        }
        Err(_) => Finding::new(
            "tls",
            Verdict::Problem,
            format!("no TLS handshake within {timeout:?}"),
        )
        .advice("is this port serving TLS? ws:// vs wss:// and the port may be mixed up"),
    }
}

/// A TCP connection to the server, after `--connect-to` and `--resolve`.
async fn tcp_to(target: &Target, h: &HandshakeArgs, timeout: Duration) -> Option<TcpStream> {
    let connecting = async {
        let (addrs, _) = h.hosts().addresses(&target.host, target.port).await.ok()?;
        for addr in addrs {
            if let Ok(tcp) = TcpStream::connect(addr).await {
                return Some(tcp);
            }
        }
        None
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .ok()
        .flatten()
}

/// The subjects of the CAs trusted here (`--ca`, or the system's and
/// Mozilla's).
fn anchors(h: &HandshakeArgs) -> Vec<Vec<u8>> {
    crate::network::tls::roots(h.ca.as_deref())
        .map(|roots| roots.roots.iter().map(|a| a.subject.to_vec()).collect())
        .unwrap_or_default()
}

fn unknown_issuer(err: &std::io::Error) -> bool {
    matches!(
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    )
}

/// The certificates the server sends, through a second handshake that
/// verifies nothing (only to read them).
async fn chain_as_sent(
    target: &Target,
    h: &HandshakeArgs,
    timeout: Duration,
) -> Option<Vec<CertificateDer<'static>>> {
    let mut options = h.tls_options();
    options.insecure = true;
    let config = crate::network::tls::client_config(&options).ok()?;
    let tcp = tcp_to(target, h, timeout).await?;
    let stream = tokio::time::timeout(
        timeout,
        crate::network::tls::connect(tcp, &target.host, config),
    )
    .await
    .ok()?
    .ok()?;
    let chain = stream.get_ref().1.peer_certificates()?;
    Some(chain.iter().map(|c| c.clone().into_owned()).collect())
}

/// The contents of a DER `Name` (what a trust anchor keeps as its
/// subject): the SEQUENCE's value, without its tag and length.
fn name_contents(raw: &[u8]) -> &[u8] {
    let Some((&0x30, rest)) = raw.split_first() else {
        return raw;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return raw;
    };
    if len < 0x80 {
        return rest;
    }
    let octets = usize::from(len & 0x7f);
    rest.get(octets..).unwrap_or(raw)
}

/// What is wrong with the chain as sent, for a client that verifies it:
/// certificates out of order, or a last certificate whose issuer is
/// neither sent nor trusted here. `anchors` are the trusted subjects.
fn chain_gap(
    chain: &[CertificateDer<'_>],
    anchors: &[Vec<u8>],
    private_ca: bool,
) -> Option<(String, String)> {
    let certs: Vec<_> = chain
        .iter()
        .map(|der| x509_parser::parse_x509_certificate(der.as_ref()).map(|(_, cert)| cert))
        .collect::<Result<_, _>>()
        .ok()?;
    for (at, pair) in certs.windows(2).enumerate() {
        if pair[0].issuer().as_raw() != pair[1].subject().as_raw() {
            return Some((
                format!(
                    "the chain is out of order or holds a stranger: certificate {} ({}) did not issue certificate {at} (issued by {})",
                    at + 1,
                    pair[1].subject(),
                    pair[0].issuer()
                ),
                "send the chain in order: the server's certificate first, then each intermediate after the certificate it issued (nginx: ssl_certificate with the full chain, e.g. fullchain.pem)".to_owned(),
            ));
        }
    }
    let last = certs.last()?;
    if last.subject().as_raw() == last.issuer().as_raw() {
        return None;
    }
    let issuer = name_contents(last.issuer().as_raw());
    if anchors
        .iter()
        .any(|a| a.as_slice() == issuer || a.as_slice() == last.issuer().as_raw())
    {
        return None;
    }
    let missing = last.issuer().to_string();
    if certs.len() == 1 {
        let also = if private_ca {
            " and --ca does not hold it"
        } else {
            ", or a private CA (--ca FILE to trust it)"
        };
        return Some((
            format!(
                "incomplete chain: the server sends only its own certificate; its issuer {missing} is not sent{also}"
            ),
            "serve the intermediate certificate(s) with the server's (nginx: ssl_certificate pointing at the full chain, e.g. Let's Encrypt's fullchain.pem; HAProxy: the intermediates in the same PEM). Browsers often fetch a missing intermediate themselves, so the site works in Chrome and fails in Node, Python, Java, curl and mobile apps".to_owned(),
        ));
    }
    Some((
        format!(
            "the chain ends with {} issued by {missing}, which is not sent and not trusted here",
            last.subject()
        ),
        format!(
            "if {missing} is an intermediate, serve it with the chain; if it is a private root, clients need it installed (--ca FILE here)"
        ),
    ))
}

/// The chain as sent, one line per certificate.
fn describe_chain(chain: &[CertificateDer<'_>]) -> Vec<String> {
    chain
        .iter()
        .enumerate()
        .map(
            |(at, der)| match x509_parser::parse_x509_certificate(der.as_ref()) {
                Ok((_, cert)) => format!(
                    "sent {at}: {} (issued by {})",
                    cert.subject(),
                    cert.issuer()
                ),
                Err(_) => format!("sent {at}: a certificate that does not parse as X.509"),
            },
        )
        .collect()
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
