//! `wscope serve`: a WebSocket server that behaves, or misbehaves, on
//! request: one behaviour per URL path ([`behavior`]), so a client's test
//! suite can point each case at its own path.
//!
//! Each listener (plain or TLS) accepts into one task per connection: read
//! the upgrade request, answer it as the path's handshake behaviours say
//! (refuse, check Origin, pick a subprotocol, wait), then run the session
//! ([`session`]). Every step is an event on the server's event stream
//! ([`crate::sinks::pipeline`]), which feeds the lifecycle log, the metrics and the
//! record file. Ctrl-C closes every open connection with 1001.
//!
//! With `--replay FILE` the server is a mock instead: the recording is
//! read and checked before anything listens ([`crate::sources::replay::script`]),
//! and every connection, whatever its path, is answered by the recorded
//! conversation chosen for its request target, played by the session
//! through a [`crate::sources::replay::mock::Mock`].

pub mod args;
pub mod behavior;
mod hub;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use wscope_events::{EventKind, HandshakeFailed, Head, Open, Timings};
use wscope_proto::Role;
use wscope_proto::deflate;
use wscope_proto::handshake::{Request, ServerResponse, UpgradeRequest};

use self::behavior::{HandshakePlan, Plan, Reply, SessionPlan};
use self::hub::Hub;
use crate::network::connection::Connection;
use crate::network::http_io::request_head;
use crate::network::listen;
use crate::network::stream::NetStream;
use crate::sinks::emit::Events;
use crate::sinks::outputs::{self, Extras};
use crate::sinks::pipeline;
use crate::sinks::sink::Sinks;
use crate::sources::control::{self, Controls, Reach};
use crate::sources::replay::compare::Rules;
use crate::sources::replay::mock::{Mock, MockOptions};
use crate::sources::replay::script::{Script, Scripts};
use args::{MockArgs, ServeArgs};

/// How long a client has for TLS and its whole upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of one server shares.
pub struct Server {
    events: Events,
    /// `--frames`: report every data frame a client sends.
    frames: bool,
    tls: Option<TlsAcceptor>,
    hub: Arc<Hub>,
    max_message: u64,
    shutdown: watch::Receiver<bool>,
    next_id: AtomicU64,
    /// `--replay`: what every connection is answered from.
    replay: Option<Replay>,
    limit: Arc<listen::ConnectionLimit>,
    /// Open connections the UI may act on (with `--ui`).
    controls: Option<Arc<Controls>>,
}

/// The recording a mock server answers from, and how.
struct Replay {
    scripts: Scripts,
    options: Arc<MockOptions>,
}

/// How an upgrade request is to be answered.
struct Accepted {
    plan: Plan,
    upgrade: UpgradeRequest,
    protocol: Option<String>,
    /// `--replay`: the recorded conversation that answers it.
    script: Option<Arc<Script>>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything listens: a mistake starts nothing.
    outputs::check(&args.output, &outputs::SERVE)?;
    listen::raise_fd_limit();
    // A recording that cannot be served stops the server before it listens.
    let replay = if args.mock.replay.is_empty() {
        None
    } else {
        Some(load_replay(&args.mock)?)
    };
    let tls = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(crate::network::tls::server_config(cert, key)?),
        (_, _, true) => {
            let (cert, key) = crate::network::tls::self_signed()?;
            eprintln!(
                "wscope: TLS with a self-signed certificate for localhost, 127.0.0.1 and ::1: {} (key {}); clients can trust it with --ca {}",
                cert.display(),
                key.display(),
                cert.display()
            );
            Some(crate::network::tls::server_config(&cert, &key)?)
        }
        _ => None,
    };
    let listeners = listen::bind_all(&args.listen).await?;

    let outputs = outputs::build(&args.output, &outputs::SERVE, Extras::default())?;
    // Payloads are kept only for a sink that shows them (the record, --json,
    // the UI) or a filter that reads them to decide which log lines to
    // print: the log and the metrics need lengths only.
    let payload_limit = outputs.payload_limit();
    let frames = outputs.frames;
    let metrics_url = outputs.metrics.map(|(_, url)| url);
    let (events, pipeline) = pipeline::start(outputs.sinks, payload_limit)?;

    // The first line of stdout: tests and scripts read the addresses from it.
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let mut line = String::from("listening on");
    for listener in &listeners {
        line.push_str(&format!(" {scheme}://{}", listener.local_addr()?));
    }
    if let Some(url) = &metrics_url {
        line.push_str(&format!(" (metrics: {url})"));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let controls = outputs.ui.as_ref().map(|_| Arc::new(Controls::default()));
    if let Some(ui) = outputs.ui {
        let live = crate::sinks::ui::Mode::Live {
            source: "wscope serve".to_owned(),
            controls: controls.clone(),
            events: events.clone(),
        };
        let url = ui.start(live, shutdown_rx.clone()).await?;
        line.push_str(&format!(" (ui: {url})"));
    }
    println!("{line}");
    use std::io::Write;
    std::io::stdout().flush()?;

    let server = Arc::new(Server {
        events,
        frames,
        tls: tls.map(TlsAcceptor::from),
        hub: Arc::new(Hub::default()),
        max_message: args.limits.max_message,
        shutdown: shutdown_rx,
        next_id: AtomicU64::new(1),
        replay,
        limit: listen::ConnectionLimit::new(args.max_connections),
        controls,
    });
    listen::accept_until_shutdown(listeners, shutdown_tx, move |stream, peer| {
        let server = server.clone();
        async move { handle(stream, peer, &server).await }
    })
    .await;
    pipeline.finish().await;
    Ok(())
}

/// Reads and checks the `--replay` recording, and says on stderr what it
/// will serve.
fn load_replay(args: &MockArgs) -> anyhow::Result<Replay> {
    let name = args
        .replay
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let recording = crate::sources::replay::load(&args.replay, &args.keylog)?;
    let scripts = Scripts::new(&recording, args.conn.as_deref(), &name)?;
    const SHOWN: usize = 5;
    for script in scripts.iter().take(SHOWN) {
        eprintln!("wscope: answering from {name}: {}", script.summary());
    }
    let more = scripts.iter().count().saturating_sub(SHOWN);
    if more > 0 {
        eprintln!("wscope: ... and {more} more recorded connections (--conn picks one)");
    }
    let options = MockOptions {
        order: args.order,
        reuse: args.reuse,
        pace: args.pace,
        on_mismatch: args.on_mismatch,
        rules: Rules {
            ignore: args.ignore.clone(),
        },
    };
    Ok(Replay {
        scripts,
        options: Arc::new(options),
    })
}

/// A plain echo server on `listener` with no logs, for `wscope demo`.
pub async fn echo_server(listener: TcpListener) -> anyhow::Result<()> {
    let (events, _pipeline) = pipeline::start(Sinks::default(), 0)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = Arc::new(Server {
        events,
        frames: false,
        tls: None,
        hub: Arc::new(Hub::default()),
        max_message: wscope_proto::message::DEFAULT_MAX_MESSAGE,
        shutdown: shutdown_rx,
        next_id: AtomicU64::new(1),
        replay: None,
        limit: listen::ConnectionLimit::new(usize::MAX),
        controls: None,
    });
    listen::accept_until_shutdown(vec![listener], shutdown_tx, move |stream, peer| {
        let server = server.clone();
        async move { handle(stream, peer, &server).await }
    })
    .await;
    Ok(())
}

/// One connection, from its first byte to its end.
///
/// The handshake runs in its own boxed future, so what it needed (the
/// request, the response, its buffers) is freed before the session starts
/// instead of being held for the life of the connection.
async fn handle(tcp: tokio::net::TcpStream, peer: SocketAddr, server: &Server) {
    if let Some(opened) = Box::pin(open(tcp, peer, server)).await {
        let Opened {
            conn,
            plan,
            ctx,
            counted,
        } = opened;
        let id = ctx.id.clone();
        session::run(conn, plan, ctx).await;
        if let Some(controls) = &server.controls {
            controls.remove(&id);
        }
        drop(counted);
    }
}

/// An upgraded connection, ready for its session.
struct Opened {
    conn: Connection<NetStream>,
    plan: SessionPlan,
    ctx: session::Ctx,
    /// Its place under `--max-connections`, held until it ends.
    counted: listen::Counted,
}

/// Answers the upgrade (or refuses it, with its event); `None` when no
/// session follows.
async fn open(tcp: tokio::net::TcpStream, peer: SocketAddr, server: &Server) -> Option<Opened> {
    let id = format!("c{}", server.next_id.fetch_add(1, Ordering::Relaxed));
    let started = Instant::now();
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().ok();
    let scheme = if server.tls.is_some() { "wss" } else { "ws" };
    let failed = |status: Option<u16>,
                  request: Option<&Request>,
                  response: Option<&ServerResponse>,
                  why: String| {
        let host = request
            .and_then(|r| r.header("host"))
            .map(str::to_owned)
            .or_else(|| local.map(|a| a.to_string()))
            .unwrap_or_default();
        let target = request.map(|r| r.target.as_str()).unwrap_or("");
        EventKind::HandshakeFailed(HandshakeFailed {
            url: format!("{scheme}://{host}{target}"),
            client: Some(peer.to_string()),
            request: request.map(request_head),
            response: response.map(response_head),
            status,
            body: response
                .map(|r| String::from_utf8_lossy(&r.body).trim_end().to_owned())
                .unwrap_or_default(),
            upstream_unreachable: false,
            diagnosis: why,
        })
    };
    let counted = match server.limit.enter("serve") {
        Ok(counted) => counted,
        Err(why) => {
            // A 503 a plain client can read; a TLS client would only see
            // bytes that are not a handshake, so it is just closed.
            let mut response = None;
            if server.tls.is_none() {
                let refusal = ServerResponse::reject(503, &why, vec![]);
                let mut stream = NetStream::Plain(tcp);
                let _ = write_response(&mut stream, &refusal).await;
                let _ = stream.shutdown().await;
                response = Some(refusal);
            }
            let status = response.as_ref().map(|r| r.status);
            let event = failed(status, None, response.as_ref(), why);
            server.events.emit(&id, None, event).await;
            return None;
        }
    };
    let mut stream = match &server.tls {
        None => NetStream::Plain(tcp),
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
        {
            Ok(Ok(tls)) => NetStream::TlsServer(Box::new(tls)),
            Ok(Err(err)) => {
                let why = format!("TLS handshake failed: {err}");
                server
                    .events
                    .emit(&id, None, failed(None, None, None, why))
                    .await;
                return None;
            }
            Err(_) => {
                let why = format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                server
                    .events
                    .emit(&id, None, failed(None, None, None, why))
                    .await;
                return None;
            }
        },
    };

    let mut buf = Vec::with_capacity(4096);
    let (request, head_len) = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        crate::network::http_io::read_request(&mut stream, &mut buf),
    )
    .await
    {
        Ok(Ok(Some(parsed))) => parsed,
        // Gone before sending anything: a port check, not worth a line.
        Ok(Ok(None)) if buf.is_empty() => return None,
        Ok(Ok(None)) => {
            let why = "the client went away in the middle of its request".to_owned();
            server
                .events
                .emit(&id, None, failed(None, None, None, why))
                .await;
            return None;
        }
        Ok(Err(err)) => {
            let why = format!("not a WebSocket upgrade request: {err}");
            let response = ServerResponse::reject(400, &why, vec![]);
            let _ = write_response(&mut stream, &response).await;
            let event = failed(Some(400), None, Some(&response), why);
            server.events.emit(&id, None, event).await;
            return None;
        }
        Err(_) => {
            let why = format!("no complete request within {HANDSHAKE_TIMEOUT:?}");
            server
                .events
                .emit(&id, None, failed(None, None, None, why))
                .await;
            return None;
        }
    };

    let accepted = match &server.replay {
        Some(replay) => accept_replayed(&request, replay),
        None => accept_by_path(&request),
    };
    let Accepted {
        plan,
        upgrade,
        protocol,
        script,
    } = match accepted {
        Ok(accepted) => accepted,
        Err((response, why)) => {
            let _ = write_response(&mut stream, &response).await;
            let event = failed(Some(response.status), Some(&request), Some(&response), why);
            server.events.emit(&id, None, event).await;
            return None;
        }
    };

    if let Some(delay) = plan.handshake.delay {
        let mut shutdown = server.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return None,
        }
    }
    let deflate = deflate::server_accept(&upgrade.extensions);
    let extensions = deflate.map(|params| params.response_header());
    let response = ServerResponse::accept(&upgrade.key, protocol.as_deref(), extensions.as_deref());
    let path = request
        .target
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    // Joined before the 101 goes out: a client that has its answer is on
    // the path, and a message sent the moment after reaches it.
    let broadcast =
        (plan.session.reply == behavior::Reply::Broadcast).then(|| server.hub.join(&path));
    if write_response(&mut stream, &response).await.is_err() {
        if let Some((sender, receiver)) = broadcast {
            drop(receiver);
            server.hub.leave(&path, sender);
        }
        return None;
    }
    let host = request
        .header("host")
        .map(str::to_owned)
        .or_else(|| local.map(|a| a.to_string()))
        .unwrap_or_default();
    let protocol_selected = protocol.is_some();
    let open = Open {
        url: format!("{scheme}://{host}{}", request.target),
        client: peer.to_string(),
        server: local.map(|a| a.to_string()).unwrap_or_default(),
        request: request_head(&request),
        response: response_head(&response),
        subprotocol: protocol,
        extensions: extensions.into_iter().collect(),
        timings: Timings {
            upgrade_us: Some(started.elapsed().as_micros() as u64),
            ..Timings::default()
        },
        handshake: None,
        attempt: None,
    };
    server.events.emit(&id, None, EventKind::Open(open)).await;
    if let Some(text) = plan.ignored.clone() {
        server
            .events
            .emit(&id, None, EventKind::Note { text })
            .await;
    }
    let mock = match (&server.replay, script) {
        (Some(replay), Some(script)) => {
            let mut text = format!("answered from the recording: {}", script.summary());
            if let Some(recorded) = &script.subprotocol
                && !protocol_selected
            {
                text.push_str(&format!(
                    "; the recorded subprotocol {recorded:?} was not offered by this client, so none is selected"
                ));
            }
            server
                .events
                .emit(&id, None, EventKind::Note { text })
                .await;
            Some(Mock::new(script, Arc::clone(&replay.options)))
        }
        _ => None,
    };

    let max_message = plan.session.max_message.unwrap_or(server.max_message);
    let mut conn = Connection::new(stream, Role::Server, &buf[head_len..], deflate, max_message);
    if server.frames {
        conn.capture_frames(server.events.payload_limit);
    }
    let commands = server.controls.as_ref().map(|controls| {
        let (handle, commands) = control::channel(Reach::Client);
        controls.add(&id, handle);
        commands
    });
    let ctx = session::Ctx {
        id: id.clone(),
        path,
        events: server.events.clone(),
        hub: server.hub.clone(),
        shutdown: server.shutdown.clone(),
        broadcast,
        mock,
        commands,
    };
    Some(Opened {
        conn,
        plan: plan.session,
        ctx,
        counted,
    })
}

/// The path's behaviours: how to answer the upgrade, and what the
/// session does.
fn accept_by_path(request: &Request) -> Result<Accepted, (ServerResponse, String)> {
    let plan = behavior::parse(&request.target).map_err(|err| {
        (
            ServerResponse::reject(err.status, &err.message, vec![]),
            err.message,
        )
    })?;
    let upgrade = request.validate_upgrade().map_err(|rejection| {
        // A plain GET (a browser, curl) still gets the 426 that a client
        // behind a proxy that strips Upgrade must see, but the body also
        // says what this server offers.
        let mut body = rejection.reason.clone();
        if request.header("upgrade").is_none() {
            body.push_str("\n\nThis is wscope serve.\n");
            body.push_str(behavior::HELP);
        }
        (
            ServerResponse::reject(rejection.status, &body, rejection.headers),
            rejection.reason,
        )
    })?;
    let protocol = check_handshake(&plan.handshake, request, &upgrade)?;
    Ok(Accepted {
        plan,
        upgrade,
        protocol,
        script: None,
    })
}

/// `--replay`: any valid upgrade is answered by the recorded conversation
/// chosen for its target; the path selects, it never names a behaviour
/// or a file.
fn accept_replayed(
    request: &Request,
    replay: &Replay,
) -> Result<Accepted, (ServerResponse, String)> {
    let upgrade = request.validate_upgrade().map_err(|rejection| {
        let mut body = rejection.reason.clone();
        if request.header("upgrade").is_none() {
            body.push_str(
                "\n\nThis is wscope serve --replay: every WebSocket connection is answered from a recording.\n",
            );
        }
        (
            ServerResponse::reject(rejection.status, &body, rejection.headers),
            rejection.reason,
        )
    })?;
    let script = Arc::clone(replay.scripts.for_target(&request.target));
    // The recorded subprotocol only when this client offers it too: one
    // it did not offer would fail its handshake (RFC 6455 section 4.1).
    let protocol = script
        .subprotocol
        .clone()
        .filter(|p| upgrade.protocols.contains(p));
    // The session's own replies stay silent: the mock does the talking.
    let plan = Plan {
        session: SessionPlan {
            reply: Reply::Silent,
            ..SessionPlan::default()
        },
        ..Plan::default()
    };
    Ok(Accepted {
        plan,
        upgrade,
        protocol,
        script: Some(script),
    })
}

/// Applies the path's handshake behaviours: the refusal to send, or the
/// subprotocol to select.
fn check_handshake(
    plan: &HandshakePlan,
    request: &Request,
    upgrade: &UpgradeRequest,
) -> Result<Option<String>, (ServerResponse, String)> {
    let refuse = |status: u16, why: String, headers: Vec<(String, String)>| {
        (ServerResponse::reject(status, &why, headers), why)
    };
    if let Some(reject) = &plan.reject {
        let status = reject.status;
        let why = reject.body.clone().unwrap_or_else(|| {
            format!("wscope serve refuses this upgrade with {status}, as /reject/{status} asks")
        });
        let mut headers = Vec::new();
        match status {
            401 => headers.push(("WWW-Authenticate".into(), "Basic realm=\"wscope\"".into())),
            426 => {
                headers.push(("Upgrade".into(), "websocket".into()));
                headers.push(("Sec-WebSocket-Version".into(), "13".into()));
            }
            429 | 503 => {
                let seconds = reject.retry_after.unwrap_or(1);
                headers.push(("Retry-After".into(), seconds.to_string()));
            }
            300..=399 => {
                let location = reject.location.clone().unwrap_or_else(|| "/echo".into());
                headers.push(("Location".into(), location));
            }
            _ => {}
        }
        return Err(refuse(status, why, headers));
    }
    if let Some(allowed) = &plan.origin {
        let host = request.header("host").unwrap_or_default();
        let same_origin = [format!("http://{host}"), format!("https://{host}")];
        let allowed: Vec<&str> = if allowed.is_empty() {
            same_origin.iter().map(String::as_str).collect()
        } else {
            allowed.iter().map(String::as_str).collect()
        };
        match &upgrade.origin {
            None => {
                let why = format!(
                    "no Origin header; this path allows only {}",
                    allowed.join(", ")
                );
                return Err(refuse(403, why, vec![]));
            }
            Some(origin) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) => {
                let why = format!(
                    "origin {origin} is not allowed; this path allows only {}",
                    allowed.join(", ")
                );
                return Err(refuse(403, why, vec![]));
            }
            Some(_) => {}
        }
    }
    for required in &plan.require_headers {
        match (request.header(&required.name), &required.value) {
            (None, _) => {
                let why = format!("the {} header is required", required.name);
                return Err(refuse(required.status, why, vec![]));
            }
            // The expected value is not repeated: it may be a secret.
            (Some(value), Some(expected)) if value != expected => {
                let why = format!(
                    "the {} header does not have the expected value",
                    required.name
                );
                return Err(refuse(required.status, why, vec![]));
            }
            _ => {}
        }
    }
    match &plan.subprotocol {
        None => Ok(None),
        Some(wanted) => {
            if wanted.force || upgrade.protocols.contains(&wanted.name) {
                Ok(Some(wanted.name.clone()))
            } else {
                let offered = if upgrade.protocols.is_empty() {
                    "none".to_owned()
                } else {
                    upgrade.protocols.join(", ")
                };
                let why = format!(
                    "this path requires subprotocol {:?}; the client offered: {offered}",
                    wanted.name
                );
                Err(refuse(400, why, vec![]))
            }
        }
    }
}

fn response_head(response: &ServerResponse) -> Head {
    Head {
        line: format!("HTTP/1.1 {} {}", response.status, response.reason),
        headers: response.headers.clone(),
    }
}

async fn write_response(stream: &mut NetStream, response: &ServerResponse) -> std::io::Result<()> {
    let mut out = Vec::new();
    response.encode(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await
}
