//! The relay when rules are in force: each direction is cut into whole
//! messages and control frames, the rules decide what happens to each, and
//! what is forwarded waits in a queue ordered by when it is due.
//!
//! Events still come from the [`Tap`](wscope_proto::tap::Tap) on the bytes
//! as the sender sent them; every action taken adds a note saying which
//! rule did what, so a record shows both what was sent and why the other
//! side saw something else.
//!
//! A message that passes unchanged is forwarded as the frames it arrived
//! in. Compressed messages are the exception: once a message may be
//! dropped or rewritten, the receiver's permessage-deflate context would
//! no longer match the sender's, so the relay inflates every compressed
//! message and deflates it again with its own compressor, under the
//! parameters both ends agreed. Messages the proxy adds go uncompressed
//! (RSV1 clear), which RFC 7692 allows at any time.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use wscope_events::filter::PathStep;
use wscope_events::{Direction, Event, EventKind, Frame, Message, Payload};
use wscope_proto::deflate::{DeflateParams, PerMessageDeflate};
use wscope_proto::frame::encode_frame;
use wscope_proto::split::{FrameSplitter, Piece, WireFrame};
use wscope_proto::utf8::Utf8Validator;
use wscope_proto::{CloseCode, ClosePayload, OpCode, Role};

use super::relay::{BUFFER, Ctx, End, Side};
use crate::rules::reload::Current;
use crate::rules::state::RuleState;
use crate::rules::{Action, Injected, Replace, RuleSet, Sides};

/// The largest message the relay holds whole. A bigger one cannot be
/// judged by the rules: the connection is closed with 1009.
const HOLD_LIMIT: u64 = 64 * 1024 * 1024;
/// Forwarded bytes waiting in one direction's queue beyond which the
/// sender is no longer read (back-pressure through a delay or throttle).
const QUEUE_LIMIT: usize = 8 * 1024 * 1024;
/// How much of a payload the rules' filters see.
const RULE_VIEW: usize = 1024 * 1024;

/// How the proxy itself ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Both TCP connections reset.
    Reset,
    /// Both TCP connections closed, without close frames.
    Hangup,
}

/// Something one direction must do on behalf of the other, or of a timer.
#[derive(Debug)]
pub enum Command {
    Inject(Injected),
    Close { code: u16, reason: String },
    Pause(Duration),
}

/// What the two directions of one connection share.
pub struct Link {
    state: Mutex<RuleState>,
    commands: [mpsc::UnboundedSender<Command>; 2],
    cut: Arc<watch::Sender<Option<Cut>>>,
    /// When a frame last passed either way.
    active: Mutex<Instant>,
    deflate: Option<DeflateParams>,
}

fn index(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Link {
    /// The link, and each direction's command queue (client to server,
    /// then server to client).
    pub fn new(
        set: Arc<RuleSet>,
        deflate: Option<DeflateParams>,
    ) -> (
        Link,
        [mpsc::UnboundedReceiver<Command>; 2],
        watch::Receiver<Option<Cut>>,
    ) {
        let now = Instant::now();
        let (c2s_tx, c2s_rx) = mpsc::unbounded_channel();
        let (s2c_tx, s2c_rx) = mpsc::unbounded_channel();
        let (cut, cut_rx) = watch::channel(None);
        let link = Link {
            state: Mutex::new(RuleState::new(set, now)),
            commands: [c2s_tx, s2c_tx],
            cut: Arc::new(cut),
            active: Mutex::new(now),
            deflate,
        };
        (link, [c2s_rx, s2c_rx], cut_rx)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RuleState> {
        // The state holds no invariant a panic elsewhere could break.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_since(&self) -> Instant {
        *self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, dir: Direction, command: Command) {
        // A direction that has finished takes no more commands.
        let _ = self.commands[index(dir)].send(command);
    }

    fn cut(&self, how: Cut) {
        cut(&self.cut, how);
    }

    /// A handle for acting on this connection from elsewhere (the UI).
    pub fn handle(&self) -> Handle {
        Handle {
            commands: self.commands.clone(),
            cut: Arc::clone(&self.cut),
        }
    }
}

fn cut(sender: &watch::Sender<Option<Cut>>, how: Cut) {
    sender.send_if_modified(|cut| {
        let first = cut.is_none();
        cut.get_or_insert(how);
        first
    });
}

/// Acts on one live connection from outside its relay.
#[derive(Clone)]
pub struct Handle {
    commands: [mpsc::UnboundedSender<Command>; 2],
    cut: Arc<watch::Sender<Option<Cut>>>,
}

impl Handle {
    /// Sends a message of our own toward the receiver of `dir`.
    pub fn inject(&self, dir: Direction, message: Injected) -> bool {
        self.commands[index(dir)]
            .send(Command::Inject(message))
            .is_ok()
    }

    pub fn close(&self, dir: Direction, code: u16, reason: &str) -> bool {
        let reason = reason.to_owned();
        self.commands[index(dir)]
            .send(Command::Close { code, reason })
            .is_ok()
    }

    pub fn reset(&self) {
        cut(&self.cut, Cut::Reset);
    }
}

/// One frame or message waiting to be written.
struct Item {
    due: Instant,
    bytes: Vec<u8>,
    /// Paced at this many bytes per second.
    rate: Option<u64>,
}

/// One direction's state beyond the [`Side`] both relays share.
struct Shaper {
    dir: Direction,
    splitter: FrameSplitter,
    /// The frames of the data message in progress.
    held: Vec<WireFrame>,
    held_bytes: u64,
    /// Inflates what the sender compressed.
    inflate: Option<PerMessageDeflate>,
    /// Deflates what we forward, for the receiver.
    deflate: Option<PerMessageDeflate>,
    queue: VecDeque<Item>,
    queued: usize,
    last_due: Instant,
    paused_until: Option<Instant>,
    /// When throttled bytes may next be written.
    pace: Instant,
    /// The stream could not be cut into frames (a frame over the limit):
    /// nothing more from this sender is forwarded.
    broken: bool,
    /// Checks a held uncompressed text message as its frames arrive.
    utf8: Utf8Validator,
    /// The same for the frame still arriving: the state, and how many of
    /// its payload bytes it has seen.
    partial_utf8: Option<(Utf8Validator, usize)>,
    /// The rest of the message in progress passes unjudged, frame by frame
    /// (its text turned out not to be UTF-8: the receiver must see that as
    /// early as it would without the proxy, RFC 6455 section 8.1).
    passing: bool,
}

fn to_tokio(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at)
}

impl Shaper {
    fn new(dir: Direction, params: Option<DeflateParams>) -> Shaper {
        let sender = match dir {
            Direction::ClientToServer => Role::Client,
            Direction::ServerToClient => Role::Server,
        };
        let now = Instant::now();
        Shaper {
            dir,
            splitter: FrameSplitter::new(HOLD_LIMIT),
            held: Vec::new(),
            held_bytes: 0,
            // We receive as the sender's peer and send as the sender.
            inflate: params.map(|p| PerMessageDeflate::new(sender.peer(), p)),
            deflate: params.map(|p| PerMessageDeflate::fast(sender, p)),
            queue: VecDeque::new(),
            queued: 0,
            last_due: now,
            paused_until: None,
            pace: now,
            broken: false,
            utf8: Utf8Validator::new(),
            partial_utf8: None,
            passing: false,
        }
    }

    /// When the next item may be written.
    fn next_due(&self) -> Option<Instant> {
        let head = self.queue.front()?.due;
        Some(self.paused_until.map_or(head, |until| head.max(until)))
    }

    /// Queues `bytes` to go at `due` (never before what is queued already,
    /// unless `reorder`).
    fn push(&mut self, due: Instant, bytes: Vec<u8>, rate: Option<u64>, reorder: bool) {
        let due = if reorder { due } else { due.max(self.last_due) };
        self.last_due = self.last_due.max(due);
        self.queued += bytes.len();
        let at = self
            .queue
            .iter()
            .rposition(|item| item.due <= due)
            .map_or(0, |i| i + 1);
        self.queue.insert(at, Item { due, bytes, rate });
    }

    /// One whole frame toward the receiver (masked toward the server).
    fn frame(&mut self, opcode: OpCode, payload: &[u8], compress: bool) -> Vec<u8> {
        let mask = (self.dir == Direction::ClientToServer).then(rand::random::<[u8; 4]>);
        let mut out = Vec::new();
        if compress && let Some(deflate) = &mut self.deflate {
            let mut packed = Vec::with_capacity(payload.len() / 2 + 16);
            if deflate.compress(payload, &mut packed).is_ok() {
                encode_frame(opcode, true, true, mask, &packed, &mut out);
                return out;
            }
        }
        encode_frame(opcode, true, false, mask, payload, &mut out);
        out
    }

    /// Writes every item that is due, unpaced ones together in one write.
    async fn write_due(&mut self, dst: &mut (impl AsyncWrite + Unpin)) -> io::Result<()> {
        let mut batch = Vec::new();
        while self.next_due().is_some_and(|due| due <= Instant::now()) {
            let Some(item) = self.queue.pop_front() else {
                break;
            };
            // Small unpaced items share one write; big ones are not copied.
            if item.rate.is_none() && item.bytes.len() < BUFFER {
                self.queued -= item.bytes.len();
                batch.extend_from_slice(&item.bytes);
                continue;
            }
            if !batch.is_empty() {
                dst.write_all(&std::mem::take(&mut batch)).await?;
            }
            self.write(dst, item).await?;
        }
        if batch.is_empty() {
            Ok(())
        } else {
            dst.write_all(&batch).await
        }
    }

    async fn write(&mut self, dst: &mut (impl AsyncWrite + Unpin), item: Item) -> io::Result<()> {
        self.queued -= item.bytes.len();
        let Some(rate) = item.rate else {
            return dst.write_all(&item.bytes).await;
        };
        // Small pieces, so the rate holds over fractions of a second too.
        let piece = (rate / 20).clamp(256, BUFFER as u64) as usize;
        for chunk in item.bytes.chunks(piece) {
            let now = Instant::now();
            if self.pace > now {
                tokio::time::sleep_until(to_tokio(self.pace)).await;
            }
            dst.write_all(chunk).await?;
            let took = Duration::from_secs_f64(chunk.len() as f64 / rate as f64);
            self.pace = self.pace.max(now) + took;
        }
        Ok(())
    }
}

/// What rules decided for one message or control frame.
#[derive(Default)]
struct Plan {
    drop: bool,
    delay: Option<(Duration, bool)>,
    rate: Option<u64>,
    replaced: Option<Vec<u8>>,
    /// What goes the same way after it (injections, a close).
    then: Vec<Command>,
}

/// Copies one direction through the rules until its sender stops. Returns
/// whether it ended in failure.
#[allow(clippy::too_many_arguments)]
pub async fn pump(
    src: &mut (impl AsyncRead + Unpin),
    dst: &mut (impl AsyncWrite + Unpin),
    side: &mut Side,
    ctx: &Ctx<'_>,
    link: &Link,
    mut commands: mpsc::UnboundedReceiver<Command>,
    early: &[u8],
    mut shutdown: watch::Receiver<bool>,
) -> bool {
    let mut buf = vec![0u8; BUFFER];
    let mut seen = Vec::new();
    let mut shaper = Shaper::new(side.dir, link.deflate);
    if !early.is_empty() {
        side.tap.feed(early, &mut seen);
        ctx.report(side, &mut seen).await;
        take(early, &mut shaper, side, ctx, link).await;
    }
    let mut shutting_down = *shutdown.borrow();
    let mut eof = false;
    loop {
        // What is due goes out now: the timer (millisecond grain) is only
        // for what must wait.
        if shaper.next_due().is_some_and(|due| due <= Instant::now()) {
            let written = shaper.write_due(dst).await;
            link.touch();
            if let Err(err) = written {
                side.ended = Some((ctx.next(), End::WriteFailed(err)));
                return true;
            }
        }
        if eof && shaper.queue.is_empty() {
            let _ = dst.shutdown().await;
            return false;
        }
        let due = shaper.next_due().map(to_tokio);
        let reading = !eof && shaper.queued < QUEUE_LIMIT;
        tokio::select! {
            read = src.read(&mut buf), if reading => {
                let n = match read {
                    Ok(0) => {
                        side.ended = Some((ctx.next(), End::Eof));
                        eof = true;
                        // A message cut off by the end goes as far as it got.
                        let rest: Vec<u8> = shaper.held.drain(..).flat_map(|f| f.wire).collect();
                        if !rest.is_empty() && side.injected.is_none() {
                            shaper.push(Instant::now(), rest, None, false);
                        }
                        continue;
                    }
                    Ok(n) => n,
                    Err(err) => {
                        side.ended = Some((ctx.next(), End::ReadFailed(err)));
                        return true;
                    }
                };
                link.touch();
                side.tap.feed(&buf[..n], &mut seen);
                if !seen.is_empty() {
                    ctx.report(side, &mut seen).await;
                }
                take(&buf[..n], &mut shaper, side, ctx, link).await;
            }
            Some(command) = commands.recv() => {
                obey(command, &mut shaper, side, ctx).await;
            }
            // Due: written at the top of the loop.
            _ = crate::timers::sleep_until(due), if due.is_some() => {}
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                close(&mut shaper, side, ctx, CloseCode::GOING_AWAY.0, "proxy shutting down");
            }
        }
    }
}

/// Cuts what arrived into frames and puts each whole message and control
/// frame through the rules.
async fn take(data: &[u8], shaper: &mut Shaper, side: &mut Side, ctx: &Ctx<'_>, link: &Link) {
    if shaper.broken {
        return;
    }
    let mut pieces = Vec::new();
    let too_large = shaper.splitter.feed(data, &mut pieces).err();
    for piece in pieces {
        let frame = match piece {
            Piece::Frame(frame) => frame,
            Piece::Rest(rest) => {
                // The rest of a released frame (see `check_partial`).
                if side.injected.is_none() {
                    shaper.push(Instant::now(), rest, None, false);
                }
                continue;
            }
        };
        shaper.partial_utf8 = None;
        if side.injected.is_some() {
            // We closed this direction: the sender's frames end here.
            continue;
        }
        let opcode = frame.header.opcode;
        if opcode.is_control() {
            control(frame, shaper, side, ctx, link).await;
            continue;
        }
        let starts = opcode != OpCode::Continuation;
        if shaper.passing && !starts {
            shaper.passing = !frame.header.fin;
            shaper.push(Instant::now(), frame.wire, None, false);
            continue;
        }
        shaper.passing = false;
        if starts != shaper.held.is_empty() {
            // Out of sequence: pass what is held and this frame as they
            // are, and let the receiver judge them.
            let mut raw: Vec<u8> = shaper.held.drain(..).flat_map(|f| f.wire).collect();
            raw.extend_from_slice(&frame.wire);
            shaper.held_bytes = 0;
            shaper.push(Instant::now(), raw, None, false);
            continue;
        }
        shaper.held_bytes += frame.header.payload_len;
        let fin = frame.header.fin;
        if starts {
            shaper.utf8.reset();
        }
        let first = shaper.held.first().map_or(&frame.header, |f| &f.header);
        let checked_text = first.opcode == OpCode::Text && !first.rsv1;
        if checked_text && shaper.utf8.feed(&frame.payload()).is_err() {
            // Not text after all: pass it on now, for the receiver to fail.
            let mut raw: Vec<u8> = shaper.held.drain(..).flat_map(|f| f.wire).collect();
            raw.extend_from_slice(&frame.wire);
            shaper.held_bytes = 0;
            shaper.passing = !fin;
            shaper.push(Instant::now(), raw, None, false);
            continue;
        }
        shaper.held.push(frame);
        if shaper.held_bytes > HOLD_LIMIT {
            too_big(shaper, side, ctx, link).await;
            return;
        }
        if fin {
            message(shaper, side, ctx, link).await;
        }
    }
    if too_large.is_some() {
        too_big(shaper, side, ctx, link).await;
    } else if side.injected.is_none() {
        check_partial(shaper);
    }
}

/// A text frame still arriving whose bytes so far cannot be UTF-8: pass
/// the message on now (what is held, the frame so far, the rest as it
/// comes), so the receiver fails it as early as it would without us.
fn check_partial(shaper: &mut Shaper) {
    let Some((header, _, so_far)) = shaper.splitter.partial() else {
        return;
    };
    let starts = header.opcode == OpCode::Text;
    let continues = header.opcode == OpCode::Continuation && !shaper.held.is_empty();
    let first = shaper.held.first().map_or(header, |f| f.header);
    if !(starts && shaper.held.is_empty() || continues)
        || first.opcode != OpCode::Text
        || first.rsv1
        || shaper.passing
    {
        return;
    }
    let (validator, checked) = shaper.partial_utf8.get_or_insert_with(|| {
        let validator = if starts {
            Utf8Validator::new()
        } else {
            shaper.utf8.clone()
        };
        (validator, 0)
    });
    let mut fresh = so_far[*checked..].to_vec();
    if let Some(key) = header.mask {
        wscope_proto::mask::apply_mask(&mut fresh, key, *checked);
    }
    *checked = so_far.len();
    if validator.feed(&fresh).is_ok() {
        return;
    }
    let mut raw: Vec<u8> = shaper.held.drain(..).flat_map(|f| f.wire).collect();
    raw.extend(shaper.splitter.release_partial());
    shaper.held_bytes = 0;
    shaper.partial_utf8 = None;
    shaper.passing = !header.fin;
    shaper.push(Instant::now(), raw, None, false);
}

async fn too_big(shaper: &mut Shaper, side: &mut Side, ctx: &Ctx<'_>, link: &Link) {
    shaper.broken = true;
    shaper.held.clear();
    let text = format!(
        "a message over {} MiB cannot be held for the rules; closing with 1009",
        HOLD_LIMIT >> 20
    );
    note(ctx, Some(side.dir), text).await;
    let reason = "message too big for the proxy's rules";
    close(shaper, side, ctx, CloseCode::MESSAGE_TOO_BIG.0, reason);
    link.send(
        other(side.dir),
        Command::Close {
            code: CloseCode::MESSAGE_TOO_BIG.0,
            reason: reason.to_owned(),
        },
    );
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

fn toward(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "to the server",
        Direction::ServerToClient => "to the client",
    }
}

/// A whole data message has arrived.
async fn message(shaper: &mut Shaper, side: &mut Side, ctx: &Ctx<'_>, link: &Link) {
    let frames = std::mem::take(&mut shaper.held);
    shaper.held_bytes = 0;
    let first = frames[0].header;
    let compressed = first.rsv1 && shaper.inflate.is_some();
    let mut data = Vec::new();
    for frame in &frames {
        frame.payload_into(&mut data);
    }
    if compressed && let Some(inflate) = &mut shaper.inflate {
        let mut plain = Vec::new();
        if let Err(err) = inflate.decompress(&data, &mut plain, HOLD_LIMIT as usize) {
            // The tap reports the violation; pass the frames on unjudged.
            let text =
                format!("cannot inflate a message for the rules ({err}); passed on as it was");
            note(ctx, Some(side.dir), text).await;
            let raw = frames.into_iter().flat_map(|f| f.wire).collect();
            shaper.push(Instant::now(), raw, None, false);
            return;
        }
        data = plain;
    }
    let text = first.opcode == OpCode::Text;
    // Only a filter looks at the payload: without one, skip the copy.
    let view = if link.state().filters() { RULE_VIEW } else { 0 };
    let event = Event::now(
        ctx.id,
        Some(side.dir),
        EventKind::Message(Message {
            opcode: first.opcode.name().to_owned(),
            payload: Payload::capture(&data, text, view),
            compressed,
            frames: frames.len() as u32,
        }),
    );
    let what = format!("this {} message", first.opcode.name());
    let mut plan = decide(&event, &data, text, &what, side.dir, ctx, link).await;
    if !plan.drop {
        let bytes = match plan.replaced.take() {
            Some(new) => shaper.frame(first.opcode, &new, compressed),
            None if compressed => shaper.frame(first.opcode, &data, true),
            None => frames.into_iter().flat_map(|f| f.wire).collect(),
        };
        queue(shaper, bytes, &plan);
    }
    for command in plan.then {
        obey(command, shaper, side, ctx).await;
    }
}

/// A control frame has arrived.
async fn control(
    frame: WireFrame,
    shaper: &mut Shaper,
    side: &mut Side,
    ctx: &Ctx<'_>,
    link: &Link,
) {
    let payload = frame.payload();
    let event = Event::now(
        ctx.id,
        Some(side.dir),
        EventKind::Frame(Frame::new(&frame.header, &payload, true)),
    );
    let what = format!("this {} frame", frame.header.opcode.name());
    let plan = decide(&event, &payload, false, &what, side.dir, ctx, link).await;
    if !plan.drop {
        queue(shaper, frame.wire, &plan);
    }
    for command in plan.then {
        obey(command, shaper, side, ctx).await;
    }
}

fn queue(shaper: &mut Shaper, bytes: Vec<u8>, plan: &Plan) {
    let now = Instant::now();
    let (due, reorder) = match plan.delay {
        Some((delay, reorder)) => (now + delay, reorder),
        None => (now, false),
    };
    shaper.push(due, bytes, plan.rate, reorder);
}

/// Asks the rules about one message or control frame, carries out what
/// acts on other things (injections, closes, pauses, resets) and returns
/// what happens to the message itself.
async fn decide(
    event: &Event,
    data: &[u8],
    text: bool,
    what: &str,
    dir: Direction,
    ctx: &Ctx<'_>,
    link: &Link,
) -> Plan {
    let (set, acting) = {
        let mut state = link.state();
        if state.is_empty() {
            return Plan::default();
        }
        let acting = state.on_message(event, Instant::now());
        (Arc::clone(state.set()), acting)
    };
    let mut plan = Plan::default();
    for i in acting {
        let rule = &set.rules[i];
        let did = match &rule.action {
            Action::Delay {
                delay,
                jitter,
                reorder,
            } => {
                let held = jittered(*delay, *jitter);
                plan.delay = Some((held, *reorder));
                format!("held {what} {}", millis(held))
            }
            Action::Drop => {
                plan.drop = true;
                format!("dropped {what}")
            }
            Action::Replace(replace) => {
                let current = plan.replaced.as_deref().unwrap_or(data);
                match (text, rewrite(replace, current)) {
                    (true, Some(new)) => {
                        let did = format!("rewrote {what}: {}", preview(&new));
                        plan.replaced = Some(new);
                        did
                    }
                    _ => continue,
                }
            }
            Action::Throttle { rate } => {
                plan.rate = Some(*rate);
                format!("paced {what} at {}/s", bytes(*rate))
            }
            Action::IdleTimeout { .. } => continue,
            action => match on_connection(action, Some(dir), &mut plan.then, link) {
                Some(did) => did,
                None => continue,
            },
        };
        note(ctx, Some(dir), format!("{}: {did}", rule.label)).await;
    }
    plan
}

fn inject(shaper: &mut Shaper, message: &Injected) {
    let bytes = match message {
        Injected::Text(text) => shaper.frame(OpCode::Text, text.as_bytes(), false),
        Injected::Binary(data) => shaper.frame(OpCode::Binary, data, false),
    };
    shaper.push(Instant::now(), bytes, None, false);
}

/// Inject, close, reset and pause act on the connection, not on a
/// message: each goes where it names, toward the triggering message's own
/// receiver after that message (`then`), elsewhere by command. `None` for
/// the actions that act on messages.
fn on_connection(
    action: &Action,
    from: Option<Direction>,
    then: &mut Vec<Command>,
    link: &Link,
) -> Option<String> {
    let mut route = |sides: Sides, command: &dyn Fn() -> Command| {
        for target in both().into_iter().filter(|d| sides.includes(*d)) {
            if Some(target) == from {
                then.push(command());
            } else {
                link.send(target, command());
            }
        }
    };
    Some(match action {
        Action::Inject { to, message, .. } => {
            route(*to, &|| Command::Inject(message.clone()));
            format!("sent {message} {}", describe_sides(*to))
        }
        Action::Close { to, code, reason } => {
            route(*to, &|| Command::Close {
                code: *code,
                reason: reason.clone(),
            });
            format!("sent close {code} {}", describe_sides(*to))
        }
        Action::Reset => {
            link.cut(Cut::Reset);
            "reset both TCP connections".to_owned()
        }
        Action::Pause {
            duration,
            direction,
        } => {
            let sides = direction.unwrap_or(from.map_or(Sides::Both, Sides::One));
            route(sides, &|| Command::Pause(*duration));
            format!("paused {} for {}", describe_dirs(sides), millis(*duration))
        }
        _ => return None,
    })
}

fn pause(shaper: &mut Shaper, duration: Duration) {
    let until = Instant::now() + duration;
    shaper.paused_until = Some(shaper.paused_until.map_or(until, |u| u.max(until)));
}

/// A close frame of ours toward this direction's receiver, after what is
/// queued; the sender's later frames are then not forwarded, so no peer
/// sees two closes. Nothing is sent if the sender's own close went first.
fn close(shaper: &mut Shaper, side: &mut Side, ctx: &Ctx<'_>, code: u16, reason: &str) {
    if side.close.is_some() || side.injected.is_some() {
        return;
    }
    let mut payload = Vec::new();
    ClosePayload::encode(Some(CloseCode(code)), reason, &mut payload);
    let bytes = shaper.frame(OpCode::Close, &payload, false);
    shaper.held.clear();
    shaper.push(Instant::now(), bytes, None, false);
    side.injected = Some((ctx.next(), code, reason.to_owned()));
}

async fn obey(command: Command, shaper: &mut Shaper, side: &mut Side, ctx: &Ctx<'_>) {
    match command {
        Command::Inject(message) => inject(shaper, &message),
        Command::Close { code, reason } => close(shaper, side, ctx, code, &reason),
        Command::Pause(duration) => pause(shaper, duration),
    }
}

/// Fires the timed rules (inject on an interval, close or reset at a time,
/// idle timeouts) and takes reloaded rules, for as long as the connection
/// lasts.
pub async fn schedule(link: &Link, ctx: &Ctx<'_>, mut current: Current) {
    let mut watching = true;
    loop {
        let next = link.state().next_timer().map(to_tokio);
        tokio::select! {
            _ = crate::timers::sleep_until(next) => {}
            changed = current.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                let set = Arc::clone(&current.borrow_and_update());
                link.state().replace(set, Instant::now());
                continue;
            }
        }
        let (set, acting) = {
            let mut state = link.state();
            let acting = state.on_timer(Instant::now(), link.idle_since());
            (Arc::clone(state.set()), acting)
        };
        for i in acting {
            let rule = &set.rules[i];
            let did = match &rule.action {
                Action::IdleTimeout {
                    timeout,
                    code: Some(code),
                } => {
                    let reason = "idle timeout";
                    for dir in both() {
                        let reason = reason.to_owned();
                        link.send(
                            dir,
                            Command::Close {
                                code: *code,
                                reason,
                            },
                        );
                    }
                    format!(
                        "idle for {}: sent close {code} to both sides",
                        millis(*timeout)
                    )
                }
                Action::IdleTimeout {
                    timeout,
                    code: None,
                } => {
                    link.cut(Cut::Hangup);
                    format!("idle for {}: closed both TCP connections", millis(*timeout))
                }
                action => match on_connection(action, None, &mut Vec::new(), link) {
                    Some(did) => did,
                    None => continue,
                },
            };
            note(ctx, None, format!("{}: {did}", rule.label)).await;
        }
    }
}

async fn note(ctx: &Ctx<'_>, dir: Option<Direction>, text: String) {
    ctx.proxy
        .events
        .emit(ctx.id, dir, EventKind::Note { text })
        .await;
}

fn jittered(delay: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    let offset = (rand::random::<f64>() * 2.0 - 1.0) * jitter.as_secs_f64();
    Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
}

fn millis(d: Duration) -> String {
    if d.as_millis() >= 10_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn describe_sides(to: Sides) -> &'static str {
    match to {
        Sides::One(dir) => toward(dir),
        Sides::Both => "to both sides",
    }
}

fn describe_dirs(sides: Sides) -> &'static str {
    match sides {
        Sides::One(Direction::ClientToServer) => "client to server",
        Sides::One(Direction::ServerToClient) => "server to client",
        Sides::Both => "both directions",
    }
}

fn preview(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// The rewritten text, or `None` when the rule does not apply (no match,
/// not JSON, a path that cannot be set).
fn rewrite(replace: &Replace, data: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    match replace {
        Replace::Regex { regex, with } => {
            if !regex.is_match(text) {
                return None;
            }
            Some(
                regex
                    .replace_all(text, with.as_str())
                    .into_owned()
                    .into_bytes(),
            )
        }
        Replace::Json { path, value } => {
            let mut doc: serde_json::Value = serde_json::from_str(text).ok()?;
            set_path(&mut doc, path, value.clone())?;
            Some(doc.to_string().into_bytes())
        }
    }
}

/// Sets `path` in `doc` to `value`, making objects for missing keys (as
/// jq's `setpath` does); an index past an array's end cannot be set.
fn set_path(
    doc: &mut serde_json::Value,
    path: &[PathStep],
    value: serde_json::Value,
) -> Option<()> {
    let Some((step, rest)) = path.split_first() else {
        *doc = value;
        return Some(());
    };
    let next = match step {
        PathStep::Key(key) => {
            if doc.is_null() {
                *doc = serde_json::Value::Object(Default::default());
            }
            doc.as_object_mut()?
                .entry(key.clone())
                .or_insert(serde_json::Value::Null)
        }
        PathStep::Index(i) => doc.as_array_mut()?.get_mut(*i)?,
    };
    set_path(next, rest, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(path: &str) -> Vec<PathStep> {
        match wscope_events::filter::parse(&format!("json.{path} exists")).unwrap() {
            wscope_events::filter::Expr::Exists(wscope_events::filter::Field::Json(steps)) => steps,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_paths_are_set_or_made() {
        let mut doc = json!({"user": {"name": "alice"}, "items": [1, 2]});
        set_path(&mut doc, &steps("user.name"), json!("mallory")).unwrap();
        set_path(&mut doc, &steps("items[1]"), json!(20)).unwrap();
        set_path(&mut doc, &steps("meta.seen"), json!(true)).unwrap();
        assert_eq!(
            doc,
            json!({"user": {"name": "mallory"}, "items": [1, 20], "meta": {"seen": true}})
        );
        assert!(set_path(&mut doc, &steps("items[5]"), json!(0)).is_none());
        assert!(set_path(&mut doc, &steps("user.name.first"), json!(0)).is_none());
    }

    #[test]
    fn regex_rewrites_only_what_matches() {
        let replace = Replace::Regex {
            regex: regex::Regex::new(r"price=(\d+)").unwrap(),
            with: "price=0 (was $1)".to_owned(),
        };
        assert_eq!(
            rewrite(&replace, b"a price=42 b").unwrap(),
            b"a price=0 (was 42) b"
        );
        assert!(rewrite(&replace, b"nothing here").is_none());
    }

    #[test]
    fn the_queue_keeps_order_unless_told() {
        let mut shaper = Shaper::new(Direction::ServerToClient, None);
        let now = Instant::now();
        shaper.push(now + Duration::from_millis(100), vec![1], None, false);
        shaper.push(now, vec![2], None, false);
        shaper.push(now, vec![3], None, true);
        let order: Vec<u8> = shaper.queue.iter().map(|i| i.bytes[0]).collect();
        assert_eq!(order, [3, 1, 2]);
        assert_eq!(shaper.queued, 3);
    }
}
