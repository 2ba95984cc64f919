//! `wscope proxy`: the inspecting proxy, reverse or forward.
//!
//! Each accepted connection is one task. It reads the client's request
//! head, decides where it goes (the `--upstream` in reverse mode; the
//! absolute URI or the CONNECT target in forward mode), opens the upstream
//! connection and passes the request on. A WebSocket upgrade that the
//! upstream accepts becomes a relay ([`relay`]): the original bytes are
//! forwarded both ways and a [`wscope_proto::tap::Tap`] on each direction
//! turns them into events. Anything else (a refusal, a plain HTTP request,
//! an uninspected tunnel) is passed through as bytes.

pub mod args;
mod engine;
mod relay;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use url::Url;
use wscope_events::{EventKind, HandshakeFailed, Head};
use wscope_proto::handshake::{Parsed, Request, ServerResponse};

use self::upstream::{Connected, Target};
use crate::network::ca::Authority;
use crate::network::listen;
use crate::network::stream::{NetStream, Replay};
use crate::sinks::emit::Events;
use crate::sinks::outputs::{self, Extras};
use crate::sinks::pipeline;
use crate::sources::control::Controls;
use args::ProxyArgs;

/// What every connection of one proxy shares.
pub struct Proxy {
    mode: Mode,
    events: Events,
    /// TLS toward clients (reverse mode, --tls-cert).
    client_tls: Option<TlsAcceptor>,
    /// TLS toward upstreams.
    upstream_tls: Arc<rustls::ClientConfig>,
    /// TLS interception in forward mode.
    authority: Option<Authority>,
    preserve_host: bool,
    report_frames: bool,
    handshake_timeout: Duration,
    limit: Arc<listen::ConnectionLimit>,
    shutdown: watch::Receiver<bool>,
    next_id: AtomicU64,
    /// The rules in force, when there are any (or a file to watch).
    rules: Option<crate::sources::rules::reload::Current>,
    /// Live connections the UI may act on (with `--ui`).
    controls: Option<Arc<Controls>>,
    /// What all connections' engines may hold at once.
    budget: Arc<engine::Budget>,
}

enum Mode {
    Reverse(Target),
    Forward,
}

/// What a caller in the same process (`wscope demo`) adds to a proxy.
#[derive(Default)]
pub struct Embedding {
    /// The rules in force, in place of fault flags and `--rules`.
    pub rules: Option<crate::sources::rules::RuleSet>,
    /// Told where the proxy listens and its UI's URL, once it does.
    pub ready: Option<tokio::sync::oneshot::Sender<Ready>>,
    /// Ends the proxy as Ctrl-C does when it turns true.
    pub stop: Option<watch::Receiver<bool>>,
    /// No `listening on` line: the caller says where the proxy listens.
    pub silent: bool,
}

/// A proxy that listens.
#[derive(Debug)]
pub struct Ready {
    pub addrs: Vec<SocketAddr>,
    /// The web UI's URL with its token (`--ui`).
    pub ui: Option<String>,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    run_embedded(args, Embedding::default()).await
}

/// The proxy, with what `embedding` adds.
pub async fn run_embedded(args: ProxyArgs, embedding: Embedding) -> anyhow::Result<()> {
    // Before anything listens: a mistake starts nothing.
    outputs::check(&args.output, &outputs::PROXY)?;
    listen::raise_fd_limit();
    let mode = match &args.upstream {
        Some(url) => Mode::Reverse(Target::from_url(url)?),
        None => Mode::Forward,
    };
    let client_tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsAcceptor::from(crate::network::tls::server_config(
            cert, key,
        )?)),
        _ => None,
    };
    let upstream_tls = crate::network::tls::client_config(&crate::network::tls::TlsOptions {
        ca: args.upstream_ca.clone(),
        insecure: args.upstream_insecure,
        cert: None,
        key: None,
    })?;
    let intercept = matches!(mode, Mode::Forward)
        && !args.no_intercept
        && (args.intercept_tls || crate::network::ca::exists());
    let authority = if intercept {
        let (authority, created) = Authority::load_or_create()?;
        let paths = crate::network::ca::paths()?;
        if created {
            eprintln!(
                "wscope: created an interception CA at {}; clients must trust it (see `wscope ca`)",
                paths.cert.display()
            );
        } else {
            eprintln!(
                "wscope: intercepting TLS with the CA at {}",
                paths.cert.display()
            );
        }
        Some(authority)
    } else {
        None
    };
    let mut rules = crate::sources::rules::reload::load(&args.faults)?;
    if let Some(set) = embedding.rules {
        anyhow::ensure!(
            rules.is_none(),
            "a proxy with rules of its caller's takes no fault flags or --rules"
        );
        rules = Some(watch::channel(Arc::new(set)));
    }
    if args.output.ui.is_some() && rules.is_none() {
        // The UI acts on connections through the shaping relay.
        let (tx, rx) = watch::channel(Arc::new(crate::sources::rules::RuleSet::default()));
        rules = Some((tx, rx));
    }
    let controls = args.output.ui.map(|_| Arc::new(Controls::default()));
    let listeners = listen::bind_all(&args.listen).await?;

    let outputs = outputs::build(&args.output, &outputs::PROXY, Extras::default())?;
    let payload_limit = outputs.payload_limit();
    let report_frames = outputs.frames;
    let metrics_url = outputs.metrics.map(|(_, url)| url);
    let (events, pipeline) = pipeline::start(outputs.sinks, payload_limit)?;

    let scheme = match (&mode, &client_tls) {
        (Mode::Forward, _) => "http",
        (Mode::Reverse(_), Some(_)) => "wss",
        (Mode::Reverse(_), None) => "ws",
    };
    if matches!(mode, Mode::Forward) {
        for listener in &listeners {
            let addr = listener.local_addr()?;
            if !addr.ip().is_loopback() {
                eprintln!(
                    "wscope: warning: the forward proxy listens on {addr}, not a loopback address: it is an open proxy. \
                     Anyone who can reach it can make connections through it to any host, this machine's and its \
                     network's private services included, under this machine's address, and their traffic is recorded \
                     like yours. Listen on 127.0.0.1 unless others must use it, and then firewall it"
                );
            }
        }
    }
    let mut line = String::from("listening on");
    for listener in &listeners {
        line.push_str(&format!(" {scheme}://{}", listener.local_addr()?));
    }
    match &mode {
        Mode::Reverse(target) => line.push_str(&format!(" (reverse proxy to {target})")),
        Mode::Forward if authority.is_some() => line.push_str(" (forward proxy, intercepting TLS)"),
        Mode::Forward => line.push_str(" (forward proxy)"),
    }
    if let Some(url) = &metrics_url {
        line.push_str(&format!(" (metrics: {url})"));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut ui_url = None;
    if let Some(ui) = outputs.ui {
        let source = match &mode {
            Mode::Reverse(target) => format!("wscope proxy to {target}"),
            Mode::Forward => "wscope proxy (forward)".to_owned(),
        };
        let live = crate::sinks::ui::Mode::Live {
            source,
            controls: controls.clone(),
            events: events.clone(),
        };
        let url = ui.start(live, shutdown_rx.clone()).await?;
        line.push_str(&format!(" (ui: {url})"));
        ui_url = Some(url);
    }
    if let Some((_, current)) = &rules {
        let n = current.borrow().rules.len();
        let s = if n == 1 { "" } else { "s" };
        line.push_str(&format!(" ({n} rule{s} in force)"));
    }
    if !embedding.silent {
        println!("{line}");
        use std::io::Write;
        std::io::stdout().flush()?;
    }
    if let Some(ready) = embedding.ready {
        let addrs = listeners
            .iter()
            .map(|listener| listener.local_addr())
            .collect::<Result<_, _>>()?;
        let _ = ready.send(Ready { addrs, ui: ui_url });
    }

    let proxy = Arc::new(Proxy {
        mode,
        events,
        client_tls,
        upstream_tls,
        authority,
        preserve_host: args.preserve_host,
        report_frames,
        handshake_timeout: args.handshake_timeout,
        limit: listen::ConnectionLimit::new(args.max_connections),
        shutdown: shutdown_rx,
        next_id: AtomicU64::new(1),
        rules: rules.as_ref().map(|(_, current)| current.clone()),
        controls,
        budget: Arc::new(engine::Budget::new(
            usize::try_from(args.hold_budget).unwrap_or(usize::MAX),
        )),
    });
    if let Some((tx, _)) = rules {
        let shutdown = proxy.shutdown.clone();
        crate::sources::rules::reload::watch_file(
            args.faults.clone(),
            tx,
            proxy.events.clone(),
            shutdown,
        );
    }
    listen::accept_until(
        listeners,
        shutdown_tx,
        embedding.stop,
        move |stream, peer| {
            let proxy = proxy.clone();
            async move { handle(&proxy, stream, peer).await }
        },
    )
    .await;
    pipeline.finish().await;
    Ok(())
}

/// One accepted connection.
struct Client {
    id: String,
    peer: SocketAddr,
    started: Instant,
}

async fn handle(proxy: &Proxy, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let client = Client {
        id: format!("c{}", proxy.next_id.fetch_add(1, Ordering::Relaxed)),
        peer,
        started: Instant::now(),
    };
    let _counted = match proxy.limit.enter("proxy") {
        Ok(counted) => counted,
        Err(why) => {
            let mut stream = NetStream::Plain(tcp);
            refuse(proxy, &client, &mut stream, None, 503, why).await;
            return;
        }
    };
    let stream = match &proxy.client_tls {
        None => NetStream::Plain(tcp),
        Some(acceptor) => {
            match tokio::time::timeout(proxy.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => NetStream::TlsServer(Box::new(tls)),
                Ok(Err(err)) => {
                    let why = format!("TLS handshake with the client failed: {err}");
                    failed_without_response(proxy, &client, why).await;
                    return;
                }
                Err(_) => {
                    let why = format!("no TLS handshake within {:?}", proxy.handshake_timeout);
                    failed_without_response(proxy, &client, why).await;
                    return;
                }
            }
        }
    };
    match &proxy.mode {
        Mode::Reverse(target) => {
            let target = target.clone();
            proxy_request(proxy, &client, stream, Vec::new(), |_request| Ok(target)).await;
        }
        Mode::Forward => forward(proxy, &client, stream).await,
    }
}

/// Forward mode: the first request says where to go.
async fn forward(proxy: &Proxy, client: &Client, mut stream: NetStream) {
    let mut buf = Vec::with_capacity(4096);
    let Some((request, head_len)) = read_head(proxy, client, &mut stream, &mut buf).await else {
        return;
    };
    if !request.method.eq_ignore_ascii_case("CONNECT") {
        // An absolute URI: `GET http://host:port/path HTTP/1.1`.
        proxy_request(proxy, client, stream, buf, |request| {
            Target::from_absolute(&request.target)
        })
        .await;
        return;
    }
    let authority = request.target.clone();
    let Some((host, port)) = split_authority(&authority) else {
        let why = format!("CONNECT to {authority:?}: expected host:port");
        refuse(proxy, client, &mut stream, Some(&request), 400, why).await;
        return;
    };
    // The client hears "established" only once it is: otherwise it would
    // send its TLS hello or request into a tunnel that leads nowhere.
    let upstream = match connect_upstream(proxy, &host, port).await {
        Ok(tcp) => tcp,
        Err((status, why)) => {
            unreachable(proxy, client, &mut stream, Some(&request), status, why).await;
            return;
        }
    };
    let answer = b"HTTP/1.1 200 Connection Established\r\n\r\n";
    if stream.write_all(answer).await.is_err() {
        return;
    }
    let leftover = buf.split_off(head_len);
    let Some(authority_ca) = &proxy.authority else {
        tunnel(proxy, client, stream, upstream, leftover, &host, port).await;
        return;
    };
    // Intercept: a TLS client hello means https/wss inside; anything else
    // is plain HTTP (ws://) through the tunnel.
    let mut first = leftover;
    if first.is_empty() {
        let mut byte = [0u8; 1024];
        match tokio::time::timeout(proxy.handshake_timeout, stream.read(&mut byte)).await {
            Ok(Ok(n)) if n > 0 => first.extend_from_slice(&byte[..n]),
            _ => return,
        }
    }
    if first[0] != 0x16 {
        let mut target = Target::plain(&host, port);
        target.connected = Connected::new(upstream);
        proxy_request(proxy, client, stream, first, move |_| Ok(target)).await;
        return;
    }
    let config = match authority_ca.config_for(&host) {
        Ok(config) => config,
        Err(err) => {
            let why = format!("cannot intercept TLS to {host}: {err:#}");
            failed_without_response(proxy, client, why).await;
            return;
        }
    };
    let NetStream::Plain(tcp) = stream else {
        return;
    };
    let replay = Replay::new(first, tcp);
    let acceptor = TlsAcceptor::from(config);
    let tls = match tokio::time::timeout(proxy.handshake_timeout, acceptor.accept(replay)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            let why = format!(
                "the client refused wscope's certificate for {host} (does it trust the CA? see `wscope ca`): {err}"
            );
            failed_without_response(proxy, client, why).await;
            return;
        }
        Err(_) => return,
    };
    let stream = NetStream::Intercepted(Box::new(tls));
    let mut target = Target::secure(&host, port);
    target.connected = Connected::new(upstream);
    proxy_request(proxy, client, stream, Vec::new(), move |_| Ok(target)).await;
}

/// The TCP connection a CONNECT asks for, or the status to refuse it
/// with: 504 when it does not answer in time, 502 when it cannot be
/// reached (refused, unreachable, a name that does not resolve).
async fn connect_upstream(
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<TcpStream, (u16, String)> {
    match tokio::time::timeout(proxy.handshake_timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err(err)) => {
            let hint = match err.kind() {
                std::io::ErrorKind::ConnectionRefused => ": nothing listens there",
                _ => "",
            };
            Err((502, format!("cannot connect to {host}:{port}: {err}{hint}")))
        }
        Err(_) => Err((
            504,
            format!(
                "no connection to {host}:{port} within {:?} (--handshake-timeout)",
                proxy.handshake_timeout
            ),
        )),
    }
}

/// A blind CONNECT tunnel: bytes both ways, one note.
async fn tunnel(
    proxy: &Proxy,
    client: &Client,
    mut stream: NetStream,
    upstream: TcpStream,
    leftover: Vec<u8>,
    host: &str,
    port: u16,
) {
    let text = format!("tunnel to {host}:{port}, not intercepted (no CA: see `wscope ca`)");
    proxy
        .events
        .emit(&client.id, None, EventKind::Note { text })
        .await;
    let mut upstream = NetStream::Plain(upstream);
    if upstream.write_all(&leftover).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
}

/// One HTTP request from a client, to the upstream `choose` names.
async fn proxy_request(
    proxy: &Proxy,
    client: &Client,
    mut stream: NetStream,
    mut buf: Vec<u8>,
    choose: impl FnOnce(&Request) -> anyhow::Result<Target>,
) {
    // In forward mode the head may have been read already.
    let (request, head_len) = match Request::parse(&buf) {
        Ok(Parsed::Complete(request, len)) => (request, len),
        _ => match read_head(proxy, client, &mut stream, &mut buf).await {
            Some(parsed) => parsed,
            None => return,
        },
    };
    let target = match choose(&request) {
        Ok(target) => target,
        Err(err) => {
            let why = format!("{err:#}");
            refuse(proxy, client, &mut stream, Some(&request), 400, why).await;
            return;
        }
    };
    relay::exchange(proxy, client, stream, buf, request, head_len, target).await;
}

/// Reads a request head, refusing what is not HTTP.
async fn read_head(
    proxy: &Proxy,
    client: &Client,
    stream: &mut NetStream,
    buf: &mut Vec<u8>,
) -> Option<(Request, usize)> {
    match tokio::time::timeout(
        proxy.handshake_timeout,
        crate::network::http_io::read_request(stream, buf),
    )
    .await
    {
        Ok(Ok(Some(parsed))) => Some(parsed),
        Ok(Ok(None)) => None,
        Ok(Err(err)) => {
            let why = format!("not an HTTP request: {err}");
            refuse(proxy, client, stream, None, 400, why).await;
            None
        }
        Err(_) => {
            let why = format!("no complete request within {:?}", proxy.handshake_timeout);
            failed_without_response(proxy, client, why).await;
            None
        }
    }
}

/// Answers the client with `status` and says why, and records it.
async fn refuse(
    proxy: &Proxy,
    client: &Client,
    stream: &mut NetStream,
    request: Option<&Request>,
    status: u16,
    why: String,
) {
    answer_refusal(proxy, client, stream, request, status, why, false).await;
}

/// Answers the client itself because the upstream could not be reached;
/// the event says so, which is what the metrics count.
async fn unreachable(
    proxy: &Proxy,
    client: &Client,
    stream: &mut NetStream,
    request: Option<&Request>,
    status: u16,
    why: String,
) {
    answer_refusal(proxy, client, stream, request, status, why, true).await;
}

async fn answer_refusal(
    proxy: &Proxy,
    client: &Client,
    stream: &mut NetStream,
    request: Option<&Request>,
    status: u16,
    why: String,
    upstream_unreachable: bool,
) {
    let response = ServerResponse::reject(status, &format!("wscope proxy: {why}"), vec![]);
    let mut out = Vec::new();
    response.encode(&mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
    let event = EventKind::HandshakeFailed(HandshakeFailed {
        url: request.map(|r| r.target.clone()).unwrap_or_default(),
        client: Some(client.peer.to_string()),
        request: request.map(crate::network::http_io::request_head),
        response: Some(Head {
            line: format!("HTTP/1.1 {} {}", response.status, response.reason),
            headers: response.headers.clone(),
        }),
        status: Some(status),
        body: why.clone(),
        upstream_unreachable,
        diagnosis: why,
    });
    proxy.events.emit(&client.id, None, event).await;
}

/// Records a failure where no HTTP answer could be sent.
async fn failed_without_response(proxy: &Proxy, client: &Client, why: String) {
    let event = EventKind::HandshakeFailed(HandshakeFailed {
        url: String::new(),
        client: Some(client.peer.to_string()),
        request: None,
        response: None,
        status: None,
        body: String::new(),
        upstream_unreachable: false,
        diagnosis: why,
    });
    proxy.events.emit(&client.id, None, event).await;
}

/// `host:port` (or `[v6]:port`) from a CONNECT target.
fn split_authority(authority: &str) -> Option<(String, u16)> {
    let url = Url::parse(&format!("http://{authority}")).ok()?;
    let host = url.host_str()?.to_owned();
    let port = url
        .port()
        .or_else(|| authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))?;
    Some((host, port))
}
