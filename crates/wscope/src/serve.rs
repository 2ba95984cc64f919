//! `wscope serve`: an echo server.
//!
//! One task per connection: read the upgrade request, answer it (or refuse
//! it with a status and a reason in the body), then echo messages until the
//! close handshake. Ctrl-C closes every open connection with 1001 before the
//! process exits.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use wscope_proto::deflate;
use wscope_proto::handshake::{Parsed, Request, ServerResponse};
use wscope_proto::{CloseCode, Role};

use crate::cli::ServeArgs;
use crate::connection::{Connection, Incoming};

/// How long a client has to send its whole upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    // The first line of stdout: tests and scripts read the port from it.
    println!("listening on ws://{local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    serve_on(listener, args.limits.max_message).await
}

/// Accepts and serves connections until Ctrl-C, then closes them with 1001.
pub async fn serve_on(listener: TcpListener, max_message: u64) -> anyhow::Result<()> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id: u64 = 1;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        warn!(%err, "accept failed");
                        continue;
                    }
                };
                let id = next_id;
                next_id += 1;
                let shutdown = shutdown_rx.clone();
                tasks.spawn(async move {
                    if let Err(err) = handle(stream, peer, id, max_message, shutdown).await {
                        debug!(conn = id, %err, "connection ended with an error");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => {
                info!("shutting down: closing connections with 1001");
                let _ = shutdown_tx.send(true);
                break;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    max_message: u64,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let (request, head_len) = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_request(&mut stream, &mut buf),
    )
    .await
    {
        Ok(Ok(Some(parsed))) => parsed,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(err)) => {
            let mut out = Vec::new();
            ServerResponse::reject(
                400,
                &format!("not a WebSocket upgrade request: {err}"),
                vec![],
            )
            .encode(&mut out);
            stream.write_all(&out).await?;
            info!(conn = id, %peer, %err, "refused: malformed request");
            return Ok(());
        }
        Err(_) => {
            info!(conn = id, %peer, "refused: no complete request within {HANDSHAKE_TIMEOUT:?}");
            return Ok(());
        }
    };
    let upgrade = match request.validate_upgrade() {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let mut out = Vec::new();
            ServerResponse::reject(rejection.status, &rejection.reason, rejection.headers)
                .encode(&mut out);
            stream.write_all(&out).await?;
            info!(conn = id, %peer, status = rejection.status, reason = %rejection.reason, "refused upgrade");
            return Ok(());
        }
    };
    let deflate = deflate::server_accept(&upgrade.extensions);
    let extensions = deflate.map(|params| params.response_header());
    let mut out = Vec::new();
    ServerResponse::accept(&upgrade.key, None, extensions.as_deref()).encode(&mut out);
    stream.write_all(&out).await?;
    info!(conn = id, %peer, path = %request.target, compress = deflate.is_some(), "open");

    let mut conn = Connection::new(stream, Role::Server, &buf[head_len..], deflate, max_message);
    loop {
        let incoming = tokio::select! {
            incoming = conn.next() => incoming,
            _ = shutdown.changed() => {
                conn.close(Some(CloseCode::GOING_AWAY), "server shutting down").await?;
                // Give the client a moment to answer the close.
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.next()).await;
                conn.finish(Duration::from_millis(200)).await;
                return Ok(());
            }
        };
        match incoming {
            Ok(Incoming::Message(message)) => {
                conn.send(message.opcode, &message.data).await?;
            }
            // Not asked for: the server does not capture frames.
            Ok(Incoming::DataFrame(..)) => {}
            Ok(Incoming::Ping(payload)) => {
                debug!(conn = id, len = payload.len(), "ping (answered)")
            }
            Ok(Incoming::Pong(payload)) => debug!(conn = id, len = payload.len(), "pong"),
            Ok(Incoming::Close(close)) => {
                info!(conn = id, code = ?close.code.map(|c| c.0), reason = %close.reason, "closed by client");
                conn.finish(Duration::from_secs(2)).await;
                return Ok(());
            }
            Ok(Incoming::Eof) => {
                info!(
                    conn = id,
                    "client dropped the connection without a close frame (1006)"
                );
                return Ok(());
            }
            Err(err) => {
                info!(conn = id, %err, "failing the connection");
                conn.finish(Duration::from_secs(2)).await;
                return Ok(());
            }
        }
    }
}

/// Reads until a whole request head is in `buf`. `None` when the client
/// went away first.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<(Request, usize)>, wscope_proto::Error> {
    loop {
        if let Parsed::Complete(request, len) = Request::parse(buf)? {
            return Ok(Some((request, len)));
        }
        let mut chunk = [0u8; 4096];
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}
