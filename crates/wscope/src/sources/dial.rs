//! Opening a client connection: name resolution, TCP, TLS, the upgrade,
//! each timed on its own; what happened is reported as events (`open`,
//! `handshake_failed`, `error`). `connect` and `probe` both start here.

use std::time::{Duration, Instant};

use crate::values::parse_duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;
use wscope_events::{EventKind, HandshakeFailed, Head, Open, Timings};
use wscope_proto::Role;
use wscope_proto::deflate;
use wscope_proto::handshake::{ClientRequest, Parsed, Request, Response, generate_key, status};

use crate::exit::connection as exit;
use crate::network::connection::{Connection, Stream};
use crate::network::hosts::Hosts;
use crate::network::tls;
use crate::sinks::emit::Events;

/// A client connection, open and upgraded.
pub type Dialed = Connection<Box<dyn Stream>>;

/// Opens the connection `h` describes. `Ok(Err(status))` is a failure that
/// has been reported through `events`, with the exit status it maps to;
/// `Err` is a usage error (a bad URL or flag).
pub async fn dial(
    h: &HandshakeArgs,
    max_message: u64,
    events: &Events,
    conn_id: &str,
) -> anyhow::Result<Result<Dialed, i32>> {
    let dialed = dial_with(h, max_message, events, conn_id, &DialOptions::default()).await?;
    Ok(dialed.map_err(|failure| failure.status))
}

/// What `connect --reconnect` adds to a dial.
#[derive(Debug, Default)]
pub struct DialOptions {
    /// The attempt number, for the `open` event.
    pub attempt: Option<u32>,
    /// Headers whose values are secrets whatever their names (computed by
    /// a command): replaced with the redaction marker in the events.
    pub secret_headers: Vec<String>,
}

/// A dial that failed, as reported.
#[derive(Debug, Clone, Copy)]
pub struct DialFailure {
    /// The exit status it maps to.
    pub status: i32,
    /// A 429 or 503 refusal's Retry-After: wait at least this long.
    pub retry_after: Option<Duration>,
}

impl DialFailure {
    fn of(status: i32) -> DialFailure {
        DialFailure {
            status,
            retry_after: None,
        }
    }
}

/// [`dial`], with the attempt number and secret headers of `options`, and
/// a refusal's Retry-After in the failure.
pub async fn dial_with(
    h: &HandshakeArgs,
    max_message: u64,
    events: &Events,
    conn_id: &str,
    options: &DialOptions,
) -> anyhow::Result<Result<Dialed, DialFailure>> {
    let url = Url::parse(&h.url).with_context(|| format!("{:?} is not a URL", h.url))?;
    let secure = match url.scheme() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        other => {
            return Err(anyhow!(
                "unsupported scheme {other}:// (use ws:// or wss://)"
            ));
        }
    };
    let tls_config = secure
        .then(|| tls::client_config(&h.tls_options()))
        .transpose()?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("{url} has no host"))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);

    let proxy = h
        .proxy
        .as_deref()
        .map(|p| Url::parse(p).with_context(|| format!("--proxy {p:?} is not a URL")))
        .transpose()?;
    // With a proxy, --connect-to changes where the tunnel goes and
    // --resolve the proxy's own address; without one, both apply to the
    // server's.
    let hosts = h.hosts();
    let (dial_host, dial_port, tunnel_to) = match &proxy {
        Some(proxy) => (
            proxy
                .host_str()
                .ok_or_else(|| anyhow!("--proxy {proxy} has no host"))?
                .to_owned(),
            proxy.port_or_known_default().unwrap_or(8080),
            Some(hosts.route(&host, port)),
        ),
        None => (host.clone(), port, None),
    };
    let connecting = tokio::time::timeout(h.connect_timeout, async {
        let (mut tcp, dns_us, tcp_us) = resolve_and_connect(hosts, &dial_host, dial_port).await?;
        if let (Some(proxy), Some((to_host, to_port))) = (&proxy, &tunnel_to) {
            tunnel(&mut tcp, proxy, to_host, *to_port).await?;
        }
        Ok::<_, String>((tcp, dns_us, tcp_us))
    });
    let (tcp, dns_us, tcp_us) = match connecting.await {
        Ok(Ok(connected)) => connected,
        Ok(Err(message)) => {
            events
                .emit(conn_id, None, EventKind::Error { message })
                .await;
            return Ok(Err(DialFailure::of(exit::CONNECT_FAILED)));
        }
        Err(_) => {
            let message = format!(
                "no TCP connection to {host}:{port} within {:?}",
                h.connect_timeout
            );
            events
                .emit(conn_id, None, EventKind::Error { message })
                .await;
            return Ok(Err(DialFailure::of(exit::CONNECT_FAILED)));
        }
    };
    let _ = tcp.set_nodelay(true);
    let client_addr = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let server_addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut tls_us = None;
    let mut stream: Box<dyn Stream> = match tls_config {
        None => Box::new(tcp),
        Some(config) => {
            let tls_started = Instant::now();
            let handshake =
                tokio::time::timeout(h.connect_timeout, tls::connect(tcp, &host, config));
            match handshake.await {
                Ok(Ok(stream)) => {
                    tls_us = Some(tls_started.elapsed().as_micros() as u64);
                    Box::new(stream)
                }
                Ok(Err(err)) => {
                    let message = tls::describe(&err, &host);
                    events
                        .emit(conn_id, None, EventKind::Error { message })
                        .await;
                    return Ok(Err(DialFailure::of(exit::TLS_FAILED)));
                }
                Err(_) => {
                    let message = format!(
                        "no TLS handshake with {host} within {:?}",
                        h.connect_timeout
                    );
                    events
                        .emit(conn_id, None, EventKind::Error { message })
                        .await;
                    return Ok(Err(DialFailure::of(exit::TLS_FAILED)));
                }
            }
        }
    };

    let mut headers = Vec::new();
    for header in &h.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("header {header:?} should look like 'Name: value'"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if let Some(auth) = &h.auth {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(auth);
        headers.push(("Authorization".to_owned(), format!("Basic {token}")));
    }
    let offers = if h.compress {
        deflate::client_offers()
    } else {
        Vec::new()
    };
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let request = ClientRequest {
        host: match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        },
        target,
        key: generate_key(rand::random()),
        protocols: h.subprotocols.clone(),
        extensions: offers.clone(),
        origin: h.origin.clone(),
        headers,
    };
    let mut out = Vec::new();
    request.encode(&mut out);
    let mut request_head = head_of_request(&out);
    for (name, value) in request_head.headers.iter_mut() {
        if options
            .secret_headers
            .iter()
            .any(|secret| secret.eq_ignore_ascii_case(name))
        {
            // Not hashed: a fresh credential per attempt has nothing to match.
            *value = format!("{}>", wscope_events::redact::MARKER_PREFIX);
        }
    }
    stream.write_all(&out).await?;

    let mut buf = Vec::with_capacity(4096);
    let upgrade_started = Instant::now();
    let handshake = tokio::time::timeout(h.connect_timeout, read_response(&mut stream, &mut buf));
    let failed = |status: Option<u16>, response: Option<Head>, body: String, diagnosis: String| {
        EventKind::HandshakeFailed(HandshakeFailed {
            url: url.to_string(),
            client: None,
            request: Some(request_head.clone()),
            response,
            status,
            body,
            upstream_unreachable: false,
            diagnosis,
        })
    };
    let (response, head_len) = match handshake.await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(err)) => {
            let kind = failed(None, None, String::new(), err.to_string());
            events.emit(conn_id, None, kind).await;
            return Ok(Err(DialFailure::of(exit::HANDSHAKE_FAILED)));
        }
        Err(_) => {
            let why = format!("no handshake response within {:?}", h.connect_timeout);
            events
                .emit(conn_id, None, failed(None, None, String::new(), why))
                .await;
            return Ok(Err(DialFailure::of(exit::HANDSHAKE_FAILED)));
        }
    };
    let response_head = Head {
        line: format!(
            "HTTP/1.{} {} {}",
            response.version, response.status, response.reason
        ),
        headers: response.headers.clone(),
    };
    let negotiated = response
        .validate_upgrade(&request.key, &request.protocols)
        .and_then(|upgraded| {
            deflate::client_negotiate(&offers, &upgraded.extensions).map(|p| (upgraded, p))
        });
    let (upgraded, params) = match negotiated {
        Ok(pair) => pair,
        Err(err) => {
            let (body, diagnosis) = if response.status == 101 {
                (String::new(), err.to_string())
            } else {
                (
                    String::from_utf8_lossy(&buf[head_len..])
                        .chars()
                        .take(4096)
                        .collect(),
                    format!(
                        "{err}: {}{}",
                        status::diagnose(response.status),
                        origin_note(response.status, h.origin.as_deref())
                    ),
                )
            };
            let retry_after = match response.status {
                429 | 503 => response
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, value)| crate::network::reconnect::retry_after(value)),
                _ => None,
            };
            let kind = failed(Some(response.status), Some(response_head), body, diagnosis);
            events.emit(conn_id, None, kind).await;
            return Ok(Err(DialFailure {
                status: exit::HANDSHAKE_FAILED,
                retry_after,
            }));
        }
    };
    let open = Open {
        url: url.to_string(),
        client: client_addr,
        server: server_addr,
        request: request_head.clone(),
        response: response_head,
        subprotocol: upgraded.protocol.clone(),
        extensions: upgraded
            .extensions
            .iter()
            .map(ToString::to_string)
            .collect(),
        timings: Timings {
            dns_us,
            tcp_us: Some(tcp_us),
            tls_us,
            upgrade_us: Some(upgrade_started.elapsed().as_micros() as u64),
        },
        handshake: None,
        attempt: options.attempt,
    };
    events.emit(conn_id, None, EventKind::Open(open)).await;

    let conn = Connection::new(stream, Role::Client, &buf[head_len..], params, max_message);
    Ok(Ok(conn))
}

/// Resolves `host` (after `--connect-to` and `--resolve`) and connects to
/// the first address that answers; returns
/// the stream and the resolution and connection times in microseconds.
async fn resolve_and_connect(
    hosts: Hosts<'_>,
    host: &str,
    port: u16,
) -> Result<(TcpStream, Option<u64>, u64), String> {
    let (addrs, dns_us) = hosts.addresses(host, port).await?;
    let tcp_started = Instant::now();
    let mut last_error = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok((stream, dns_us, tcp_started.elapsed().as_micros() as u64)),
            Err(err) => last_error = Some((addr, err)),
        }
    }
    let (addr, err) = last_error.expect("at least one address was tried");
    let hint = match err.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            ": nothing listens there (is the server running, and on this port?)"
        }
        std::io::ErrorKind::TimedOut => ": no answer (a firewall, or the wrong address)",
        _ => "",
    };
    Err(format!(
        "cannot connect to {host}:{port} ({addr}): {err}{hint}"
    ))
}

/// The request head we wrote, read back so the event shows it as sent.
fn head_of_request(bytes: &[u8]) -> Head {
    match Request::parse(bytes) {
        Ok(Parsed::Complete(request, _)) => crate::network::http_io::request_head(&request),
        _ => Head::default(),
    }
}

async fn read_response(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> anyhow::Result<(Response, usize)> {
    loop {
        if let Parsed::Complete(response, len) = Response::parse(buf)? {
            // Read the rest of a refusal's body so it can be shown.
            if response.status != 101 {
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut chunk).await {
                        if n == 0 || buf.len() > 64 * 1024 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                })
                .await;
            }
            return Ok((response, len));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(anyhow!(
                "the server closed the connection before answering the upgrade"
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// For a 403, which Origin was sent: the usual suspect.
fn origin_note(status: u16, origin: Option<&str>) -> String {
    match (status, origin) {
        (403, Some(origin)) => format!(" (Origin sent: {origin})"),
        (403, None) => " (no Origin header was sent; try --origin)".to_owned(),
        _ => String::new(),
    }
}

/// Asks an HTTP proxy for a tunnel to `host:port` (HTTP CONNECT, RFC 9110
/// section 9.3.6), with Basic credentials from the proxy URL if it has any.
async fn tunnel(tcp: &mut TcpStream, proxy: &Url, host: &str, port: u16) -> Result<(), String> {
    use base64::Engine;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if !proxy.username().is_empty() {
        let user = percent_decode(proxy.username());
        let password = percent_decode(proxy.password().unwrap_or(""));
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    let proxy_name = format!(
        "{}:{}",
        proxy.host_str().unwrap_or(""),
        proxy.port_or_known_default().unwrap_or(8080)
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("proxy {proxy_name}: cannot send CONNECT: {e}"))?;
    let mut buf = Vec::new();
    let (response, _) = read_response(tcp, &mut buf)
        .await
        .map_err(|e| format!("proxy {proxy_name} did not answer CONNECT: {e}"))?;
    match response.status {
        200..=299 => Ok(()),
        407 => Err(format!(
            "proxy {proxy_name} wants credentials (407 Proxy Authentication Required): put them in the URL, --proxy http://user:password@host:port"
        )),
        status => Err(format!(
            "proxy {proxy_name} refused to open a tunnel to {authority}: {status} {}",
            response.reason
        )),
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// What it takes to open a client connection: shared by connect and probe.
#[derive(Debug, clap::Args, Clone)]
pub struct HandshakeArgs {
    /// ws:// or wss:// URL to connect to.
    pub url: String,

    /// Offer permessage-deflate compression.
    #[arg(long)]
    pub compress: bool,

    /// Extra request header, as 'Name: value'. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// HTTP Basic credentials, as user:password.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub auth: Option<String>,

    /// Origin header to send.
    #[arg(long)]
    pub origin: Option<String>,

    /// Subprotocol to offer (Sec-WebSocket-Protocol). Repeatable.
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,

    /// Trust only the CA certificate(s) in this PEM file for wss://.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,

    /// Accept any server certificate (test servers only).
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Client certificate chain (PEM) for servers that ask for one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<std::path::PathBuf>,

    /// Private key (PEM) for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<std::path::PathBuf>,

    /// Go through this HTTP proxy (HTTP CONNECT), e.g.
    /// http://user:password@proxy.example:3128.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Connect to ADDR for HOST:PORT instead of asking DNS, as curl's
    /// --resolve (the URL, Host and TLS name stay). ADDR may be a list
    /// (a,b); HOST may be *. Repeatable.
    #[arg(long, value_name = "HOST:PORT:ADDR", value_parser = crate::network::hosts::parse_resolve)]
    pub resolve: Vec<crate::network::hosts::Resolve>,

    /// Send connections for HOST1:PORT1 to HOST2:PORT2 instead, as
    /// curl's --connect-to (an empty part is any, or unchanged).
    /// Repeatable; the first match wins.
    #[arg(long, value_name = "HOST1:PORT1:HOST2:PORT2", value_parser = crate::network::hosts::parse_connect_to)]
    pub connect_to: Vec<crate::network::hosts::ConnectTo>,

    /// Give up on the TCP connection and handshake after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

impl HandshakeArgs {
    /// `--resolve` and `--connect-to`.
    pub fn hosts(&self) -> crate::network::hosts::Hosts<'_> {
        crate::network::hosts::Hosts {
            resolve: &self.resolve,
            connect_to: &self.connect_to,
        }
    }

    /// The TLS flags, for wss:// URLs.
    pub fn tls_options(&self) -> crate::network::tls::TlsOptions {
        crate::network::tls::TlsOptions {
            ca: self.ca.clone(),
            insecure: self.insecure,
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}
