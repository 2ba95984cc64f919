//! Many idle WebSocket clients at once: the load `scripts/memory` measures
//! `wscope serve` and `wscope proxy` under.
//!
//! Usage: idle_clients ws[s]://HOST:PORT/PATH COUNT [--deflate] [--messages N]
//!
//! With wss:// any server certificate is accepted: this is a load client
//! for servers on loopback with a self-signed certificate.
//!
//! Opens COUNT connections (offering permessage-deflate as browsers do with
//! `--deflate`), sends N messages on each and waits for each echo, then
//! prints `ready COUNT` and holds them, sending nothing, until a line (or the
//! end) arrives on stdin; then closes them all with 1000, waits for the
//! server's close, and prints `closed`. Any failure ends the run with a
//! message and status 1, so a script never measures half a load.
//!
//! It is wscope's own client (the sans-IO handshake and `Connection`)
//! because no client the workspace depends on speaks permessage-deflate.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsConnector;
use wscope::network::connection::{Connection, Incoming};
use wscope_proto::handshake::{ClientRequest, Parsed, Response, generate_key};
use wscope_proto::{CloseCode, OpCode, Role, deflate};

/// Handshakes in flight at once: enough to open 5,000 in a few seconds
/// without overflowing the server's accept backlog.
const OPENING_AT_ONCE: usize = 100;
const TIMEOUT: Duration = Duration::from_secs(20);

/// A plain or a TLS stream.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = Box<dyn Io>;

struct Args {
    /// With wss://: the TLS client (accepting any certificate).
    tls: Option<TlsConnector>,
    host: String,
    addr: String,
    target: String,
    count: usize,
    deflate: bool,
    messages: usize,
}

fn args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: idle_clients URL COUNT [--deflate] [--messages N]")?;
    let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
        let options = wscope::network::tls::TlsOptions {
            insecure: true,
            ..Default::default()
        };
        let config = wscope::network::tls::client_config(&options).map_err(|e| e.to_string())?;
        (Some(TlsConnector::from(config)), rest)
    } else {
        let rest = url
            .strip_prefix("ws://")
            .ok_or("only ws:// and wss:// URLs")?;
        (None, rest)
    };
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    let count = args
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or("COUNT should be a number")?;
    let mut parsed = Args {
        tls,
        host: addr.to_owned(),
        addr: addr.to_owned(),
        target: format!("/{path}"),
        count,
        deflate: false,
        messages: 0,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--deflate" => parsed.deflate = true,
            "--messages" => {
                parsed.messages = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--messages takes a number")?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

/// A JSON text of about 1 KiB that changes from message to message, as an
/// application's updates do: compressible, not trivially.
fn message(connection: usize, n: usize) -> String {
    let items: Vec<String> = (0..24)
        .map(|i| {
            format!(
                r#"{{"id":{},"price":{}.{:02}}}"#,
                i,
                (connection + n * i) % 997,
                i
            )
        })
        .collect();
    format!(
        r#"{{"type":"update","connection":{connection},"seq":{n},"items":[{}]}}"#,
        items.join(",")
    )
}

async fn open(args: &Args) -> Result<Connection<Stream>, String> {
    let tcp = TcpStream::connect(&args.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", args.addr))?;
    let mut stream: Stream = match &args.tls {
        Some(connector) => {
            let host = args.host.rsplit_once(':').map_or(&*args.host, |(h, _)| h);
            let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {}: {e}", args.addr))?;
            Box::new(tls)
        }
        None => Box::new(tcp),
    };
    let offers = if args.deflate {
        deflate::client_offers()
    } else {
        Vec::new()
    };
    let request = ClientRequest {
        host: args.host.clone(),
        target: args.target.clone(),
        key: generate_key(rand::random()),
        extensions: offers.clone(),
        ..ClientRequest::default()
    };
    let mut out = Vec::new();
    request.encode(&mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    let (response, head_len) = loop {
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the server closed during the handshake".into());
        }
        match Response::parse(&buf).map_err(|e| e.to_string())? {
            Parsed::Complete(response, len) => break (response, len),
            Parsed::Incomplete => {}
        }
    };
    let upgraded = response
        .validate_upgrade(&request.key, &[])
        .map_err(|e| e.to_string())?;
    let params =
        deflate::client_negotiate(&offers, &upgraded.extensions).map_err(|e| e.to_string())?;
    if args.deflate && params.is_none() {
        return Err("the server did not accept permessage-deflate".into());
    }
    Ok(Connection::new(
        stream,
        Role::Client,
        &buf[head_len..],
        params,
        1 << 20,
    ))
}

async fn exchange(conn: &mut Connection<Stream>, id: usize, messages: usize) -> Result<(), String> {
    for n in 0..messages {
        let text = message(id, n);
        conn.send(OpCode::Text, text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match conn.next().await.map_err(|e| e.to_string())? {
                Incoming::Message(echo) if echo.data == text.as_bytes() => break,
                Incoming::Message(_) => return Err("the echo differs from the message".into()),
                Incoming::Ping(_) | Incoming::Pong(_) | Incoming::DataFrame(..) => {}
                Incoming::Close(_) | Incoming::Eof => return Err("closed before the echo".into()),
            }
        }
    }
    Ok(())
}

async fn close(conn: &mut Connection<Stream>) -> Result<(), String> {
    conn.close(Some(CloseCode::NORMAL), "")
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match conn.next().await {
            Ok(Incoming::Close(_)) | Ok(Incoming::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    conn.finish(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(args) => Arc::new(args),
        Err(err) => {
            eprintln!("idle_clients: {err}");
            std::process::exit(2);
        }
    };
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let (release, released) = watch::channel(false);
    let mut tasks = Vec::with_capacity(args.count);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(args.count);
    for id in 0..args.count {
        let args = Arc::clone(&args);
        let gate = Arc::clone(&gate);
        let ready = ready_tx.clone();
        let mut released = released.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate
                .acquire_owned()
                .await
                .expect("the gate is never closed");
            let opened = tokio::time::timeout(TIMEOUT, async {
                let mut conn = open(&args).await?;
                exchange(&mut conn, id, args.messages).await?;
                Ok::<_, String>(conn)
            })
            .await
            .unwrap_or_else(|_| Err("timed out opening".into()));
            drop(permit);
            let mut conn = match opened {
                Ok(conn) => conn,
                Err(err) => {
                    let _ = ready.send(Err(err)).await;
                    return Ok(());
                }
            };
            let _ = ready.send(Ok(())).await;
            let _ = released.wait_for(|go| *go).await;
            tokio::time::timeout(TIMEOUT, close(&mut conn))
                .await
                .unwrap_or_else(|_| Err("timed out closing".into()))
        }));
    }
    drop(ready_tx);
    for _ in 0..args.count {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(err)) => {
                eprintln!("idle_clients: {err}");
                std::process::exit(1);
            }
            None => break,
        }
    }
    println!("ready {}", args.count);
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    let _ = release.send(true);
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("idle_clients: {failed} connections did not close cleanly");
        std::process::exit(1);
    }
    println!("closed");
}
