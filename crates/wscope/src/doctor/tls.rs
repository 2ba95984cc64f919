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
