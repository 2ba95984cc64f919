//! The relay engine: one proxied WebSocket connection, without I/O.
//!
//! It is told what was read from either side, commands (from rules, the
//! UI, shutdown), the time and rule reloads; it answers with what to write
//! to which side and when, the events to emit, whether to cut the
//! connection, and when it next wants to be woken. The driver around it
//! ([`super::relay`]) does the reading, writing and sleeping, so every
//! decision here can be tested with a made-up clock and byte sequences.
//!
//! Each direction has one decoder, a [`Tap`]: frame splitting, unmasking,
//! UTF-8 and inflating happen once, for the events and the rules alike.
//! Without rules the engine forwards bytes as they arrive ([`Pass::Forward`]:
//! the driver writes what it read, untouched). With rules each direction
//! holds the frames of the data message in progress until the tap says it
//! is complete, then the rules decide what happens to it, and what is
//! forwarded waits in a [`Queue`] ordered by when it is due.
//!
//! A message that passes unchanged is forwarded as the frames it arrived
//! in. Compressed messages are the exception: once a message may be
//! dropped or rewritten, the receiver's permessage-deflate context would no
//! longer match the sender's, so with rules every compressed message is
//! deflated again with the engine's own compressor (the tap has inflated
//! it already). Messages the proxy adds go uncompressed (RSV1 clear),
//! which RFC 7692 allows at any time.

mod budget;
mod judge;
mod queue;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wscope_events::observed::{FrameText, PayloadLimits};
use wscope_events::{Closed, ClosedBy, Direction, EventKind};
use wscope_proto::deflate::{DeflateParams, PerMessageDeflate};
use wscope_proto::frame::encode_frame;
use wscope_proto::tap::{Observed, Tap};
use wscope_proto::{CloseCode, ClosePayload, OpCode, Role};

use crate::sources::control::Command;
use crate::sources::rules::state::RuleState;
use crate::sources::rules::{Injected, RuleSet};

pub use budget::Budget;
pub use queue::BATCH;
use queue::Queue;

/// The largest message the engine holds whole for the rules. A bigger one
/// cannot be judged: the connection is closed with 1009.
pub const HOLD_LIMIT: u64 = 64 * 1024 * 1024;
/// Bytes waiting for one receiver beyond which the sender is no longer
/// read (back-pressure through a delay or a throttle).
const QUEUE_LIMIT: usize = 8 * 1024 * 1024;

/// How the proxy itself ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Both TCP connections reset.
    Reset,
    /// Both TCP connections closed, without close frames.
    Hangup,
}

/// What the rules do to one direction, besides judging its messages.
#[derive(Debug)]
enum Act {
    Inject(Injected),
    Close { code: u16, reason: String },
    Pause(Duration),
}

/// How one direction ended.
#[derive(Debug)]
pub enum End {
    /// The sender closed its side of the TCP connection.
    Eof,
    /// Reading from the sender failed (a reset).
    ReadFailed(io::Error),
    /// Writing to the receiver failed (it went away).
    WriteFailed(io::Error),
    /// The proxy cut the connection.
    Cut,
}

/// What became of bytes given to [`Engine::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Write them to the receiver as they are, now.
    Forward,
    /// The engine took them: what goes out comes from [`Engine::poll_write`].
    Taken,
}

/// An event for the connection, and the direction it belongs to.
#[derive(Debug)]
pub struct Emit {
    pub dir: Option<Direction>,
    pub kind: EventKind,
}

/// How a connection is relayed.
pub struct Config {
    /// The connection's id (rules can match on it).
    pub id: String,
    /// What the handshake negotiated.
    pub deflate: Option<DeflateParams>,
    /// How much of each payload events keep.
    pub capture: usize,
    /// Every data frame is an event, not only messages.
    pub report_frames: bool,
    /// The rules in force; `None` relays bytes untouched.
    pub rules: Option<Arc<RuleSet>>,
    /// The largest message held whole for the rules ([`HOLD_LIMIT`]).
    pub hold_limit: u64,
    /// What all connections together may hold.
    pub budget: Arc<Budget>,
}

fn index(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

fn both() -> [Direction; 2] {
    [Direction::ClientToServer, Direction::ServerToClient]
}

fn other(dir: Direction) -> Direction {
    match dir {
        Direction::ClientToServer => Direction::ServerToClient,
        Direction::ServerToClient => Direction::ClientToServer,
    }
}

/// One direction: what its sender sent, what its receiver is owed.
struct Flow {
    dir: Direction,
    tap: Tap,
    text: FrameText,
    /// The sender's close frame, and when (by sequence) it passed.
    close: Option<(u64, ClosePayload)>,
    ended: Option<(u64, End)>,
    /// A close frame the proxy put into this direction: when, its code and
    /// reason. The sender's own frames after it are not forwarded.
    injected: Option<(u64, u16, String)>,
    eof: bool,
    /// The receiver's write side has been shut (after EOF and the queue).
    shut: bool,
    queue: Queue,
    /// Bytes of the frame in progress not yet forwarded or held.
    partial: Vec<u8>,
    /// Bytes of the frame in progress already forwarded (it belongs to a
    /// message passing unjudged).
    released: u64,
    /// The wire frames of the data message in progress.
    held: Vec<u8>,
    /// The rest of the message in progress passes unjudged, as it arrives:
    /// its text turned out not to be UTF-8, and the receiver must see that
    /// as early as it would without the proxy (RFC 6455 section 8.1).
    passing: bool,
    /// Nothing from this sender is judged any more (it sent compressed
    /// data that does not inflate): bytes pass as they arrive.
    raw: bool,
    /// A message over the hold limit: nothing more is forwarded.
    broken: bool,
    /// Compresses what the engine forwards compressed, made on first use.
    deflate: Option<PerMessageDeflate>,
}

impl Flow {
    fn new(dir: Direction, config: &Config) -> Flow {
        let sender = match dir {
            Direction::ClientToServer => Role::Client,
            Direction::ServerToClient => Role::Server,
        };
        let mut tap = Tap::new(sender, config.deflate, config.capture);
        tap.report_data_frames(config.report_frames);
        if config.rules.is_some() {
            tap.track_frames(usize::try_from(config.hold_limit).unwrap_or(usize::MAX));
        }
        Flow {
            dir,
            tap,
            text: FrameText::default(),
            close: None,
            ended: None,
            injected: None,
            eof: false,
            shut: false,
            queue: Queue::default(),
            partial: Vec::new(),
            released: 0,
            held: Vec::new(),
            passing: false,
            raw: false,
            broken: false,
            deflate: None,
        }
    }

    /// Queues bytes to go now, in order.
    fn forward(&mut self, now: Instant, bytes: Vec<u8>) {
        self.queue.push(now, bytes, None, false);
    }

    /// Forwards what is held and what has arrived of the frame in
    /// progress: the message passes unjudged from here.
    fn release(&mut self, now: Instant) {
        let mut bytes = std::mem::take(&mut self.held);
        self.released += self.partial.len() as u64;
        bytes.append(&mut self.partial);
        self.forward(now, bytes);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.budget.give(self.taken);
    }
}

/// One relayed connection.
pub struct Engine {
    id: String,
    deflate: Option<DeflateParams>,
    flows: [Flow; 2],
    rules: Option<RuleState>,
    hold_limit: u64,
    budget: Arc<Budget>,
    /// This connection's share of the budget.
    taken: usize,
    limits: PayloadLimits,
    /// Orders closes and ends across the two directions.
    seq: u64,
    /// When a frame last passed either way (for idle timeouts).
    active: Instant,
    cut: Option<Cut>,
    events: Vec<Emit>,
    seen: Vec<Observed>,
}

impl Engine {
    pub fn new(config: Config, now: Instant) -> Engine {
        let mut engine = Engine {
            flows: [
                Flow::new(Direction::ClientToServer, &config),
                Flow::new(Direction::ServerToClient, &config),
            ],
            rules: config.rules.map(|set| RuleState::new(set, now)),
            limits: PayloadLimits::all(config.capture),
            hold_limit: config.hold_limit,
            budget: config.budget,
            taken: 0,
            deflate: config.deflate,
            id: config.id,
            seq: 0,
            active: now,
            cut: None,
            events: Vec::new(),
            seen: Vec::new(),
        };
        engine.keep_what_rules_read();
        engine
    }

    /// The taps keep whole binary messages only for rules that read them.
    fn keep_what_rules_read(&mut self) {
        if let Some(rules) = &self.rules {
            let binary = rules.filters_binary();
            for flow in &mut self.flows {
                flow.tap.keep_whole_binary(binary);
            }
        }
    }

    /// Whether rules are in force (messages are held and judged).
    pub fn shaping(&self) -> bool {
        self.rules.is_some()
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn flow(&mut self, dir: Direction) -> &mut Flow {
        &mut self.flows[index(dir)]
    }

    fn emit(&mut self, dir: Option<Direction>, kind: EventKind) {
        self.events.push(Emit { dir, kind });
    }

    fn note(&mut self, dir: Option<Direction>, text: String) {
        self.emit(dir, EventKind::Note { text });
    }

    /// The events so far, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Emit> {
        self.events.drain(..)
    }

    /// Whether the engine takes more bytes from this direction's sender.
    pub fn wants_read(&self, dir: Direction) -> bool {
        let flow = &self.flows[index(dir)];
        !flow.eof && flow.queue.queued() < QUEUE_LIMIT
    }

    /// The sender of `dir` sent `data`.
    pub fn read(&mut self, dir: Direction, data: &[u8], now: Instant) -> Pass {
        self.active = now;
        let mut seen = std::mem::take(&mut self.seen);
        self.flow(dir).tap.feed(data, &mut seen);
        let pass = if self.shaping() {
            self.take(dir, data, &mut seen, now);
            self.settle(Some(dir), now);
            Pass::Taken
        } else {
            for observed in seen.drain(..) {
                self.observe(dir, observed);
            }
            if self.flow(dir).injected.is_some() {
                // We closed this direction: the sender's frames end here.
                Pass::Taken
            } else {
                Pass::Forward
            }
        };
        seen.clear();
        self.seen = seen;
        pass
    }

    /// Turns what the tap saw into an event (and notes the sender's close).
    fn observe(&mut self, dir: Direction, observed: Observed) {
        if let Observed::Close(close) = &observed
            && self.flows[index(dir)].close.is_none()
        {
            let seq = self.next();
            self.flow(dir).close = Some((seq, close.clone()));
        }
        let limits = self.limits;
        if let Some(kind) = self.flow(dir).text.kind(observed, limits) {
            self.emit(Some(dir), kind);
        }
    }

    /// With rules: cuts what arrived into frames, holds each data message
    /// until it is whole, and puts messages and control frames through the
    /// rules.
    fn take(&mut self, dir: Direction, data: &[u8], seen: &mut Vec<Observed>, now: Instant) {
        let mut cursor = 0;
        // What the tap completed, waiting for the end of its frame.
        let mut message: Option<judge::Whole> = None;
        let mut control: Option<Vec<u8>> = None;
        for observed in seen.drain(..) {
            match observed {
                Observed::FrameEnd { header, wire_len } => {
                    let flow = self.flow(dir);
                    let had = flow.partial.len() as u64 + flow.released;
                    let need = usize::try_from(wire_len.saturating_sub(had))
                        .unwrap_or(usize::MAX)
                        .min(data.len() - cursor);
                    let mut wire = std::mem::take(&mut flow.partial);
                    wire.extend_from_slice(&data[cursor..cursor + need]);
                    cursor += need;
                    let released = std::mem::take(&mut flow.released) > 0;
                    self.frame(
                        dir,
                        header,
                        wire,
                        released,
                        message.take(),
                        control.take(),
                        now,
                    );
                }
                Observed::NotText => {
                    let flow = self.flow(dir);
                    if !flow.raw && !flow.broken && flow.injected.is_none() {
                        flow.release(now);
                        flow.passing = true;
                    }
                }
                Observed::Problem(problem) => {
                    let flow = self.flow(dir);
                    if !flow.raw {
                        flow.raw = true;
                        if !flow.broken && flow.injected.is_none() {
                            flow.release(now);
                        }
                        let text = "the rules cannot judge this direction any more: its \
                                    compressed data does not inflate; it passes as it was"
                            .to_owned();
                        self.note(Some(dir), text);
                    }
                    self.observe(dir, Observed::Problem(problem));
                }
                Observed::Message {
                    opcode,
                    data: payload,
                    len,
                    compressed,
                    frames,
                } => {
                    let keep = self.limits.text.min(payload.len());
                    self.observe(
                        dir,
                        Observed::Message {
                            opcode,
                            data: payload[..keep].to_vec(),
                            len,
                            compressed,
                            frames,
                        },
                    );
                    message = Some(judge::Whole {
                        opcode,
                        data: payload,
                        len,
                        compressed,
                        frames,
                    });
                }
                Observed::Frame {
                    header,
                    payload,
                    violations,
                } => {
                    if header.opcode.is_control() {
                        control = Some(payload.clone());
                    }
                    self.observe(
                        dir,
                        Observed::Frame {
                            header,
                            payload,
                            violations,
                        },
                    );
                }
                close @ Observed::Close(_) => self.observe(dir, close),
            }
        }
        let rest = &data[cursor..];
        let flow = self.flow(dir);
        if flow.broken || flow.injected.is_some() {
            flow.partial.clear();
            return;
        }
        // The frame in progress goes on at once if its message passes
        // unjudged; otherwise it waits to be whole.
        let in_data_frame = flow
            .tap
            .frame_in_progress()
            .is_some_and(|(header, ..)| !header.opcode.is_control());
        if flow.raw || (flow.passing && in_data_frame) {
            flow.partial.extend_from_slice(rest);
            flow.release(now);
            return;
        }
        if flow.partial.is_empty()
            && let Some((header, header_len, ..)) = flow.tap.frame_in_progress()
        {
            // The frame began in this read: room for all of it at once (up
            // to a BATCH of payload and its header), not grown by doubling
            // with a copy each time. Capped at BATCH alone, a 64 KiB
            // message's last header bytes doubled the buffer and copied it.
            // A hostile 63-bit length must not overflow.
            let whole = (header_len as u64).saturating_add(header.payload_len);
            flow.partial.reserve(
                usize::try_from(whole)
                    .unwrap_or(usize::MAX)
                    .min(BATCH + wscope_proto::frame::MAX_HEADER_LEN),
            );
        }
        flow.partial.extend_from_slice(rest);
        if (flow.partial.len() + flow.held.len()) as u64 > self.hold_limit {
            self.too_big(dir, now);
        }
    }

    /// A frame has ended: `wire` is what of it was not forwarded yet.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        dir: Direction,
        header: wscope_proto::FrameHeader,
        wire: Vec<u8>,
        released: bool,
        message: Option<judge::Whole>,
        control: Option<Vec<u8>>,
        now: Instant,
    ) {
        let limit = self.hold_limit;
        let flow = self.flow(dir);
        if flow.broken || flow.injected.is_some() {
            return;
        }
        if flow.raw || header.opcode.is_reserved() {
            flow.forward(now, wire);
            return;
        }
        if header.opcode.is_control() {
            let payload = control.unwrap_or_default();
            self.judge_control(dir, header, wire, &payload, now);
            return;
        }
        if released || flow.passing {
            // A message passing unjudged, up to its last frame.
            flow.forward(now, wire);
            if header.fin {
                flow.passing = false;
            }
            return;
        }
        let starts = header.opcode != OpCode::Continuation;
        if starts && !flow.held.is_empty() {
            // A new message before the last one ended: what is held goes
            // as it was, for the receiver to judge.
            let held = std::mem::take(&mut flow.held);
            flow.forward(now, held);
        }
        if !starts && flow.held.is_empty() {
            // A continuation with nothing to continue.
            flow.forward(now, wire);
            return;
        }
        if flow.held.is_empty() {
            // A message's first frame: no copy.
            flow.held = wire;
        } else {
            flow.held.extend_from_slice(&wire);
        }
        if flow.held.len() as u64 > limit {
            self.too_big(dir, now);
            return;
        }
        if !header.fin {
            return;
        }
        let held = std::mem::take(&mut flow.held);
        match message {
            Some(whole) => self.judge_message(dir, whole, held, now),
            // The tap could not read it (it does not inflate): as it was.
            None => flow.forward(now, held),
        }
    }

    /// One whole frame toward the receiver of `dir` (masked toward the
    /// server), compressed with the engine's own compressor if asked.
    fn encode(
        &mut self,
        dir: Direction,
        opcode: OpCode,
        payload: &[u8],
        compress: bool,
    ) -> Vec<u8> {
        let mask = (dir == Direction::ClientToServer).then(rand::random::<[u8; 4]>);
        let mut out = Vec::with_capacity(payload.len() + 14);
        if compress && let Some(params) = self.deflate {
            let sender = match dir {
                Direction::ClientToServer => Role::Client,
                Direction::ServerToClient => Role::Server,
            };
            let deflate = self.flows[index(dir)]
                .deflate
                .get_or_insert_with(|| PerMessageDeflate::fast(sender, params));
            let mut packed = Vec::with_capacity(payload.len() / 2 + 16);
            if deflate.compress(payload, &mut packed).is_ok() {
                encode_frame(opcode, true, true, mask, &packed, &mut out);
                return out;
            }
        }
        encode_frame(opcode, true, false, mask, payload, &mut out);
        out
    }

    fn act(&mut self, dir: Direction, act: Act, now: Instant) {
        match act {
            Act::Inject(message) => {
                let bytes = match &message {
                    Injected::Text(text) => self.encode(dir, OpCode::Text, text.as_bytes(), false),
                    Injected::Binary(data) => self.encode(dir, OpCode::Binary, data, false),
                };
                self.flow(dir).forward(now, bytes);
            }
            Act::Close { code, reason } => self.close(dir, code, &reason, now),
            Act::Pause(duration) => self.flow(dir).queue.pause(now + duration),
        }
    }

    /// A close frame of ours toward this direction's receiver, after what
    /// is queued; the sender's later frames are then not forwarded, so no
    /// peer sees two closes. Nothing is sent if the sender's own close
    /// went first.
    fn close(&mut self, dir: Direction, code: u16, reason: &str, now: Instant) {
        let flow = &self.flows[index(dir)];
        if flow.close.is_some() || flow.injected.is_some() {
            return;
        }
        let mut payload = Vec::new();
        ClosePayload::encode(Some(CloseCode(code)), reason, &mut payload);
        let bytes = self.encode(dir, OpCode::Close, &payload, false);
        let seq = self.next();
        let flow = self.flow(dir);
        flow.held.clear();
        flow.partial.clear();
        flow.forward(now, bytes);
        flow.injected = Some((seq, code, reason.to_owned()));
    }

    fn too_big(&mut self, dir: Direction, now: Instant) {
        let note = format!(
            "a message over {} cannot be held for the rules; closing with 1009",
            judge::bytes(self.hold_limit)
        );
        let reason = "message too big for the proxy's rules";
        self.refuse(dir, CloseCode::MESSAGE_TOO_BIG, note, reason, now);
    }

    /// Gives up on what `dir`'s sender sends (nothing more of it is held
    /// or forwarded), says why in a note, and closes both ways.
    fn refuse(
        &mut self,
        dir: Direction,
        code: CloseCode,
        note: String,
        reason: &str,
        now: Instant,
    ) {
        let flow = self.flow(dir);
        flow.broken = true;
        flow.held = Vec::new();
        flow.partial = Vec::new();
        flow.tap.keep_for_events_only();
        self.note(Some(dir), note);
        for target in [dir, other(dir)] {
            self.close(target, code.0, reason, now);
        }
    }

    /// A command from outside the relay (the UI).
    pub fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Inject(dir, message) => self.act(dir, Act::Inject(message), now),
            Command::Close(dir, code, reason) => self.close(dir, code, &reason, now),
            Command::Reset => self.cut(Cut::Reset),
        }
        self.settle(None, now);
    }

    fn cut(&mut self, how: Cut) {
        self.cut.get_or_insert(how);
    }

    /// How the proxy cut the connection, once it has.
    pub fn cut_by(&self) -> Option<Cut> {
        self.cut
    }

    /// New rules for the rest of the connection.
    pub fn reload(&mut self, set: Arc<RuleSet>, now: Instant) {
        if let Some(state) = &mut self.rules {
            state.replace(set, now);
        }
        self.keep_what_rules_read();
    }

    /// The proxy is shutting down: a 1001 close frame toward each
    /// receiver, where no close has passed yet and one can be put in (at
    /// a frame boundary).
    pub fn shutdown(&mut self, now: Instant) {
        for dir in both() {
            let flow = &self.flows[index(dir)];
            if self.rules.is_none() && !flow.tap.at_frame_boundary() {
                continue;
            }
            self.close(dir, CloseCode::GOING_AWAY.0, "proxy shutting down", now);
        }
    }

    /// The sender of `dir` has nothing more to read for now: the
    /// compressor kept for its messages is freed down to the context it
    /// must carry (allocated again by the next compressed message).
    pub fn drained(&mut self, dir: Direction) {
        if let Some(deflate) = &mut self.flow(dir).deflate
            && deflate.can_park()
        {
            deflate.park();
        }
    }

    /// The sender of `dir` closed its side of the TCP connection.
    pub fn eof(&mut self, dir: Direction, now: Instant) {
        let seq = self.next();
        let flow = self.flow(dir);
        flow.eof = true;
        flow.ended.get_or_insert((seq, End::Eof));
        // A message cut off by the end goes as far as it got.
        if !flow.broken && flow.injected.is_none() {
            let mut rest = std::mem::take(&mut flow.held);
            rest.append(&mut flow.partial);
            flow.forward(now, rest);
        }
        self.settle(None, now);
    }

    /// Reading from the sender of `dir`, or writing to its receiver, failed.
    pub fn failed(&mut self, dir: Direction, end: End) {
        let seq = self.next();
        self.flow(dir).ended.get_or_insert((seq, end));
    }

    /// The next bytes to write toward the receiver of `dir`, if any are due.
    pub fn poll_write(&mut self, dir: Direction, now: Instant) -> Option<Vec<u8>> {
        let out = self.flow(dir).queue.poll(now)?;
        self.active = now;
        self.settle(None, now);
        Some(out)
    }

    /// The length of the next due piece toward the receiver of `dir`
    /// before small ones joining it, when it is not paced: what the driver
    /// checks before taking more than one piece at a time.
    pub fn next_write_len(&self, dir: Direction, now: Instant) -> Option<usize> {
        self.flows[index(dir)].queue.next_unpaced_len(now)
    }

    /// What this connection holds: messages waiting for their last frame
    /// (as they came and as the tap decoded them so far), and bytes
    /// waiting to be written.
    fn holding(&self) -> usize {
        self.flows
            .iter()
            .map(|flow| {
                // A refused sender's tap keeps no more than an event needs
                // (`keep_for_events_only`), as without rules.
                let decoded = if flow.broken {
                    0
                } else {
                    flow.tap.message_kept()
                };
                flow.partial.len() + flow.held.len() + flow.queue.queued() + decoded
            })
            .sum()
    }

    /// Brings this connection's share of the budget up to date. When more
    /// is needed than is left, the connection whose sender brought it is
    /// refused: close 1013 (try again later) both ways, and a note.
    fn settle(&mut self, grown_by: Option<Direction>, now: Instant) {
        let holding = self.holding();
        if holding > self.taken {
            let more = holding - self.taken;
            if self.budget.take(more) {
                self.taken = holding;
                return;
            }
            if let Some(dir) = grown_by {
                self.over_budget(dir, now);
            }
            // What is left (our close frames) is taken regardless: it is
            // small and must go.
            let holding = self.holding();
            if holding > self.taken {
                let _ = self.budget.take(holding - self.taken) || {
                    self.budget.force(holding - self.taken);
                    true
                };
            } else {
                self.budget.give(self.taken - holding);
            }
            self.taken = holding;
        } else if holding < self.taken {
            self.budget.give(self.taken - holding);
            self.taken = holding;
        }
    }

    fn over_budget(&mut self, dir: Direction, now: Instant) {
        let note = format!(
            "the proxy's memory for held messages ({} across all connections) is in use; closing with 1013 (try again later)",
            judge::bytes(self.budget.limit() as u64)
        );
        let reason = "proxy memory budget exceeded, try again later";
        self.refuse(dir, CloseCode::TRY_AGAIN_LATER, note, reason, now);
    }

    /// Whether the receiver of `dir` should now have its write side shut
    /// (its sender is done and everything owed was written); true once.
    pub fn poll_shutdown(&mut self, dir: Direction) -> bool {
        let flow = self.flow(dir);
        if flow.eof && !flow.shut && flow.queue.is_empty() {
            flow.shut = true;
            return true;
        }
        false
    }

    /// When [`Engine::tick`] should next be called.
    pub fn next_wake(&self) -> Option<Instant> {
        self.next_wake_for(|_| true)
    }

    /// The same, counting only what is owed toward receivers that can take
    /// it now (`writable`): a driver still writing to one side is woken by
    /// that write, not by a time that has passed already.
    pub fn next_wake_for(&self, writable: impl Fn(Direction) -> bool) -> Option<Instant> {
        let timers = self.rules.as_ref().and_then(RuleState::next_timer);
        self.flows
            .iter()
            .filter(|flow| writable(flow.dir))
            .filter_map(|flow| flow.queue.next_due())
            .chain(timers)
            .min()
    }

    /// Time has passed: fires the timed rules (what is due to be written
    /// comes from [`Engine::poll_write`]).
    pub fn tick(&mut self, now: Instant) {
        self.fire_timers(now);
        self.settle(None, now);
    }

    /// Who ended the connection, and how, from what each direction saw.
    pub fn closed(&self, duration: Duration) -> Closed {
        let [c2s, s2c] = &self.flows;
        let by_dir = |dir| match dir {
            Direction::ClientToServer => ClosedBy::Client,
            Direction::ServerToClient => ClosedBy::Server,
        };
        // The first close frame either way: a peer's, or one we sent.
        let first_close = [c2s, s2c]
            .into_iter()
            .flat_map(|flow| {
                let peer = flow.close.as_ref().map(|(seq, close)| {
                    let code = close.code.unwrap_or(CloseCode::NO_STATUS);
                    (*seq, by_dir(flow.dir), code, close.reason.clone())
                });
                let ours = flow.injected.as_ref().map(|(seq, code, reason)| {
                    (*seq, ClosedBy::Proxy, CloseCode(*code), reason.clone())
                });
                [peer, ours]
            })
            .flatten()
            .min_by_key(|(seq, ..)| *seq);
        let errors = [c2s, s2c].iter().any(|flow| {
            matches!(
                flow.ended,
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
                    .filter_map(|flow| {
                        flow.ended.as_ref().map(|(seq, end)| match end {
                            End::Cut => (*seq, ClosedBy::Proxy),
                            _ => (*seq, by_dir(flow.dir)),
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
            duration_us: duration.as_micros() as u64,
            messages_c2s: c.messages,
            messages_s2c: s.messages,
            bytes_c2s: c.bytes,
            bytes_s2c: s.bytes,
            ended: None,
        }
    }

    /// Marks both directions as ended by the proxy (after a cut).
    pub fn mark_cut(&mut self) {
        for dir in both() {
            if self.flows[index(dir)].ended.is_none() {
                let seq = self.next();
                self.flow(dir).ended = Some((seq, End::Cut));
            }
        }
    }

    /// Whether `dir`'s sender's connection failed (it was reset).
    pub fn read_failed(&self, dir: Direction) -> bool {
        matches!(self.flows[index(dir)].ended, Some((_, End::ReadFailed(_))))
    }

    /// The error events for directions that ended in failure.
    pub fn failures(&self) -> Vec<String> {
        self.flows
            .iter()
            .filter_map(|flow| {
                let (sender, receiver) = match flow.dir {
                    Direction::ClientToServer => ("client", "upstream"),
                    Direction::ServerToClient => ("upstream", "client"),
                };
                match &flow.ended {
                    Some((_, End::ReadFailed(err))) => {
                        Some(format!("the {sender}'s connection failed: {err}"))
                    }
                    Some((_, End::WriteFailed(err))) => {
                        Some(format!("cannot write to the {receiver}: {err}"))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}
