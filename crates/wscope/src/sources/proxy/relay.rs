//! One proxied request: pass it upstream, pass the answer back, and when
//! the answer is `101 Switching Protocols`, relay the WebSocket.
//!
//! The relay is a driver around the [`Engine`]: one loop reads from both
//! sides, writes what the engine says is due, sleeps until the engine's
//! next wake-up and passes on commands (from the UI), rule reloads and
//! shutdown. Without rules the engine answers [`Pass::Forward`] and the
//! bytes just read are written on untouched, so the endpoints negotiate
//! subprotocols and extensions end to end and see each other's frames
//! exactly, fragmentation and all. Read buffers are sized to what arrives.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wscope_events::{Direction, EventKind, HandshakeFailed, Head, Open, Timings};
use wscope_proto::deflate::{self, DeflateParams};
use wscope_proto::handshake::{Request, Response, extensions_in, has_token, status::diagnose};

use super::engine::{BATCH, Config, Cut, End, Engine, HOLD_LIMIT, Pass};
use super::upstream::Target;
use super::{Client, Proxy, refuse, unreachable};
use crate::network::http_io::{encode_request, read_response, request_head};
use crate::network::stream::NetStream;
use crate::sources::control::{self, Reach};
use crate::sources::rules::RuleSet;
use crate::sources::rules::reload::Current;

/// Bytes read (and forwarded) at a time, per direction.
const BUFFER: usize = BATCH;
/// How much of a refusal's body is kept for the event.
const BODY_KEPT: usize = 4096;
/// Once one side has closed its TCP connection, how long the other gets to
/// follow before it is closed too.
const LINGER: Duration = Duration::from_secs(10);
/// How long a direction reads nothing before its read buffer goes back to
/// the smallest size: a connection that carried a burst of big messages
/// and then waits holds 2 KiB per direction, not 64.
const IDLE_SHRINK: Duration = Duration::from_secs(1);

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
            let why = match failure {
                Ok(Err(why)) => why,
                _ => format!(
                    "no connection to the upstream {} within {:?}",
                    target, proxy.handshake_timeout
                ),
            };
            unreachable(proxy, client, &mut stream, Some(&request), 502, why).await;
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

    let offers = extensions_in(&request.headers);
    let accepted = extensions_in(&response.headers);
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
    // What the handshake needed is not kept for the life of the relay:
    // only the bytes that came after the heads.
    let early_c2s = buf[head_len..].to_vec();
    let early_s2c = rbuf[response_len..].to_vec();
    drop((
        buf, rbuf, head, headers, request, response, offers, accepted,
    ));
    relay(
        proxy, client, stream, upstream, &early_c2s, &early_s2c, deflate,
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
        upstream_unreachable: false,
        diagnosis: format!(
            "the upstream refused the upgrade: {}",
            diagnose(response.status)
        ),
    });
    proxy.events.emit(&client.id, None, event).await;
}

/// One direction's buffers: what was read, and what is being written.
struct Pump {
    /// Read into; sized to what arrives (see [`Pump::reserve`]).
    buf: BytesMut,
    /// How much the next read may take.
    size: usize,
    /// Being written to the receiver.
    out: BytesMut,
    /// The engine's next due pieces, written with `out` in one call (never
    /// filled while `out` is empty).
    more: VecDeque<Bytes>,
    /// `out` is a read passed on as it was (its allocation is a read's).
    forwarded: bool,
    /// The sender has closed (or failed).
    done_reading: bool,
    /// The receiver's write side is shut.
    done: bool,
}

impl Pump {
    fn new() -> Pump {
        Pump {
            buf: BytesMut::new(),
            size: MIN_READ,
            out: BytesMut::new(),
            more: VecDeque::new(),
            forwarded: false,
            done_reading: false,
            done: false,
        }
    }

    /// Room for the next read: it starts small, doubles after a read that
    /// filled it and halves after one that used little of it, so an idle
    /// connection holds little while big messages move in big reads.
    fn reserve(&mut self) {
        if self.buf.capacity() < self.size {
            self.buf.reserve(self.size);
        }
    }

    /// The bytes just written were read into `buf` and passed on whole:
    /// their allocation becomes the next read's rather than going back to
    /// the allocator (a 64 KiB allocation and free per read cost more than
    /// the engine's own work on small messages).
    fn recycle(&mut self) {
        let spent = std::mem::take(&mut self.out);
        // The engine's own output may be a big held message: not kept.
        if std::mem::take(&mut self.forwarded) && self.buf.capacity() == 0 {
            // Empty, its allocation whole: `reserve` moves it back to the
            // start rather than allocating.
            self.buf = spent;
        }
    }

    /// With `out` taken, more of the engine's due pieces, so one write
    /// carries several held messages (one `writev` and one wake-up of the
    /// receiver, not one each): at most [`MORE`] pieces in all and
    /// [`MORE_BYTES`] beside `out`, out of the engine's hold budget as
    /// `out` always was. Paced pieces are not taken early (their rate
    /// would come out in bursts); a pause that starts now does not stop
    /// what was taken, like the bytes already in the socket's buffer.
    fn take_more(&mut self, engine: &mut Engine, dir: Direction, now: Instant) {
        if self.out.is_empty() || !engine.shaping() {
            return;
        }
        let mut bytes: usize = self.more.iter().map(Bytes::len).sum();
        while self.more.len() < MORE - 1 {
            // Small items due with the next may join it, so a piece of
            // small ones can pass MORE_BYTES by less than one BATCH.
            let Some(next) = engine.next_write_len(dir, now) else {
                break;
            };
            if bytes.saturating_add(next.max(BATCH)) > MORE_BYTES {
                break;
            }
            let Some(piece) = engine.poll_write(dir, now) else {
                break;
            };
            bytes += piece.len();
            self.more.push_back(Bytes::from(piece));
        }
    }

    /// `n` bytes of `out` and then of `more` were written.
    fn advance(&mut self, mut n: usize) {
        let first = n.min(self.out.len());
        self.out.advance(first);
        n -= first;
        while n > 0
            && let Some(front) = self.more.front_mut()
        {
            let part = n.min(front.len());
            front.advance(part);
            n -= part;
            if front.is_empty() {
                self.more.pop_front();
            }
        }
        if self.out.is_empty() {
            self.recycle();
            if let Some(next) = self.more.pop_front() {
                self.out = BytesMut::from(next);
            }
        }
    }

    /// Nothing read for a while: reads start small again, and a big
    /// empty buffer goes back to the allocator.
    fn idle(&mut self) {
        self.size = MIN_READ;
        if self.buf.is_empty() && self.buf.capacity() > 2 * MIN_READ {
            self.buf = BytesMut::new();
        }
    }

    /// Whether [`Pump::idle`] would give anything back (never true right
    /// after it, so its timer cannot fire over and over).
    fn shrinkable(&self) -> bool {
        self.size > MIN_READ || (self.buf.is_empty() && self.buf.capacity() > 2 * MIN_READ)
    }

    fn adapt(&mut self, n: usize) {
        if n == self.size {
            self.size = (self.size * 2).min(BUFFER);
        } else if n < self.size / 8 && self.size > MIN_READ {
            self.size /= 2;
            if self.buf.is_empty() && self.buf.capacity() > self.size * 2 {
                self.buf = BytesMut::new();
            }
        }
    }
}

/// The smallest read, per direction.
const MIN_READ: usize = 2048;

/// Pieces written in one call, and at most how many bytes wait beside
/// `out` for it.
const MORE: usize = 4;
const MORE_BYTES: usize = 256 * 1024;

/// `out` and then `more`, for one vectored write (no allocation: this
/// runs once per turn of the loop).
fn pieces<'a>(out: &'a [u8], more: &'a VecDeque<Bytes>) -> Pieces<'a> {
    let mut slices = [IoSlice::new(&[]); MORE];
    slices[0] = IoSlice::new(out);
    let mut len = 1;
    for piece in more.iter().take(MORE - 1) {
        slices[len] = IoSlice::new(piece);
        len += 1;
    }
    Pieces { slices, len }
}

struct Pieces<'a> {
    slices: [IoSlice<'a>; MORE],
    len: usize,
}

impl<'a> std::ops::Deref for Pieces<'a> {
    type Target = [IoSlice<'a>];
    fn deref(&self) -> &[IoSlice<'a>] {
        &self.slices[..self.len]
    }
}

/// Relays an upgraded connection until both sides are done, then reports
/// how it ended: the engine decides, this loop does the I/O for both
/// directions, the timers and the commands.
async fn relay(
    proxy: &Proxy,
    client: &Client,
    client_stream: NetStream,
    upstream: NetStream,
    early_c2s: &[u8],
    early_s2c: &[u8],
    deflate: Option<DeflateParams>,
) {
    let config = Config {
        id: client.id.clone(),
        deflate,
        capture: proxy.events.payload_limit,
        report_frames: proxy.report_frames,
        rules: proxy
            .rules
            .as_ref()
            .map(|current| Arc::clone(&current.borrow())),
        hold_limit: HOLD_LIMIT,
        budget: Arc::clone(&proxy.budget),
    };
    let mut engine = Engine::new(config, Instant::now());
    let (handle, mut commands) = control::channel(Reach::Both);
    if engine.shaping()
        && let Some(controls) = &proxy.controls
    {
        controls.add(&client.id, handle.clone());
    }
    let mut reloads = proxy.rules.clone();
    let mut shutdown = proxy.shutdown.clone();
    let mut shutting_down = false;

    let c2s = Direction::ClientToServer;
    let s2c = Direction::ServerToClient;
    let mut up = Pump::new();
    let mut down = Pump::new();
    // Bytes that came with the handshake: without rules the client's went
    // upstream with the request and the server's go to the client now;
    // with rules both are the engine's first reads, so its frame cutting
    // starts at the first byte.
    engine.read(c2s, early_c2s, Instant::now());
    if engine.read(s2c, early_s2c, Instant::now()) == Pass::Forward {
        down.out = BytesMut::from(early_s2c);
    }
    let (mut client_read, mut client_write) = tokio::io::split(client_stream);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let mut linger: Option<tokio::time::Instant> = None;
    let mut last_read = tokio::time::Instant::now();
    loop {
        let now = Instant::now();
        if engine.next_wake().is_some_and(|wake| wake <= now) {
            engine.tick(now);
        }
        for emit in engine.drain_events() {
            proxy.events.emit(&client.id, emit.dir, emit.kind).await;
        }
        if engine.cut_by().is_some() {
            break;
        }
        for (dir, pump) in [(c2s, &mut up), (s2c, &mut down)] {
            if pump.out.is_empty()
                && let Some(bytes) = engine.poll_write(dir, now)
            {
                pump.out = BytesMut::from(Bytes::from(bytes));
            }
            pump.take_more(&mut engine, dir, now);
        }
        for (dir, pump, writer) in [
            (
                c2s,
                &mut up,
                &mut upstream_write as &mut (dyn AsyncWrite + Unpin + Send),
            ),
            (s2c, &mut down, &mut client_write),
        ] {
            if pump.out.is_empty() && !pump.done && engine.poll_shutdown(dir) {
                let _ = writer.shutdown().await;
                pump.done = true;
                linger.get_or_insert(tokio::time::Instant::now() + LINGER);
            }
        }
        if up.done && down.done {
            break;
        }
        // Without rules a read is what gets written, so the next waits for
        // that write; with rules the engine takes every read (its output
        // is its own), so reading goes on while a held message is written.
        let overlap = engine.shaping();
        let reading_up =
            !up.done_reading && (overlap || up.out.is_empty()) && engine.wants_read(c2s);
        let reading_down =
            !down.done_reading && (overlap || down.out.is_empty()) && engine.wants_read(s2c);
        if reading_up {
            up.reserve();
        }
        if reading_down {
            down.reserve();
        }
        // What is owed to a side still being written to waits for that
        // write, which wakes the loop itself: a due time already passed
        // must not make the sleep return at once, again and again.
        let (up_free, down_free) = (up.out.is_empty(), down.out.is_empty());
        let wake = engine
            .next_wake_for(|dir| if dir == c2s { up_free } else { down_free })
            .map(tokio::time::Instant::from_std);
        let shrink = (up.shrinkable() || down.shrinkable()).then_some(last_read + IDLE_SHRINK);
        let (up_pieces, down_pieces) = (pieces(&up.out, &up.more), pieces(&down.out, &down.more));
        tokio::select! {
            read = client_read.read_buf(&mut up.buf), if reading_up => {
                last_read = tokio::time::Instant::now();
                if !pumped(&mut engine, c2s, &mut up, read) { break; }
            }
            read = upstream_read.read_buf(&mut down.buf), if reading_down => {
                last_read = tokio::time::Instant::now();
                if !pumped(&mut engine, s2c, &mut down, read) { break; }
            }
            written = upstream_write.write_vectored(&up_pieces), if !up.out.is_empty() => {
                if !wrote(&mut engine, c2s, &mut up, written) { break; }
            }
            written = client_write.write_vectored(&down_pieces), if !down.out.is_empty() => {
                if !wrote(&mut engine, s2c, &mut down, written) { break; }
            }
            Some(command) = commands.recv() => engine.command(command, Instant::now()),
            changed = changed(&mut reloads) => match changed {
                Some(set) => engine.reload(set, Instant::now()),
                None => reloads = None,
            },
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                engine.shutdown(Instant::now());
            }
            // Woken for a timer or a due write: both are seen at the top.
            _ = crate::network::timers::sleep_until(wake), if wake.is_some() => {}
            _ = crate::network::timers::sleep_until(linger), if linger.is_some() => break,
            // A read given up here had taken nothing (`read_buf` is
            // cancel-safe): the loop starts it again with the smaller buffer.
            _ = crate::network::timers::sleep_until(shrink), if shrink.is_some() => {
                up.idle();
                down.idle();
            }
        }
        if *shutdown.borrow() && !shutting_down {
            shutting_down = true;
            engine.shutdown(Instant::now());
        }
    }
    drop(handle);
    if let Some(controls) = &proxy.controls {
        controls.remove(&client.id);
    }
    let client_stream = client_read.unsplit(client_write);
    let upstream = upstream_read.unsplit(upstream_write);
    if let Some(cut) = engine.cut_by() {
        engine.mark_cut();
        if cut == Cut::Reset {
            let _ = upstream.reset_on_close();
            let _ = client_stream.reset_on_close();
        }
    }
    // A reset on one side is passed on as a reset: the other peer sees
    // what happened, not a tidier story.
    if engine.read_failed(c2s) {
        let _ = upstream.reset_on_close();
    }
    if engine.read_failed(s2c) {
        let _ = client_stream.reset_on_close();
    }
    drop(client_stream);
    drop(upstream);
    for emit in engine.drain_events() {
        proxy.events.emit(&client.id, emit.dir, emit.kind).await;
    }
    for message in engine.failures() {
        proxy
            .events
            .emit(&client.id, None, EventKind::Error { message })
            .await;
    }
    let closed = engine.closed(client.started.elapsed());
    proxy
        .events
        .emit(&client.id, None, EventKind::Closed(closed))
        .await;
}

/// Hands what one read brought to the engine. False when the relay must
/// stop (the sender's connection failed).
fn pumped(engine: &mut Engine, dir: Direction, pump: &mut Pump, read: io::Result<usize>) -> bool {
    let now = Instant::now();
    match read {
        Ok(0) => {
            pump.done_reading = true;
            engine.eof(dir, now);
            true
        }
        Ok(n) => {
            let drained = n < pump.size;
            pump.adapt(n);
            let pass = engine.read(dir, &pump.buf, now);
            if drained {
                // The sender has paused: what the engine kept for a burst
                // (its compressor) goes until the next one.
                engine.drained(dir);
            }
            if pass == Pass::Forward {
                pump.out = std::mem::take(&mut pump.buf);
                pump.forwarded = true;
            } else {
                pump.buf.clear();
            }
            true
        }
        Err(err) => {
            pump.done_reading = true;
            engine.failed(dir, End::ReadFailed(err));
            false
        }
    }
}

/// Accounts for one write toward the receiver of `dir`. False when the
/// relay must stop (the receiver went away).
fn wrote(engine: &mut Engine, dir: Direction, pump: &mut Pump, written: io::Result<usize>) -> bool {
    match written {
        Ok(0) => {
            let err = io::Error::new(io::ErrorKind::WriteZero, "the connection took no bytes");
            engine.failed(dir, End::WriteFailed(err));
            false
        }
        Ok(n) => {
            pump.advance(n);
            true
        }
        Err(err) => {
            engine.failed(dir, End::WriteFailed(err));
            false
        }
    }
}

/// The next rule set, when the rules file changes; `None` once nobody will
/// change it again (and forever without rules).
async fn changed(reloads: &mut Option<Current>) -> Option<Arc<RuleSet>> {
    let Some(current) = reloads else {
        return std::future::pending().await;
    };
    match current.changed().await {
        Ok(()) => Some(Arc::clone(&current.borrow_and_update())),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that ends inside a later piece leaves the rest in order,
    /// and whatever is left first becomes `out`.
    #[test]
    fn a_vectored_write_is_accounted_across_its_pieces() {
        let mut pump = Pump::new();
        pump.out = BytesMut::from(&b"abc"[..]);
        pump.more = VecDeque::from([Bytes::from_static(b"de"), Bytes::from_static(b"fgh")]);
        let all: Vec<u8> = pieces(&pump.out, &pump.more)
            .iter()
            .flat_map(|slice| slice.to_vec())
            .collect();
        assert_eq!(all, b"abcdefgh");
        pump.advance(4);
        assert_eq!(&pump.out[..], b"e");
        assert_eq!(pump.more, [Bytes::from_static(b"fgh")]);
        pump.advance(2);
        assert_eq!(&pump.out[..], b"gh");
        assert!(pump.more.is_empty());
        pump.advance(2);
        assert!(pump.out.is_empty());
    }

    #[test]
    fn an_idle_direction_goes_back_to_small_reads_and_a_small_buffer() {
        let mut pump = Pump::new();
        assert!(!pump.shrinkable());
        // A burst: reads that fill the buffer grow it to the largest.
        while pump.size < BUFFER {
            pump.reserve();
            let size = pump.size;
            pump.adapt(size);
        }
        pump.reserve();
        assert!(pump.buf.capacity() >= BUFFER);
        assert!(pump.shrinkable());
        pump.idle();
        assert_eq!(pump.size, MIN_READ);
        pump.reserve();
        assert!(
            pump.buf.capacity() < 2 * MIN_READ,
            "{}",
            pump.buf.capacity()
        );
        assert!(!pump.shrinkable());
    }

    #[test]
    fn a_forwarded_reads_buffer_is_the_next_reads() {
        let mut pump = Pump::new();
        pump.reserve();
        pump.buf.extend_from_slice(&[7; 100]);
        let at = pump.buf.as_ptr();
        pump.out = std::mem::take(&mut pump.buf);
        pump.forwarded = true;
        pump.out.advance(100);
        pump.recycle();
        // Were it freed, this would likely take its place.
        let other = vec![1u8; MIN_READ];
        pump.reserve();
        assert_eq!(pump.buf.as_ptr(), at);
        drop(other);
        assert!(pump.buf.capacity() >= MIN_READ);
    }
}
