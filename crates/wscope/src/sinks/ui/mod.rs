//! The web UI: a small HTTP server for the page (embedded assets), its
//! WebSocket (events out, filters and actions in), and exports. docs/UI.md
//! is the contract with the page and the security model.
//!
//! Every request needs the token printed with the URL or the cookie it
//! is exchanged for (`access`); the WebSocket also needs the page's own
//! Origin, and every request a Host that names this server (so neither
//! another site nor DNS rebinding can reach it).

mod access;
mod export;
pub mod hub;
mod open;
mod page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use self::access::{Access, RemoteOrigin, Verdict};
use self::hub::Hub;
use crate::network::http_io::read_request;
use crate::sinks::emit::Events;
use crate::sinks::output_args::{RedactArgs, UiOptions};
use crate::sources::control::Controls;

pub use self::hub::UiSink;

/// What a UI serves.
pub struct Ui {
    access: Access,
    hub: Arc<Hub>,
    mode: Mode,
}

/// Live (a proxy or a server) or a file.
pub enum Mode {
    /// `controls`: connections that can be acted on (the proxy's);
    /// `events`: where action notes go.
    Live {
        source: String,
        controls: Option<Arc<Controls>>,
        events: Events,
    },
    Offline {
        source: String,
    },
}

/// Where the UI was asked to listen.
pub struct Listen<'a> {
    pub addr: SocketAddr,
    pub options: &'a UiOptions,
}

/// A started UI: where it is, and how to open it.
pub struct Started {
    ui: Arc<Ui>,
    /// `http://HOST:PORT`, no token.
    base: String,
}

impl Started {
    /// The URL to print: with the token.
    pub fn url(&self) -> String {
        format!("{}/?token={}", self.base, self.ui.access.token())
    }

    /// `--open`: the browser gets a single-use code through a private
    /// file, never the token on a command line.
    pub fn open(&self) {
        open::open_in_browser(&self.base, &self.ui.access);
    }
}

/// The refusals about where the UI listens; returns the origin remote
/// pages come from.
fn remote_origin(listen: &Listen<'_>) -> anyhow::Result<Option<RemoteOrigin>> {
    let options = listen.options;
    if !options.ui_allow_remote {
        if !listen.addr.ip().is_loopback() {
            bail!(
                "the UI address {} is not a loopback address; exposing the UI needs --ui-allow-remote and --ui-origin ORIGIN (anyone who has its URL can see every message)",
                listen.addr
            );
        }
        if options.ui_origin.is_some() {
            bail!("--ui-origin only applies with --ui-allow-remote");
        }
        return Ok(None);
    }
    let Some(origin) = options.ui_origin.as_deref() else {
        bail!(
            "--ui-allow-remote needs --ui-origin ORIGIN, the exact origin (scheme://host[:port]) the UI's page will be loaded from: \
             without it the only check against other sites' pages would be Origin equal to Host, which any client that sets both passes"
        );
    };
    Ok(Some(RemoteOrigin::new(origin)?))
}

/// Says what a UI beyond this machine risks.
fn warn_remote(local: SocketAddr, origin: &str) {
    eprintln!(
        "wscope: warning: the UI listens on {} over plain HTTP, reachable from other machines: anyone who has its URL \
         or can read the traffic sees every message and header, and on a proxy can send, close and reset its connections; \
         only pages from {origin} may open its WebSocket. Put TLS in front of it (a reverse proxy serving {origin}) \
         or use an SSH tunnel instead",
        local
    );
}

/// Binds and serves the UI until `shutdown`.
pub async fn start(
    listen: Listen<'_>,
    hub: Arc<Hub>,
    mode: Mode,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    let origin = remote_origin(&listen)?;
    let listener = TcpListener::bind(listen.addr)
        .await
        .with_context(|| format!("cannot listen on {} for the UI", listen.addr))?;
    let local = listener.local_addr()?;
    if let Some(origin) = &listen.options.ui_origin
        && listen.options.ui_allow_remote
        && !local.ip().is_loopback()
    {
        warn_remote(local, origin);
    }
    let ui = Arc::new(Ui {
        access: Access::new(local.port(), origin),
        hub,
        mode,
    });
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        local.ip().to_string()
    };
    let host = if local.is_ipv6() && !local.ip().is_unspecified() {
        format!("[{host}]")
    } else {
        host
    };
    let base = format!("http://{host}:{}", local.port());
    let for_tasks = shutdown.clone();
    let started = Started {
        ui: Arc::clone(&ui),
        base,
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let ui = Arc::clone(&ui);
                        let shutdown = for_tasks.clone();
                        tokio::spawn(async move { serve(&ui, stream, shutdown).await });
                    }
                }
                _ = shutdown.wait_for(|down| *down) => {
                    ui.access.forget_once();
                    return;
                }
            }
        }
    });
    Ok(started)
}

/// The UI of a running proxy or server (`--ui`): starts it and opens it
/// when asked; returns its URL for the first line of stdout.
pub async fn start_live(
    addr: SocketAddr,
    options: &UiOptions,
    hub: Arc<Hub>,
    mode: Mode,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let listen = Listen { addr, options };
    let started = start(listen, hub, mode, shutdown).await?;
    if options.open {
        started.open();
    }
    Ok(started.url())
}

/// `wscope ui FILE...`: record files in the UI until Ctrl-C.
pub async fn run_file(args: UiArgs) -> anyhow::Result<()> {
    let source = args
        .files
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut inputs = crate::sources::inputs::open_inputs(&args.files)?;
    inputs.keylogs(&args.keylog)?;
    // The file's events reach the UI as a live command's do: through
    // sinks that redact them first.
    let redactor = args.redact.redactor(true)?;
    let hub = Hub::new(
        redactor.as_ref().map(|r| r.rules().clone()),
        args.ui.ui_history,
    );
    let mut sinks = crate::sinks::sink::Sinks::redacting(redactor);
    sinks.add("ui", Box::new(UiSink(Arc::clone(&hub))));
    for event in inputs.by_ref() {
        match event {
            Ok(event) => sinks.push(&event),
            Err(err) => {
                eprintln!("wscope: {err:#}; the UI shows what came before it");
                break;
            }
        }
    }
    for warning in inputs.warnings() {
        eprintln!("wscope: {warning}");
    }
    let kept = hub.kept();
    if kept.dropped > 0 {
        eprintln!(
            "wscope: {source} is larger than the UI's history (--ui-history {} bytes): it keeps the last {} events \
             ({} bytes counted, from #{}); the first {} are not shown. Raise --ui-history, or cut the file down \
             with `wscope read FILE --filter EXPR --record SMALLER`",
            args.ui.ui_history,
            kept.events,
            kept.bytes,
            kept.first_seq.unwrap_or(0),
            kept.dropped
        );
    }
    let (shutdown_tx, shutdown) = watch::channel(false);
    let listen = Listen {
        addr: args.listen,
        options: &args.ui,
    };
    let started = start(listen, hub, Mode::Offline { source }, shutdown).await?;
    println!("ui: {}", started.url());
    use std::io::Write;
    std::io::stdout().flush()?;
    if args.ui.open {
        started.open();
    }
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match &mut sigterm {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
    let _ = shutdown_tx.send(true);
    Ok(())
}

/// One HTTP request (one per connection), or the page's WebSocket.
async fn serve(ui: &Ui, mut stream: TcpStream, shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(2048);
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        read_request(&mut stream, &mut buf),
    );
    let (request, head_len) = match read.await {
        Ok(Ok(Some(parsed))) => parsed,
        _ => return,
    };
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    let params = parse_query(query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !ui.access.host_is_ours(request.header("host")) {
        return respond(&mut stream, 421, "text/plain", b"not this server\n").await;
    }
    if request.method != "GET" {
        return respond(&mut stream, 405, "text/plain", b"GET only\n").await;
    }
    let page_load = matches!(path, "/" | "/index.html");
    match ui.access.check(
        page_load,
        param("token"),
        param("once"),
        request.header("cookie"),
        request.header("sec-fetch-site"),
    ) {
        Verdict::Allowed => {}
        Verdict::Exchange => return exchange(&mut stream, &ui.access).await,
        Verdict::Denied => {
            let body = b"this page needs the token from the URL wscope printed\n";
            return respond(&mut stream, 401, "text/plain", body).await;
        }
    }
    match path {
        "/" | "/index.html" => {
            let html = page::INDEX.as_bytes();
            respond(&mut stream, 200, "text/html; charset=utf-8", html).await
        }
        "/app.js" => {
            let js = page::APP_JS.as_bytes();
            respond(&mut stream, 200, "text/javascript; charset=utf-8", js).await
        }
        "/app.css" => {
            respond(
                &mut stream,
                200,
                "text/css; charset=utf-8",
                page::APP_CSS.as_bytes(),
            )
            .await
        }
        "/export.jsonl" | "/export.har" => {
            let filter = match param("filter").filter(|f| !f.trim().is_empty()) {
                None => None,
                Some(text) => match wscope_events::filter::parse(text) {
                    Ok(expr) => Some(expr),
                    Err(err) => {
                        let body = format!("filter: {}\n", err.render(text));
                        return respond(&mut stream, 400, "text/plain", body.as_bytes()).await;
                    }
                },
            };
            let events = ui.hub.snapshot();
            let chosen = events
                .iter()
                .filter(|s| filter.as_ref().is_none_or(|f| f.matches(&s.event)));
            if path == "/export.jsonl" {
                let body = export::record(chosen, ui.hub.redaction());
                respond_download(&mut stream, "application/x-ndjson", "wscope.jsonl", &body).await
            } else {
                let body = export::har(chosen);
                respond_download(&mut stream, "application/json", "wscope.har", &body).await
            }
        }
        "/ws" => {
            if !ui
                .access
                .origin_is_ours(request.header("origin"), request.header("host"))
            {
                let body = b"the UI's WebSocket only answers the UI's own page\n";
                return respond(&mut stream, 403, "text/plain", body).await;
            }
            page::session(ui, stream, &request, &buf[head_len..], shutdown).await;
        }
        _ => respond(&mut stream, 404, "text/plain", b"not found\n").await,
    }
}

impl Ui {
    fn actions(&self) -> bool {
        matches!(
            &self.mode,
            Mode::Live {
                controls: Some(_),
                ..
            }
        )
    }
}

/// `a=1&b=x%20y` into pairs, percent-decoded (`+` is a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-store\r\nX-Frame-Options: DENY\r\n";

async fn respond(stream: &mut TcpStream, status: u16, kind: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{SECURITY_HEADERS}Connection: close\r\n\r\n",
        wscope_proto::handshake::reason_phrase(status),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

/// The token (or `--open`'s code) for the cookie, then on to `/` so the
/// token leaves the address bar. A page that refreshes itself rather
/// than a 303: the cookie is SameSite=Strict, and a browser withholds it
/// from a redirect chain another site (or a file) started; the refresh is
/// a navigation of this origin's own.
async fn exchange(stream: &mut TcpStream, access: &Access) {
    // The icon link keeps the browser from asking for /favicon.ico (a
    // 404 in the console) while it follows the refresh.
    let body = b"<!doctype html>\n<meta charset=\"utf-8\">\n<link rel=\"icon\" href=\"data:,\">\n<meta http-equiv=\"refresh\" content=\"0;url=/\">\n<title>wscope</title>\n<p><a href=\"/\">Continue to the wscope UI</a></p>\n";
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n{}{SECURITY_HEADERS}Connection: close\r\n\r\n",
        body.len(),
        access.set_cookie(),
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

async fn respond_download(stream: &mut TcpStream, kind: &str, name: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Length: {}\r\n{SECURITY_HEADERS}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Record files (from --record), packet captures (pcap, pcapng) or HAR
    /// files, shown together in the order given; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Address for the web UI.
    #[arg(long, short, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub ui: UiOptions,

    #[command(flatten)]
    pub redact: RedactArgs,

    /// TLS key log (NSS format, as SSLKEYLOGFILE writes it) to decrypt
    /// wss:// connections in captures; repeatable. Decryption Secrets
    /// Blocks inside a pcapng are used as well.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            parse_query("token=a%2Bb&filter=dir+%3D%3D+c2s"),
            [
                ("token".to_owned(), "a+b".to_owned()),
                ("filter".to_owned(), "dir == c2s".to_owned())
            ]
        );
    }
}
