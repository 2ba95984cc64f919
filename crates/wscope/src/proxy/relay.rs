//! One proxied request: pass it upstream, pass the answer back, and when
//! the answer is `101 Switching Protocols`, relay the WebSocket.
//!
//! The relay forwards the bytes it reads, unchanged, before it looks at
//! them: each direction is a loop of read, write, then feed the same bytes
//! to that direction's [`Tap`], whose findings become events. Nothing is
//! re-encoded, so the endpoints negotiate subprotocols and extensions end to
//! end and see each other's frames exactly, fragmentation and all. Memory
//! per connection is two read buffers plus what the taps keep for display.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use wscope_events::observed::{FrameText, PayloadLimits};
use wscope_events::{Closed, ClosedBy, Direction, EventKind, HandshakeFailed, Head, Open, Timings};
use wscope_proto::deflate::{self, DeflateParams};
use wscope_proto::frame::encode_frame;
use wscope_proto::handshake::{Request, Response, has_token, parse_extensions, status::diagnose};
use wscope_proto::tap::{Observed, Tap};
use wscope_proto::{CloseCode, ClosePayload, OpCode, Role};

use super::shaped::{self, Cut, Link};
use super::upstream::Target;
use super::{Client, Proxy, refuse};
use crate::http_io::{encode_request, read_response, request_head};
use crate::net::NetStream;

/// Bytes read (and forwarded) at a time, per direction.
pub(super) const BUFFER: usize = 64 * 1024;
/// How much of a refusal's body is kept for the event.
const BODY_KEPT: usize = 4096;
/// Once one side has closed its TCP connection, how long the other gets to
/// follow before it is closed too.
const LINGER: Duration = Duration::from_secs(10);

fn response_head(response: &Response) -> Head {
    Head {
        line: format!(
            "HTTP/1.{} {} {}",
            response.version, response.status, response.reason
        ),
        headers: response.headers.clone(),
    }
}

/// Sends `request` (whose head is `buf[..head_len]`, with anything the
/// client sent after it) to `target`, and sees it through.
pub async fn exchange(
    proxy: &Proxy,
    client: &Client,
    mut stream: NetStream,
    buf: Vec<u8>,
    request: Request,
    head_len: usize,
    target: Target,
) {
    let websocket = has_token(&request.headers, "Upgrade", "websocket");
    let upstream_target = target.upstream_target(&request.target);
    let url = target.url(&upstream_target, websocket);
    let mut headers = Vec::with_capacity(request.headers.len() + 1);
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") && !proxy.preserve_host {
            headers.push((name.clone(), target.host_header()));
        } else if name.eq_ignore_ascii_case("proxy-connection")
            || name.eq_ignore_ascii_case("proxy-authorization")
            || (!websocket && name.eq_ignore_ascii_case("connection"))
        {
            // Hop-by-hop: for this proxy, not the next server.
        } else {
            headers.push((name.clone(), value.clone()));
        }
    }
    if !websocket {
        // One request per connection keeps pass-through a pair of byte
        // copies: the response ends when the server closes.
        headers.push(("Connection".to_owned(), "close".to_owned()));
    }
    let mut head = encode_request(&request.method, &upstream_target, &headers);
    if proxy.rules.is_none() || !websocket {
        // Anything the client sent after its request goes with it; into a
        // WebSocket with rules, the shaping relay forwards it (see `relay`).
        head.extend_from_slice(&buf[head_len..]);
    }

    let connecting =
        tokio::time::timeout(proxy.handshake_timeout, target.connect(&proxy.upstream_tls));
    let (mut upstream, timing) = match connecting.await {
        Ok(Ok(connected)) => connected,
        failure => {
            if let Some(metrics) = &proxy.metrics {
                metrics.upstream_connect_failed();
            }
            let why = match failure {
                Ok(Err(why)) => why,
                _ => format!(
                    "no connection to the upstream {} within {:?}",
                    target, proxy.handshake_timeout
                ),
            };
            refuse(proxy, client, &mut stream, Some(&request), 502, why).await;
            return;
        }
    };
    if upstream.write_all(&head).await.is_err() {
        let why = format!("the upstream {target} closed the connection before the request");
        refuse(proxy, client, &mut stream, Some(&request), 502, why).await;
        return;
    }
    if !websocket {
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
        return;
    }

    let sent = Instant::now();
    let mut rbuf = Vec::with_capacity(4096);
    let answer = tokio::time::timeout(
        proxy.handshake_timeout,
        read_response(&mut upstream, &mut rbuf),
    )
    .await;
    let (response, response_len) = match answer {
        Ok(Ok(Some(parsed))) => parsed,
        Ok(Ok(None)) => {
            let why = format!(
                "the upstream {target} closed the connection without answering the upgrade"
            );
            refuse(proxy, client, &mut stream, Some(&request), 502, why).await;
            return;
        }
        Ok(Err(err)) => {
            let why =
                format!("the upstream {target} answered with something that is not HTTP: {err}");
            refuse(proxy, client, &mut stream, Some(&request), 502, why).await;
            return;
        }
        Err(_) => {
            let why = format!(
                "the upstream {target} did not answer the upgrade within {:?}",
                proxy.handshake_timeout
            );
            refuse(proxy, client, &mut stream, Some(&request), 504, why).await;
            return;
        }
    };
    let upgrade_us = sent.elapsed().as_micros() as u64;
    if response.status != 101 {
        pass_refusal(
            proxy,
            client,
            stream,
            upstream,
            &request,
            &response,
            rbuf,
            response_len,
            url,
        )
        .await;
        return;
    }
    if stream.write_all(&rbuf[..response_len]).await.is_err() {
        return;
    }

    let offers: Vec<_> = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|(_, v)| parse_extensions(v).ok())
        .flatten()
        .collect();
    let accepted: Vec<_> = response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|(_, v)| parse_extensions(v).ok())
        .flatten()
        .collect();
    let deflate = match deflate::client_negotiate(&offers, &accepted) {
        Ok(params) => params,
        Err(err) => {
            let text = format!(
                "the upstream's extension answer is not valid ({err}); frames are shown without decompression"
            );
            proxy
                .events
                .emit(&client.id, None, EventKind::Note { text })
                .await;
            None
        }
    };
    let open = Open {
        url,
        client: client.peer.to_string(),
        server: upstream
            .tcp()
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        request: request_head(&request),
        response: response_head(&response),
        subprotocol: response
            .header("sec-websocket-protocol")
            .map(|p| p.trim().to_owned()),
        extensions: response
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, v)| v.clone())
            .collect(),
        timings: Timings {
            dns_us: None,
            tcp_us: Some(timing.tcp_us),
            tls_us: timing.tls_us,
            upgrade_us: Some(upgrade_us),
        },
        handshake: None,
        attempt: None,
    };
    proxy
        .events
        .emit(&client.id, None, EventKind::Open(open))
        .await;
    let early_c2s = &buf[head_len..];
    let early_s2c = &rbuf[response_len..];
    relay(
        proxy, client, stream, upstream, early_c2s, early_s2c, deflate,
    )
    .await;
}

/// The upstream refused the upgrade: the client gets its status, headers
/// and body as they were, and the refusal is recorded.
#[allow(clippy::too_many_arguments)]
async fn pass_refusal(
    proxy: &Proxy,
    client: &Client,
    mut stream: NetStream,
    mut upstream: NetStream,
    request: &Request,
    response: &Response,
    rbuf: Vec<u8>,
    head_len: usize,
    url: String,
) {
    let mut body: Vec<u8> = rbuf[head_len..].iter().take(BODY_KEPT).copied().collect();
    let _ = stream.write_all(&rbuf).await;
    let length: Option<u64> = response
        .header("content-length")
        .and_then(|v| v.trim().parse().ok());
    let mut remaining = length.map(|n| n.saturating_sub((rbuf.len() - head_len) as u64));
    let mut chunk = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(proxy.handshake_timeout, async {
        while remaining != Some(0) {
            let n = match upstream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = remaining.map_or(n, |r| n.min(r as usize));
            if stream.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            let room = BODY_KEPT.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..n.min(room)]);
            remaining = remaining.map(|r| r - n as u64);
        }
    })
    .await;
    let _ = stream.shutdown().await;
    let event = EventKind::HandshakeFailed(HandshakeFailed {
        url,
        client: Some(client.peer.to_string()),
        request: Some(request_head(request)),
        response: Some(response_head(response)),
        status: Some(response.status),
        body: String::from_utf8_lossy(&body).trim_end().to_owned(),
        diagnosis: format!(
            "the upstream refused the upgrade: {}",
            diagnose(response.status)
        ),
    });
    proxy.events.emit(&client.id, None, event).await;
}

/// How one direction ended.
pub(super) enum End {
    /// The sender closed its side of the TCP connection.
    Eof,
    /// Reading from the sender failed (a reset).
    ReadFailed(io::Error),
    /// Writing to the receiver failed (it went away).
    WriteFailed(io::Error),
    /// A rule ended the connection.
    Cut,
}

/// One direction's state, kept outside its pump so it survives it.
pub(super) struct Side {
    pub(super) dir: Direction,
    pub(super) tap: Tap,
    /// The sender's close frame, and when (by sequence) it passed.
    pub(super) close: Option<(u64, ClosePayload)>,
    pub(super) ended: Option<(u64, End)>,
    /// A close frame we put into this direction ourselves (at shutdown, or
    /// by a rule): when, its code and reason. The sender's own frames after
    /// it are not forwarded.
    pub(super) injected: Option<(u64, u16, String)>,
    /// Whether the frames of the message in progress are text.
    text: FrameText,
}

pub(super) struct Ctx<'a> {
    pub(super) proxy: &'a Proxy,
    pub(super) id: &'a str,
    /// Orders closes and ends across the two directions.
    seq: AtomicU64,
}

impl Ctx<'_> {
    pub(super) fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Turns what a tap saw into events.
    pub(super) async fn report(&self, side: &mut Side, seen: &mut Vec<Observed>) {
        let limits = PayloadLimits::all(self.proxy.events.payload_limit);
        for observed in seen.drain(..) {
            if let Observed::Close(close) = &observed
                && side.close.is_none()
            {
                side.close = Some((self.next(), close.clone()));
            }
            let kind = side.text.kind(observed, limits);
            self.proxy.events.emit(self.id, Some(side.dir), kind).await;
        }
    }
}

/// Relays an upgraded connection until both sides are done, then reports
/// how it ended.
async fn relay(
    proxy: &Proxy,
    client: &Client,
    client_stream: NetStream,
    upstream: NetStream,
    early_c2s: &[u8],
    early_s2c: &[u8],
    deflate: Option<DeflateParams>,
) {
    let capture = proxy.events.payload_limit;
    let side = |dir, sender| {
        let mut tap = Tap::new(sender, deflate, capture);
        tap.report_data_frames(proxy.report_frames);
        Side {
            dir,
            tap,
            close: None,
            ended: None,
            injected: None,
            text: FrameText::default(),
        }
    };
    let mut c2s = side(Direction::ClientToServer, Role::Client);
    let mut s2c = side(Direction::ServerToClient, Role::Server);
    let ctx = Ctx {
        proxy,
        id: &client.id,
        seq: AtomicU64::new(0),
    };
    let (mut client_read, mut client_write) = tokio::io::split(client_stream);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    // Bytes that came with the handshake: the byte relay has passed the
    // client's on with the request and passes the server's on now; the
    // shaping relay takes both as its first reads, so its frame cutting
    // starts at the first byte.
    if proxy.rules.is_none() {
        let mut seen = Vec::new();
        c2s.tap.feed(early_c2s, &mut seen);
        ctx.report(&mut c2s, &mut seen).await;
        if !early_s2c.is_empty() {
            if client_write.write_all(early_s2c).await.is_err() {
                s2c.ended = Some((ctx.next(), End::Eof));
            }
            s2c.tap.feed(early_s2c, &mut seen);
            ctx.report(&mut s2c, &mut seen).await;
        }
    }
    // With rules in force, each direction goes through the shaper; without,
    // bytes are relayed untouched.
    let mut shaping = None;
    let mut queues = None;
    let mut cut_rx = None;
    if let Some(current) = &proxy.rules {
        let set = Arc::clone(&current.borrow());
        let (link, commands, cut) = Link::new(set, deflate);
        if let Some(controls) = &proxy.controls {
            controls.add(&client.id, link.handle());
        }
        shaping = Some((link, current.clone()));
        queues = Some(commands);
        cut_rx = Some(cut);
    }
    {
        let shutdown = proxy.shutdown.clone();
        let (up, down, timed): (Running<'_, bool>, Running<'_, bool>, Running<'_, ()>) =
            match (&shaping, queues) {
                (Some((link, current)), Some([c2s_rx, s2c_rx])) => (
                    Box::pin(shaped::pump(
                        &mut client_read,
                        &mut upstream_write,
                        &mut c2s,
                        &ctx,
                        link,
                        c2s_rx,
                        early_c2s,
                        shutdown.clone(),
                    )),
                    Box::pin(shaped::pump(
                        &mut upstream_read,
                        &mut client_write,
                        &mut s2c,
                        &ctx,
                        link,
                        s2c_rx,
                        early_s2c,
                        shutdown,
                    )),
                    Box::pin(shaped::schedule(link, &ctx, current.clone())),
                ),
                _ => (
                    Box::pin(pump(
                        &mut client_read,
                        &mut upstream_write,
                        &mut c2s,
                        &ctx,
                        shutdown.clone(),
                    )),
                    Box::pin(pump(
                        &mut upstream_read,
                        &mut client_write,
                        &mut s2c,
                        &ctx,
                        shutdown,
                    )),
                    Box::pin(std::future::pending()),
                ),
            };
        tokio::pin!(up, down, timed);
        let mut up_done = false;
        let mut down_done = false;
        let mut linger: Option<tokio::time::Instant> = None;
        while !(up_done && down_done) {
            tokio::select! {
                failed = &mut up, if !up_done => {
                    up_done = true;
                    if failed { break; }
                    linger.get_or_insert(tokio::time::Instant::now() + LINGER);
                }
                failed = &mut down, if !down_done => {
                    down_done = true;
                    if failed { break; }
                    linger.get_or_insert(tokio::time::Instant::now() + LINGER);
                }
                () = &mut timed => {}
                _ = cut_by_rule(&mut cut_rx) => break,
                _ = crate::timers::sleep_until(linger), if linger.is_some() => break,
            }
        }
    }
    if let Some(controls) = &proxy.controls {
        controls.remove(&client.id);
    }
    let client_stream = client_read.unsplit(client_write);
    let upstream = upstream_read.unsplit(upstream_write);
    let cut = cut_rx.as_ref().and_then(|rx| *rx.borrow());
    if let Some(cut) = cut {
        for side in [&mut c2s, &mut s2c] {
            if side.ended.is_none() {
                side.ended = Some((ctx.next(), End::Cut));
            }
        }
        if cut == Cut::Reset {
            let _ = upstream.reset_on_close();
            let _ = client_stream.reset_on_close();
        }
    }
    // A reset on one side is passed on as a reset: the other peer sees
    // what happened, not a tidier story.
    let reset = |side: &Side| matches!(side.ended, Some((_, End::ReadFailed(_))));
    if reset(&c2s) {
        let _ = upstream.reset_on_close();
    }
    if reset(&s2c) {
        let _ = client_stream.reset_on_close();
    }
    drop(client_stream);
    drop(upstream);

    for side in [&c2s, &s2c] {
        let (sender, receiver) = match side.dir {
            Direction::ClientToServer => ("client", "upstream"),
            Direction::ServerToClient => ("upstream", "client"),
        };
        let message = match &side.ended {
            Some((_, End::ReadFailed(err))) => {
                format!("the {sender}'s connection failed: {err}")
            }
            Some((_, End::WriteFailed(err))) => {
                format!("cannot write to the {receiver}: {err}")
            }
            _ => continue,
        };
        proxy
            .events
            .emit(&client.id, None, EventKind::Error { message })
            .await;
    }
    let closed = closed_event(client, &c2s, &s2c);
    proxy
        .events
        .emit(&client.id, None, EventKind::Closed(closed))
        .await;
}

/// A relay direction, or the timed rules, running.
type Running<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Waits until a rule cuts the connection (forever without rules).
async fn cut_by_rule(rx: &mut Option<watch::Receiver<Option<Cut>>>) {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    if rx.wait_for(Option::is_some).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Who ended the connection, and how, from what each direction saw.
fn closed_event(client: &Client, c2s: &Side, s2c: &Side) -> Closed {
    let by_dir = |dir| match dir {
        Direction::ClientToServer => ClosedBy::Client,
        Direction::ServerToClient => ClosedBy::Server,
    };
    // The first close frame either way: a peer's, or one the proxy sent.
    let first_close = [c2s, s2c]
        .into_iter()
        .flat_map(|side| {
            let peer = side.close.as_ref().map(|(seq, close)| {
                let code = close.code.unwrap_or(CloseCode::NO_STATUS);
                (*seq, by_dir(side.dir), code, close.reason.clone())
            });
            let ours = side.injected.as_ref().map(|(seq, code, reason)| {
                (*seq, ClosedBy::Proxy, CloseCode(*code), reason.clone())
            });
            [peer, ours]
        })
        .flatten()
        .min_by_key(|(seq, ..)| *seq);
    let errors = [c2s, s2c].iter().any(|side| {
        matches!(
            side.ended,
            Some((_, End::ReadFailed(_) | End::WriteFailed(_)))
        )
    });
    let (by, clean, code, reason) = match first_close {
        Some((_, by, code, reason)) => (
            by,
            c2s.close.is_some() && s2c.close.is_some() && !errors,
            code,
            reason,
        ),
        None => {
            // No close frame: whoever's TCP connection went first.
            let first_end = [c2s, s2c]
                .into_iter()
                .filter_map(|side| {
                    side.ended.as_ref().map(|(seq, end)| match end {
                        End::Cut => (*seq, ClosedBy::Proxy),
                        _ => (*seq, by_dir(side.dir)),
                    })
                })
                .min_by_key(|(seq, _)| *seq);
            let by = first_end.map_or(ClosedBy::Unknown, |(_, by)| by);
            (by, false, CloseCode::ABNORMAL, String::new())
        }
    };
    let c = c2s.tap.stats();
    let s = s2c.tap.stats();
    Closed {
        by,
        clean,
        code: code.0,
        reason,
        meaning: format!("{}: {}", code.name(), code.meaning()),
        duration_us: client.started.elapsed().as_micros() as u64,
        messages_c2s: c.messages,
        messages_s2c: s.messages,
        bytes_c2s: c.bytes,
        bytes_s2c: s.bytes,
        ended: None,
    }
}

/// Copies one direction until its sender stops, feeding the tap. Returns
/// whether it ended in failure (the relay then stops both ways).
async fn pump(
    src: &mut (impl AsyncRead + Unpin),
    dst: &mut (impl AsyncWrite + Unpin),
    side: &mut Side,
    ctx: &Ctx<'_>,
    mut shutdown: watch::Receiver<bool>,
) -> bool {
    let mut buf = vec![0u8; BUFFER];
    let mut seen = Vec::new();
    let mut shutting_down = *shutdown.borrow();
    loop {
        let read = tokio::select! {
            read = src.read(&mut buf) => read,
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                inject_close(dst, side, ctx.next()).await;
                continue;
            }
        };
        let n = match read {
            Ok(0) => {
                let _ = dst.shutdown().await;
                side.ended = Some((ctx.next(), End::Eof));
                return false;
            }
            Ok(n) => n,
            Err(err) => {
                side.ended = Some((ctx.next(), End::ReadFailed(err)));
                return true;
            }
        };
        if side.injected.is_none()
            && let Err(err) = dst.write_all(&buf[..n]).await
        {
            side.ended = Some((ctx.next(), End::WriteFailed(err)));
            return true;
        }
        side.tap.feed(&buf[..n], &mut seen);
        if !seen.is_empty() {
            ctx.report(side, &mut seen).await;
        }
    }
}

/// At shutdown: a 1001 close frame to the receiver, if the stream is at a
/// frame boundary and no close has passed this way yet.
async fn inject_close(dst: &mut (impl AsyncWrite + Unpin), side: &mut Side, seq: u64) {
    if side.close.is_some() || !side.tap.at_frame_boundary() {
        return;
    }
    let reason = "proxy shutting down";
    let mut payload = Vec::new();
    ClosePayload::encode(Some(CloseCode::GOING_AWAY), reason, &mut payload);
    // Toward the server we speak as the client, so the frame is masked.
    let mask = (side.dir == Direction::ClientToServer).then(rand::random::<[u8; 4]>);
    let mut frame = Vec::new();
    encode_frame(OpCode::Close, true, false, mask, &payload, &mut frame);
    if dst.write_all(&frame).await.is_ok() {
        side.injected = Some((seq, CloseCode::GOING_AWAY.0, reason.to_owned()));
    }
}
