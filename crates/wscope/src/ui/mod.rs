//! The web UI: a small HTTP server for the page (embedded assets), its
//! WebSocket (events out, filters and actions in), and exports. docs/UI.md
//! is the contract with the page and the security model.
//!
//! Every request needs the token printed with the URL; the WebSocket also
//! needs the page's own Origin, and every request a Host that names this
//! server (so neither another site nor DNS rebinding can reach it).

mod export;
pub mod hub;
mod page;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use self::hub::Hub;
use crate::http_io::read_request;
use crate::pipeline::Events;
use crate::proxy::Controls;

pub use self::hub::UiSink;

/// What a UI serves.
pub struct Ui {
    token: String,
    port: u16,
    /// Any Host is accepted (`--ui-allow-remote`): the token is the key.
    any_host: bool,
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
pub struct Listen {
    pub addr: SocketAddr,
    pub allow_remote: bool,
}

/// A random token for the URL: 128 bits, URL-safe.
fn token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Binds and serves the UI until `shutdown`; returns its URL (with the
/// token).
pub async fn start(
    listen: Listen,
    hub: Arc<Hub>,
    mode: Mode,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    if !listen.addr.ip().is_loopback() {
        if !listen.allow_remote {
            bail!(
                "--ui {} is not a loopback address; add --ui-allow-remote to expose the UI (anyone who has its URL can see every message)",
                listen.addr
            );
        }
        eprintln!(
            "wscope: warning: the UI listens on {}, reachable from other machines; its URL is the only key",
            listen.addr
        );
    }
    let listener = TcpListener::bind(listen.addr)
        .await
        .with_context(|| format!("cannot listen on {} for the UI", listen.addr))?;
    let local = listener.local_addr()?;
    let ui = Arc::new(Ui {
        token: token(),
        port: local.port(),
        any_host: !listen.addr.ip().is_loopback(),
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
    let url = format!("http://{host}:{}/?token={}", local.port(), ui.token);
    let for_tasks = shutdown.clone();
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
                _ = shutdown.wait_for(|down| *down) => return,
            }
        }
    });
    Ok(url)
}

/// The UI of a running proxy or server (`--ui`): starts it and opens it
/// when asked; returns its URL for the first line of stdout.
pub async fn start_live(
    addr: SocketAddr,
    options: &crate::cli::UiOptions,
    hub: Arc<Hub>,
    mode: Mode,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let listen = Listen {
        addr,
        allow_remote: options.ui_allow_remote,
    };
    let url = start(listen, hub, mode, shutdown).await?;
    if options.open {
        open_in_browser(&url);
    }
    Ok(url)
}

/// `wscope ui FILE...`: record files in the UI until Ctrl-C.
pub async fn run_file(args: crate::cli::UiArgs) -> anyhow::Result<()> {
    let source = args
        .files
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut inputs = crate::read::open_inputs(&args.files)?;
    inputs.keylogs(&args.keylog)?;
    // The file's events reach the UI as a live command's do: through
    // sinks that redact them first.
    let redactor = crate::outputs::redactor(&args.redact, true)?;
    let hub = Hub::new(redactor.as_ref().map(|r| r.rules().clone()));
    let mut sinks = crate::sink::Sinks::redacting(redactor);
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
    let (shutdown_tx, shutdown) = watch::channel(false);
    let listen = Listen {
        addr: args.listen,
        allow_remote: args.ui.ui_allow_remote,
    };
    let url = start(listen, hub, Mode::Offline { source }, shutdown).await?;
    println!("ui: {url}");
    use std::io::Write;
    std::io::stdout().flush()?;
    if args.ui.open {
        open_in_browser(&url);
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

/// `--open`: the platform's way of opening a URL; failing is not fatal.
pub fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(err) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("wscope: cannot open a browser ({opener}: {err}); open the URL yourself");
    }
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
    if !ui.host_is_ours(request.header("host")) {
        return respond(&mut stream, 421, "text/plain", b"not this server\n").await;
    }
    if request.method != "GET" {
        return respond(&mut stream, 405, "text/plain", b"GET only\n").await;
    }
    if param("token") != Some(ui.token.as_str()) {
        let body = b"this page needs the token from the URL wscope printed\n";
        return respond(&mut stream, 401, "text/plain", body).await;
    }
    match path {
        "/" | "/index.html" => {
            let html = page::INDEX.replace("{{TOKEN}}", &ui.token);
            respond(
                &mut stream,
                200,
                "text/html; charset=utf-8",
                html.as_bytes(),
            )
            .await
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
            if !ui.origin_is_ours(request.header("origin"), request.header("host")) {
                let body = b"the UI's WebSocket only answers the UI's own page\n";
                return respond(&mut stream, 403, "text/plain", body).await;
            }
            page::session(ui, stream, &request, &buf[head_len..], shutdown).await;
        }
        _ => respond(&mut stream, 404, "text/plain", b"not found\n").await,
    }
}

impl Ui {
    /// The names this server answers to: its loopback names with its port
    /// (a page reached through another name is refused: DNS rebinding).
    fn host_is_ours(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return false };
        let port = self.port.to_string();
        let Some((name, p)) = host.trim().rsplit_once(':') else {
            return false;
        };
        p == port
            && matches!(
                name.to_ascii_lowercase().as_str(),
                "127.0.0.1" | "localhost" | "[::1]"
            )
            || self.any_host
    }

    /// A WebSocket from the page itself: its Origin is this server.
    fn origin_is_ours(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        match (origin, host) {
            (Some(origin), Some(host)) => {
                origin.eq_ignore_ascii_case(&format!("http://{}", host.trim()))
            }
            _ => false,
        }
    }

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

async fn respond_download(stream: &mut TcpStream, kind: &str, name: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Length: {}\r\n{SECURITY_HEADERS}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ui() -> Ui {
        Ui {
            token: "t".to_owned(),
            port: 4000,
            any_host: false,
            hub: Hub::new(None),
            mode: Mode::Offline {
                source: "x".to_owned(),
            },
        }
    }

    #[test]
    fn only_our_own_names_and_origin() {
        let ui = ui();
        assert!(ui.host_is_ours(Some("127.0.0.1:4000")));
        assert!(ui.host_is_ours(Some("localhost:4000")));
        assert!(ui.host_is_ours(Some("[::1]:4000")));
        assert!(!ui.host_is_ours(Some("evil.test:4000")));
        assert!(!ui.host_is_ours(Some("127.0.0.1:4001")));
        assert!(!ui.host_is_ours(None));
        assert!(ui.origin_is_ours(Some("http://127.0.0.1:4000"), Some("127.0.0.1:4000")));
        assert!(!ui.origin_is_ours(Some("http://evil.test"), Some("127.0.0.1:4000")));
        assert!(!ui.origin_is_ours(None, Some("127.0.0.1:4000")));
    }

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
