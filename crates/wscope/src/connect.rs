//! `wscope connect`: a client. Sends stdin lines (or echoes, `--echo`) and
//! reports everything that happens as events, which the sinks print
//! (human, `--json`) or record (`--record`).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use url::Url;
use wscope_events::{
    Close, Closed, ClosedBy, Direction, Event, EventKind, Frame, HandshakeFailed, Head, Message,
    Open, Payload, Timings,
};
use wscope_proto::deflate;
use wscope_proto::handshake::{ClientRequest, Parsed, Request, Response, generate_key, status};
use wscope_proto::{CloseCode, OpCode, Role};

use crate::cli::ConnectArgs;
use crate::connection::{ConnError, Connection, Incoming, Stream};
use crate::sink::{Human, JsonLines, Record, Sinks};
use crate::tls;

/// Exit statuses scripts can rely on (also in `wscope connect --help`).
pub mod exit {
    pub const NORMAL: i32 = 0;
    pub const CONNECT_FAILED: i32 = 3;
    pub const HANDSHAKE_FAILED: i32 = 4;
    pub const CLOSED_WITH_ERROR: i32 = 5;
    pub const ABNORMAL: i32 = 6;
    pub const PROTOCOL_ERROR: i32 = 7;
    pub const TLS_FAILED: i32 = 8;
}

/// The connection id in events: one connection per run, for now.
const CONN: &str = "c1";

/// Where the messages to send come from, and how to show traffic.
pub struct Session {
    /// Lines to send as text messages; `None` sends nothing (`--echo`).
    pub lines: Option<mpsc::Receiver<String>>,
    /// Mark lines with `>` (sent) and `<` (received), for people watching.
    pub arrows: bool,
}

/// Runs the client on stdin; returns the process exit status.
pub async fn run(args: ConnectArgs) -> anyhow::Result<i32> {
    if !args.send.is_empty() {
        // --send replaces stdin: the messages, then the input ends.
        let (tx, lines) = mpsc::channel::<String>(args.send.len());
        for message in &args.send {
            tx.try_send(message.clone())
                .expect("the channel holds exactly the --send messages");
        }
        drop(tx);
        return run_session(
            args,
            Session {
                lines: Some(lines),
                arrows: false,
            },
        )
        .await;
    }
    let lines = (!args.echo).then(|| {
        let (lines_tx, lines) = mpsc::channel::<String>(64);
        tokio::spawn(async move {
            let mut stdin = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = stdin.next_line().await {
                if lines_tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        lines
    });
    run_session(
        args,
        Session {
            lines,
            arrows: false,
        },
    )
    .await
}

fn sinks_for(args: &ConnectArgs, arrows: bool) -> anyhow::Result<Sinks> {
    let mut sinks = Sinks::default();
    if args.json {
        sinks.add(
            "--json",
            Box::new(JsonLines::new(args.max_payload, !args.no_redact)),
        );
    } else {
        sinks.add(
            "terminal",
            Box::new(Human {
                arrows,
                quiet: args.quiet,
                show_control: args.show_control,
                timestamps: args.timestamps,
                pretty: args.pretty,
            }),
        );
    }
    if let Some(path) = &args.record {
        let record = Record::create(path, !args.no_redact, args.max_payload)
            .with_context(|| format!("cannot create record file {}", path.display()))?;
        sinks.add("--record", Box::new(record));
    }
    Ok(sinks)
}

/// Runs the client with messages from `session`.
pub async fn run_session(args: ConnectArgs, session: Session) -> anyhow::Result<i32> {
    let url = Url::parse(&args.url).with_context(|| format!("{:?} is not a URL", args.url))?;
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
        .then(|| tls::client_config(&args.tls_options()))
        .transpose()?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("{url} has no host"))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut sinks = sinks_for(&args, session.arrows)?;
    let emit = |sinks: &mut Sinks, dir: Option<Direction>, kind: EventKind| {
        sinks.emit(&Event::now(CONN, dir, kind));
    };

    let started = Instant::now();
    let connecting = tokio::time::timeout(
        args.connect_timeout,
        TcpStream::connect((host.as_str(), port)),
    );
    let tcp = match connecting.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            let message = format!("cannot connect to {host}:{port}: {err}");
            emit(&mut sinks, None, EventKind::Error { message });
            return Ok(exit::CONNECT_FAILED);
        }
        Err(_) => {
            let message = format!(
                "no TCP connection to {host}:{port} within {:?}",
                args.connect_timeout
            );
            emit(&mut sinks, None, EventKind::Error { message });
            return Ok(exit::CONNECT_FAILED);
        }
    };
    let tcp_us = started.elapsed().as_micros() as u64;
    let _ = tcp.set_nodelay(true);
    let client_addr = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let server_addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut tls_us = None;
    let mut stream: Box<dyn Stream> = match tls_config {
        None => Box::new(tcp),
        Some(config) => {
            let tls_started = Instant::now();
            let handshake =
                tokio::time::timeout(args.connect_timeout, tls::connect(tcp, &host, config));
            match handshake.await {
                Ok(Ok(stream)) => {
                    tls_us = Some(tls_started.elapsed().as_micros() as u64);
                    Box::new(stream)
                }
                Ok(Err(err)) => {
                    let message = tls::describe(&err, &host);
                    emit(&mut sinks, None, EventKind::Error { message });
                    return Ok(exit::TLS_FAILED);
                }
                Err(_) => {
                    let message = format!(
                        "no TLS handshake with {host} within {:?}",
                        args.connect_timeout
                    );
                    emit(&mut sinks, None, EventKind::Error { message });
                    return Ok(exit::TLS_FAILED);
                }
            }
        }
    };

    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("header {header:?} should look like 'Name: value'"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if let Some(auth) = &args.auth {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(auth);
        headers.push(("Authorization".to_owned(), format!("Basic {token}")));
    }
    let offers = if args.compress {
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
        protocols: args.subprotocols.clone(),
        extensions: offers.clone(),
        origin: args.origin.clone(),
        headers,
    };
    let mut out = Vec::new();
    request.encode(&mut out);
    let request_head = head_of_request(&out);
    stream.write_all(&out).await?;

    let mut buf = Vec::with_capacity(4096);
    let upgrade_started = Instant::now();
    let handshake =
        tokio::time::timeout(args.connect_timeout, read_response(&mut stream, &mut buf));
    let failed = |status: Option<u16>, response: Option<Head>, body: String, diagnosis: String| {
        EventKind::HandshakeFailed(HandshakeFailed {
            url: url.to_string(),
            request: Some(request_head.clone()),
            response,
            status,
            body,
            diagnosis,
        })
    };
    let (response, head_len) = match handshake.await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(err)) => {
            emit(
                &mut sinks,
                None,
                failed(None, None, String::new(), err.to_string()),
            );
            return Ok(exit::HANDSHAKE_FAILED);
        }
        Err(_) => {
            let why = format!("no handshake response within {:?}", args.connect_timeout);
            emit(&mut sinks, None, failed(None, None, String::new(), why));
            return Ok(exit::HANDSHAKE_FAILED);
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
                    format!("{err}: {}", status::diagnose(response.status)),
                )
            };
            let kind = failed(Some(response.status), Some(response_head), body, diagnosis);
            emit(&mut sinks, None, kind);
            return Ok(exit::HANDSHAKE_FAILED);
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
            tcp_us: Some(tcp_us),
            tls_us,
            upgrade_us: Some(upgrade_started.elapsed().as_micros() as u64),
            ..Timings::default()
        },
    };
    emit(&mut sinks, None, EventKind::Open(open));

    let mut conn = Connection::new(
        stream,
        Role::Client,
        &buf[head_len..],
        params,
        args.limits.max_message,
    );
    let mut lines_open = session.lines.is_some();
    let (_, mut lines) = mpsc::channel::<String>(1);
    if let Some(session_lines) = session.lines {
        lines = session_lines;
    }
    // Set when stdin has ended: the close goes out once the connection has
    // been quiet for `--wait`.
    let mut linger: Option<tokio::time::Instant> = None;
    let mut we_closed_first = false;
    let opened = Instant::now();
    let send_opcode = if args.binary {
        OpCode::Binary
    } else {
        OpCode::Text
    };
    let mut received = 0u64;
    let mut pings = args.ping_interval.map(|every| {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut ping_seq = 0u64;
    // The ping awaiting its pong: its payload and when it left.
    let mut ping_out: Option<([u8; 8], tokio::time::Instant)> = None;

    let (by, clean, code, reason, status) = loop {
        let incoming = tokio::select! {
            incoming = conn.next() => incoming,
            line = lines.recv(), if lines_open => {
                match line {
                    Some(line) => {
                        conn.send(send_opcode, line.as_bytes()).await?;
                        if sinks.wants_payloads() {
                            let message = sent_message(send_opcode, line.as_bytes());
                            emit(&mut sinks, Some(Direction::ClientToServer), EventKind::Message(message));
                        }
                    }
                    None => {
                        lines_open = false;
                        linger = Some(tokio::time::Instant::now() + args.wait);
                    }
                }
                continue;
            }
            _ = sleep_until(linger), if linger.is_some() && !conn.close_sent() => {
                // Input ended and the replies have stopped: close, and keep
                // reading until the server answers the close.
                we_closed_first = true;
                conn.close(Some(CloseCode::NORMAL), "").await?;
                continue;
            }
            _ = tick(&mut pings), if pings.is_some() && !conn.close_sent() => {
                ping_seq += 1;
                let payload = ping_seq.to_be_bytes();
                conn.send_control(OpCode::Ping, &payload).await?;
                emit(&mut sinks, Some(Direction::ClientToServer), control_frame(OpCode::Ping, &payload));
                if ping_out.is_none() {
                    ping_out = Some((payload, tokio::time::Instant::now()));
                }
                continue;
            }
            _ = sleep_until(ping_out.zip(args.ping_timeout).map(|((_, sent), timeout)| sent + timeout)), if ping_out.is_some() && args.ping_timeout.is_some() => {
                let timeout = args.ping_timeout.unwrap_or_default();
                let message = format!("no pong within {timeout:?}: the server or the network stopped answering; closing");
                emit(&mut sinks, None, EventKind::Error { message });
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(Some(CloseCode::GOING_AWAY), "ping timeout")).await;
                break (ClosedBy::Client, false, CloseCode::ABNORMAL, "no pong (ping timeout)".to_owned(), exit::ABNORMAL);
            }
            _ = tokio::signal::ctrl_c() => {
                we_closed_first = !conn.close_sent();
                conn.close(Some(CloseCode::GOING_AWAY), "client interrupted").await?;
                continue;
            }
        };
        match incoming {
            Ok(Incoming::Message(message)) => {
                if let Some(deadline) = linger.as_mut() {
                    *deadline = tokio::time::Instant::now() + args.wait;
                }
                if args.echo {
                    conn.send(message.opcode, &message.data).await?;
                }
                if sinks.wants_payloads() {
                    let event = Message::capture(&message, usize::MAX);
                    emit(
                        &mut sinks,
                        Some(Direction::ServerToClient),
                        EventKind::Message(event),
                    );
                }
                if args.echo && sinks.wants_payloads() {
                    let echoed = sent_message(message.opcode, &message.data);
                    emit(
                        &mut sinks,
                        Some(Direction::ClientToServer),
                        EventKind::Message(echoed),
                    );
                }
                received += 1;
                if args.expect.is_some_and(|n| received >= n) && !conn.close_sent() {
                    we_closed_first = true;
                    conn.close(Some(CloseCode::NORMAL), "").await?;
                }
            }
            Ok(Incoming::Ping(payload)) => {
                emit(
                    &mut sinks,
                    Some(Direction::ServerToClient),
                    control_frame(OpCode::Ping, &payload),
                );
            }
            Ok(Incoming::Pong(payload)) => {
                emit(
                    &mut sinks,
                    Some(Direction::ServerToClient),
                    control_frame(OpCode::Pong, &payload),
                );
                if let Some((expected, sent)) = ping_out {
                    if payload[..] == expected[..] {
                        ping_out = None;
                        let text = format!("pong: round trip {:.2?}", sent.elapsed());
                        emit(&mut sinks, None, EventKind::Note { text });
                    }
                }
            }
            Ok(Incoming::Close(close)) => {
                let code = close.code.unwrap_or(CloseCode::NO_STATUS);
                let info = Close::new(close.code, &close.reason);
                emit(
                    &mut sinks,
                    Some(Direction::ServerToClient),
                    EventKind::Close(info),
                );
                conn.finish(Duration::from_secs(2)).await;
                let by = if we_closed_first {
                    ClosedBy::Client
                } else {
                    ClosedBy::Server
                };
                let status = match close.code {
                    None | Some(CloseCode::NORMAL) => exit::NORMAL,
                    Some(_) => exit::CLOSED_WITH_ERROR,
                };
                break (by, true, code, close.reason, status);
            }
            Ok(Incoming::Eof) => {
                break (
                    ClosedBy::Unknown,
                    false,
                    CloseCode::ABNORMAL,
                    String::new(),
                    exit::ABNORMAL,
                );
            }
            Err(ConnError::Proto(err)) => {
                conn.finish(Duration::from_secs(2)).await;
                let message = format!(
                    "the server broke the protocol, so wscope closed the connection: {err}"
                );
                emit(&mut sinks, None, EventKind::Error { message });
                let code = crate::connection::close_code_for(&err);
                break (
                    ClosedBy::Client,
                    false,
                    code,
                    err.to_string(),
                    exit::PROTOCOL_ERROR,
                );
            }
            Err(ConnError::Io(err)) => {
                let message = format!("connection error: {err}");
                emit(&mut sinks, None, EventKind::Error { message });
                break (
                    ClosedBy::Unknown,
                    false,
                    CloseCode::ABNORMAL,
                    String::new(),
                    exit::ABNORMAL,
                );
            }
        }
    };
    let stats = conn.stats();
    let closed = Closed {
        by,
        clean,
        code: code.0,
        reason,
        meaning: format!("{}: {}", code.name(), code.meaning()),
        duration_us: opened.elapsed().as_micros() as u64,
        messages_c2s: stats.messages_out,
        messages_s2c: stats.messages_in,
        bytes_c2s: stats.bytes_out,
        bytes_s2c: stats.bytes_in,
    };
    emit(&mut sinks, None, EventKind::Closed(closed));
    Ok(status)
}

/// A control frame (ping or pong) as an event.
fn control_frame(opcode: OpCode, payload: &[u8]) -> EventKind {
    EventKind::Frame(Frame {
        fin: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: opcode.name().to_owned(),
        opcode_bits: opcode.bits(),
        mask: None,
        payload: Payload::capture(payload, true, usize::MAX),
        violations: Vec::new(),
    })
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A message we sent, as an event.
fn sent_message(opcode: OpCode, data: &[u8]) -> Message {
    let message = wscope_proto::message::Message {
        opcode,
        data: data.to_vec(),
        compressed: false,
        frames: 1,
        wire_len: data.len() as u64,
    };
    Message::capture(&message, usize::MAX)
}

/// The request head we wrote, read back so the event shows it as sent.
fn head_of_request(bytes: &[u8]) -> Head {
    match Request::parse(bytes) {
        Ok(Parsed::Complete(request, _)) => Head {
            line: format!(
                "{} {} HTTP/1.{}",
                request.method, request.target, request.version
            ),
            headers: request.headers,
        },
        _ => Head::default(),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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
