//! One TCP connection of a capture: what it carries, decoded into events.
//!
//! Each connection starts out [`App::Sniff`]ing: its first bytes say what
//! it is. An HTTP request goes to [`App::Http`] until both heads are
//! complete; a 101 to an upgrade request makes it a WebSocket, decoded per
//! direction by the protocol crate's `Tap` (the proxy's decoder: frames,
//! messages inflated under the negotiated permessage-deflate, close
//! frames, violations). A TLS ClientHello is named by its SNI (a TLS stream
//! seen without it, by which end is which: `tls::sender`); HTTP/2 is
//! named; anything else is ignored from then on, at no cost. A stream
//! whose handshake is not in the capture, and a WebSocket direction after
//! bytes went missing, are resynchronised on proven frame boundaries
//! (`resync.rs`).
//!
//! Memory per connection is bounded: heads up to [`MAX_HEAD`], sniffing
//! and resynchronisation up to [`MAX_HELD_UNDECIDED`], and the tap's own
//! limits.

use std::net::SocketAddr;

use wscope_events::observed::{FrameText, PayloadLimits};
use wscope_events::{
    Closed, ClosedBy, Direction, Ending, EventKind, HandshakeFailed, HandshakeSeen, Head, Open,
    Timings,
};
use wscope_proto::deflate::{self, DeflateParams};
use wscope_proto::handshake::{Parsed, Request, Response, extensions_in, has_token};
use wscope_proto::tap::{Observed, Tap, TapStats};
use wscope_proto::{CloseCode, ClosePayload, Role, Violation};

use crate::decoder::{Ctx, Options};
use crate::http2::ExtendedConnect;
use crate::resync::{self, Found};
use crate::tcp::{Chunk, GapCause, HalfStream};
use crate::tls;
use crate::tls_session::{TlsOut, TlsSession};

/// The longest HTTP head read before a connection is given up on.
pub const MAX_HEAD: usize = 64 * 1024;
/// Bytes held per direction while a stream's nature, or a frame boundary,
/// is still undecided.
pub const MAX_HELD_UNDECIDED: usize = 1 << 20;

/// How to get what decrypts a TLS connection, said where one is not.
const KEYLOG_HINT: &str = "to see inside, log the session keys while capturing and pass the file with --keylog: SSLKEYLOGFILE=FILE for Chromium, Firefox, curl and wscope connect; node --tls-keylog=FILE; keylog_filename on Python's ssl.SSLContext";

/// The handshake type of a ClientHello (RFC 8446 §4).
const CLIENT_HELLO: u8 = 1;

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes held back, with the time each part arrived.
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    /// (offset in `bytes`, capture time) where each part starts.
    marks: Vec<(usize, u64)>,
    /// Sequence number of `bytes[0]`.
    seq: u32,
    /// Bytes still to pass over before holding any: the rest of a frame
    /// whose header was read before a hole inside its payload.
    skip: u64,
    /// The first byte held is a frame boundary the damaged frame's own
    /// length gave, not one still to be searched for.
    known: bool,
}

impl Held {
    fn starting_at(seq: u32) -> Held {
        Held {
            seq,
            ..Held::default()
        }
    }

    /// Held bytes after a hole that ends `skip` bytes before the end of
    /// the frame it fell in: the next boundary is known.
    fn skipping(seq: u32, skip: u64) -> Held {
        Held {
            seq: seq.wrapping_add(skip as u32),
            skip,
            known: true,
            ..Held::default()
        }
    }

    fn push(&mut self, seq: u32, data: &[u8], ts: u64) {
        let passed = self.skip.min(data.len() as u64) as usize;
        self.skip -= passed as u64;
        let (seq, data) = (seq.wrapping_add(passed as u32), &data[passed..]);
        if self.bytes.is_empty() {
            self.seq = seq;
            self.marks.clear();
        }
        if !data.is_empty() {
            self.marks.push((self.bytes.len(), ts));
            self.bytes.extend_from_slice(data);
        }
    }

    /// The parts from `from` on, each with its sequence number and
    /// arrival time.
    fn pieces(&self, from: usize, mut f: impl FnMut(u32, &[u8], u64)) {
        for (i, &(start, ts)) in self.marks.iter().enumerate() {
            let end = self.marks.get(i + 1).map_or(self.bytes.len(), |m| m.0);
            if end <= from {
                continue;
            }
            let start = start.max(from);
            f(
                self.seq.wrapping_add(start as u32),
                &self.bytes[start..end],
                ts,
            );
        }
    }

    /// Drops the first `n` bytes.
    fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.bytes.drain(..n);
        self.seq = self.seq.wrapping_add(n as u32);
        let mut marks = Vec::with_capacity(self.marks.len());
        for (i, &(start, ts)) in self.marks.iter().enumerate() {
            let end = self.marks.get(i + 1).map_or(usize::MAX, |m| m.0);
            if end > n {
                marks.push((start.saturating_sub(n), ts));
            }
        }
        self.marks = marks;
    }

    fn last_ts(&self) -> Option<u64> {
        self.marks.last().map(|m| m.1)
    }
}

/// What a connection turned out to carry, as far as it is known.
enum App {
    Sniff {
        held: [Held; 2],
        gap: [bool; 2],
    },
    Http(Box<Http>),
    WebSocket(Box<Ws>),
    /// HTTP/2 in the clear, watched for an extended CONNECT to
    /// `websocket` (RFC 8441) until `watched` bytes are past.
    Http2 {
        watched: usize,
        client: Box<ExtendedConnect>,
    },
    Ignored,
}

/// How far into an HTTP/2 connection an extended CONNECT is looked for.
const HTTP2_WATCH: usize = 256 * 1024;

/// What the start of a TLS connection shows of it.
enum TlsStart {
    /// Its ClientHello, read.
    Hello(tls::ClientHello),
    /// The capture joined the connection after its ClientHello.
    Joined,
    /// The handshake's SYN is there but the ClientHello is not: the
    /// capture lost it.
    HelloLost,
    /// A ClientHello cut short or malformed.
    Unreadable,
}

/// A TLS connection being decrypted: what its application data says goes
/// through the same sniffing as a connection in the clear.
struct TlsLayer {
    session: TlsSession,
    hello: tls::ClientHello,
    /// Offsets into each decrypted stream, standing in for TCP sequence
    /// numbers above the record layer.
    plain_seq: [u32; 2],
    /// FINs and resets (side, reset?, capture time) that came while
    /// records waited for keys: they end the connection only after what
    /// came before them.
    deferred_ends: Vec<(usize, bool, u64)>,
}

struct Http {
    request: Held,
    response: Held,
    /// The request head once complete: it, its length, and when.
    head: Option<(Request, usize, u64)>,
}

/// One direction of a WebSocket.
struct WsDir {
    dir: Direction,
    role: Role,
    deflate: Option<DeflateParams>,
    dec: Dec,
    text: FrameText,
    /// Counts of taps replaced after gaps.
    earlier: TapStats,
    /// When (capture time, then the order seen) its close frame came.
    close: Option<((u64, u64), ClosePayload)>,
    fin: Option<(u64, u64)>,
}

enum Dec {
    Tap(Box<Tap>),
    /// Looking for a frame boundary after a gap (or a missing handshake).
    Resync(Held),
}

struct Ws {
    open_ts: u64,
    /// Indexed by side (see `Conn`): which direction each side sends.
    dirs: [WsDir; 2],
    reset: Option<((u64, u64), usize)>,
    last_ts: u64,
    seen: Vec<Observed>,
    /// Found from its frames: parameters are guessed from what is seen.
    handshake_missing: bool,
}

/// Everything about a connection except its two byte streams.
struct State {
    /// Side 0 sent the first packet seen.
    addrs: [SocketAddr; 2],
    client: Option<usize>,
    syn_ts: Option<u64>,
    synack_ts: Option<u64>,
    id: Option<String>,
    app: App,
    tls: Option<Box<TlsLayer>>,
    done: bool,
    ended: [bool; 2],
}

/// One TCP connection.
pub struct Conn {
    halves: [HalfStream; 2],
    state: State,
    /// What the decoder last noted of `pending_since` (its index).
    pub registered: Option<u64>,
}

fn is_http_request(bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS
        .iter()
        .any(|m| bytes.starts_with(m) || (bytes.len() < m.len() && m.starts_with(bytes)))
}

fn could_still_be_http(bytes: &[u8]) -> bool {
    bytes.len() < 8 && is_http_request(bytes)
}

impl Conn {
    /// A connection whose first packet went from `from` to `to`.
    pub fn new(from: SocketAddr, to: SocketAddr) -> Conn {
        Conn {
            registered: None,
            halves: [HalfStream::default(), HalfStream::default()],
            state: State {
                addrs: [from, to],
                client: None,
                syn_ts: None,
                synack_ts: None,
                id: None,
                app: App::Sniff {
                    held: [Held::default(), Held::default()],
                    gap: [false; 2],
                },
                tls: None,
                done: false,
                ended: [false; 2],
            },
        }
    }

    /// Which side sent from `addr`.
    pub fn side_of(&self, addr: SocketAddr) -> usize {
        usize::from(self.state.addrs[0] != addr)
    }

    /// Whether the connection is over and reported (nothing more to do).
    pub fn is_done(&self) -> bool {
        self.state.done
    }

    /// Whether this connection's bytes are of no interest.
    pub fn ignored(&self) -> bool {
        matches!(self.state.app, App::Ignored)
    }

    /// The capture time of the oldest bytes this connection holds without
    /// having turned them into events yet: events older than that may
    /// still come from it.
    pub fn pending_since(&self) -> Option<u64> {
        let held = |h: &Held| h.marks.first().map(|m| m.1);
        let app = match &self.state.app {
            App::Sniff { held: h, .. } => held(&h[0]).into_iter().chain(held(&h[1])).min(),
            App::Http(http) => held(&http.request)
                .into_iter()
                .chain(held(&http.response))
                .min(),
            App::WebSocket(ws) => ws
                .dirs
                .iter()
                .filter_map(|d| match &d.dec {
                    Dec::Resync(h) => held(h),
                    Dec::Tap(_) => None,
                })
                .min(),
            App::Http2 { .. } | App::Ignored => None,
        };
        let tls = self
            .state
            .tls
            .as_ref()
            .and_then(|t| t.session.waiting_since());
        self.halves
            .iter()
            .filter_map(HalfStream::holding_since)
            .chain(app)
            .chain(tls)
            .min()
    }

    /// Whether TLS records wait for secrets that may still arrive.
    pub fn waiting_for_keys(&self) -> bool {
        self.state
            .tls
            .as_ref()
            .is_some_and(|t| t.session.waiting_since().is_some())
    }

    /// The TLS client random, when this is a TLS connection whose hello
    /// was read.
    pub fn client_random(&self) -> Option<crate::keylog::ClientRandom> {
        self.state
            .tls
            .as_ref()
            .and_then(|t| t.session.client_random().copied())
    }

    /// New secrets arrived: records that waited for them are opened.
    pub fn retry_tls(&mut self, ctx: &mut Ctx<'_>) {
        let state = &mut self.state;
        let Some(layer) = &mut state.tls else {
            return;
        };
        let mut outs = Vec::new();
        layer.session.retry(ctx.keys, &mut outs);
        state.tls_outs(outs, ctx);
        state.replay_ends(ctx);
    }

    /// Keys did not come in time: the records held for them are given up
    /// (said once), and the connection ends as its packets said.
    pub fn give_up_keys(&mut self, ts: u64, ctx: &mut Ctx<'_>) {
        let state = &mut self.state;
        let Some(layer) = &mut state.tls else {
            return;
        };
        let mut outs = Vec::new();
        layer.session.finish(ts, &mut outs);
        state.tls_outs(outs, ctx);
        state.replay_ends(ctx);
    }

    /// Whether both directions have ended (FIN or reset).
    pub fn both_ended(&self) -> bool {
        self.state.ended[0] && self.state.ended[1]
    }

    /// Takes one segment sent by `side`.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        side: usize,
        seg: &crate::ip::Segment<'_>,
        ts: u64,
        ctx: &mut Ctx<'_>,
    ) {
        if seg.syn && !seg.ack {
            self.state.client = Some(side);
            self.state.syn_ts = Some(ts);
        } else if seg.syn {
            self.state.client.get_or_insert(1 - side);
            self.state.synack_ts = Some(ts);
        }
        let Conn { halves, state, .. } = self;
        if matches!(state.app, App::Ignored) {
            // Only the end matters now, to forget the connection.
            if seg.fin || seg.rst {
                state.ended[side] = true;
                if seg.rst {
                    state.ended = [true; 2];
                }
            }
            return;
        }
        halves[side].segment(
            ts,
            seg.seq,
            seg.syn,
            seg.fin,
            seg.rst,
            seg.payload,
            seg.missing,
            &mut |chunk| state.chunk(side, chunk, ts, ctx),
        );
        if seg.ack && !seg.rst {
            let other = 1 - side;
            halves[other].acked(seg.ack_no, &mut |chunk| state.chunk(other, chunk, ts, ctx));
        }
    }

    /// The capture ended: holes become gaps, undecided bytes are decided,
    /// and a WebSocket still open is reported as such.
    pub fn finish(&mut self, ts: u64, ctx: &mut Ctx<'_>) {
        let Conn { halves, state, .. } = self;
        for (side, half) in halves.iter_mut().enumerate() {
            half.finish(&mut |chunk| state.chunk(side, chunk, ts, ctx));
        }
        if let Some(layer) = &mut state.tls {
            let mut outs = Vec::new();
            layer.session.finish(ts, &mut outs);
            state.tls_outs(outs, ctx);
            state.replay_ends(ctx);
        }
        state.sniff(ts, true, ctx);
        if let App::WebSocket(ws) = &mut state.app {
            for side in 0..2 {
                if matches!(ws.dirs[side].dec, Dec::Resync(_)) {
                    state_resync(ws, side, true, state.id.as_deref(), ctx);
                }
            }
        }
        state.close_if_over(ts, true, ctx);
    }
}

impl State {
    fn chunk(&mut self, side: usize, chunk: Chunk<'_>, ts: u64, ctx: &mut Ctx<'_>) {
        match chunk {
            Chunk::Data { bytes, ts, .. } if self.tls.is_some() => {
                self.tls_feed(side, bytes, ts, ctx)
            }
            Chunk::Data { seq, bytes, ts } => self.data(side, seq, bytes, ts, ctx),
            Chunk::Gap {
                from,
                to,
                len,
                cause,
                ts,
            } if self.tls.is_some() => {
                let from_client = self.client == Some(side);
                let mut outs = Vec::new();
                if let Some(layer) = &mut self.tls {
                    layer.session.gap(from_client, len, ts, &mut outs);
                    // What is decrypted after the hole numbers on from the
                    // TCP sequence number after it.
                    layer.plain_seq[side] = to;
                }
                self.tls_outs(outs, ctx);
                // The decrypted stream has the same hole.
                self.gap(side, from, to, len, cause, ts, ctx);
            }
            Chunk::Gap {
                from,
                to,
                len,
                cause,
                ts,
            } => self.gap(side, from, to, len, cause, ts, ctx),
            Chunk::Conflict { seq, len } => {
                if let (Some(id), App::WebSocket(ws)) = (&self.id, &self.app) {
                    let dir = ws.dirs[side].dir;
                    ctx.emit(
                        ts,
                        id,
                        Some(dir),
                        EventKind::Note {
                            text: format!(
                                "a retransmission of seq {seq}..{} ({len} bytes) differs from the first copy; the first copy was used",
                                seq.wrapping_add(len as u32)
                            ),
                        },
                    );
                }
            }
            Chunk::Fin | Chunk::Rst
                if self
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.session.waiting_since().is_some()) =>
            {
                if let Some(layer) = &mut self.tls {
                    layer
                        .deferred_ends
                        .push((side, matches!(chunk, Chunk::Rst), ts));
                }
            }
            Chunk::Fin => {
                self.ended[side] = true;
                let order = (ts, ctx.next_order());
                if let App::WebSocket(ws) = &mut self.app {
                    ws.dirs[side].fin = Some(order);
                    if matches!(ws.dirs[side].dec, Dec::Resync(_)) {
                        state_resync(ws, side, true, self.id.as_deref(), ctx);
                    }
                } else {
                    self.sniff(ts, true, ctx);
                }
                self.close_if_over(ts, false, ctx);
            }
            Chunk::Rst => {
                self.ended = [true; 2];
                let order = (ts, ctx.next_order());
                if let App::WebSocket(ws) = &mut self.app {
                    ws.reset = Some((order, side));
                }
                self.close_if_over(ts, false, ctx);
            }
        }
    }

    fn data(&mut self, side: usize, seq: u32, bytes: &[u8], ts: u64, ctx: &mut Ctx<'_>) {
        match &mut self.app {
            App::Sniff { held, .. } => {
                held[side].push(seq, bytes, ts);
                self.sniff(ts, false, ctx);
            }
            App::Http(http) => {
                let client = self.client.unwrap_or(0);
                if side == client {
                    http.request.push(seq, bytes, ts);
                } else {
                    http.response.push(seq, bytes, ts);
                }
                self.handshake(ts, ctx);
            }
            App::WebSocket(ws) => {
                let id = self.id.as_deref().unwrap_or_default();
                if let Dec::Resync(held) = &mut ws.dirs[side].dec {
                    ws.last_ts = ts;
                    held.push(seq, bytes, ts);
                    state_resync(ws, side, false, Some(id), ctx);
                } else {
                    ws.feed(side, seq, bytes, ts, id, ctx);
                }
            }
            App::Http2 { watched, client } => {
                *watched += bytes.len();
                if self.client == Some(side) && client.feed(bytes) {
                    let (c, s) = (self.addrs[side], self.addrs[1 - side]);
                    if let Some(id) = &self.id {
                        ctx.emit(
                            ts,
                            id,
                            Some(Direction::ClientToServer),
                            EventKind::Note {
                                text: format!(
                                    "HTTP/2 connection {c} → {s} opens a WebSocket over HTTP/2 (RFC 8441 extended CONNECT with :protocol websocket): detected, not decoded"
                                ),
                            },
                        );
                    }
                    ctx.summary.websocket_over_http2 += 1;
                    self.app = App::Ignored;
                } else if *watched > HTTP2_WATCH {
                    self.app = App::Ignored;
                }
            }
            App::Ignored => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gap(
        &mut self,
        side: usize,
        from: u32,
        to: u32,
        len: u64,
        cause: GapCause,
        ts: u64,
        ctx: &mut Ctx<'_>,
    ) {
        ctx.summary.gaps += 1;
        match &mut self.app {
            App::Sniff { held, gap } => {
                // What came before the gap is not contiguous with what follows.
                held[side] = Held::starting_at(to);
                gap[side] = true;
            }
            App::Http(http) => {
                // The handshake is damaged: an upgrade request whose answer
                // is lost may still be a WebSocket; look for frames.
                let upgrade = http
                    .head
                    .as_ref()
                    .is_some_and(|(req, ..)| has_token(&req.headers, "Upgrade", "websocket"));
                if upgrade && self.client.is_some() {
                    self.start_websocket_unseen(ts, ctx);
                    if let App::WebSocket(ws) = &mut self.app {
                        ws.dirs[side].dec = Dec::Resync(Held::starting_at(to));
                    }
                } else {
                    self.app = App::Ignored;
                }
            }
            App::WebSocket(ws) => {
                let d = &mut ws.dirs[side];
                let why = match cause {
                    GapCause::Lost => "not in the capture",
                    GapCause::NotCaptured => "cut off by the capture's snap length",
                };
                let mut lost = String::from("the frame they fall in cannot be decoded");
                if let Dec::Tap(tap) = &d.dec
                    && tap.in_message()
                {
                    lost = "the frame they fall in and the rest of its message cannot be decoded"
                        .into();
                }
                let takeover = d.deflate.is_some_and(|p| match d.role {
                    Role::Client => !p.client_no_context_takeover,
                    Role::Server => !p.server_no_context_takeover,
                });
                if takeover {
                    lost.push_str(
                        "; compressed messages after it may not inflate (context takeover needs the missing bytes)",
                    );
                }
                if let Dec::Tap(tap) = &d.dec {
                    let s = tap.stats();
                    d.earlier.bytes += s.bytes;
                    d.earlier.frames += s.frames;
                    d.earlier.messages += s.messages;
                }
                // A hole inside the payload of a frame whose header was
                // read (a large message): that header says where the next
                // frame starts, so no search (which random payload bytes,
                // compressed or binary, can fool) is needed.
                let rest_of_frame = match &d.dec {
                    Dec::Tap(tap) => {
                        tap.frame_in_progress()
                            .and_then(|(header, _, violations, seen)| {
                                let remaining = header.payload_len.checked_sub(seen)?;
                                // `then`, not `then_some`: the subtraction
                                // must not run when the hole is longer.
                                (violations.is_empty() && remaining >= len).then(|| remaining - len)
                            })
                    }
                    _ => None,
                };
                let (resume, held) = match rest_of_frame {
                    Some(skip) => (
                        format!(
                            "decoding resumes after the frame's last {skip} bytes, where its header says the next frame starts"
                        ),
                        Held::skipping(to, skip),
                    ),
                    None => (
                        "decoding resumes at the next frame boundary that can be proven".to_owned(),
                        Held::starting_at(to),
                    ),
                };
                let text = format!(
                    "missing seq {from}..{to} ({len} bytes) of {}: {why}; {lost}; {resume}",
                    d.dir.as_str()
                );
                d.dec = Dec::Resync(held);
                if let Some(id) = &self.id {
                    ctx.emit(ts, id, Some(d.dir), EventKind::Note { text });
                }
            }
            App::Http2 { .. } | App::Ignored => {}
        }
    }

    /// Decides what a connection carries from its first bytes.
    fn sniff(&mut self, ts: u64, ended: bool, ctx: &mut Ctx<'_>) {
        let App::Sniff { held, gap } = &mut self.app else {
            return;
        };
        let undecided = held.iter().map(|h| h.bytes.len()).sum::<usize>();
        if let Some(c) = self.client {
            let first = &held[c].bytes;
            if first.is_empty() && !gap[c] {
                if held[1 - c].bytes.len() > MAX_HELD_UNDECIDED {
                    self.app = App::Ignored;
                }
                return;
            }
            if !gap[c] {
                if is_http_request(first) {
                    if could_still_be_http(first) && !ended {
                        return;
                    }
                    let [a, b] = std::mem::take(held);
                    let (request, response) = if c == 0 { (a, b) } else { (b, a) };
                    self.app = App::Http(Box::new(Http {
                        request,
                        response,
                        head: None,
                    }));
                    self.handshake(ts, ctx);
                    return;
                }
                if tls::looks_like_handshake(first) {
                    let start = match tls::client_hello(first) {
                        tls::Parsed::NeedMore if !ended && first.len() < MAX_HEAD => return,
                        tls::Parsed::Hello(hello) => TlsStart::Hello(hello),
                        _ => TlsStart::Unreadable,
                    };
                    let decrypt = ctx.options.keys_may_arrive || !ctx.keys.is_empty();
                    if let (TlsStart::Hello(hello), true, None) = (&start, decrypt, &self.tls) {
                        self.start_tls(hello.clone(), ts, ended, ctx);
                        return;
                    }
                    self.report_tls(start, ts, ctx);
                    self.app = App::Ignored;
                    return;
                }
                if first.starts_with(HTTP2_PREFACE) || HTTP2_PREFACE.starts_with(first) {
                    if first.len() < HTTP2_PREFACE.len() && !ended {
                        return;
                    }
                    self.report_http2(ts, ctx);
                    return;
                }
                self.app = App::Ignored;
                return;
            }
            // The start of the client's stream is lost. TLS records after
            // the hole, or a server's hello, still say TLS (a WebSocket
            // frame cannot start like a record: RSV3 and a reserved opcode).
            if tls::looks_like_record(first)
                || tls::sender(&held[1 - c].bytes) == Some(tls::Sender::Server)
            {
                self.report_tls(TlsStart::HelloLost, ts, ctx);
                self.app = App::Ignored;
                return;
            }
            // Look for frames.
            self.try_frames(ts, ended, ctx);
            return;
        }
        // No SYN seen: the capture joined the connection. The content says
        // who is who.
        for (side, h) in held.iter().enumerate() {
            let bytes = &h.bytes;
            if is_http_request(bytes) && !could_still_be_http(bytes) {
                self.client = Some(side);
                return self.sniff(ts, ended, ctx);
            }
        }
        if held.iter().any(|h| tls::looks_like_record(&h.bytes)) {
            // Whoever sent first is no proof of who is the client (after a
            // ClientHello, the server's hello is the next thing sent): a
            // handshake message only one end sends is. Encrypted records
            // from both ends, or the end of the capture, leave it unknown.
            let told = (0..2).find_map(|side| match tls::sender(&held[side].bytes) {
                Some(tls::Sender::Client) => Some(side),
                Some(tls::Sender::Server) => Some(1 - side),
                None => None,
            });
            match told {
                // A ClientHello seen without its SYN still names it.
                Some(client) if held[client].bytes.get(5) == Some(&CLIENT_HELLO) => {
                    self.client = Some(client);
                    return self.sniff(ts, ended, ctx);
                }
                Some(client) => {
                    self.client = Some(client);
                    self.report_tls(TlsStart::Joined, ts, ctx);
                    self.app = App::Ignored;
                }
                None if ended
                    || undecided > MAX_HELD_UNDECIDED
                    || held.iter().all(|h| tls::looks_like_record(&h.bytes)) =>
                {
                    self.report_tls(TlsStart::Joined, ts, ctx);
                    self.app = App::Ignored;
                }
                // The other end has sent nothing yet: it may still say.
                None => {}
            }
            return;
        }
        self.try_frames(ts, ended, ctx);
        if matches!(self.app, App::Sniff { .. }) && undecided > 2 * MAX_HELD_UNDECIDED {
            self.app = App::Ignored;
        }
    }

    /// Looks for WebSocket frames in a stream whose start is not in the
    /// capture: masked frames prove the client, unmasked ones the server.
    fn try_frames(&mut self, ts: u64, ended: bool, ctx: &mut Ctx<'_>) {
        let App::Sniff { held, .. } = &self.app else {
            return;
        };
        let mut proven = None;
        'search: for role in [Role::Client, Role::Server] {
            for (side, h) in held.iter().enumerate() {
                if self
                    .client
                    .is_some_and(|c| (c == side) != (role == Role::Client))
                {
                    continue;
                }
                if h.bytes.is_empty() {
                    continue;
                }
                if let Found::Boundary { .. } = resync::find(&h.bytes, role, ended) {
                    proven = Some(if role == Role::Client { side } else { 1 - side });
                    break 'search;
                }
            }
        }
        let Some(client) = proven else {
            if held.iter().all(|h| h.bytes.len() > MAX_HELD_UNDECIDED) || ended {
                self.app = App::Ignored;
            }
            return;
        };
        self.client = Some(client);
        let App::Sniff { held, .. } = std::mem::replace(&mut self.app, App::Ignored) else {
            unreachable!("matched above");
        };
        self.start_websocket_unseen(ts, ctx);
        if let App::WebSocket(ws) = &mut self.app {
            for (side, h) in held.into_iter().enumerate() {
                ws.dirs[side].dec = Dec::Resync(h);
                state_resync(ws, side, ended && self.ended[side], self.id.as_deref(), ctx);
            }
        }
    }

    /// Opens a WebSocket whose handshake is missing: both directions wait
    /// for a frame boundary.
    fn start_websocket_unseen(&mut self, ts: u64, ctx: &mut Ctx<'_>) {
        let client = self.client.unwrap_or(0);
        let id = self.conn_id(ctx);
        let server = self.addrs[1 - client];
        let request = match &self.app {
            App::Http(http) => http.head.as_ref().map(|(req, ..)| request_head(req)),
            _ => None,
        };
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let open = Open {
            url: format!("{scheme}://{server}"),
            client: self.addrs[client].to_string(),
            server: server.to_string(),
            request: request.unwrap_or_default(),
            response: Head::default(),
            subprotocol: None,
            extensions: Vec::new(),
            timings: Timings::default(),
            handshake: Some(HandshakeSeen::Missing),
            attempt: None,
        };
        ctx.summary.websocket += 1;
        ctx.summary.handshake_missing += 1;
        ctx.emit(ts, &id, None, EventKind::Open(open));
        self.id = Some(id);
        self.app = App::WebSocket(Box::new(Ws::new(client, None, ts, true, ctx.options)));
    }

    /// Reads the two heads of an HTTP exchange; a 101 to an upgrade
    /// request opens a WebSocket.
    fn handshake(&mut self, ts: u64, ctx: &mut Ctx<'_>) {
        let App::Http(http) = &mut self.app else {
            return;
        };
        if http.head.is_none() {
            match Request::parse(&http.request.bytes) {
                Ok(Parsed::Complete(request, len)) => {
                    if !has_token(&request.headers, "Upgrade", "websocket") {
                        // Plain HTTP: nothing for wscope here.
                        ctx.summary.http_without_upgrade += 1;
                        self.app = App::Ignored;
                        return;
                    }
                    let at = http.request.last_ts().unwrap_or(ts);
                    http.head = Some((request, len, at));
                }
                Ok(Parsed::Incomplete) if http.request.bytes.len() < MAX_HEAD => return,
                _ => {
                    self.app = App::Ignored;
                    return;
                }
            }
        }
        let (response, response_len) = match Response::parse(&http.response.bytes) {
            Ok(Parsed::Complete(response, len)) => (response, len),
            Ok(Parsed::Incomplete) if http.response.bytes.len() < MAX_HEAD => return,
            _ => {
                self.app = App::Ignored;
                return;
            }
        };
        let Some((request, request_len, request_ts)) = http.head.take() else {
            return;
        };
        let response_ts = http.response.last_ts().unwrap_or(ts);
        let client = self.client.unwrap_or(0);
        let server = self.addrs[1 - client];
        let host = request
            .header("host")
            .map(str::to_owned)
            .unwrap_or_else(|| server.to_string());
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = if request.target.starts_with('/') {
            format!("{scheme}://{host}{}", request.target)
        } else {
            request.target.clone()
        };
        let id = self.id.get_or_insert_with(|| ctx.next_id()).clone();
        if response.status != 101 {
            let body_bytes = &http.response.bytes[response_len..];
            let body = String::from_utf8_lossy(&body_bytes[..body_bytes.len().min(4096)]);
            let failed = HandshakeFailed {
                url,
                client: Some(self.addrs[client].to_string()),
                request: Some(request_head(&request)),
                response: Some(response_head(&response)),
                status: Some(response.status),
                body: body.into_owned(),
                upstream_unreachable: false,
                diagnosis: wscope_proto::handshake::status::diagnose(response.status).to_owned(),
            };
            ctx.summary.handshake_failed += 1;
            ctx.emit(response_ts, &id, None, EventKind::HandshakeFailed(failed));
            self.id = Some(id);
            self.app = App::Ignored;
            return;
        }
        let deflate = match deflate::client_negotiate(
            &extensions_in(&request.headers),
            &extensions_in(&response.headers),
        ) {
            Ok(params) => params,
            Err(err) => {
                ctx.emit(
                        response_ts,
                        &id,
                        None,
                        EventKind::Note {
                            text: format!(
                                "the extension answer is not valid ({err}); frames are shown without decompression"
                            ),
                        },
                    );
                None
            }
        };
        let open = Open {
            url,
            client: self.addrs[client].to_string(),
            server: server.to_string(),
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
                tcp_us: self
                    .syn_ts
                    .zip(self.synack_ts)
                    .map(|(syn, ack)| ack.saturating_sub(syn)),
                upgrade_us: Some(response_ts.saturating_sub(request_ts)),
                ..Timings::default()
            },
            handshake: None,
            attempt: None,
        };
        ctx.summary.websocket += 1;
        ctx.emit(response_ts, &id, None, EventKind::Open(open));
        let App::Http(http) = std::mem::replace(&mut self.app, App::Ignored) else {
            unreachable!("matched above");
        };
        let mut ws = Ws::new(client, deflate, response_ts, false, ctx.options);
        // Frames that came with the heads, in the order they arrived.
        let (c, s) = (client, 1 - client);
        // Frames a client pipelined behind its request are shown after the
        // open, not before it.
        http.request.pieces(request_len, |seq, bytes, at| {
            ws.feed(c, seq, bytes, at.max(response_ts), &id, ctx);
        });
        http.response.pieces(response_len, |seq, bytes, at| {
            ws.feed(s, seq, bytes, at.max(response_ts), &id, ctx);
        });
        self.id = Some(id);
        self.app = App::WebSocket(Box::new(ws));
    }

    /// The ends that waited behind records held for keys, once those
    /// records are opened or given up.
    fn replay_ends(&mut self, ctx: &mut Ctx<'_>) {
        let Some(layer) = &mut self.tls else {
            return;
        };
        if layer.session.waiting_since().is_some() {
            return;
        }
        for (side, reset, ts) in std::mem::take(&mut layer.deferred_ends) {
            let chunk = if reset { Chunk::Rst } else { Chunk::Fin };
            self.chunk(side, chunk, ts, ctx);
        }
    }

    /// "TLS connection A → B (SNI …, ALPN …)"; the name is counted.
    fn tls_description(&self, start: &TlsStart, ctx: &mut Ctx<'_>) -> String {
        let ends = match self.client {
            Some(c) => format!("{} → {}", self.addrs[c], self.addrs[1 - c]),
            None => format!("between {} and {}", self.addrs[0], self.addrs[1]),
        };
        match start {
            TlsStart::Hello(hello) => {
                let sni = hello.sni.as_deref().unwrap_or("(no SNI)");
                if let Some(sni) = &hello.sni
                    && ctx.summary.tls_names.len() < 8
                    && !ctx.summary.tls_names.contains(sni)
                {
                    ctx.summary.tls_names.push(sni.clone());
                }
                let alpn = if hello.alpn.is_empty() {
                    String::new()
                } else {
                    format!(", ALPN {}", hello.alpn.join(", "))
                };
                format!("TLS connection {ends} (SNI {sni}{alpn})")
            }
            TlsStart::Joined => {
                format!("TLS connection {ends} (joined after its ClientHello: no SNI)")
            }
            TlsStart::HelloLost => {
                format!("TLS connection {ends} (its ClientHello is not in the capture: no SNI)")
            }
            TlsStart::Unreadable => {
                format!("TLS connection {ends} (its ClientHello cannot be read: no SNI)")
            }
        }
    }

    fn report_tls(&mut self, start: TlsStart, ts: u64, ctx: &mut Ctx<'_>) {
        let what = self.tls_description(&start, ctx);
        let id = self.conn_id(ctx);
        ctx.summary.tls += 1;
        let why = if ctx.keys.is_empty() && !ctx.options.keys_may_arrive {
            format!(
                "encrypted: its WebSocket traffic cannot be shown without the session keys; {KEYLOG_HINT}"
            )
        } else {
            "encrypted, and without its ClientHello (whose random names its key log line) it cannot be decrypted".to_owned()
        };
        ctx.emit(
            ts,
            &id,
            None,
            EventKind::Note {
                text: format!("{what}: {why}"),
            },
        );
    }

    /// This connection's id, handed out now if it has none yet.
    fn conn_id(&mut self, ctx: &mut Ctx<'_>) -> String {
        self.id.get_or_insert_with(|| ctx.next_id()).clone()
    }

    /// A TLS connection with secrets that may decrypt it: what was held
    /// goes through the record layer, and sniffing starts again on what
    /// it decrypts.
    fn start_tls(&mut self, hello: tls::ClientHello, ts: u64, ended: bool, ctx: &mut Ctx<'_>) {
        ctx.summary.tls += 1;
        let App::Sniff { held, .. } = std::mem::replace(
            &mut self.app,
            App::Sniff {
                held: [Held::default(), Held::default()],
                gap: [false; 2],
            },
        ) else {
            return;
        };
        self.tls = Some(Box::new(TlsLayer {
            session: TlsSession::new(ctx.options.keys_may_arrive),
            hello,
            plain_seq: [0; 2],
            deferred_ends: Vec::new(),
        }));
        let client = self.client.unwrap_or(0);
        for side in [client, 1 - client] {
            held[side].pieces(0, |_, bytes, at| self.tls_feed(side, bytes, at, ctx));
        }
        if ended {
            self.sniff(ts, true, ctx);
        }
    }

    fn tls_feed(&mut self, side: usize, bytes: &[u8], ts: u64, ctx: &mut Ctx<'_>) {
        let from_client = self.client == Some(side);
        let mut outs = Vec::new();
        if let Some(layer) = &mut self.tls {
            layer
                .session
                .feed(from_client, bytes, ts, ctx.keys, &mut outs);
        }
        self.tls_outs(outs, ctx);
    }

    /// What the record layer said: decrypted bytes go on as the
    /// connection's data, the rest become notes.
    fn tls_outs(&mut self, outs: Vec<TlsOut>, ctx: &mut Ctx<'_>) {
        let client = self.client.unwrap_or(0);
        for out in outs {
            match out {
                TlsOut::Plain {
                    from_client,
                    bytes,
                    ts,
                } => {
                    let side = if from_client { client } else { 1 - client };
                    let Some(layer) = &mut self.tls else {
                        return;
                    };
                    let seq = layer.plain_seq[side];
                    layer.plain_seq[side] = seq.wrapping_add(bytes.len() as u32);
                    self.data(side, seq, &bytes, ts, ctx);
                }
                TlsOut::Decrypting { version, suite, ts } => {
                    ctx.summary.tls_decrypted += 1;
                    let text = format!(
                        "{}: {version}, {suite}, decrypted with the key log",
                        self.layer_description(ctx)
                    );
                    let id = self.conn_id(ctx);
                    ctx.emit(ts, &id, None, EventKind::Note { text });
                }
                TlsOut::Note {
                    from_client,
                    text,
                    ts,
                } => {
                    let dir = from_client.map(|c| {
                        if c {
                            Direction::ClientToServer
                        } else {
                            Direction::ServerToClient
                        }
                    });
                    let id = self.conn_id(ctx);
                    ctx.emit(ts, &id, dir, EventKind::Note { text });
                }
                TlsOut::Stopped {
                    reason,
                    keys_missing,
                    ts,
                } => {
                    let decrypting = self.tls.as_ref().is_some_and(|t| t.session.decrypting());
                    let what = self.layer_description(ctx);
                    let text = if decrypting {
                        format!("{what}: decryption stopped: {reason}")
                    } else if keys_missing {
                        format!("{what}: encrypted and not decrypted: {reason}; {KEYLOG_HINT}")
                    } else {
                        format!("{what}: encrypted and not decrypted: {reason}")
                    };
                    let id = self.conn_id(ctx);
                    ctx.emit(ts, &id, None, EventKind::Note { text });
                    if let Some(random) = self.tls.as_ref().and_then(|t| t.session.client_random())
                    {
                        ctx.keys.abandon(random);
                    }
                    if !matches!(self.app, App::WebSocket(_)) {
                        self.app = App::Ignored;
                    }
                }
            }
        }
    }

    fn layer_description(&self, ctx: &mut Ctx<'_>) -> String {
        let hello = self
            .tls
            .as_ref()
            .map(|t| t.hello.clone())
            .unwrap_or_default();
        self.tls_description(&TlsStart::Hello(hello), ctx)
    }

    fn report_http2(&mut self, ts: u64, ctx: &mut Ctx<'_>) {
        let client = self.client.unwrap_or(0);
        let id = self.conn_id(ctx);
        let (c, s) = (self.addrs[client], self.addrs[1 - client]);
        let text = format!(
            "HTTP/2 connection {c} → {s} (cleartext, prior knowledge): its streams are not decoded"
        );
        ctx.summary.http2 += 1;
        ctx.emit(ts, &id, None, EventKind::Note { text });
        self.id = Some(id);
        // What came with the preface is looked at like what follows.
        let App::Sniff { held, .. } = std::mem::replace(
            &mut self.app,
            App::Http2 {
                watched: 0,
                client: Box::default(),
            },
        ) else {
            return;
        };
        for (side, h) in held.iter().enumerate() {
            h.pieces(0, |seq, bytes, at| self.data(side, seq, bytes, at, ctx));
        }
    }

    /// Reports the end of a WebSocket once both directions are over (or
    /// the capture is, with `at_end`).
    fn close_if_over(&mut self, ts: u64, at_end: bool, ctx: &mut Ctx<'_>) {
        let App::WebSocket(ws) = &self.app else {
            if self.ended[0] && self.ended[1] {
                self.done = true;
            }
            return;
        };
        let over = ws.reset.is_some() || ws.dirs.iter().all(|d| d.fin.is_some());
        if !over && !at_end {
            return;
        }
        let id = self.id.clone().unwrap_or_default();
        let client = self.client.unwrap_or(0);
        ctx.summary.frames += ws
            .dirs
            .iter()
            .map(|d| {
                d.earlier.frames
                    + match &d.dec {
                        Dec::Tap(tap) => tap.stats().frames,
                        Dec::Resync(_) => 0,
                    }
            })
            .sum::<u64>();
        let closed = ws.closed(client, ts, over);
        ctx.emit(ts, &id, None, EventKind::Closed(closed));
        self.app = App::Ignored;
        self.done = true;
    }
}

/// Looks for a frame boundary in what direction `side` has held since a
/// gap; once found, a fresh tap decodes from there.
fn state_resync(ws: &mut Ws, side: usize, ended: bool, id: Option<&str>, ctx: &mut Ctx<'_>) {
    let d = &mut ws.dirs[side];
    let Dec::Resync(held) = &mut d.dec else {
        return;
    };
    match resync::find(&held.bytes, d.role, ended) {
        Found::Boundary {
            at,
            at_first,
            skipped_frames,
        } => {
            let seq = held.seq.wrapping_add(at as u32);
            let ts = held
                .marks
                .iter()
                .rev()
                .find(|m| m.0 <= at)
                .map_or(ws.last_ts, |m| m.1);
            if d.deflate.is_none() && ws.handshake_missing {
                // The handshake that would say whether permessage-deflate
                // was agreed is not in the capture: be ready for it (its
                // widest window and context takeover decode any
                // parameters), so RSV1 frames inflate instead of being
                // called violations.
                d.deflate = Some(DeflateParams::default());
            }
            let held = std::mem::take(held);
            d.dec = Dec::Tap(new_tap(d.role, d.deflate, ctx.options));
            d.text = FrameText::default();
            if let Some(id) = id {
                let mut text = if held.known && at_first == 0 {
                    format!(
                        "{}: decoding resumes at seq {seq}, after the damaged frame",
                        d.dir.as_str()
                    )
                } else {
                    format!(
                        "{}: decoding resumes at seq {seq}, a frame boundary proven by the {} frame headers after it",
                        d.dir.as_str(),
                        resync::CHAIN
                    )
                };
                if at_first > 0 {
                    text.push_str(&format!(
                        "; {at_first} bytes before it could not be decoded"
                    ));
                }
                if skipped_frames > 0 {
                    text.push_str(&format!(
                        "; {skipped_frames} continuation frames of a message whose start is missing were passed over"
                    ));
                }
                ctx.emit(ts, id, Some(d.dir), EventKind::Note { text });
                held.pieces(at, |seq, bytes, at_ts| {
                    ws.feed(side, seq, bytes, at_ts, id, ctx)
                });
            }
        }
        Found::NeedMore { keep_from } => {
            held.drop_front(keep_from);
            if held.bytes.len() > MAX_HELD_UNDECIDED {
                let half = held.bytes.len() / 2;
                held.drop_front(half);
            }
        }
    }
}

impl Ws {
    fn new(
        client: usize,
        deflate: Option<DeflateParams>,
        ts: u64,
        handshake_missing: bool,
        options: &Options,
    ) -> Ws {
        let dir = |side: usize| {
            let (dir, role) = if side == client {
                (Direction::ClientToServer, Role::Client)
            } else {
                (Direction::ServerToClient, Role::Server)
            };
            WsDir {
                dir,
                role,
                deflate,
                dec: Dec::Resync(Held::default()),
                text: FrameText::default(),
                earlier: TapStats::default(),
                close: None,
                fin: None,
            }
        };
        let mut ws = Ws {
            open_ts: ts,
            dirs: [dir(0), dir(1)],
            reset: None,
            last_ts: ts,
            seen: Vec::new(),
            handshake_missing,
        };
        if !handshake_missing {
            for d in &mut ws.dirs {
                d.dec = Dec::Tap(new_tap(d.role, deflate, options));
            }
        }
        ws
    }

    fn feed(&mut self, side: usize, seq: u32, bytes: &[u8], ts: u64, id: &str, ctx: &mut Ctx<'_>) {
        self.last_ts = ts;
        let d = &mut self.dirs[side];
        if let Dec::Tap(tap) = &mut d.dec {
            tap.feed(bytes, &mut self.seen);
            let garbage = garbage_header(tap, bytes.len());
            if let Some((header_at, why)) = garbage {
                // The rest of what the header claims would swallow the
                // stream: report it, and look for the next real frame
                // from the byte after it.
                tap.abandon_frame(&mut self.seen);
                let s = tap.stats();
                d.earlier.bytes += s.bytes;
                d.earlier.frames += s.frames;
                d.earlier.messages += s.messages;
                report(d, &mut self.seen, ts, id, ctx);
                ctx.emit(
                    ts,
                    id,
                    Some(d.dir),
                    EventKind::Note {
                        text: format!(
                            "{}: a frame header that cannot be real ({why}); looking for the next frame boundary after it",
                            d.dir.as_str()
                        ),
                    },
                );
                let mut held = Held::default();
                held.push(
                    seq.wrapping_add(header_at as u32 + 1),
                    &bytes[header_at + 1..],
                    ts,
                );
                d.dec = Dec::Resync(held);
                state_resync(self, side, false, Some(id), ctx);
                return;
            }
            report(d, &mut self.seen, ts, id, ctx);
        } else if let Dec::Resync(held) = &mut d.dec {
            held.push(held.seq.wrapping_add(held.bytes.len() as u32), bytes, ts);
        }
    }

    fn closed(&self, client: usize, ts: u64, over: bool) -> Closed {
        let by_side = |side: usize| {
            if side == client {
                ClosedBy::Client
            } else {
                ClosedBy::Server
            }
        };
        let first_close = self
            .dirs
            .iter()
            .enumerate()
            .filter_map(|(side, d)| d.close.as_ref().map(|(order, c)| (*order, side, c)))
            .min_by_key(|(order, ..)| *order);
        let both_closes = self.dirs.iter().all(|d| d.close.is_some());
        let (by, code, reason) = match first_close {
            Some((_, side, close)) => (
                by_side(side),
                close.code.unwrap_or(CloseCode::NO_STATUS),
                close.reason.clone(),
            ),
            None => {
                let first_end = self
                    .dirs
                    .iter()
                    .enumerate()
                    .filter_map(|(side, d)| d.fin.map(|order| (order, side)))
                    .chain(self.reset)
                    .min();
                (
                    first_end.map_or(ClosedBy::Unknown, |(_, side)| by_side(side)),
                    CloseCode::ABNORMAL,
                    String::new(),
                )
            }
        };
        let ended = if self.reset.is_some() {
            Ending::Rst
        } else if !over {
            Ending::CaptureEnd
        } else if both_closes {
            Ending::CloseHandshake
        } else {
            Ending::Fin
        };
        let stats = |d: &WsDir| {
            let now = match &d.dec {
                Dec::Tap(tap) => tap.stats(),
                Dec::Resync(_) => TapStats::default(),
            };
            (
                d.earlier.messages + now.messages,
                d.earlier.bytes + now.bytes,
            )
        };
        let (c, s) = (&self.dirs[client], &self.dirs[1 - client]);
        let ((mc, bc), (ms, bs)) = (stats(c), stats(s));
        Closed {
            by,
            clean: both_closes && self.reset.is_none(),
            code: code.0,
            reason,
            meaning: format!("{}: {}", code.name(), code.meaning()),
            duration_us: ts.saturating_sub(self.open_ts),
            messages_c2s: mc,
            messages_s2c: ms,
            bytes_c2s: bc,
            bytes_s2c: bs,
            ended: Some(ended),
        }
    }
}

/// Turns what a tap saw into events.
fn report(d: &mut WsDir, seen: &mut Vec<Observed>, ts: u64, id: &str, ctx: &mut Ctx<'_>) {
    let limits = PayloadLimits {
        text: ctx.options.max_payload,
        binary: if ctx.options.binary {
            ctx.options.max_payload
        } else {
            0
        },
    };
    for observed in seen.drain(..) {
        match &observed {
            Observed::Message { .. } => ctx.summary.messages += 1,
            Observed::Close(close) if d.close.is_none() => {
                d.close = Some(((ts, ctx.next_order()), close.clone()));
            }
            _ => {}
        }
        if let Some(kind) = d.text.kind(observed, limits) {
            ctx.emit(ts, id, Some(d.dir), kind);
        }
    }
}

fn request_head(request: &Request) -> Head {
    Head {
        line: format!(
            "{} {} HTTP/1.{}",
            request.method, request.target, request.version
        ),
        headers: request.headers.clone(),
    }
}

fn response_head(response: &Response) -> Head {
    Head {
        line: format!(
            "HTTP/1.{} {} {}",
            response.version, response.status, response.reason
        ),
        headers: response.headers.clone(),
    }
}

/// Whether the frame the tap is in has a header no sender would write,
/// found within the `fed` bytes just given: where it started among them,
/// and why it cannot be real.
fn garbage_header(tap: &Tap, fed: usize) -> Option<(usize, String)> {
    let (header, header_len, violations, seen) = tap.frame_in_progress()?;
    let start = fed.checked_sub(header_len + seen as usize)?;
    let fatal = violations.iter().find(|v| {
        matches!(
            v,
            Violation::ReservedOpcode(_)
                | Violation::UnmaskedClientFrame
                | Violation::MaskedServerFrame
                | Violation::ControlFrameTooLong(_)
                | Violation::LengthHighBitSet
        )
    });
    let why = match fatal {
        Some(v) => v.to_string(),
        None if header.payload_len > 1 << 30 => {
            format!("a payload of {} bytes", header.payload_len)
        }
        None => return None,
    };
    Some((start, why))
}

fn new_tap(role: Role, deflate: Option<DeflateParams>, options: &Options) -> Box<Tap> {
    let mut tap = Tap::new(role, deflate, options.max_payload);
    tap.report_data_frames(options.frames);
    Box::new(tap)
}
