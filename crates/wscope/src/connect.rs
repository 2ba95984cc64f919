//! `wscope connect`: a client. Prints what arrives, sends stdin lines as
//! text messages, or echoes every message back (`--echo`).

use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use url::Url;
use wscope_proto::deflate;
use wscope_proto::handshake::{ClientRequest, Parsed, Response, generate_key};
use wscope_proto::{CloseCode, ClosePayload, OpCode, Role};

use crate::cli::ConnectArgs;
use crate::connection::{Connection, Incoming, Stats};

/// Exit statuses scripts can rely on (also in `wscope connect --help`).
pub mod exit {
    pub const NORMAL: i32 = 0;
    pub const CONNECT_FAILED: i32 = 3;
    pub const HANDSHAKE_FAILED: i32 = 4;
    pub const CLOSED_WITH_ERROR: i32 = 5;
    pub const ABNORMAL: i32 = 6;
}

/// Where the messages to send come from, and how to show traffic.
pub struct Session {
    /// Lines to send as text messages; `None` sends nothing (`--echo`).
    pub lines: Option<mpsc::Receiver<String>>,
    /// Mark lines with `>` (sent) and `<` (received), for people watching.
    pub arrows: bool,
}

/// Runs the client on stdin; returns the process exit status.
pub async fn run(args: ConnectArgs) -> anyhow::Result<i32> {
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

/// Runs the client with messages from `session`.
pub async fn run_session(args: ConnectArgs, session: Session) -> anyhow::Result<i32> {
    let url = Url::parse(&args.url).with_context(|| format!("{:?} is not a URL", args.url))?;
    match url.scheme() {
        "ws" => {}
        "wss" => return Err(anyhow!("wss:// (TLS) is not supported yet; use ws://")),
        other => return Err(anyhow!("unsupported scheme {other}:// (use ws://)")),
    }
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("{url} has no host"))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);

    let connecting = tokio::time::timeout(
        args.connect_timeout,
        TcpStream::connect((host.as_str(), port)),
    );
    let mut stream = match connecting.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            eprintln!("wscope: cannot connect to {host}:{port}: {err}");
            return Ok(exit::CONNECT_FAILED);
        }
        Err(_) => {
            eprintln!(
                "wscope: no TCP connection to {host}:{port} within {:?}",
                args.connect_timeout
            );
            return Ok(exit::CONNECT_FAILED);
        }
    };
    let _ = stream.set_nodelay(true);

    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("header {header:?} should look like 'Name: value'"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
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
    stream.write_all(&out).await?;

    let mut buf = Vec::with_capacity(4096);
    let handshake =
        tokio::time::timeout(args.connect_timeout, read_response(&mut stream, &mut buf));
    let (response, head_len) = match handshake.await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(err)) => {
            eprintln!("wscope: handshake failed: {err}");
            return Ok(exit::HANDSHAKE_FAILED);
        }
        Err(_) => {
            eprintln!(
                "wscope: no handshake response within {:?}",
                args.connect_timeout
            );
            return Ok(exit::HANDSHAKE_FAILED);
        }
    };
    let upgraded = match response.validate_upgrade(&request.key, &request.protocols) {
        Ok(upgraded) => upgraded,
        Err(err) => {
            eprintln!("wscope: {err}");
            let body = &buf[head_len..];
            if response.status != 101 && !body.is_empty() {
                eprintln!("{}", String::from_utf8_lossy(body).trim_end());
            }
            return Ok(exit::HANDSHAKE_FAILED);
        }
    };
    let params = match deflate::client_negotiate(&offers, &upgraded.extensions) {
        Ok(params) => params,
        Err(err) => {
            eprintln!("wscope: handshake failed: {err}");
            return Ok(exit::HANDSHAKE_FAILED);
        }
    };
    tracing::info!(url = %url, compress = params.is_some(), protocol = ?upgraded.protocol, "open");

    let mut conn = Connection::new(
        stream,
        Role::Client,
        &buf[head_len..],
        params,
        args.limits.max_message,
    );
    let mut stdin_open = session.lines.is_some();
    let (_, mut lines) = mpsc::channel::<String>(1);
    if let Some(session_lines) = session.lines {
        lines = session_lines;
    }
    // Set when stdin has ended: the close goes out once the connection has
    // been quiet for `--wait`.
    let mut linger: Option<tokio::time::Instant> = None;
    let mut stdout = tokio::io::stdout();
    let started = std::time::Instant::now();

    let status = loop {
        let incoming = tokio::select! {
            incoming = conn.next() => incoming,
            line = lines.recv(), if stdin_open => {
                match line {
                    Some(line) => {
                        conn.send(OpCode::Text, line.as_bytes()).await?;
                        if session.arrows {
                            stdout.write_all(format!("> {line}\n").as_bytes()).await?;
                        }
                    }
                    None => {
                        stdin_open = false;
                        linger = Some(tokio::time::Instant::now() + args.wait);
                    }
                }
                continue;
            }
            _ = sleep_until(linger), if linger.is_some() && !conn.close_sent() => {
                // stdin ended and the replies have stopped: close, and keep
                // printing until the server answers the close.
                conn.close(Some(CloseCode::NORMAL), "").await?;
                continue;
            }
            _ = tokio::signal::ctrl_c() => {
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
                if !args.quiet {
                    if session.arrows {
                        stdout.write_all(b"< ").await?;
                    }
                    print_message(&mut stdout, message.opcode, &message.data).await?;
                }
            }
            Ok(Incoming::Ping(payload)) => tracing::debug!(len = payload.len(), "ping (answered)"),
            Ok(Incoming::Pong(payload)) => tracing::debug!(len = payload.len(), "pong"),
            Ok(Incoming::Close(close)) => {
                conn.finish(Duration::from_secs(2)).await;
                report_close("server", &close, started, conn.stats());
                break close_status(&close);
            }
            Ok(Incoming::Eof) => {
                eprintln!(
                    "wscope: connection dropped without a close frame: 1006 ({}) after {:.1?}",
                    CloseCode::ABNORMAL.meaning(),
                    started.elapsed()
                );
                break exit::ABNORMAL;
            }
            Err(err) => {
                conn.finish(Duration::from_secs(2)).await;
                eprintln!("wscope: connection failed: {err}");
                break exit::ABNORMAL;
            }
        }
    };
    stdout.flush().await?;
    Ok(status)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn close_status(close: &ClosePayload) -> i32 {
    match close.code {
        None | Some(CloseCode::NORMAL) => exit::NORMAL,
        Some(_) => exit::CLOSED_WITH_ERROR,
    }
}

fn report_close(by: &str, close: &ClosePayload, started: std::time::Instant, stats: Stats) {
    let elapsed = started.elapsed();
    let counts = format!(
        "{} messages / {} bytes sent, {} messages / {} bytes received",
        stats.messages_out, stats.bytes_out, stats.messages_in, stats.bytes_in
    );
    let reason = if close.reason.is_empty() {
        String::new()
    } else {
        format!(", reason {:?}", close.reason)
    };
    match close.code {
        Some(code) => eprintln!(
            "wscope: closed by {by}: {code}{reason} after {elapsed:.1?} ({counts}): {}",
            code.meaning()
        ),
        None => {
            eprintln!("wscope: closed by {by} without a status code after {elapsed:.1?} ({counts})")
        }
    }
}

async fn print_message(
    stdout: &mut tokio::io::Stdout,
    opcode: OpCode,
    data: &[u8],
) -> std::io::Result<()> {
    if opcode == OpCode::Text {
        stdout.write_all(data).await?;
    } else {
        let mut hex = String::with_capacity(data.len() * 2 + 16);
        hex.push_str("<binary> ");
        for byte in data {
            use std::fmt::Write;
            let _ = write!(hex, "{byte:02x}");
        }
        stdout.write_all(hex.as_bytes()).await?;
    }
    stdout.write_all(b"\n").await?;
    stdout.flush().await
}

async fn read_response(
    stream: &mut TcpStream,
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
                "server closed the connection before answering the upgrade"
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
