//! One open server connection, run by its [`SessionPlan`]: echo, broadcast,
//! stream, or misbehave on purpose, and report every step as events.
//!
//! Everything that can happen next (a frame from the client, a timer, a
//! broadcast, a delayed echo falling due, shutdown) is one arm of a single
//! `select!`, so timers stay exact while the client is busy and nothing
//! blocks anything else. [`Connection::next`] is cancel-safe, which is what
//! makes that loop correct.
//!
//! Under `serve --replay` the plan is silent and a [`Mock`] does the
//! talking: client messages go to it, its next due time is one more arm
//! of the loop, and what it answers (recorded messages, notes, a close)
//! goes out through the same paths as every other behaviour's.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use wscope_events::{Close, Closed, ClosedBy, Direction, EventKind, Frame, Message, Payload};
use wscope_proto::{CloseCode, ClosePayload, FrameHeader, OpCode};

use super::behavior::{EndAction, Invalid, Reply, SessionPlan};
use super::hub::{Hub, Membership};
use crate::network::connection::{ConnError, Connection, Incoming, close_code_for};
use crate::network::stream::NetStream;
use crate::network::timers::{every, sleep_until, tick};
use crate::sinks::emit::Events;
use crate::sources::control::Command;
use crate::sources::replay::compare::Compared;
use crate::sources::replay::mock::{Action, Mock};
use crate::sources::rules::Injected;

/// How long the server waits for the client to answer its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What a session needs from the server around it.
pub struct Ctx {
    pub id: String,
    pub path: String,
    pub events: Events,
    pub hub: std::sync::Arc<Hub>,
    pub shutdown: watch::Receiver<bool>,
    /// The `/broadcast` channel, joined before the upgrade was answered.
    pub broadcast: Option<Membership>,
    /// `--replay`: the recorded conversation this connection plays.
    pub mock: Option<Mock>,
    /// `--ui`: what the UI asks of this connection.
    pub commands: Option<mpsc::UnboundedReceiver<Command>>,
}

/// How a connection ended.
struct Ending {
    by: ClosedBy,
    clean: bool,
    code: CloseCode,
    reason: String,
}

impl Ending {
    fn dropped(by: ClosedBy) -> Ending {
        Ending {
            by,
            clean: false,
            code: CloseCode::ABNORMAL,
            reason: String::new(),
        }
    }
}

/// Runs the connection to its end, then reports how it ended.
pub async fn run(mut conn: Connection<NetStream>, plan: SessionPlan, mut ctx: Ctx) {
    let opened = std::time::Instant::now();
    conn.answer_pings(plan.answer_pings);
    let ending = if let Some(limit) = plan.hang {
        hang(limit, &mut ctx.shutdown).await
    } else {
        let broadcast = ctx.broadcast.take();
        let mock = ctx.mock.take();
        let mut session = Session::new(&plan, broadcast, mock);
        session.run(&mut conn, &mut ctx).await
    };
    let stats = conn.stats();
    let closed = Closed {
        by: ending.by,
        clean: ending.clean,
        code: ending.code.0,
        reason: ending.reason,
        meaning: format!("{}: {}", ending.code.name(), ending.code.meaning()),
        duration_us: opened.elapsed().as_micros() as u64,
        messages_c2s: stats.messages_in,
        messages_s2c: stats.messages_out,
        bytes_c2s: stats.bytes_in,
        bytes_s2c: stats.bytes_out,
        ended: None,
    };
    ctx.events
        .emit(&ctx.id, None, EventKind::Closed(closed))
        .await;
    drop(conn);
}

/// `/hang`: hold the socket, never read or write, until the limit or
/// shutdown; then drop it.
async fn hang(limit: Option<Duration>, shutdown: &mut watch::Receiver<bool>) -> Ending {
    let deadline = limit.map(|d| Instant::now() + d);
    tokio::select! {
        _ = sleep_until(deadline) => {}
        _ = shutdown.changed() => {}
    }
    Ending::dropped(ClosedBy::Server)
}

struct Session<'a> {
    plan: &'a SessionPlan,
    /// When the plan's close or drop happens (`None`: not by time).
    end_at: Option<Instant>,
    invalid_at: Option<Instant>,
    idle_deadline: Option<Instant>,
    pings: Option<tokio::time::Interval>,
    ping_seq: u64,
    stream: Option<tokio::time::Interval>,
    streamed: u64,
    /// Echoes waiting for their time, in order.
    delayed: VecDeque<(Instant, OpCode, Bytes)>,
    broadcast: Option<Membership>,
    /// Set once we have sent a close frame and wait for the answer.
    close_deadline: Option<Instant>,
    /// Whether the data frames of the message in progress carry plain
    /// text (for `--frames`).
    frames_are_text: bool,
    /// `--replay`: the script being played, and when the session began
    /// (its times count from there).
    mock: Option<Mock>,
    opened: Instant,
}

impl<'a> Session<'a> {
    fn new(plan: &'a SessionPlan, broadcast: Option<Membership>, mock: Option<Mock>) -> Self {
        let now = Instant::now();
        Session {
            mock,
            opened: now,
            plan,
            end_at: plan.ending.as_ref().and_then(|e| e.after).map(|d| now + d),
            invalid_at: plan
                .invalid
                .map(|(_, after)| now + after.unwrap_or_default()),
            idle_deadline: plan.idle_timeout.map(|idle| now + idle.after),
            pings: plan.ping_every.map(every),
            ping_seq: 0,
            stream: plan.stream.map(|spec| every(spec.every)),
            streamed: 0,
            delayed: VecDeque::new(),
            broadcast,
            close_deadline: None,
            frames_are_text: false,
        }
    }

    /// A frame crossed: the idle timer starts again.
    fn touch(&mut self) {
        if let Some(idle) = self.plan.idle_timeout {
            self.idle_deadline = Some(Instant::now() + idle.after);
        }
    }

    async fn run(&mut self, conn: &mut Connection<NetStream>, ctx: &mut Ctx) -> Ending {
        let result = self.step_all(conn, ctx).await;
        if let Some((sender, receiver)) = self.broadcast.take() {
            drop(receiver);
            ctx.hub.leave(&ctx.path, sender);
        }
        match result {
            Ok(ending) => ending,
            Err(err) => {
                let message = format!("connection error: {err}");
                ctx.events
                    .emit(&ctx.id, None, EventKind::Error { message })
                    .await;
                Ending::dropped(ClosedBy::Unknown)
            }
        }
    }

    async fn step_all(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &mut Ctx,
    ) -> Result<Ending, ConnError> {
        let open = |conn: &Connection<NetStream>| !conn.close_sent();
        loop {
            let incoming = tokio::select! {
                incoming = conn.next() => incoming,
                _ = ctx.shutdown.changed() => {
                    self.close(conn, ctx, Some(CloseCode::GOING_AWAY), "server shutting down").await?;
                    continue;
                }
                _ = sleep_until(self.close_deadline), if self.close_deadline.is_some() => {
                    let message = format!("the client did not answer the close frame within {CLOSE_WAIT:?}");
                    ctx.events.emit(&ctx.id, None, EventKind::Error { message }).await;
                    conn.finish(Duration::ZERO).await;
                    return Ok(Ending::dropped(ClosedBy::Server));
                }
                _ = sleep_until(self.end_at), if self.end_at.is_some() && open(conn) => {
                    if let Some(ending) = self.end(conn, ctx).await? {
                        return Ok(ending);
                    }
                    continue;
                }
                _ = sleep_until(self.idle_deadline), if self.idle_deadline.is_some() && open(conn) => {
                    let Some(idle) = self.plan.idle_timeout else { continue };
                    let text = format!("no frame crossed for {:?}: idle timeout", idle.after);
                    ctx.events.emit(&ctx.id, None, EventKind::Note { text }).await;
                    if idle.drop {
                        return Ok(drop_now(conn, false));
                    }
                    self.idle_deadline = None;
                    self.close(conn, ctx, Some(CloseCode::GOING_AWAY), "idle timeout").await?;
                    continue;
                }
                _ = sleep_until(self.invalid_at), if self.invalid_at.is_some() && open(conn) => {
                    self.invalid_at = None;
                    if let Some((kind, _)) = self.plan.invalid {
                        self.misbehave(conn, ctx, kind).await?;
                    }
                    continue;
                }
                _ = tick(&mut self.pings), if self.pings.is_some() && open(conn) => {
                    self.ping_seq += 1;
                    let payload = self.ping_seq.to_be_bytes();
                    conn.send_control(OpCode::Ping, &payload).await?;
                    self.touch();
                    let frame = EventKind::Frame(Frame::control(OpCode::Ping, &payload));
                    ctx.events.emit(&ctx.id, Some(Direction::ServerToClient), frame).await;
                    continue;
                }
                _ = tick(&mut self.stream), if self.stream.is_some() && open(conn) => {
                    self.stream_one(conn, ctx).await?;
                    continue;
                }
                _ = sleep_until(self.delayed.front().map(|(due, ..)| *due)), if !self.delayed.is_empty() && open(conn) => {
                    if let Some((_, opcode, data)) = self.delayed.pop_front() {
                        self.reply(conn, ctx, opcode, &data).await?;
                    }
                    continue;
                }
                _ = sleep_until(mock_due(&self.mock, self.opened)), if self.mock.as_ref().is_some_and(|m| m.next_due().is_some()) && open(conn) => {
                    let now = self.elapsed_us();
                    let actions = self.mock.as_mut().map(|mock| mock.due(now)).unwrap_or_default();
                    self.play(conn, ctx, actions).await?;
                    continue;
                }
                command = recv_command(&mut ctx.commands), if ctx.commands.is_some() => {
                    match command {
                        // We are the server: everything goes to the client.
                        Some(Command::Inject(_, message)) if open(conn) => {
                            let (opcode, data) = match message {
                                Injected::Text(text) => (OpCode::Text, text.into_bytes()),
                                Injected::Binary(data) => (OpCode::Binary, data),
                            };
                            self.reply(conn, ctx, opcode, &data).await?;
                        }
                        Some(Command::Inject(..)) => {}
                        Some(Command::Close(_, code, reason)) => {
                            self.close(conn, ctx, Some(CloseCode(code)), &reason).await?;
                        }
                        Some(Command::Reset) => return Ok(drop_now(conn, true)),
                        None => ctx.commands = None,
                    }
                    continue;
                }
                received = recv_broadcast(&mut self.broadcast), if self.broadcast.is_some() && open(conn) => {
                    match received {
                        Ok((opcode, data)) => self.reply(conn, ctx, opcode, &data).await?,
                        Err(skipped) => {
                            let text = format!("broadcast: this client fell behind and missed {skipped} messages");
                            ctx.events.emit(&ctx.id, None, EventKind::Note { text }).await;
                        }
                    }
                    continue;
                }
            };
            self.touch();
            match incoming {
                Ok(Incoming::Message(message)) => {
                    let event = Message::capture(&message, ctx.events.payload_limit);
                    ctx.events
                        .emit(
                            &ctx.id,
                            Some(Direction::ClientToServer),
                            EventKind::Message(event),
                        )
                        .await;
                    if conn.close_sent() {
                        continue;
                    }
                    let first_message_ends = self
                        .plan
                        .ending
                        .as_ref()
                        .is_some_and(|ending| ending.after.is_none());
                    if first_message_ends {
                        if let Some(ending) = self.end(conn, ctx).await? {
                            return Ok(ending);
                        }
                        continue;
                    }
                    self.on_message(conn, ctx, message.opcode, Bytes::from(message.data))
                        .await?;
                }
                // Only with --frames (`Connection::capture_frames`).
                Ok(Incoming::DataFrame(header, payload)) => {
                    // A continuation is text when its message started as text.
                    if header.opcode != OpCode::Continuation {
                        self.frames_are_text = header.opcode == OpCode::Text && !header.rsv1;
                    }
                    let frame = Frame::new(&header, &payload, self.frames_are_text);
                    ctx.events
                        .emit(
                            &ctx.id,
                            Some(Direction::ClientToServer),
                            EventKind::Frame(frame),
                        )
                        .await;
                }
                Ok(Incoming::Ping(payload)) => {
                    let frame = EventKind::Frame(Frame::control(OpCode::Ping, &payload));
                    ctx.events
                        .emit(&ctx.id, Some(Direction::ClientToServer), frame)
                        .await;
                    if self.plan.answer_pings && !conn.close_sent() {
                        let pong = EventKind::Frame(Frame::control(OpCode::Pong, &payload));
                        ctx.events
                            .emit(&ctx.id, Some(Direction::ServerToClient), pong)
                            .await;
                    }
                }
                Ok(Incoming::Pong(payload)) => {
                    let frame = EventKind::Frame(Frame::control(OpCode::Pong, &payload));
                    ctx.events
                        .emit(&ctx.id, Some(Direction::ClientToServer), frame)
                        .await;
                }
                Ok(Incoming::Close(close)) => {
                    return Ok(self.on_close(conn, ctx, close).await);
                }
                Ok(Incoming::Eof) => return Ok(Ending::dropped(ClosedBy::Client)),
                Err(ConnError::Proto(err)) => {
                    let code = close_code_for(&err);
                    let message = format!(
                        "the client {}; closing with {code}: {err}",
                        crate::network::connection::what_the_peer_did(&err)
                    );
                    ctx.events
                        .emit(&ctx.id, None, EventKind::Error { message })
                        .await;
                    let close = EventKind::Close(Close::new(Some(code), &err.to_string()));
                    ctx.events
                        .emit(&ctx.id, Some(Direction::ServerToClient), close)
                        .await;
                    conn.finish(Duration::from_secs(2)).await;
                    return Ok(Ending {
                        by: ClosedBy::Server,
                        clean: false,
                        code,
                        reason: err.to_string(),
                    });
                }
                Err(ConnError::Io(err)) => return Err(ConnError::Io(err)),
            }
        }
    }

    /// What a message from the client gets: an echo (now, later, or in
    /// fragments), a broadcast, or nothing.
    async fn on_message(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &Ctx,
        opcode: OpCode,
        data: Bytes,
    ) -> Result<(), ConnError> {
        let now = self.elapsed_us();
        if let Some(mock) = &mut self.mock {
            let message = Compared {
                number: 0,
                binary: opcode == OpCode::Binary,
                payload: Payload::capture(&data, opcode == OpCode::Text, usize::MAX),
            };
            let actions = mock.on_client(now, &message);
            return self.play(conn, ctx, actions).await;
        }
        match self.plan.reply {
            Reply::Silent => Ok(()),
            Reply::Broadcast => {
                if let Some((sender, _)) = &self.broadcast {
                    // Our own receiver is subscribed, so this cannot fail.
                    let _ = sender.send((opcode, data));
                }
                Ok(())
            }
            Reply::Echo => match self.plan.delay {
                Some(delay) => {
                    let jitter = if delay.jitter.is_zero() {
                        Duration::ZERO
                    } else {
                        delay.jitter.mul_f64(rand::rng().random::<f64>())
                    };
                    let mut due = Instant::now() + delay.base + jitter;
                    // Jitter must not reorder: never before the one ahead.
                    if let Some((last, ..)) = self.delayed.back() {
                        due = due.max(*last);
                    }
                    self.delayed.push_back((due, opcode, data));
                    Ok(())
                }
                None => self.reply(conn, ctx, opcode, &data).await,
            },
        }
    }

    /// Microseconds since the session began: the mock's clock.
    fn elapsed_us(&self) -> u64 {
        self.opened.elapsed().as_micros() as u64
    }

    /// Carries out what the mock answered, in order; nothing after a
    /// close.
    async fn play(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &Ctx,
        actions: Vec<Action>,
    ) -> Result<(), ConnError> {
        for action in actions {
            match action {
                Action::Send(message) => {
                    let opcode = if message.binary {
                        OpCode::Binary
                    } else {
                        OpCode::Text
                    };
                    self.reply(conn, ctx, opcode, message.payload.bytes())
                        .await?;
                }
                Action::Note(text) => {
                    ctx.events
                        .emit(&ctx.id, None, EventKind::Note { text })
                        .await;
                }
                Action::Close { code, reason } => {
                    self.close(conn, ctx, code, &reason).await?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Sends one message to the client (in fragments when asked).
    async fn reply(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &Ctx,
        opcode: OpCode,
        data: &[u8],
    ) -> Result<(), ConnError> {
        let frames = self.plan.fragments.unwrap_or(1);
        if frames > 1 {
            conn.queue_fragmented(opcode, data, frames)?;
        } else {
            conn.queue_message(opcode, data)?;
        }
        conn.flush().await?;
        self.touch();
        let mut event = Message::new(opcode, data, ctx.events.payload_limit);
        event.compressed = conn.compressing();
        event.frames = frames.min(data.len().max(1) as u32);
        ctx.events
            .emit(
                &ctx.id,
                Some(Direction::ServerToClient),
                EventKind::Message(event),
            )
            .await;
        Ok(())
    }

    /// `/stream`: one more message, and a normal close after the last.
    async fn stream_one(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &mut Ctx,
    ) -> Result<(), ConnError> {
        let Some(spec) = self.plan.stream else {
            return Ok(());
        };
        self.streamed += 1;
        let (opcode, data) = stream_message(self.streamed, spec.size, spec.binary);
        self.reply(conn, ctx, opcode, &data).await?;
        if spec.count.is_some_and(|count| self.streamed >= count) {
            self.stream = None;
            self.close(conn, ctx, Some(CloseCode::NORMAL), "stream complete")
                .await?;
        }
        Ok(())
    }

    /// Sends our close frame and starts waiting for the answer.
    async fn close(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &Ctx,
        code: Option<CloseCode>,
        reason: &str,
    ) -> Result<(), ConnError> {
        if conn.close_sent() {
            return Ok(());
        }
        conn.close(code, reason).await?;
        self.close_deadline = Some(Instant::now() + CLOSE_WAIT);
        let close = EventKind::Close(Close::new(code, reason));
        ctx.events
            .emit(&ctx.id, Some(Direction::ServerToClient), close)
            .await;
        Ok(())
    }

    /// The plan's own ending: a close frame (then wait for the answer), or
    /// a drop (the connection is over).
    async fn end(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &Ctx,
    ) -> Result<Option<Ending>, ConnError> {
        self.end_at = None;
        match self.plan.ending.as_ref().map(|e| &e.action) {
            Some(EndAction::Close { code, reason }) => {
                self.close(conn, ctx, Some(*code), reason).await?;
                Ok(None)
            }
            Some(EndAction::Drop { reset }) => {
                let how = if *reset { "TCP reset" } else { "TCP close" };
                let text = format!("dropping the connection without a close frame ({how})");
                ctx.events
                    .emit(&ctx.id, None, EventKind::Note { text })
                    .await;
                Ok(Some(drop_now(conn, *reset)))
            }
            None => Ok(None),
        }
    }

    /// The client's close frame: the answer to ours, or its own (which the
    /// connection has already answered).
    async fn on_close(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &Ctx,
        close: ClosePayload,
    ) -> Ending {
        let we_closed_first = self.close_deadline.is_some();
        let event = EventKind::Close(Close::new(close.code, &close.reason));
        ctx.events
            .emit(&ctx.id, Some(Direction::ClientToServer), event)
            .await;
        if !we_closed_first {
            // Connection::next queued the echo of the client's code.
            let echo = EventKind::Close(Close::new(close.code, ""));
            ctx.events
                .emit(&ctx.id, Some(Direction::ServerToClient), echo)
                .await;
        }
        conn.finish(Duration::from_secs(2)).await;
        Ending {
            by: if we_closed_first {
                ClosedBy::Server
            } else {
                ClosedBy::Client
            },
            clean: true,
            code: close.code.unwrap_or(CloseCode::NO_STATUS),
            reason: close.reason,
        }
    }

    /// `/invalid/KIND`: one frame that breaks the protocol.
    async fn misbehave(
        &mut self,
        conn: &mut Connection<NetStream>,
        ctx: &Ctx,
        kind: Invalid,
    ) -> Result<(), ConnError> {
        let (header, payload) = invalid_frame(kind);
        conn.queue_raw_frame(header, &payload);
        conn.flush().await?;
        let text = format!(
            "sent an invalid frame on purpose ({}): the client should fail the connection",
            kind.name()
        );
        ctx.events
            .emit(&ctx.id, None, EventKind::Note { text })
            .await;
        let header = FrameHeader {
            payload_len: payload.len() as u64,
            ..header
        };
        let frame = EventKind::Frame(Frame::new(&header, &payload, header.opcode == OpCode::Text));
        ctx.events
            .emit(&ctx.id, Some(Direction::ServerToClient), frame)
            .await;
        if header.opcode == OpCode::Close {
            self.close_deadline = Some(Instant::now() + CLOSE_WAIT);
        }
        Ok(())
    }
}

/// When the mock's next action falls due (its times count from the
/// session's start).
fn mock_due(mock: &Option<Mock>, opened: Instant) -> Option<Instant> {
    let due = mock.as_ref()?.next_due()?;
    Some(opened + Duration::from_micros(due))
}

/// Ends the connection without a close frame.
fn drop_now(conn: &Connection<NetStream>, reset: bool) -> Ending {
    if reset {
        // If this fails the close is an orderly FIN, which still reads as
        // 1006 to the client.
        let _ = conn.stream().reset_on_close();
    }
    Ending::dropped(ClosedBy::Server)
}

/// The UI's next command (forever without a UI).
async fn recv_command(commands: &mut Option<mpsc::UnboundedReceiver<Command>>) -> Option<Command> {
    match commands {
        Some(commands) => commands.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_broadcast(channel: &mut Option<Membership>) -> Result<(OpCode, Bytes), u64> {
    let Some((_, rx)) = channel else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(message) => Ok(message),
        Err(broadcast::error::RecvError::Lagged(skipped)) => Err(skipped),
        // We hold a sender ourselves, so the channel cannot close.
        Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
    }
}

/// The `seq`th message of `/stream`: exactly `size` bytes. Text starts with
/// the sequence number; binary with it as 8 big-endian bytes.
fn stream_message(seq: u64, size: usize, binary: bool) -> (OpCode, Vec<u8>) {
    let mut data = if binary {
        seq.to_be_bytes().to_vec()
    } else {
        format!("{seq} ").into_bytes()
    };
    let fill = b"abcdefghijklmnopqrstuvwxyz";
    let mut i = 0;
    while data.len() < size {
        data.push(fill[i % fill.len()]);
        i += 1;
    }
    data.truncate(size);
    let opcode = if binary { OpCode::Binary } else { OpCode::Text };
    (opcode, data)
}

/// The frame each kind of violation sends.
fn invalid_frame(kind: Invalid) -> (FrameHeader, Vec<u8>) {
    let plain = |opcode| FrameHeader::new(opcode, 0);
    match kind {
        Invalid::Utf8 => (plain(OpCode::Text), b"not utf-8: \xff\xfe".to_vec()),
        Invalid::ControlTooBig => (plain(OpCode::Ping), vec![b'p'; 126]),
        Invalid::ReservedOpcode => (plain(OpCode::Reserved(0x3)), b"reserved".to_vec()),
        Invalid::Rsv => (
            FrameHeader {
                rsv2: true,
                ..plain(OpCode::Text)
            },
            b"rsv2 set".to_vec(),
        ),
        Invalid::CloseCode => (plain(OpCode::Close), 1005u16.to_be_bytes().to_vec()),
        Invalid::CloseReasonUtf8 => {
            let mut payload = 1000u16.to_be_bytes().to_vec();
            payload.extend_from_slice(b"bad \xff");
            (plain(OpCode::Close), payload)
        }
        Invalid::Masked => (
            FrameHeader {
                mask: Some(rand::rng().random()),
                ..plain(OpCode::Text)
            },
            b"masked by the server".to_vec(),
        ),
        Invalid::FragmentedControl => (
            FrameHeader {
                fin: false,
                ..plain(OpCode::Ping)
            },
            b"ping".to_vec(),
        ),
        Invalid::Continuation => (plain(OpCode::Continuation), b"orphan".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_messages_have_the_asked_size_and_say_their_number() {
        let (op, data) = stream_message(7, 12, false);
        assert_eq!(op, OpCode::Text);
        assert_eq!(data, b"7 abcdefghij");
        let (op, data) = stream_message(258, 10, true);
        assert_eq!(op, OpCode::Binary);
        assert_eq!(&data[..8], &258u64.to_be_bytes());
        assert_eq!(data.len(), 10);
        assert_eq!(stream_message(12345, 2, false).1, b"12");
    }

    #[test]
    fn every_invalid_frame_breaks_a_rule_the_reader_checks() {
        use wscope_proto::frame::FrameRules;
        use wscope_proto::{Decoded, Role};
        for kind in [
            Invalid::ControlTooBig,
            Invalid::ReservedOpcode,
            Invalid::Rsv,
            Invalid::Masked,
            Invalid::FragmentedControl,
        ] {
            let (header, payload) = invalid_frame(kind);
            let mut wire = Vec::new();
            FrameHeader {
                payload_len: payload.len() as u64,
                ..header
            }
            .encode(&mut wire);
            let Decoded::Complete { header, header_len } = FrameHeader::decode(&wire) else {
                panic!("{kind:?}: header decodes");
            };
            let mut violations = Vec::new();
            let rules = FrameRules {
                sender: Role::Server,
                deflate: false,
            };
            header.violations(header_len, rules, &mut violations);
            assert!(!violations.is_empty(), "{kind:?} must be a violation");
        }
        let (_, payload) = invalid_frame(Invalid::Utf8);
        assert!(std::str::from_utf8(&payload).is_err());
        let (_, payload) = invalid_frame(Invalid::CloseCode);
        assert!(ClosePayload::parse(&payload).1.is_some());
        let (_, payload) = invalid_frame(Invalid::CloseReasonUtf8);
        assert!(ClosePayload::parse(&payload).1.is_some());
    }
}
